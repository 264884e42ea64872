"""A strict stand-in for the OpenAI API: a real HTTP server on 127.0.0.1 with scripted answers
that enforces the rules a real endpoint enforces, and answers a request that breaks one with
the API's own status and error shape.

A permissive fake once let the openai agent pass every test while the real API would have
rejected its second turn, so every rule here is one the real API is documented (or reported)
to apply, and each has a test of its own (``test_openai_api.py``):

- a bearer key on every request;
- Responses API: only known input item and tool types; ``include`` values the API knows; a
  reasoning item is sent back either with the encrypted content this server issued or by id
  from a response that was stored, and followed by the item that followed it; a
  ``function_call_output`` or ``shell_call_output`` answers a call this server issued and the
  conversation holds; every call is answered before the next request; a
  ``previous_response_id`` names a stored response this server issued; a shell call's output
  has the hosted shape. Encrypted reasoning is issued only when ``include`` asks for it, and
  reasoning summaries only when ``reasoning.summary`` asks;
- Chat Completions: every tool call answered by a tool message right after it, and no tool
  message without its call.

The script is checked too: a scripted ``shell_call`` needs the native shell tool in the
request, and a function call named ``shell`` needs a function tool of that name (other
names stand for a model that calls a tool it does not have).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INPUT_TYPES = (
    "message",
    "function_call",
    "function_call_output",
    "shell_call",
    "shell_call_output",
    "reasoning",
)
TOOL_TYPES = ("function", "shell")
INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
)
ROLES = ("user", "assistant", "system", "developer")
CALLS = {"function_call_output": "function_call", "shell_call_output": "shell_call"}
WORDS = {"function_call": "function call", "shell_call": "shell call"}


@dataclass
class Reply:
    """One scripted answer: a status, a JSON body (or raw bytes), headers (a callable is
    evaluated when the answer is sent), or no answer at all (``hang``)."""

    status: int = 200
    body: dict[str, Any] | bytes = field(default_factory=dict)
    headers: dict[str, str | Callable[[], str]] = field(default_factory=dict)
    hang: bool = False


@dataclass
class Stored:
    """A response this server issued: the conversation up to and including it."""

    context: list[dict[str, Any]]
    kept: bool  # store=true: a later request may name it or its items by id


class ApiError(Exception):
    """The API's refusal of a request, in its error shape."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": "invalid_request_error",
                "param": self.param,
                "code": self.code,
            }
        }


class ScriptError(Exception):
    """The test's script answers something the request made impossible."""


class Model:
    """Scripted replies, served in order, and the server's memory of what it issued. Every
    request is kept for assertions (path, lower-cased headers, body), with its arrival time.

    Args:
        replies: the answers, in order.
        native_shell: whether this endpoint has the native shell tool (some OpenAI-compatible
            servers and models do not, and refuse it as an unknown tool type).
        stores: whether this endpoint keeps responses asked to be stored (servers without
            storage answer a later ``previous_response_id`` with "not found").
    """

    def __init__(
        self,
        replies: list[Reply | tuple[int, dict[str, Any]]],
        *,
        native_shell: bool = True,
        stores: bool = True,
    ) -> None:
        self.replies = [r if isinstance(r, Reply) else Reply(*r) for r in replies]
        self.native_shell, self.stores = native_shell, stores
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.times: list[float] = []
        self.errors: list[ApiError] = []  # every refusal, in order
        self.release = threading.Event()  # ends any hanging answer
        self.responses: dict[str, Stored] = {}
        self.calls: dict[str, str] = {}  # call id -> its item type, for every call issued
        self.encrypted: dict[str, str] = {}  # reasoning id -> the encrypted content issued
        self.follows: dict[str, str | None] = {}  # reasoning id -> the item after it
        self.lock = threading.Lock()


