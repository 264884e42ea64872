"""`harness tasks`: work with tasks in the Harbor task format."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ._common import JsonOption, out


def register(app: typer.Typer) -> None:
    tasks_app = typer.Typer(help="Work with tasks in the Harbor task format.", no_args_is_help=True)
    app.add_typer(tasks_app, name="tasks")
    tasks_app.command("check")(check)


def check(
    paths: Annotated[list[str], typer.Argument(help="Task folders, or folders of tasks.")],
    as_json: JsonOption = False,
) -> None:
    """Validate tasks: every problem with its file, field and fix; exit 1 if any is invalid."""
    from .._tasks import find_tasks, load_task

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
