"""The conversation with the model, in each API's own shapes.

The agent's loop is the same for every API: ask, run the tool calls, answer them, ask again.
What differs is how a request is built, how a response is read and how a tool's result is
returned, and each API's rules about them are strict (a real endpoint rejects a request that
breaks them, a lenient test server would not). This module keeps those rules in one place:

- Responses API, stateless (``store: false``): the whole conversation is sent each turn, and
  reasoning items are passed back only with their encrypted content, which is asked for with
  ``include: ["reasoning.encrypted_content"]``; without it the API answers "Items are not
  persisted when `store` is set to false".
- Responses API, stateful (``store: true``): each turn sends only what is new, threaded by
  ``previous_response_id``, which also lets the API reuse its cache.
- The shell is offered as the API's native ``shell`` tool (``shell_call`` items answered by
  ``shell_call_output``) or as a function tool of the same name for servers without it.
- Chat Completions: messages, and the function tool.

Either may start from a conversation handed over (a fork: ``AgentContext.history``)
instead of the instruction: the items (or messages) are sent as they are, and the model
continues the dialogue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from . import _shell_tool as shell

SYSTEM = (
    "You are an autonomous agent working in a Linux container through the `shell` tool. "
    "Commands run in a persistent bash session (cd and exported variables persist). Work "
    "step by step, check your results, and reply with a short summary when the task is done."
)
NATIVE, FUNCTION = "native", "function"  # how the shell is offered
ENCRYPTED_REASONING = "reasoning.encrypted_content"


@dataclass(frozen=True)
class ToolCall:
    """One tool call of the model. ``arguments`` is what is recorded: the function's JSON
    arguments, or a native call's action as JSON; ``action`` is a native call's action."""

    call_id: str
    name: str
    arguments: str
    native: bool = False
    action: Any = None


@dataclass(frozen=True)
class Turn:
    """What one response said: its tool calls, token counts (None where the API reports
    none), why it ended (``tool_calls``, ``stop``, ``length``, ...) and any reasoning
    summary."""

    response_id: str | None
    response_model: str | None
    calls: list[ToolCall]
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    finish_reasons: list[str]
    reasoning_summary: str | None = None


class Conversation(Protocol):
    """One API's side of the loop."""

    def request(self) -> dict[str, Any]:
        """The body of the next request (without sampling options the agent adds)."""
        ...

    def take(self, data: dict[str, Any]) -> Turn:
        """Read a response and keep the model's turn in the conversation."""
        ...

    def answer(self, call: ToolCall, result: shell.ShellResult | None, error: str | None) -> str:
        """Return a tool call's result (or an error the model can act on) to the model, and
        the text recorded as the call's result."""
        ...


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def reasoning_summary(item: dict[str, Any]) -> str:
    """The summary text of a Responses API reasoning item ("" when it has none)."""
    return "\n\n".join(
        str(s["text"]) for s in item.get("summary") or [] if isinstance(s, dict) and s.get("text")
    )


def _function_output(result: shell.ShellResult | None, error: str | None) -> str:
    if error is not None or result is None:
        return json.dumps({"error": error})
    return json.dumps({"output": result.outputs})


