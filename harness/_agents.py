"""Agents: what acts in a trial's sandbox. ``oracle`` runs the task's reference solution,
``nop`` does nothing (every task must fail with it); others plug in through ``Agent``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sandbox import CommandResult, Sandbox

from ._tasks import Step, Task


@dataclass
class AgentSession:
    """The agent's view of the sandbox: its commands run as the task's agent user."""

    sandbox: Sandbox
    user: str | None
    deadline: float  # time.monotonic() by which the agent must be done
    commands: int = 0

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run a command as the agent; never past the agent's deadline."""
        left = self.remaining()
        self.commands += 1
        return self.sandbox.run(
            command, timeout=min(timeout or left, left) or 0.001, user=self.user
        )

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        self.sandbox.write_file(path, data, mode)

    def read_file(self, path: str) -> bytes:
        return self.sandbox.read_file(path)


@dataclass
class AgentContext:
    task: Task
    step: Step
    env: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # filled by the agent: model, tokens
    tracer: Any = None  # for the agent's own spans (model calls, tool calls)
    put_blob: Callable[[bytes], str] | None = None  # payloads too large for an attribute


class Agent(Protocol):
    """The plug-in interface: ``run`` receives the instruction and a session, and returns
    when the agent is done (or raises). The runner enforces the time budget."""

    name: str

    def run(self, instruction: str, session: AgentSession, ctx: AgentContext) -> None: ...


def upload_dir(sandbox: Sandbox, local: Path, remote: str) -> None:
    """Copy a local folder into the sandbox, keeping file modes."""
    for p in sorted(local.rglob("*")):
        if p.is_file():
            rel = p.relative_to(local).as_posix()
            sandbox.write_file(f"{remote}/{rel}", p.read_bytes(), p.stat().st_mode & 0o777)


class OracleAgent:
    """Runs the step's ``solution/solve.sh`` as the agent user."""

    name = "oracle"

    def run(self, instruction: str, session: AgentSession, ctx: AgentContext) -> None:
        if ctx.step.solution_dir is None:
            raise RuntimeError(f"task {ctx.task.id} step {ctx.step.name} has no solution/solve.sh")
        upload_dir(session.sandbox, ctx.step.solution_dir, "/solution")  # world-readable
        exports = "".join(f"export {k}={_q(v)}; " for k, v in ctx.env.items())
        session.run(f"{exports}bash /solution/solve.sh")


class NopAgent:
    """Does nothing: a task that passes with it tests nothing."""

    name = "nop"

    def run(self, instruction: str, session: AgentSession, ctx: AgentContext) -> None:
        return None


class ScriptedAgent:
    """Runs commands from a YAML file, for tests and demos::

    commands: ["ls -la"]            # for every task (optional)
    tasks:                          # per task id (optional), after the common ones
      word-frequency: ["tr ... > /app/top5.txt"]
    """

    name = "scripted"

    def __init__(self, script: str | None = None) -> None:
        if not script:
            raise ValueError("the scripted agent needs --script FILE (a YAML file of commands)")
        import yaml

        path = Path(script)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot read the script: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping with `commands` and/or `tasks`")
        self.common = _str_list(data.get("commands", []), f"{path}: commands")
        tasks = data.get("tasks") or {}
        if not isinstance(tasks, dict):
            raise ValueError(f"{path}: tasks must map task ids to lists of commands")
        self.per_task = {str(k): _str_list(v, f"{path}: tasks.{k}") for k, v in tasks.items()}
        self.script = str(path)

    def run(self, instruction: str, session: AgentSession, ctx: AgentContext) -> None:
        for command in [*self.common, *self.per_task.get(ctx.task.id, [])]:
            if session.remaining() <= 0:
                return
            session.run(command)


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of command strings")
    return list(value)


def _q(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _openai(**options: Any) -> Agent:
    from ._openai_agent import OpenAIAgent

    return OpenAIAgent(**options)


BUILTIN: dict[str, Callable[..., Any]] = {
    "oracle": OracleAgent,
    "nop": NopAgent,
    "scripted": ScriptedAgent,
    "openai": _openai,
}


def load_agent(spec: str, options: dict[str, Any] | None = None) -> Agent:
    """An agent by name (oracle, nop, openai, an entry point in ``harness.agents``) or
    ``module:Class``; ``options`` are passed to its constructor."""
    options = options or {}
    if spec in BUILTIN:
        agent: Agent = BUILTIN[spec](**options)
        return agent
    from importlib import import_module
    from importlib.metadata import entry_points

    for ep in entry_points(group="harness.agents"):
        if ep.name == spec:
            return ep.load()(**options)  # type: ignore[no-any-return]
    module, sep, cls = spec.partition(":")
    if not sep:
        raise ValueError(
            f"unknown agent {spec!r}: use oracle, nop, an installed plug-in, or module:Class"
        )
    try:
        return getattr(import_module(module), cls)(**options)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load agent {spec!r}: {exc}") from None
