"""`harness run` and `harness runs`: run a suite, list runs.

Agents declare their own options (``Agent.Options``); :func:`take_agent_options` finds
their flags on the command line, so this module knows no agent by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ._common import AgentOptionOption, DbOption, err, fail, out, say, write_table

AGENT_OPTIONS = "agent_options"  # the key in the context object where agents' flags wait


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(runs)


def subcommand_index(argv: list[str]) -> int | None:
    """Where the subcommand is in ``argv`` (the global options taken out, so only flags of
    the root can come before it), if any."""
    return next((i for i, token in enumerate(argv) if not token.startswith("-")), None)


def take_agent_options(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Split the agents' own flags (``--model X``, ``--flag``/``--no-flag``) from ``run``'s
    arguments. They are validated later by the chosen agent's model, which also says when
    an option belongs to another agent."""
    from ..agents import builtin_options

    infos = {i.flag: i for i in builtin_options()}
    negations = {f"--no-{flag[2:]}": i for flag, i in infos.items() if i.is_flag}
    rest: list[str] = []
    given: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        flag, eq, value = token.partition("=")
        if token == "--":
            rest.extend(argv[i:])
            break
        if flag in infos and not infos[flag].is_flag:
            if not eq:
                if i + 1 >= len(argv):
                    raise ValueError(f"{flag} needs a value")
                value = argv[i + 1]
                i += 1
            given[infos[flag].name] = value
        elif token in infos:
            given[infos[token].name] = True
        elif token in negations:
            given[negations[token].name] = False
        else:
            rest.append(token)
        i += 1
    return rest, given


def agent_options_help() -> str:
    """The agents' options, for the end of ``harness run --help``."""
    from ..agents import builtin_options

    lines = ["\b", "Agent options (each agent validates its own; any agent: --agent-option):"]
    for info in builtin_options():
        flag = info.flag if info.is_flag else f"{info.flag} VALUE"
        lines.append(f"  {flag:<28} [{', '.join(info.agents)}] {info.help}")
    return "\n".join(lines)


def _agent_options(ctx: typer.Context, agent: str, pairs: list[str] | None) -> dict[str, Any]:
    """The options given for ``agent``: its flags, then ``--agent-option KEY=VALUE``s."""
    from ..agents import validate_options

    options: dict[str, Any] = dict((ctx.obj or {}).get(AGENT_OPTIONS, {}))
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--agent-option {pair!r}: expected KEY=VALUE")
        options[key.replace("-", "_")] = value
    return validate_options(agent, options)


