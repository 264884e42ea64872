"""The `harness` command line: a thin layer over the Python API."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from . import __version__

app = typer.Typer(
    name="harness",
    help="Observability-first evaluation and replay harness for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"max_content_width": 100, "terminal_width": 100},
)
images_app = typer.Typer(help="Build and inspect sandbox images.", no_args_is_help=True)
app.add_typer(images_app, name="images")
tasks_app = typer.Typer(help="Work with tasks in the Harbor task format.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")

# Not a terminal (a pipe, CI log): use a wide layout instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else 120
out = Console(width=_WIDTH)
err = Console(stderr=True, width=_WIDTH)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        out.print(f"harness {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            "--otlp-endpoint",
            metavar="URL",
            help="Also send every recorded span to this OTLP/HTTP collector (base URL).",
        ),
    ] = None,
) -> None:
    """Observability-first evaluation and replay harness for AI agents."""
    if otlp_endpoint:
        os.environ["HARNESS_OTLP_ENDPOINT"] = otlp_endpoint


@app.command()
def setup(
    image: Annotated[str | None, typer.Option(help="Base image name to ensure.")] = None,
) -> None:
    """Start (or install) the Docker engine and build the base image."""
    from sandbox import DEFAULT_IMAGE, SandboxError, build_base_image, image_exists
    from sandbox._engine import ensure_engine

    name = image or DEFAULT_IMAGE
    try:
        ensure_engine(say=lambda m: err.print(m, highlight=False))
        if image_exists(name):
            err.print(f"engine ready; base image {name} present", highlight=False)
            return
        with err.status(f"building {name}") as status:
            build_base_image(name, progress=lambda m: status.update(f"building {name}: {m}"))
        err.print(f"built {name}", highlight=False)
    except SandboxError as exc:
        raise _fail(str(exc)) from None


@images_app.command("build")
def images_build(
    name: Annotated[
        str | None, typer.Option(help="Image name (default harness-base:bookworm).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if the image exists.")] = False,
    mirror: Annotated[str | None, typer.Option(help="Debian mirror URL.")] = None,
) -> None:
    """Build the base image from Debian's mirror (no registry needed)."""
    from sandbox import DEFAULT_IMAGE, SandboxError, build_base_image, image_exists
    from sandbox._images import DEFAULT_MIRROR

    name = name or DEFAULT_IMAGE
    try:
        if image_exists(name) and not force:
            out.print(f"{name} already exists (use --force to rebuild)", highlight=False)
            return
        with err.status(f"building {name}") as status:
            image_id = build_base_image(
                name,
                force=force,
                mirror=mirror or DEFAULT_MIRROR,
                progress=lambda m: status.update(f"building {name}: {m}"),
            )
        out.print(f"built {name} {image_id}", highlight=False)
    except SandboxError as exc:
        raise _fail(str(exc)) from None


@tasks_app.command("check")
def tasks_check(
    paths: Annotated[list[str], typer.Argument(help="Task folders, or folders of tasks.")],
    as_json: Annotated[bool, typer.Option("--json", help="Output JSON.")] = False,
) -> None:
    """Validate tasks: every problem with its file, field and fix; exit 1 if any is invalid."""
    from ._tasks import find_tasks, load_task

    results = []
    for path in find_tasks(list(paths)):
        task, problems = load_task(path)
        results.append((path, task, problems))
    bad = sum(1 for _, t, _ in results if t is None)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "path": str(p),
                        "valid": t is not None,
                        "problems": [x.__dict__ for x in probs],
                    }
                    for p, t, probs in results
                ]
            )
        )
    else:
        for path, task, problems in results:
            mark = "[green]ok[/]" if task is not None else "[red]invalid[/]"
            steps = f", {len(task.steps)} steps" if task is not None and len(task.steps) > 1 else ""
            out.print(f"{mark} {path}{steps}", highlight=False)
            for prob in problems:
                color = "red" if prob.severity == "error" else "yellow"
                out.print(f"  {prob}", style=color, highlight=False, markup=False)
        if not results:
            out.print("no tasks found (a task is a folder with a task.toml)", highlight=False)
        out.print(f"{len(results) - bad} valid, {bad} invalid", highlight=False)
    if bad or not results:
        raise typer.Exit(1)


