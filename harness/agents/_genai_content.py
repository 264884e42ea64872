"""A model call's content in the GenAI conventions' JSON shapes, for OTel backends to render.

The record keeps every request and response whole as blobs, but an OTel backend cannot open
those. The conventions' opt-in attributes (``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.system_instructions``, ``gen_ai.tool.definitions``) carry
the conversation in a shape every backend knows: messages of ``{role, parts}``, a part being
``text``, ``tool_call``, ``tool_call_response`` or ``reasoning``. These functions turn either
API's request and response into those shapes; they never fail on an item they do not know
(it becomes a part of its own type, as the conventions allow).
"""

from __future__ import annotations

import json
from typing import Any

from ._conversation import reasoning_summary

# A content attribute is capped at this many bytes of JSON: the oldest input messages are
# left out until it fits (OTLP backends reject or truncate very large attributes; a
# stateless conversation is resent in full on every turn).
CONTENT_CAP = 128 * 1024

TOOL = "tool"


def _text(content: Any) -> list[dict[str, Any]]:
    """Text parts from a message's content (a string, or a list of typed content parts)."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts = []
    for piece in content or []:
        if isinstance(piece, dict) and isinstance(piece.get("text"), str):
            parts.append({"type": "text", "content": piece["text"]})
        elif isinstance(piece, dict):
            parts.append({"type": str(piece.get("type", "unknown"))})
    return parts


def _arguments(raw: Any) -> Any:
    """Tool call arguments as JSON when they are JSON, else as the text the model sent."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _responses_part(item: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(role, part) for one Responses API item that is not a message."""
    kind = item.get("type")
    if kind == "function_call":
        return "assistant", {
            "type": "tool_call",
            "id": item.get("call_id"),
            "name": str(item.get("name", "")),
            "arguments": _arguments(item.get("arguments")),
        }
    if kind == "shell_call":
        return "assistant", {
            "type": "tool_call",
            "id": item.get("call_id"),
            "name": "shell",
            "arguments": item.get("action"),
        }
    if kind in ("function_call_output", "shell_call_output"):
        return TOOL, {
            "type": "tool_call_response",
            "id": item.get("call_id"),
            "response": _arguments(item.get("output")),
        }
    if kind == "reasoning":
        summary = reasoning_summary(item)
        return ("assistant", {"type": "reasoning", "content": summary}) if summary else None
    return "assistant", {"type": str(kind or "unknown")}


def _messages_from_items(items: list[Any]) -> list[dict[str, Any]]:
    """Messages from Responses API items; consecutive parts of one role form one message."""
    messages: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("type", "message") == "message" and "role" in item:
            role, parts = str(item["role"]), _text(item.get("content"))
        else:
            found = _responses_part(item)
            if found is None:
                continue
            role, parts = found[0], [found[1]]
        if messages and messages[-1]["role"] == role and role != "user":
            messages[-1]["parts"].extend(parts)
        else:
            messages.append({"role": role, "parts": parts})
    return messages


def _chat_message(message: dict[str, Any]) -> dict[str, Any]:
    role = str(message.get("role", "user"))
    if role == TOOL:
        return {
            "role": TOOL,
            "parts": [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id"),
                    "response": _arguments(message.get("content")),
                }
            ],
        }
    parts = _text(message.get("content")) if message.get("content") is not None else []
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": str(fn.get("name", "")),
                "arguments": _arguments(fn.get("arguments")),
            }
        )
    return {"role": role, "parts": parts}


def input_messages(api: str, request: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages a request sent (with ``store``, only what it added to the chain)."""
    if api == "chat":
        return [_chat_message(m) for m in request.get("messages") or [] if isinstance(m, dict)]
    items = request.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    return _messages_from_items(items or [])


def output_messages(
    api: str, data: dict[str, Any], finish_reasons: list[str]
) -> list[dict[str, Any]]:
    """The messages a response returned, each with its finish reason."""
    if api == "chat":
        return [
            {**_chat_message(c.get("message") or {}), "finish_reason": str(c.get("finish_reason"))}
            for c in data.get("choices") or []
            if isinstance(c, dict)
        ]
    messages = _messages_from_items(data.get("output") or [])
    reason = finish_reasons[0] if finish_reasons else "stop"
    parts = [p for m in messages for p in m["parts"]]
    return [{"role": "assistant", "parts": parts, "finish_reason": reason}]


def system_instructions(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The Responses API's ``instructions`` (Chat Completions keeps them in its messages)."""
    text = request.get("instructions")
    return [{"type": "text", "content": text}] if isinstance(text, str) and text else []


def tool_definitions(api: str, request: dict[str, Any]) -> list[dict[str, Any]]:
    """The tools the request offered: function tools with their schema, native tools by type."""
    found = []
    for tool in request.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function") if api == "chat" else tool
        if tool.get("type") == "function" and isinstance(fn, dict):
            found.append(
                {
                    "type": "function",
                    "name": fn.get("name"),
                    "description": fn.get("description"),
                    "parameters": fn.get("parameters"),
                }
            )
        else:
            kind = str(tool.get("type", "unknown"))
            found.append({"type": kind, "name": kind})
    return found


def capped(messages: list[dict[str, Any]], cap: int = CONTENT_CAP) -> tuple[str, int]:
    """``messages`` as JSON within ``cap`` bytes, leaving out the oldest ones as needed, and
    how many were left out. The newest is always kept: if it alone is too big, its JSON is
    kept as one text part, cut to fit."""
    sizes = [len(json.dumps(m, ensure_ascii=False).encode()) + 2 for m in messages]
    total, first = 2, len(messages)
    while first > 0 and total + sizes[first - 1] <= cap:
        first -= 1
        total += sizes[first]
    if first < len(messages):
        return json.dumps(messages[first:], ensure_ascii=False), first
    if not messages:
        return "[]", 0
    whole = json.dumps(messages[-1], ensure_ascii=False)
    cut = whole.encode()[: max(0, cap - 200)].decode(errors="ignore")
    part = {"role": messages[-1]["role"], "parts": [{"type": "text", "content": cut}]}
    return json.dumps([part], ensure_ascii=False), len(messages) - 1
