"""The shell tool, as the model sees it: its arguments, its checks, and what one call returns.

Both ways of offering it share these pieces. The Responses API's native ``shell`` tool sends
an ``action`` (``commands``, ``timeout_ms``, ``max_output_length``); the function tool of the
same name takes the same fields as JSON arguments. Either way each command gets a result
``{stdout, stderr, outcome: {type: exit, exit_code} | {type: timeout}}``, the hosted shell
tool's shape, so prompts written for hosted containers carry over.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ._agent import AgentSession, TimeUp

NAME = "shell"
DESCRIPTION = "Run shell commands in the task's Linux container."
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "commands": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Shell commands to run in order.",
        },
        "timeout_ms": {"type": "integer", "description": "Per-command timeout in ms."},
        "max_output_length": {
            "type": "integer",
            "description": "Max characters of output per stream.",
        },
    },
    "required": ["commands"],
}
EXAMPLE = '{"commands": ["ls -la"], "timeout_ms": 60000, "max_output_length": 4000}'


class ToolArgumentError(ValueError):
    """A tool call's arguments do not fit the tool's schema; the model is told why."""


@dataclass(frozen=True)
class ShellArgs:
    commands: list[str]
    timeout_s: float | None
    max_output_length: int | None


@dataclass(frozen=True)
class ShellResult:
    """What one shell call produced: one result per command run, the output limit applied,
    and whether commands were left unrun because the agent's time was up."""

    outputs: list[dict[str, Any]]
    max_output_length: int
    refused: bool


def truncate(text: str, limit: int) -> str:
    """Head and tail of ``text`` within ``limit`` characters, with a visible marker."""
    if len(text) <= limit:
        return text
    half = max(0, limit // 2)
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters omitted ...]\n{text[-half:]}"


def parse_arguments(raw: str) -> ShellArgs:
    """The function tool's JSON arguments, checked against the schema.

    Raises:
        ToolArgumentError: what is wrong, in words the model can act on.
    """
    try:
        args = json.loads(raw)
    except ValueError as exc:
        raise ToolArgumentError(f"arguments are not JSON ({exc})") from None
    return check_action(args)


def check_action(args: Any) -> ShellArgs:
    """A native ``shell_call``'s action (or the function tool's parsed arguments), checked.

    Raises:
        ToolArgumentError: what is wrong, in words the model can act on.
    """
    if not isinstance(args, dict):
        raise ToolArgumentError(f"arguments must be a JSON object, not {type(args).__name__}")
    commands = args.get("commands")
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise ToolArgumentError(f"commands must be a list of strings, got {commands!r}")
    timeout_ms = args.get("timeout_ms")
    if timeout_ms is not None and not _positive_number(timeout_ms):
        raise ToolArgumentError(
            f"timeout_ms must be a positive integer (milliseconds), got {timeout_ms!r}"
        )
    limit = args.get("max_output_length")
    if limit is not None and not (_positive_number(limit) and float(limit).is_integer()):
        raise ToolArgumentError(
            f"max_output_length must be a positive integer (characters), got {limit!r}"
        )
    return ShellArgs(
        commands,
        float(timeout_ms) / 1000 if timeout_ms is not None else None,
        int(limit) if limit is not None else None,
    )


def _positive_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def run_commands(session: AgentSession, args: ShellArgs, default_limit: int) -> ShellResult:
    """Run the call's commands in order in the agent's shell; none starts once the agent's
    time is up (the loop ends after this call then)."""
    limit = args.max_output_length or default_limit
    outputs: list[dict[str, Any]] = []
    for command in args.commands:
        try:
            if session.remaining() <= 0:
                raise TimeUp(f"the agent's time is up; {command!r} was not run")
            r = session.run(command, timeout=args.timeout_s)
        except TimeUp:
            return ShellResult(outputs, limit, refused=True)
        outcome = {"type": "timeout"} if r.timed_out else {"type": "exit", "exit_code": r.exit_code}
        outputs.append(
            {
                "stdout": truncate(r.stdout_text, limit),
                "stderr": truncate(r.stderr_text, limit),
                "outcome": outcome,
            }
        )
    return ShellResult(outputs, limit, refused=False)