def _supported(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _invalid(value: Any, values: tuple[str, ...], param: str) -> ApiError:
    return ApiError(
        400,
        f"Invalid value: {json.dumps(value)}. Supported values are: {_supported(values)}.",
        param,
        "invalid_value",
    )


def _check_shell_output(item: dict[str, Any], i: int) -> None:
    output = item.get("output")
    if not isinstance(output, list):
        raise ApiError(
            400,
            f"Invalid type for 'input[{i}].output': expected an array of shell call output "
            f"contents, but got {type(output).__name__} instead.",
            f"input[{i}].output",
            "invalid_type",
        )
    for j, chunk in enumerate(output):
        where = f"input[{i}].output[{j}]"
        if not isinstance(chunk, dict) or not all(
            isinstance(chunk.get(k), str) for k in ("stdout", "stderr")
        ):
            raise ApiError(
                400,
                f"Missing required parameter: '{where}.stdout'.",
                where,
                "missing_required_parameter",
            )
        outcome = chunk.get("outcome")
        kind = outcome.get("type") if isinstance(outcome, dict) else None
        if kind not in ("exit", "timeout"):
            raise _invalid(kind, ("exit", "timeout"), f"{where}.outcome.type")
        if kind == "exit" and not (
            isinstance(outcome.get("exit_code"), int) and not isinstance(outcome["exit_code"], bool)
        ):
            raise ApiError(
                400,
                f"Invalid type for '{where}.outcome.exit_code': expected an integer.",
                f"{where}.outcome.exit_code",
                "invalid_type",
            )
    limit = item.get("max_output_length")
    if limit is not None and not isinstance(limit, int):
        raise ApiError(
            400,
            f"Invalid type for 'input[{i}].max_output_length': expected an integer.",
            f"input[{i}].max_output_length",
            "invalid_type",
        )


def check_responses(model: Model, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Apply the Responses API's rules to a request; return the conversation it continues
    (the stored chain, then its input).

    Raises:
        ApiError: the refusal a real endpoint gives.
    """
    if not body.get("model"):
        raise ApiError(
            400, "Missing required parameter: 'model'.", "model", "missing_required_parameter"
        )
    tool_types = TOOL_TYPES if model.native_shell else ("function",)
    for i, tool in enumerate(body.get("tools") or []):
        if tool.get("type") not in tool_types:
            raise _invalid(tool.get("type"), tool_types, f"tools[{i}].type")
        if tool["type"] == "function" and not tool.get("name"):
            raise ApiError(
                400,
                f"Missing required parameter: 'tools[{i}].name'.",
                f"tools[{i}].name",
                "missing_required_parameter",
            )
    for i, value in enumerate(body.get("include") or []):
        if value not in INCLUDABLE:
            raise _invalid(value, INCLUDABLE, f"include[{i}]")
    context: list[dict[str, Any]] = []
    previous = body.get("previous_response_id")
    if previous is not None:
        stored = model.responses.get(previous)
        if stored is None or not stored.kept:
            raise ApiError(
                404,
                f"Previous response with id '{previous}' not found.",
                "previous_response_id",
                "previous_response_not_found",
            )
        context = list(stored.context)
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise ApiError(400, "Invalid type for 'input'.", "input", "invalid_type")
    pending = {item["call_id"]: item["type"] for item in context if item.get("type") in WORDS}
    for item in context:
        if item.get("type") in CALLS:
            pending.pop(item.get("call_id"), None)
    for i, item in enumerate(items):
        kind = item.get("type", "message" if "role" in item else None)
        if kind not in INPUT_TYPES:
            raise _invalid(kind, INPUT_TYPES, f"input[{i}].type")
        if kind == "message" and item.get("role") not in ROLES:
            raise _invalid(item.get("role"), ROLES, f"input[{i}].role")
        if kind == "reasoning":
            _check_reasoning(model, items, i)
        elif kind in WORDS:
            pending[str(item.get("call_id"))] = kind
        elif kind in CALLS:
            call_id = item.get("call_id")
            call = CALLS[kind]
            if model.calls.get(call_id) != call or pending.get(call_id) != call:
                raise ApiError(
                    400,
                    f"No tool call found for {WORDS[call]} output with call_id {call_id}.",
                    "input",
                )
            if kind == "shell_call_output":
                _check_shell_output(item, i)
            del pending[call_id]
    if pending:
        call_id, kind = next(iter(pending.items()))
        raise ApiError(400, f"No tool output found for {WORDS[kind]} {call_id}.", "input")
    return context + items


def _check_reasoning(model: Model, items: list[dict[str, Any]], i: int) -> None:
    item = items[i]
    rid = item.get("id")
    encrypted = item.get("encrypted_content")
    if encrypted is None:
        kept = any(
            s.kept and any(x.get("id") == rid for x in s.context) for s in model.responses.values()
        )
        if not kept:
            raise ApiError(
                404,
                f"Item with id '{rid}' not found. Items are not persisted when `store` is set "
                "to false. Try again with `store` set to true, or remove this item from your "
                "input.",
                "input",
            )
    elif model.encrypted.get(str(rid)) != encrypted:
        raise ApiError(
            400,
            f"The encrypted content for item {rid} could not be verified.",
            None,
            "invalid_encrypted_content",
        )
    after = items[i + 1].get("id") if i + 1 < len(items) else None
    wanted = model.follows.get(str(rid))
    if wanted is not None and after != wanted:
        raise ApiError(
            400,
            f"Item '{rid}' of type 'reasoning' was provided without its required following item.",
            "input",
        )


def issue_response(
    model: Model, request: dict[str, Any], context: list[dict[str, Any]], data: dict[str, Any]
) -> dict[str, Any]:
    """Make a scripted response what the API would send for this request, and remember it."""
    data = json.loads(json.dumps(data))
    tools = request.get("tools") or []
    native = any(t.get("type") == "shell" for t in tools)
    functions = {t.get("name") for t in tools if t.get("type") == "function"}
    include = request.get("include") or []
    summaries = bool((request.get("reasoning") or {}).get("summary"))
    output = data.get("output") or []
    for k, item in enumerate(output):
        kind = item.get("type")
        if kind == "shell_call" and not native:
            raise ScriptError("the script answers a shell_call to a request without the shell tool")
        if kind == "function_call" and item.get("name") == "shell" and "shell" not in functions:
            raise ScriptError("the script calls the shell function, which the request lacks")
        if kind in WORDS:
            model.calls[item["call_id"]] = kind
        if kind == "reasoning":
            rid = item["id"]
            model.follows[rid] = output[k + 1].get("id") if k + 1 < len(output) else None
            if "reasoning.encrypted_content" in include:
                token = "gAAAA" + hashlib.sha256(f"{rid}:{time.time_ns()}".encode()).hexdigest()
                model.encrypted[rid] = token
                item["encrypted_content"] = token
            else:
                item["encrypted_content"] = None
            if not summaries:
                item["summary"] = []
    store = request.get("store", True) is not False
    data["store"] = store
    data["previous_response_id"] = request.get("previous_response_id")
    if data.get("id"):
        model.responses[data["id"]] = Stored(context + output, store and model.stores)
    return data


def check_chat(body: dict[str, Any]) -> None:
    """Chat Completions' tool-message rules."""
    pending: set[str] = set()
    for msg in body.get("messages") or []:
        if msg.get("role") == "tool":
            if msg.get("tool_call_id") not in pending:
                raise ApiError(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    "messages",
                )
            pending.discard(msg["tool_call_id"])
        elif pending:
            break
        if msg.get("role") == "assistant" and msg.get("tool_calls"):
            pending = {tc["id"] for tc in msg["tool_calls"]}
    if pending:
        raise ApiError(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(sorted(pending))}",
            "messages",
        )


def _answer(model: Model, path: str, headers: dict[str, str], body: dict[str, Any]) -> Reply:
    if not headers.get("authorization", "").startswith("Bearer "):
        raise ApiError(401, "You didn't provide an API key.", None, None)
    context: list[dict[str, Any]] = []
    if path.endswith("/responses"):
        context = check_responses(model, body)
    elif path.endswith("/chat/completions"):
        check_chat(body)
    if not model.replies:
        return Reply(500, {"error": {"message": "no scripted reply left"}})
    reply = model.replies.pop(0)
    answered = reply.status == 200 and not reply.hang and isinstance(reply.body, dict)
    if path.endswith("/responses") and answered:
        reply = Reply(200, issue_response(model, body, context, reply.body), reply.headers)
    return reply


def _server(model: Model) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with model.lock:
                model.times.append(time.monotonic())
                model.requests.append((self.path, headers, body))
                try:
                    reply = _answer(model, self.path, headers, body)
                except ApiError as exc:
                    model.errors.append(exc)
                    reply = Reply(exc.status, exc.body())
                except ScriptError as exc:
                    reply = Reply(500, {"error": {"message": f"test script error: {exc}"}})
            if reply.hang:
                model.release.wait()
                return
            out = {k: v() if callable(v) else v for k, v in reply.headers.items()}
            if isinstance(reply.body, bytes):
                data = reply.body
            else:
                data = json.dumps(reply.body).encode()
                out.setdefault("Content-Type", "application/json")
            self._send(reply.status, data, out)

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@dataclass
class Servers:
    """Start strict API servers; all are stopped at the end of the test."""

    running: list[tuple[ThreadingHTTPServer, Model]] = field(default_factory=list)

    def __call__(self, model: Model) -> str:
        srv = _server(model)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.running.append((srv, model))
        return f"http://127.0.0.1:{srv.server_address[1]}/v1"

    def stop(self) -> None:
        for srv, model in self.running:
            model.release.set()
            srv.shutdown()


def serving() -> Iterator[Servers]:
    servers = Servers()
    try:
        yield servers
    finally:
        servers.stop()


# -- scripted output items ------------------------------------------------------------------


def usage(
    input_tokens: int = 100, output_tokens: int = 20, cached: int = 0, reasoning: int = 0
) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens_details": {"reasoning_tokens": reasoning},
    }


