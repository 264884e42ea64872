"""Replay commands: re-run a recorded trial and show, step by step, where it diverged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from ._common import DbOption, JsonOption, fail, out, reward_text, say

if TYPE_CHECKING:
    from .._replay import ReplayReport

# Exit statuses: identical, diverged, could not replay.
IDENTICAL, DIVERGED, CANNOT = 0, 1, 2


def register(app: typer.Typer) -> None:
    app.command()(replay)
    app.command()(regrade)


def replay(
    trial: Annotated[str, typer.Argument(help="The trial id (or a unique prefix of it).")],
    db: DbOption = None,
    normalize: Annotated[
        list[str] | None,
        typer.Option(
            "--normalize",
            "-n",
            help="Ignore what matches before comparing: a preset (timestamps, durations, "
            "pids, temp-names, hex-addresses) or a regular expression. Repeatable.",
        ),
    ] = None,
    agent: Annotated[
        bool,
        typer.Option(
            "--agent",
            help="Model replay: run the recorded agent's own code again, its model calls "
            "answered from the record (never a live call).",
        ),
    ] = False,
    task: Annotated[
        Path | None,
        typer.Option(
            "--task",
            help="Re-grade: replay the agent's steps and score them with this task folder's "
            "current tests.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay a recorded trial in a fresh sandbox and compare every step with the record.

    Exit 0 when identical (every step and the reward), 1 when it diverged, 2 when it could
    not be replayed. The replay is recorded as a trial of its own, linked to the original.
    """
    import traces
    from sandbox import SandboxError

    from .. import _replay
    from .._replay_compare import normalizers

    if agent and task is not None:
        raise fail("--agent and --task do not go together: a re-grade replays the steps", 2)
    try:
        norms = normalizers(normalize or [])
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    store = traces.open(db)
    try:
        report = _replay.replay_trial(
            store, trial, normalize=norms, task=task, agent=agent, progress=say
        )
    except (_replay.ReplayError, traces.StoreError) as exc:
        raise fail(f"cannot replay: {exc}", CANNOT) from None
    except SandboxError as exc:
        raise fail(f"cannot replay: the sandbox failed: {exc}", CANNOT) from None
    except KeyboardInterrupt:
        raise fail(
            "interrupted: the replay was stopped; what it did so far is recorded as a trial "
            "without an outcome",
            130,
        ) from None
    if as_json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        _print(report)
    raise typer.Exit(IDENTICAL if report.identical else DIVERGED)


_VERDICT_STYLE = {"same": "green", "differs": "red", "missing": "yellow", "extra": "yellow"}


def _print(report: ReplayReport) -> None:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("step", "action", "verdict", "what differs"):
        table.add_column(col, overflow="fold")
    for s in report.steps:
        what = "; ".join(s.differences)
        if s.normalized_by:
            what = (what + "; " if what else "") + "normalized: " + ", ".join(s.normalized_by)
        table.add_row(
            str(s.step),
            Text(s.action[:70]),
            Text(s.verdict, style=_VERDICT_STYLE.get(s.verdict, "")),
            Text(what),
        )
    if report.steps:
        out.print(table)
    first = report.first_divergence
    if first is not None and first.diff:
        out.print(Text(f"\nfirst divergence, step {first.step}:", style="bold"))
        out.print(Text(first.diff.rstrip("\n")), highlight=False)
    if report.model_divergence is not None:
        d = report.model_divergence
        out.print(Text(f"\nmodel call {d.call} diverged: {d.reason}", style="bold red"))
        if d.diff:
            out.print(Text(d.diff.rstrip("\n")), highlight=False)
    same = sum(s.same for s in report.steps)
    out.print(
        Text(
            f"\nfidelity {report.fidelity:.0%} ({same}/{len(report.steps)} steps), reward "
            f"{reward_text(report.recorded_reward)} -> {reward_text(report.reward)} "
            f"({report.recorded_outcome or 'no outcome'} -> {report.outcome})",
            style="bold " + ("green" if report.identical else "red"),
        )
    )
    if report.normalized_by:
        out.print(Text("normalizers that changed a verdict: " + ", ".join(report.normalized_by)))
    for note in report.notes:
        out.print(Text(f"note: {note}"))
    if report.error:
        out.print(Text(f"the replay's error: {report.error}"))
    out.print(
        Text(
            f"replay recorded as trial {report.replay} (run {report.run_id}, "
            f"{report.mode} replay of {report.original})"
        )
    )


def regrade(
    run: Annotated[str, typer.Argument(help="The run id whose trials to re-grade.")],
    tasks: Annotated[
        Path, typer.Option("--tasks", help="The tasks' folders now (a task, or a folder of them).")
    ],
    db: DbOption = None,
    normalize: Annotated[
        list[str] | None,
        typer.Option("--normalize", "-n", help="As for `harness replay`. Repeatable."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Re-score a run's trials with the tasks' current tests, without running the agent or a
    model again: each trial's recorded steps are replayed and scored as a new trial linked to
    the original. Exit 0 when every trial was re-graded, 2 when some could not be."""
    import traces

    from .. import _replay
    from .._replay_compare import normalizers

    try:
        norms = normalizers(normalize or [])
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    try:
        done = _replay.regrade_run(traces.open(db), run, tasks, normalize=norms, progress=say)
    except (_replay.ReplayError, traces.StoreError) as exc:
        raise fail(f"cannot re-grade: {exc}", CANNOT) from None
    except KeyboardInterrupt:
        raise fail("interrupted: the trials re-graded so far are recorded", 130) from None
    if as_json:
        rows = [
            {
                "trial": r.trial.trial_id,
                "task": r.trial.task,
                "recorded_reward": r.trial.reward,
                "recorded_outcome": r.trial.outcome,
                "regrade": r.report.replay if r.report else None,
                "reward": r.report.reward if r.report else None,
                "outcome": r.report.outcome if r.report else None,
                "fidelity": round(r.report.fidelity, 4) if r.report else None,
                "problem": r.problem,
            }
            for r in done
        ]
        print(json.dumps(rows, indent=1))
    else:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("trial", "task", "reward", "outcome", "fidelity", "note"):
            table.add_column(col, overflow="fold")
        for r in done:
            t, rep = r.trial, r.report
            table.add_row(
                t.trial_id[:8],
                Text(t.task or ""),
                f"{reward_text(t.reward)} -> {reward_text(rep.reward)}"
                if rep
                else reward_text(t.reward),
                f"{t.outcome} -> {rep.outcome}" if rep else str(t.outcome),
                f"{rep.fidelity:.0%}" if rep else "",
                Text(r.problem or (f"new trial {rep.replay[:8]}" if rep else "")),
            )
        out.print(table)
        before = sum(r.trial.passed for r in done)
        after = sum(r.report.outcome == "passed" for r in done if r.report)
        regraded = sum(r.report is not None for r in done)
        out.print(
            Text(f"re-graded {regraded}/{len(done)} trials: passed {before} -> {after}"),
            highlight=False,
        )
    raise typer.Exit(0 if all(r.report is not None for r in done) else CANNOT)