class Responses:
    """The Responses API (stateless or stateful; native or function shell tool)."""

    def __init__(
        self,
        instruction: str,
        *,
        shell_tool: str = NATIVE,
        store: bool = False,
        reasoning: dict[str, str] | None = None,
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        self.shell_tool, self.store, self.reasoning = shell_tool, store, reasoning
        # Stateless: the whole conversation. Stateful: only what the next request adds (the
        # first request sends a conversation handed over whole).
        self.items: list[dict[str, Any]] = (
            list(history) if history else [{"role": "user", "content": instruction}]
        )
        self.previous_id: str | None = None

    def tools(self) -> list[dict[str, Any]]:
        if self.shell_tool == NATIVE:
            return [{"type": "shell"}]
        return [
            {
                "type": "function",
                "name": shell.NAME,
                "description": shell.DESCRIPTION,
                "parameters": shell.PARAMETERS,
            }
        ]

    def request(self) -> dict[str, Any]:
        req: dict[str, Any] = {
            "instructions": SYSTEM,  # never carried over by previous_response_id
            "input": list(self.items),
            "store": self.store,
            "tools": self.tools(),
        }
        if self.store:
            if self.previous_id is not None:
                req["previous_response_id"] = self.previous_id
        else:
            req["include"] = [ENCRYPTED_REASONING]
        if self.reasoning:
            req["reasoning"] = dict(self.reasoning)
        return req

    def take(self, data: dict[str, Any]) -> Turn:
        output = [i for i in data.get("output") or [] if isinstance(i, dict)]
        if self.store:
            self.previous_id = data.get("id")
            self.items = []
        else:
            # A reasoning item without its encrypted content cannot be sent back: the API
            # keeps nothing under store=false, so it would answer "not found".
            self.items += [
                i for i in output if i.get("type") != "reasoning" or i.get("encrypted_content")
            ]
        calls: list[ToolCall] = []
        summary: list[str] = []
        for item in output:
            kind = item.get("type")
            if kind == "function_call":
                calls.append(
                    ToolCall(
                        str(item.get("call_id")),
                        str(item.get("name", "")),
                        str(item.get("arguments", "")),
                    )
                )
            elif kind == "shell_call":
                action = item.get("action")
                calls.append(
                    ToolCall(
                        str(item.get("call_id")),
                        shell.NAME,
                        json.dumps(action, sort_keys=True),
                        native=True,
                        action=action,
                    )
                )
            elif kind == "reasoning" and (text := reasoning_summary(item)):
                summary.append(text)
        usage = data.get("usage") or {}
        return Turn(
            response_id=data.get("id"),
            response_model=data.get("model"),
            calls=calls,
            input_tokens=_int(usage.get("input_tokens")),
            output_tokens=_int(usage.get("output_tokens")),
            cached_tokens=_int((usage.get("input_tokens_details") or {}).get("cached_tokens")),
            reasoning_tokens=_int(
                (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
            ),
            finish_reasons=[self._finish(data, calls)],
            reasoning_summary="\n\n".join(summary) or None,
        )

    @staticmethod
    def _finish(data: dict[str, Any], calls: list[ToolCall]) -> str:
        """Why the turn ended, in the words Chat Completions and the GenAI conventions use
        (the Responses API's ``status`` says only whether the response finished)."""
        if calls:
            return "tool_calls"
        status = data.get("status")
        if status == "incomplete":
            reason = (data.get("incomplete_details") or {}).get("reason")
            return "length" if reason == "max_output_tokens" else str(reason or "incomplete")
        return "stop" if status in (None, "completed") else str(status)

    def answer(self, call: ToolCall, result: shell.ShellResult | None, error: str | None) -> str:
        if not call.native:
            text = _function_output(result, error)
            self.items.append(
                {"type": "function_call_output", "call_id": call.call_id, "output": text}
            )
            return text
        if error is not None or result is None:
            # The API has no error form for a shell call: the model reads it as a command
            # that failed, with the reason on stderr.
            outputs = [
                {"stdout": "", "stderr": error or "", "outcome": {"type": "exit", "exit_code": 2}}
            ]
            limit = None
        else:
            outputs, limit = result.outputs, result.max_output_length
        item: dict[str, Any] = {
            "type": "shell_call_output",
            "call_id": call.call_id,
            "output": outputs,
        }
        if limit is not None:
            item["max_output_length"] = limit
        self.items.append(item)
        return json.dumps(outputs)


class Chat:
    """Chat Completions, for OpenAI-compatible servers without the Responses API."""

    def __init__(
        self,
        instruction: str,
        *,
        reasoning_effort: str | None = None,
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        self.reasoning_effort = reasoning_effort
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM},
            *(list(history) if history else [{"role": "user", "content": instruction}]),
        ]

    def request(self) -> dict[str, Any]:
        req: dict[str, Any] = {
            "messages": list(self.messages),
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": shell.NAME,
                        "description": shell.DESCRIPTION,
                        "parameters": shell.PARAMETERS,
                    },
                }
            ],
        }
        if self.reasoning_effort:
            req["reasoning_effort"] = self.reasoning_effort
        return req

    def take(self, data: dict[str, Any]) -> Turn:
        choices = data.get("choices") or [{}]
        message = choices[0].get("message") or {}
        self.messages.append({k: v for k, v in message.items() if v is not None})
        calls = []
        for tc in message.get("tool_calls") or []:
            fn = tc.get("function") or {}
            calls.append(
                ToolCall(str(tc.get("id")), str(fn.get("name", "")), str(fn.get("arguments", "")))
            )
        usage = data.get("usage") or {}
        return Turn(
            response_id=data.get("id"),
            response_model=data.get("model"),
            calls=calls,
            input_tokens=_int(usage.get("prompt_tokens")),
            output_tokens=_int(usage.get("completion_tokens")),
            cached_tokens=_int((usage.get("prompt_tokens_details") or {}).get("cached_tokens")),
            reasoning_tokens=_int(
                (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
            ),
            finish_reasons=[str(c.get("finish_reason")) for c in choices],
        )

    def answer(self, call: ToolCall, result: shell.ShellResult | None, error: str | None) -> str:
        text = _function_output(result, error)
        self.messages.append({"role": "tool", "tool_call_id": call.call_id, "content": text})
        return text