@app.command()
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, do not remove.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Output JSON.")] = False,
) -> None:
    """Remove containers and temp images left by dead harness processes."""
    from sandbox import SandboxError
    from sandbox import gc as run_gc

    try:
        items = run_gc(dry_run=dry_run)
    except SandboxError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        verb = "would_remove" if dry_run else "removed"
        print(json.dumps({verb: [i.__dict__ for i in items]}))
        return
    verb = "would remove" if dry_run else "removed"
    for i in items:
        out.print(f"{verb} {i.kind} {i.name} (owner pid {i.owner_pid} gone)", highlight=False)
    out.print(f"{len(items)} {'item' if len(items) == 1 else 'items'} {verb}", highlight=False)


@app.command()
def doctor(
    image: Annotated[str | None, typer.Option(help="Base image to check.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Output JSON.")] = False,
) -> None:
    """Check the engine, base image and fast paths; say how to fix problems."""
    from sandbox import DEFAULT_IMAGE
    from sandbox._probe import run_checks

    checks = run_checks(image or DEFAULT_IMAGE)
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        print(json.dumps({"ok": not failed, "checks": [c.as_dict() for c in checks]}))
    else:
        table = Table(show_header=True, header_style="bold")
        for col in ("check", "status", "detail", "fix"):
            table.add_column(col, overflow="fold")
        colors = {"ok": "green", "warn": "yellow", "fail": "red"}
        for c in checks:
            table.add_row(c.name, f"[{colors[c.status]}]{c.status}[/]", c.detail, c.fix)
        out.print(table)
    if failed:
        raise typer.Exit(1)


DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Trace store file (default $HARNESS_DB or .harness/traces.duckdb)."),
]


@app.command("exec")
def exec_(
    commands: Annotated[list[str], typer.Argument(help="Commands, run in order in one session.")],
    image: Annotated[
        str | None, typer.Option(help="Image (default harness-base:bookworm).")
    ] = None,
    network: Annotated[
        str, typer.Option(help="Network mode: none, bridge, or a network name.")
    ] = "none",
    memory: Annotated[str, typer.Option(help="Memory limit, e.g. 512m, 2g.")] = "2g",
    cpus: Annotated[float, typer.Option(help="CPU limit.")] = 1.0,
    timeout: Annotated[float, typer.Option(help="Per-command timeout in seconds.")] = 600.0,
    workdir: Annotated[str | None, typer.Option(help="Starting directory.")] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE, repeatable.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per command.")] = False,
    db: DbOption = None,
    record: Annotated[
        bool, typer.Option(help="Record commands, file changes and resources in the store.")
    ] = True,
    run_id: Annotated[str | None, typer.Option(help="Run id for the record.")] = None,
) -> None:
    """Run commands in one persistent shell in a fresh sandbox, and record what happened."""
    import contextlib

    import traces
    from sandbox import DEFAULT_IMAGE, Limits, Recording, Sandbox, SandboxError

    env_map: dict[str, str] = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"--env {item!r}: expected KEY=VALUE")
        env_map[key] = value
    try:
        limits = Limits(memory=memory, cpus=cpus)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _fail(f"invalid limit: {exc}") from None
    status = 0  # the first failing command's exit code, 124 for a timeout
    run_id = run_id or f"exec-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}"
    recorder = traces.Recorder(db) if record else None
    try:
        with contextlib.ExitStack() as stack:
            recording = None
            if recorder is not None:
                stack.callback(recorder.shutdown)
                tracer = recorder.tracer("harness.cli")
                trial = stack.enter_context(
                    tracer.start_as_current_span(
                        "invoke_agent harness-exec",
                        attributes={
                            "harness.run.id": run_id,
                            "harness.task.id": "exec",
                            "gen_ai.agent.name": "harness-exec",
                            "container.image.name": image or DEFAULT_IMAGE,
                        },
                    )
                )
                recording = Recording(tracer=tracer, blobs=recorder)
            sb = stack.enter_context(
                Sandbox(
                    image or DEFAULT_IMAGE,
                    limits=limits,
                    network=network,
                    env=env_map,
                    workdir=workdir,
                    timeout=timeout,
                    run_id=run_id,
                    record=recording,
                )
            )
            if not as_json:
                cid = (sb.container_id or "")[:12]
                out.print(
                    f"[dim]sandbox {cid} ({sb.image}, network {network}, "
                    f"memory {memory}, cpus {cpus})[/]",
                    highlight=False,
                )
            for cmd in commands:
                r = sb.run(cmd)
                if status == 0 and not r.ok:
                    status = 124 if r.timed_out else (r.exit_code or 1)
                if as_json:
                    print(json.dumps(_result_json(cmd, r)), flush=True)
                else:
                    _print_result(cmd, r)
            if recorder is not None:
                trial.set_attribute("harness.outcome", "passed" if status == 0 else "failed")
    except (SandboxError, traces.StoreError) as exc:
        raise _fail(str(exc)) from None
    if recorder is not None and not as_json:
        err.print(
            f"[dim]recorded run {run_id} in {recorder.store.path}; try: harness sql "
            f"\"SELECT command, exit_code FROM commands WHERE run_id = '{run_id}'\"[/]",
            highlight=False,
            soft_wrap=True,
        )
    raise typer.Exit(status if 0 <= status <= 255 else 1)


