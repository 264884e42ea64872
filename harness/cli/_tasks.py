"""`harness tasks`: work with tasks in the Harbor task format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._common import JsonOption, out

if TYPE_CHECKING:
    from .._tasks import Problem, Task


def register(app: typer.Typer) -> None:
    tasks_app = typer.Typer(help="Work with tasks in the Harbor task format.", no_args_is_help=True)
    app.add_typer(tasks_app, name="tasks")
    tasks_app.command("check")(check)


def _load(path: Path) -> tuple[Task | None, list[Problem]]:
    """One task, loaded; a loader failure is that task's problem, never the end of the check."""
    from .._tasks import Problem, load_task

    try:
        return load_task(path)
    except Exception as exc:  # noqa: BLE001 - reported with the task, the others still checked
        return None, [
            Problem(
                str(path / "task.toml"),
                "",
                f"could not be checked: {type(exc).__name__}: {exc}",
                "this is a harness bug; please report it with the task.toml",
            )
        ]


def check(
    paths: Annotated[list[str], typer.Argument(help="Task folders, or folders of tasks.")],
    as_json: JsonOption = False,
) -> None:
    """Validate tasks: every problem with its file, field and fix, and the network each task
    runs with; exit 1 if any is invalid."""
    from rich.markup import escape

    from .._tasks import find_tasks

    results = [(path, *_load(path)) for path in find_tasks(list(paths))]
    bad = sum(1 for _, t, _ in results if t is None)
    limited = any(t is not None and t.environment.storage_mb for _, t, _ in results)
    storage_mode = _storage_mode() if limited else None
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "path": str(p),
                        "valid": t is not None,
                        "network": t.environment.network if t is not None else None,
                        "network_source": (t.environment.network_source if t is not None else None),
                        "storage_mb": t.environment.storage_mb if t is not None else None,
                        "storage_mode": storage_mode
                        if t is not None and t.environment.storage_mb
                        else None,
                        "problems": [x.__dict__ for x in probs],
                    }
                    for p, t, probs in results
                ]
            )
        )
    else:
        for path, task, problems in results:
            if task is not None:
                env = task.environment
                steps = f", {len(task.steps)} steps" if len(task.steps) > 1 else ""
                network = f"network {env.network} ({env.network_source})"
                if env.storage_mb:
                    network += f", storage {env.storage_mb} MB ({storage_mode})"
                out.print(f"[green]ok[/] {escape(f'{path}{steps}, {network}')}", highlight=False)
            else:
                out.print(f"[red]invalid[/] {escape(str(path))}", highlight=False)
            for prob in problems:
                color = "red" if prob.severity == "error" else "yellow"
                out.print(f"  {prob}", style=color, highlight=False, markup=False)
        if not results:
            out.print("no tasks found (a task is a folder with a task.toml)", highlight=False)
        out.print(f"{len(results) - bad} valid, {bad} invalid", highlight=False)
    if bad or not results:
        raise typer.Exit(1)


def _storage_mode() -> str:
    """How this engine enforces a task's storage_mb: a quota, or measuring the container's
    writable layer (and stopping the trial past it)."""
    from sandbox import SandboxError, disk_limit_mode, engine_answers

    if not engine_answers():
        return "a quota where the engine has them, else measured; no engine answers now"
    try:
        mode = disk_limit_mode()
    except SandboxError as exc:
        return f"unknown: {exc}"
    return "quota" if mode == "quota" else "measured: no disk quotas here; writes are watched"