def response(i: int, *items: dict[str, Any], use: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Responses API answer ``resp_{i}`` with these output items."""
    return {
        "id": f"resp_{i}",
        "object": "response",
        "model": "test-model",
        "status": "completed",
        "output": list(items),
        "usage": use or usage(),
    }


def reasoning(i: int, summary: str = "") -> dict[str, Any]:
    """A reasoning item; the server adds its encrypted content when the request asks."""
    return {
        "type": "reasoning",
        "id": f"rs_{i}",
        "summary": [{"type": "summary_text", "text": summary}] if summary else [],
    }


def function_call(i: int, args: str | dict[str, Any], name: str = "shell") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{i}",
        "call_id": f"call_{i}",
        "name": name,
        "arguments": args if isinstance(args, str) else json.dumps(args),
        "status": "completed",
    }


def shell_call(
    i: int, commands: list[str], timeout_ms: int | None = None, max_output_length: int | None = None
) -> dict[str, Any]:
    return {
        "type": "shell_call",
        "id": f"sh_{i}",
        "call_id": f"call_{i}",
        "action": {
            "commands": commands,
            "timeout_ms": timeout_ms,
            "max_output_length": max_output_length,
        },
        "status": "completed",
    }


def message(i: int, text: str = "Done.") -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{i}",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