@app.command()
def run(
    tasks: Annotated[
        list[str] | None, typer.Argument(help="Task folders or suite folders.")
    ] = None,
    agent: Annotated[str, typer.Option(help="oracle, nop, a plug-in name, or module:Class.")] = (
        "oracle"
    ),
    trials: Annotated[int, typer.Option(min=1, help="Trials per task.")] = 1,
    concurrency: Annotated[int, typer.Option(min=1, help="Trials at once.")] = 2,
    task_filter: Annotated[str | None, typer.Option(help="Only tasks whose name matches.")] = None,
    timeout_multiplier: Annotated[float, typer.Option(help="Scale every timeout.")] = 1.0,
    image_map: Annotated[
        list[str] | None,
        typer.Option("--image-map", help="FROM=TO: build FROM images as TO (repeatable)."),
    ] = None,
    force_build: Annotated[bool, typer.Option(help="Rebuild task images.")] = False,
    footer: Annotated[bool, typer.Option(help="Tell the agent its time budget.")] = True,
    resume: Annotated[str | None, typer.Option(help="Run the missing trials of RUN_ID.")] = None,
    model: Annotated[str | None, typer.Option(help="Model for the openai agent.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint (default: OpenAI's).")
    ] = None,
    api: Annotated[str, typer.Option(help="openai agent: responses or chat.")] = "responses",
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the API key.")
    ] = "OPENAI_API_KEY",
    max_steps: Annotated[int, typer.Option(help="openai agent: most model calls.")] = 50,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    reasoning_effort: Annotated[str | None, typer.Option(help="low, medium or high.")] = None,
    script: Annotated[
        str | None, typer.Option(help="scripted agent: YAML file of commands.")
    ] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run tasks with an agent: each trial in its own recorded sandbox, scored."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    import traces

    from ._build import parse_image_map
    from ._runner import (
        RunConfig,
        finished_trials,
        load_suite,
        new_run_id,
        record_config,
        run_suite,
        stored_config,
        summarize,
    )
    from ._tasks import TaskError

    store = traces.open(db)
    try:
        if resume:
            cfg = stored_config(store, resume)
            run_id, skip = resume, finished_trials(store, resume)
        else:
            if not tasks:
                raise _fail("name at least one task folder (or use --resume RUN_ID)", 2)
            options: dict[str, Any] = {}
            if agent == "openai":
                options = {
                    k: v
                    for k, v in {
                        "model": model,
                        "base_url": base_url,
                        "api": api,
                        "api_key_env": api_key_env,
                        "max_steps": max_steps,
                        "temperature": temperature,
                        "seed": seed,
                        "reasoning_effort": reasoning_effort,
                    }.items()
                    if v is not None
                }
            elif agent == "scripted":
                options = {"script": str(Path(script).resolve()) if script else None}
            cfg = RunConfig(
                tasks=[str(Path(t).resolve()) for t in tasks],
                agent=agent,
                agent_options=options,
                trials=trials,
                concurrency=concurrency,
                task_filter=task_filter,
                timeout_multiplier=timeout_multiplier,
                image_map=parse_image_map(image_map),
                force_build=force_build,
                footer=footer,
            )
            run_id, skip = new_run_id(), set()
        suite = load_suite(cfg)
        from ._agents import load_agent

        load_agent(cfg.agent, cfg.agent_options)  # a bad agent fails now, not in every trial
    except (ValueError, TaskError, traces.StoreError) as exc:
        raise _fail(str(exc), 2) from None
    if not suite:
        raise _fail("no tasks matched", 2)
    total = len(suite) * cfg.trials - len(skip)
    err.print(
        f"run {run_id}: {len(suite)} tasks x {cfg.trials} trials, agent {cfg.agent}, "
        f"concurrency {cfg.concurrency}" + (f", resuming {total} trials" if resume else ""),
        highlight=False,
    )
    print(run_id, flush=True)
    recorder = traces.Recorder(store)
    counts = {"passed": 0, "errors": 0}
    try:
        if not resume:
            record_config(recorder, run_id, cfg)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        ) as progress:
            bar = progress.add_task("trials", total=total, info="")

            def on_result(r: Any) -> None:
                counts["passed"] += r.passed
                counts["errors"] += r.outcome not in ("passed", "failed")
                progress.update(
                    bar, advance=1, info=f"passing {counts['passed']}  errors {counts['errors']}"
                )

            def on_build(task_id: str) -> None:
                progress.update(bar, info=f"building {task_id}")

            run_suite(suite, cfg, recorder, run_id, skip, on_result, on_build)
    finally:
        recorder.shutdown()
    summary = summarize(store, run_id, cfg.trials)
    if as_json:
        print(json.dumps(summary, default=str))
        return
    table = Table(title=f"run {run_id}", header_style="bold")
    for col in (
        "task",
        "trials",
        "pass rate",
        "mean reward",
        "mean steps",
        "tokens in/out",
        "mean time",
    ):
        table.add_column(col)
    for row in summary["tasks"]:
        reward = "" if row["mean_reward"] is None else f"{row['mean_reward']:.2f}"
        steps = "" if row["mean_steps"] is None else f"{row['mean_steps']:.1f}"
        table.add_row(
            str(row["task"]),
            str(row["trials"]),
            f"{row['pass_rate']:.0%}",
            reward,
            steps,
            f"{row['input_tokens']}/{row['output_tokens']}",
            f"{row['mean_duration_s']:.1f} s",
        )
    out.print(table)
    lo, hi = summary["pass_rate_ci95"]
    ks = "  ".join(f"{k} {v:.2f}" for k, v in summary.items() if k.startswith("pass@"))
    out.print(
        f"suite pass rate {summary['pass_rate']:.0%} (95% CI {lo:.0%}-{hi:.0%}), "
        f"{summary['passed']}/{summary['trials']} trials  {ks}",
        highlight=False,
    )
    if summary["errors"]:
        out.print(
            "errors: " + ", ".join(f"{k} {v}" for k, v in summary["errors"].items()),
            highlight=False,
        )


