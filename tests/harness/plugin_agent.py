"""An agent plug-in as a user would write one (loaded with --agent module:Class)."""

from __future__ import annotations

from harness import AgentContext, AgentSession


class TouchDone:
    name = "touch-done"

    def __init__(self, path: str = "/tmp/done") -> None:
        self.path = path

    def run(self, instruction: str, session: AgentSession, ctx: AgentContext) -> None:
        assert "Do the thing." in instruction and "seconds for this task" in instruction
        session.run(f"touch {self.path}")
