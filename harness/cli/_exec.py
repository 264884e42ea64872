"""`harness exec`: commands in one fresh recorded sandbox, shown as they run."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ._common import DbOption, err, fail, out


def register(app: typer.Typer) -> None:
    app.command("exec")(exec_)


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
    import traces
    from sandbox import DEFAULT_IMAGE, Limits, SandboxError

    from .._exec import exec_commands

    env_map: dict[str, str] = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--env {item!r}: expected KEY=VALUE")
        env_map[key] = value
    try:
        limits = Limits(memory=memory, cpus=cpus)  # type: ignore[arg-type]
    except ValueError as exc:
        raise fail(f"invalid limit: {exc}") from None
    image = image or DEFAULT_IMAGE

    def on_start(sb: Any) -> None:
        if not as_json:
            cid = (sb.container_id or "")[:12]
            out.print(
                f"sandbox {cid} ({sb.image}, network {network}, memory {memory}, cpus {cpus})",
                style="dim",
                highlight=False,
                markup=False,
            )

    def on_result(cmd: str, r: Any) -> None:
        if as_json:
            print(json.dumps(_result_json(cmd, r)), flush=True)
        else:
            _print_result(cmd, r)

    recorder = traces.Recorder(db) if record else None
    try:
        run_id, status = exec_commands(
            commands,
            image=image,
            limits=limits,
            network=network,
            env=env_map,
            workdir=workdir,
            timeout=timeout,
            recorder=recorder,
            run_id=run_id,
            on_start=on_start,
            on_result=on_result,
        )
    except (SandboxError, traces.StoreError) as exc:
        raise fail(str(exc)) from None
    finally:
        if recorder is not None:
            recorder.shutdown()
    if recorder is not None and not as_json:
        err.print(
            f"recorded run {run_id} in {recorder.store.path}; try: harness sql "
            f"\"SELECT command, exit_code FROM commands WHERE run_id = '{run_id}'\"",
            style="dim",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    raise typer.Exit(status if 0 <= status <= 255 else 1)


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
    from rich.text import Text

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
    line = Text()
    line.append(f"$ {cmd}", style="bold")
    line.append("  ")
    line.append(f"exit {r.exit_code}", style=color)
    line.append(
        f" {r.duration * 1000:.1f} ms  cwd {r.cwd}{'  ' + ', '.join(flags) if flags else ''}",
        style="dim",
    )
    out.print(line, highlight=False, soft_wrap=True)
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