@app.command()
def runs(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Output JSON.")] = False,
) -> None:
    """List the runs in the trace store."""
    import traces

    try:
        table = traces.open(db).arrow(
            "SELECT run_id, started_at, trials, passed, round(pass_rate, 3) AS pass_rate, "
            "errors, agents FROM runs ORDER BY started_at DESC"
        )
    except traces.StoreError as exc:
        raise _fail(str(exc), 2) from None
    _write_table(table, "json" if as_json else "table", None)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL over the views (runs, trials, commands...).")],
    db: DbOption = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table, csv, json, jsonl or parquet.")
    ] = "table",
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
) -> None:
    """Query the trace store with SQL; tables for people, csv/json/parquet for pipelines."""
    import traces

    if fmt not in ("table", "csv", "json", "jsonl", "parquet"):
        raise _fail(f"--format {fmt!r}: use table, csv, json, jsonl or parquet", 2)
    if fmt == "parquet" and not output:
        raise _fail("--format parquet needs --output FILE", 2)
    store = traces.open(db)
    try:
        table = store.arrow(query)
    except traces.QueryError as exc:
        views = ", ".join(exc.views)
        raise _fail(
            f"{exc}\nviews you can query: {views} (tables: spans, span_events, span_links, blobs)",
            2,
        ) from None
    except traces.StoreError as exc:
        raise _fail(str(exc), 2) from None
    _write_table(table, fmt, output)