def run(
    ctx: typer.Context,
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
    snapshot: Annotated[
        bool,
        typer.Option(
            help="Commit each trial's sandbox as an image after every agent step, so `harness "
            "fork` restores a step's state without re-running the steps before it (about "
            "0.2 s per step, and the disk the steps changed; `harness gc --snapshots` prunes)."
        ),
    ] = False,
    resume: Annotated[str | None, typer.Option(help="Run the missing trials of RUN_ID.")] = None,
    agent_option: AgentOptionOption = None,
    network: Annotated[
        str | None,
        typer.Option(
            help="none: every trial without network, whatever its task says (default: as "
            "each task says; a trial with network gets a network of its own)."
        ),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="Run the valid tasks when some are invalid (listed first).")
    ] = False,
    grace: Annotated[
        float,
        typer.Option(help="Seconds running trials get to finish after Ctrl-C or SIGTERM."),
    ] = 30.0,
    engine_wait: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for a Docker engine that stopped answering before the run "
            "stops (its trials are retried when it answers again)."
        ),
    ] = 120.0,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run tasks with an agent: each trial in its own recorded sandbox, scored.

    Ctrl-C or SIGTERM stops starting trials, lets running ones finish within --grace seconds
    (a second Ctrl-C stops them at once), keeps everything finished, and prints the
    `--resume` command that runs the rest. Exit status: 0 when every trial was scored
    (passed or failed), 1 when any trial ended in an error outcome, 2 for bad input,
    130/143 when stopped by Ctrl-C/SIGTERM.
    """
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    import traces
    from reports import summarize
    from traces.vocab import Outcome

    from .._build import parse_image_map
    from .._control import RunControl
    from .._runner import RunConfig, execute_run, plan_run
    from .._tasks import TaskError

    if network not in (None, "none"):
        raise fail(f"--network {network!r}: the only override is `none`", 2)
    store = traces.open(db)
    try:
        config = None
        if not resume:
            if not tasks:
                raise fail("name at least one task folder (or use --resume RUN_ID)", 2)
            config = RunConfig(
                tasks=[str(Path(t).resolve()) for t in tasks],
                agent=agent,
                agent_options=_agent_options(ctx, agent, agent_option),
                trials=trials,
                concurrency=concurrency,
                task_filter=task_filter,
                timeout_multiplier=timeout_multiplier,
                image_map=parse_image_map(image_map),
                force_build=force_build,
                footer=footer,
                network=network,
                skip_invalid=skip_invalid,
                engine_wait_s=engine_wait,
                snapshot=snapshot,
            )
        plan = plan_run(store, config, resume)
    except (ValueError, TaskError, traces.StoreError) as exc:
        raise fail(str(exc), 2) from None
    for note in plan.notes:
        say(f"note: {note}")
    for bad in plan.invalid:
        say(f"skipped invalid task {bad.path}:")
        for problem in bad.problems:
            if problem.severity == "error":
                say(f"  {problem}")
    if not plan.tasks:
        raise fail("no tasks matched", 2)
    cfg, run_id = plan.config, plan.run_id
    err.print(
        f"run {run_id}: {len(plan.tasks)} tasks x {cfg.trials} trials, agent {cfg.agent}, "
        f"concurrency {cfg.concurrency}" + (f", resuming {plan.total} trials" if resume else ""),
        highlight=False,
        markup=False,
    )
    print(run_id, flush=True)
    recorder = traces.Recorder(store)
    counts = {"passed": 0, "errors": 0}
    control = RunControl(grace_s=grace, say=say)
    restore = _stop_on_signals(control)
    try:
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
            bar = progress.add_task("trials", total=plan.total, info="")

            def on_result(r: Any) -> None:
                counts["passed"] += r.passed
                counts["errors"] += Outcome.is_error(r.outcome)
                progress.update(
                    bar, advance=1, info=f"passing {counts['passed']}  errors {counts['errors']}"
                )

            def on_build(task_id: str) -> None:
                progress.update(bar, info=f"building {task_id}")

            results = execute_run(plan, recorder, on_result, on_build, control)
    finally:
        restore()
        recorder.shutdown(drain_wait_s=2.0)  # everything finished is committed (or spooled)
    late, pending = recorder.late_spans, recorder.pending_spans
    if pending:
        say(
            f"a reader holds {store.path}: {pending} spans of this run wait beside it and are "
            "appended as soon as it lets go (Ctrl-C stops waiting; they stay safe and the "
            "next use of the store adds them)"
        )
        try:
            pending = store.append_spooled(wait_s=600)
        except KeyboardInterrupt:
            pass
    summary = summarize(store, run_id, cfg.trials)
    summary["late_spans"], summary["pending_spans"] = late, pending
    if cfg.snapshot:
        summary["snapshots"] = {
            "count": sum(r.snapshots for r in results),
            "seconds": round(sum(r.snapshot_seconds for r in results), 3),
            "bytes": sum(r.snapshot_bytes for r in results),
        }
    if as_json:
        print(json.dumps(summary, default=str))
    else:
        _print_summary(run_id, summary)
    if cfg.snapshot and not as_json:
        snaps = summary["snapshots"]
        out.print(
            f"snapshots {snaps['count']}: {snaps['seconds']:.1f} s of commits, "
            f"{snaps['bytes'] / 2**20:.1f} MiB of disk (`harness gc --snapshots` prunes them)",
            highlight=False,
        )
    if late:
        say(f"note: {late} spans waited for the store (a reader held it) and were added late")
    if pending:
        say(
            f"warning: {pending} spans still wait beside the store (the summary above lacks "
            "them); the next use of the store adds them"
        )
    resume_cmd = f"harness run --resume {run_id}" + (f" --db {db}" if db else "")
    if control.stopping.is_set():
        finished = sum(1 for r in results if not r.interrupted)
        say(
            f"stopped ({control.reason}): {finished} of {plan.total} trials finished and are "
            f"recorded; run the rest with: {resume_cmd}"
        )
        raise typer.Exit(control.exit_code)
    errored = [r for r in results if Outcome.is_error(r.outcome)]
    if errored:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary["errors"].items()))
        say(f"{len(errored)} trial(s) ended in an error, not a score ({kinds}); exit status 1")
        raise typer.Exit(1)


def _stop_on_signals(control: Any) -> Any:
    """Ctrl-C and SIGTERM ask the run to stop (a second time: now); returns the undo."""
    import signal

    names = {signal.SIGINT: ("Ctrl-C", 130), signal.SIGTERM: ("SIGTERM", 143)}

    def handler(signum: int, frame: Any) -> None:
        name, code = names[signal.Signals(signum)]
        # Decide first, then say: a second signal may arrive while the first is said.
        if control.request_stop(name, code):
            say(
                f"{name}: starting no more trials; running ones get {control.grace_s:.0f} s "
                f"to finish ({name} again to stop them now)"
            )
        else:
            say(f"{name} again: stopping the running trials now")

    previous = {sig: signal.signal(sig, handler) for sig in names}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _print_summary(run_id: str, summary: dict[str, Any]) -> None:
    table = Table(title=f"run {run_id}", header_style="bold")
    with_outcomes = bool(summary["errors"])  # then say per task how its trials ended
    with_tokens = bool(summary["input_tokens"] or summary["output_tokens"])
    columns = ["task", "trials", "pass rate", "mean reward", "mean steps"]
    columns += ["tokens in (cached)/out (reasoning)", "cost"] if with_tokens else []
    columns += ["mean time", *(["outcomes"] if with_outcomes else [])]
    for col in columns:
        table.add_column(col)
    for row in summary["tasks"]:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(row["outcomes"].items()))
        reward = "" if row["mean_reward"] is None else f"{row['mean_reward']:.2f}"
        steps = "" if row["mean_steps"] is None else f"{row['mean_steps']:.1f}"
        table.add_row(
            Text(str(row["task"])),
            str(row["trials"]),
            f"{row['pass_rate']:.0%}",
            reward,
            steps,
            *([_tokens(row), _cost(row["cost_usd"])] if with_tokens else []),
            f"{row['mean_duration_s']:.1f} s",
            *([outcomes] if with_outcomes else []),
        )
    out.print(table)
    lo, hi = summary["pass_rate_ci95"]
    ks = "  ".join(f"{k} {v:.2f}" for k, v in summary.items() if k.startswith("pass@"))
    out.print(
        f"suite pass rate {summary['pass_rate']:.0%} (95% CI {lo:.0%}-{hi:.0%}), "
        f"{summary['passed']}/{summary['trials']} trials  {ks}",
        highlight=False,
    )
    if with_tokens:
        out.print(f"tokens {_tokens(summary)}, cost {_cost(summary['cost_usd'])}", highlight=False)
    if summary["errors"]:
        out.print(
            "errors: " + ", ".join(f"{k} {v}" for k, v in summary["errors"].items()),
            highlight=False,
        )


def _tokens(row: dict[str, Any]) -> str:
    return (
        f"{row['input_tokens']:,} ({row['cached_tokens']:,})/"
        f"{row['output_tokens']:,} ({row['reasoning_tokens']:,})"
    )


def _cost(usd: float | None) -> str:
    """Dollars at list price; "n/a" for a model with no known price."""
    return "n/a" if usd is None else f"${usd:.4f}"


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
        raise fail(str(exc), 2) from None
    write_table(table, "json" if as_json else "table", None)
