"""The agent interface: what acts in a trial's sandbox, and the session it acts through.

An agent is any object with a ``name`` and ``run(instruction, session, ctx)``. The runner owns
the clock: it gives the agent a deadline through the session and stops whatever is still
running when time is up, so an agent never has to police its own budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import trace
from pydantic import BaseModel, ConfigDict

from traces.vocab import Actor, Attr, Span

if TYPE_CHECKING:  # the engine client loads only when a sandbox is made
    from sandbox import CommandResult, Sandbox

    from .._tasks import Step, Task


class AgentOptions(BaseModel):
    """Base of an agent's options. Each field becomes a ``harness run`` option
    (``base_url`` -> ``--base-url``), validated here, so the CLI knows no agent by name and
    a bad value is refused before any trial starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# The agent's commands run in a shell of this name, apart from the verifier's: nothing the
# agent defines there (variables, functions, the directory) reaches the verifier.
SESSION = "agent"


class TimeUp(RuntimeError):
    """The agent asked for an action after its deadline; it was refused, not run."""


@dataclass
class AgentSession:
    """The agent's view of the sandbox: its commands run as the task's agent user.

    Every command and file write the agent issues is a *step*, numbered from 1 within the
    trial in the order issued (``step`` is the last number given; a stage's session starts
    where the previous stage's ended). The number is recorded on the action's span, so
    replay and fork can name "step 7" of any trial.
    """

    sandbox: Sandbox
    user: str | None
    deadline: float  # time.monotonic() by which the agent must be done
    step: int = 0  # the last step number given
    stage: str = ""  # the task stage the session is for (multi-step tasks)
    # Called with the step's number once it is done (a snapshot of the sandbox after it).
    after_step: Callable[[int], None] | None = None

    def _next_step(self) -> dict[str, Any]:
        self.step += 1
        attrs: dict[str, Any] = {Attr.ACTOR: Actor.AGENT, Attr.PHASE: Span.AGENT}
        attrs[Attr.STEP] = self.step
        if self.stage:
            attrs[Attr.STAGE] = self.stage
        return attrs

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    refused: int = 0  # actions asked for after the deadline

    def _refuse_if_late(self, action: str) -> float:
        left = self.remaining()
        if left <= 0:
            self.refused += 1
            trace.get_current_span().add_event(
                Attr.REFUSED, {Attr.COMMAND_LINE: action, Attr.REFUSED_REASON: "deadline"}
            )
            raise TimeUp(f"the agent's time is up; {action!r} was not run")
        return left

    def run(self, command: str | bytes, timeout: float | None = None) -> CommandResult:
        """Run a command as the agent, never past the agent's deadline.

        Raises:
            TimeUp: no time is left; the command was refused (and recorded as refused).
        """
        left = self._refuse_if_late(
            command if isinstance(command, str) else command.decode(errors="backslashreplace")
        )
        # A shell of the agent's own: nothing it defines there reaches the verifier's shell.
        result = self.sandbox.run(
            command,
            timeout=min(timeout or left, left),
            user=self.user,
            session=SESSION,
            attributes=self._next_step(),
        )
        if self.after_step is not None:
            self.after_step(self.step)
        return result

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write a file as the agent, while it has time (else TimeUp, recorded)."""
        self._refuse_if_late(f"write_file {path}")
        self.sandbox.write_file(path, data, mode, attributes=self._next_step())
        if self.after_step is not None:
            self.after_step(self.step)

    def read_file(self, path: str) -> bytes:
        return self.sandbox.read_file(path)


@dataclass
class AgentContext:
    """What an agent may know of the trial besides its instruction."""

    task: Task
    step: Step
    env: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # filled by the agent: model, tokens
    tracer: Any = None  # for the agent's own spans (model calls, tool calls)
    put_blob: Callable[[bytes], str] | None = None  # payloads too large for an attribute
    # A conversation to continue instead of starting one (a fork): the model's conversation
    # so far in the agent's own API's input items (Responses API items, or Chat Completions
    # messages without the system message). None: start from the instruction.
    history: list[dict[str, Any]] | None = None


class Agent(Protocol):
    """The plug-in interface: ``run`` receives the instruction and a session, and returns
    when the agent is done (or raises). The runner enforces the time budget.

    An agent class may declare ``Options`` (an :class:`AgentOptions` subclass); it is then
    constructed with one validated instance of it. Without ``Options`` it is constructed
    with the options as keyword arguments.
    """

    name: str

    def run(self, instruction: str, session: AgentSession, ctx: AgentContext) -> None: ...


class FileWriter(Protocol):
    """What writes files into a sandbox: the sandbox itself, or the agent's session."""

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None: ...


def upload_dir(target: FileWriter, local: Path, remote: str) -> None:
    """Copy a local folder into the sandbox, keeping file modes (through the agent's
    session, each file is one of the agent's steps)."""
    for p in sorted(local.rglob("*")):
        if p.is_file():
            rel = p.relative_to(local).as_posix()
            target.write_file(f"{remote}/{rel}", p.read_bytes(), p.stat().st_mode & 0o777)
