"""One-off sessions (``harness exec``): commands in one fresh sandbox, recorded as a trial.

The record is shaped like any suite trial's (same run id format, same trial root), so every
view and command that reads trials reads these too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence

import traces
from sandbox import CommandResult, Limits, Recording, Sandbox
from traces.vocab import Actor, Attr, Outcome

from ._record import finish_trial, new_run_id, new_trial_id, trial_root

AGENT = "harness-exec"
TASK = "exec"


def exec_commands(
    commands: Sequence[str],
    *,
    image: str,
    limits: Limits,
    network: str = "none",
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    timeout: float = 600.0,
    recorder: traces.Recorder | None = None,
    run_id: str | None = None,
    on_start: Callable[[Sandbox], None] | None = None,
    on_result: Callable[[str, CommandResult], None] | None = None,
) -> tuple[str, int]:
    """Run ``commands`` in order in one persistent shell of a fresh sandbox.

    Returns:
        The run id and the status: 0, or the first failing command's exit code (124 for a
        timeout).
    """
    run_id = run_id or new_run_id()
    status = 0
    with contextlib.ExitStack() as stack:
        recording = None
        root = None
        if recorder is not None:
            tracer = recorder.tracer("harness.exec")
            root = stack.enter_context(
                trial_root(
                    tracer,
                    run_id=run_id,
                    task_id=TASK,
                    agent=AGENT,
                    trial_id=new_trial_id(),
                    image_name=image,
                )
            )
            recording = Recording(tracer=tracer, blobs=recorder)
        sb = stack.enter_context(
            Sandbox(
                image,
                limits=limits,
                network=network,
                env=dict(env or {}),
                workdir=workdir,
                timeout=timeout,
                run_id=run_id,
                record=recording,
            )
        )
        if on_start is not None:
            on_start(sb)
        for step, cmd in enumerate(commands, start=1):
            # The user's commands are the session's actions: steps, as an agent's are.
            r = sb.run(cmd, attributes={Attr.ACTOR: Actor.AGENT, Attr.STEP: step})
            if status == 0 and not r.ok:
                status = 124 if r.timed_out else (r.exit_code or 1)
            if on_result is not None:
                on_result(cmd, r)
        if root is not None:
            outcome = Outcome.PASSED if status == 0 else Outcome.FAILED
            finish_trial(root, outcome, steps=len(commands))
    return run_id, status
