"""Built-in agents: ``oracle`` runs the task's reference solution, ``nop`` does nothing
(every task must fail with it), ``scripted`` runs commands from a YAML file."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from ._agent import AgentContext, AgentOptions, AgentSession, upload_dir


class OracleAgent:
    """Runs the step's ``solution/solve.sh`` as the agent user."""

    name = "oracle"
    Options = AgentOptions  # none

    def __init__(self, options: AgentOptions | None = None) -> None:
        pass

    def run(self, instruction: str, session: AgentSession, ctx: AgentContext) -> None:
        if ctx.step.solution_dir is None:
            raise RuntimeError(f"task {ctx.task.id} step {ctx.step.name} has no solution/solve.sh")
        upload_dir(session, ctx.step.solution_dir, "/solution")  # world-readable
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in ctx.env.items())
        session.run(f"{exports}bash /solution/solve.sh")


class NopAgent:
    """Does nothing: a task that passes with it tests nothing."""

    name = "nop"
    Options = AgentOptions  # none

    def __init__(self, options: AgentOptions | None = None) -> None:
        pass

    def run(self, instruction: str, session: AgentSession, ctx: AgentContext) -> None:
        return None


class ScriptedOptions(AgentOptions):
    script: Path | None = Field(default=None, description="scripted agent: YAML file of commands.")

    @field_validator("script")
    @classmethod
    def _absolute(cls, v: Path | None) -> Path | None:
        # Resolved where the user typed it, so `--resume` works from any folder.
        return v.resolve() if v is not None else None


class ScriptedAgent:
    """Runs commands from a YAML file, for tests and demos::

    commands: ["ls -la"]            # for every task (optional)
    tasks:                          # per task id (optional), after the common ones
      word-frequency: ["tr ... > /app/top5.txt"]
    """

    name = "scripted"
    Options = ScriptedOptions

    def __init__(self, options: ScriptedOptions | None = None) -> None:
        path = (options or ScriptedOptions()).script
        if path is None:
            raise ValueError("the scripted agent needs --script FILE (a YAML file of commands)")
        import yaml

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
            session.run(command)  # past the deadline: refused and recorded (TimeUp)


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of command strings")
    return list(value)
