"""`harness fork`: restore a recorded trial before one of its steps and let another agent (or
model) go on from there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from ._common import AgentOptionOption, DbOption, JsonOption, fail, out, reward_text, say
from ._run import _agent_options

if TYPE_CHECKING:
    from .._fork import ForkResult

# Exit statuses: the fork ran (whatever its outcome), it could not be made.
RAN, CANNOT = 0, 2


def register(app: typer.Typer) -> None:
    app.command()(fork)


def fork(
    ctx: typer.Context,
    trial: Annotated[str, typer.Argument(help="The trial id (or a unique prefix of it).")],
    at: Annotated[
        int,
        typer.Option(
            "--at",
            metavar="STEP",
            help="The first step that is the new agent's: steps before it are re-executed "
            "(1..N+1 for N recorded steps; N+1: after the last step).",
        ),
    ],
    agent: Annotated[
        str, typer.Option(help="The new agent: oracle, nop, scripted, openai, a plug-in, ...")
    ],
    agent_option: AgentOptionOption = None,
    history: Annotated[
        bool,
        typer.Option(
            help="Hand a model-driven agent the conversation up to STEP; --no-history starts "
            "it from the instruction, in the restored state."
        ),
    ] = True,
    task: Annotated[
        Path | None,
        typer.Option(help="The task's folder, for a record that holds no copy of it."),
    ] = None,
    restore: Annotated[
        str,
        typer.Option(
            help="auto: from the snapshot after STEP-1 when the run made them (`harness run "
            "--snapshot`), else by re-executing the steps; snapshot or reexecute to insist."
        ),
    ] = "auto",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore the state of a recorded trial before STEP, then hand the live session to an
    agent; a model-driven one also gets the conversation up to STEP, so the new model
    continues the same dialogue.

    The fork is a trial of its own, linked to the original and scored like any trial. The
    agent's options (--model, --base-url, --script, ...) are taken as `harness run` takes
    them; forking to the recorded agent keeps the recorded run's options unless given. Exit 0
    when the fork ran (whatever its outcome), 2 when it could not be made.
    """
    import traces
    from sandbox import SandboxError

    from .. import _fork
    from ..agents import AgentError

    try:
        options = _agent_options(ctx, agent, agent_option)
    except (AgentError, ValueError) as exc:
        raise fail(str(exc), CANNOT) from None
    store = traces.open(db)
    try:
        result = _fork.fork_trial(
            store,
            trial,
            at,
            agent,
            options,
            history=history,
            task=task,
            restore=restore,
            progress=say,
        )
    except (_fork.ForkError, traces.StoreError) as exc:
        raise fail(f"cannot fork: {exc}", CANNOT) from None
    except SandboxError as exc:
        raise fail(f"cannot fork: the sandbox failed: {exc}", CANNOT) from None
    if as_json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        _print(result)
    raise typer.Exit(RAN)


def _print(r: ForkResult) -> None:
    n = len(r.restored)
    if r.snapshot is not None:
        restored = f"restored: from the snapshot after step {r.at - 1} ({r.snapshot[7:19]})"
    elif n == 0:
        restored = "restored: nothing to re-execute (the fork starts at step 1)"
    else:
        span = "step 1" if n == 1 else f"steps 1-{n}"
        how = (
            "all as recorded"
            if r.restored_as_recorded
            else "differs from the record at step "
            + ", ".join(str(v.step) for v in r.restored if not v.same)
        )
        restored = f"restored: {span} of {r.original} re-executed ({how})"
    out.print(Text(restored))
    if r.history_items is not None:
        out.print(Text(f"conversation: {r.history_items} items handed over"))
    who = r.agent + (f" ({r.model})" if r.model else "")
    out.print(
        Text(
            f"{who} took over at step {r.at}: reward {reward_text(r.recorded_reward)} -> "
            f"{reward_text(r.reward)} ({r.recorded_outcome or 'no outcome'} -> {r.outcome})",
            style="bold",
        )
    )
    for note in r.notes:
        out.print(Text(f"note: {note}"))
    if r.error:
        out.print(Text(f"the fork's error: {r.error}"))
    out.print(Text(f"fork recorded as trial {r.fork} (run {r.run_id}, fork of {r.original})"))