def _write_table(table: Any, fmt: str, output: str | None) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        pq.write_table(table, output)
        return
    if fmt == "table":
        rich_table = Table(show_header=True, header_style="bold")
        for name in table.column_names:
            rich_table.add_column(name, overflow="fold")
        rows = table.slice(0, 1000).to_pylist()
        for row in rows:
            rich_table.add_row(*("" if v is None else str(v) for v in row.values()))
        target = Console(file=open(output, "w"), width=200) if output else out  # noqa: SIM115
        target.print(rich_table)
        if table.num_rows > len(rows):
            err.print(
                f"[dim]{table.num_rows - len(rows)} more rows not shown; use --format "
                "csv or a LIMIT[/]",
                highlight=False,
            )
        else:
            n = table.num_rows
            err.print(f"[dim]{n} row{'' if n == 1 else 's'}[/]", highlight=False)
        return
    stream = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        if fmt == "csv":
            buf = __import__("io").BytesIO()
            pacsv.write_csv(table, buf)
            stream.write(buf.getvalue().decode())
        else:
            rows = table.to_pylist()
            if fmt == "json":
                stream.write(json.dumps(rows, default=str, ensure_ascii=False) + "\n")
            else:
                for row in rows:
                    stream.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
    finally:
        if output:
            stream.close()


@app.command("export")
def export_(
    run: Annotated[str, typer.Option("--run", help="The run id to export.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Folder (parquet) or file.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet or otlp-json.")] = "parquet",
    db: DbOption = None,
) -> None:
    """Export a run: parquet (everything, blobs included) or OTLP JSON (spans)."""
    import traces

    try:
        counts = traces.export_run(traces.open(db), run, fmt, output)
    except traces.StoreError as exc:
        raise _fail(str(exc), 2) from None
    out.print(
        f"exported run {run} to {output}: " + ", ".join(f"{v} {k}" for k, v in counts.items()),
        highlight=False,
    )


@app.command("import")
def import_(
    path: Annotated[str, typer.Argument(help="A parquet export folder or an OTLP JSON file.")],
    db: DbOption = None,
) -> None:
    """Import a parquet export or OTLP JSON into the store (all or nothing)."""
    import traces

    try:
        r = traces.import_path(traces.open(db), path)
    except traces.StoreError as exc:
        raise _fail(str(exc), 2) from None
    out.print(
        f"imported {r.spans} spans, {r.events} events, {r.links} links, {r.blobs} blobs"
        + (f" ({r.skipped_spans} spans were already there)" if r.skipped_spans else ""),
        highlight=False,
    )


def _result_json(cmd: str, r: Any) -> dict[str, Any]:
    return {
        "command": cmd,
        "exit_code": r.exit_code,
        "stdout": r.stdout_text,
        "stderr": r.stderr_text,
        "duration_ms": round(r.duration * 1000, 3),
        "timed_out": r.timed_out,
        "stdout_bytes": r.stdout_bytes,
        "stderr_bytes": r.stderr_bytes,
        "truncated": r.truncated,
        "oom_killed": r.oom_killed,
        "session_restarted": r.session_restarted,
        "cwd": r.cwd,
    }


def _print_result(cmd: str, r: Any) -> None:
    color = "green" if r.ok else "red"
    flags = [
        f
        for f, on in (
            ("timed out", r.timed_out),
            ("OOM-killed", r.oom_killed),
            ("shell restarted", r.session_restarted),
            ("output truncated", r.truncated),
        )
        if on
    ]
    out.print(
        f"[bold]$ {cmd}[/]  [{color}]exit {r.exit_code}[/] [dim]{r.duration * 1000:.1f} ms"
        f"  cwd {r.cwd}{'  ' + ', '.join(flags) if flags else ''}[/]",
        highlight=False,
        soft_wrap=True,
    )
    if r.stdout:
        out.print(r.stdout_text.rstrip("\n"), highlight=False, markup=False, soft_wrap=True)
    if r.stderr:
        out.print(
            r.stderr_text.rstrip("\n"),
            style="yellow",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def main() -> None:
    app()
