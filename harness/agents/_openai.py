"""The ``openai`` agent: a model drives the trial's sandbox through a ``shell`` tool.

The tool's arguments and results are shaped like the hosted shell tool's (``commands``,
``timeout_ms``, ``max_output_length``; per command stdout, stderr and an exit or timeout
outcome), so prompts written for hosted containers carry over. It speaks the Responses API,
or Chat Completions (``api="chat"``) for OpenAI-compatible servers without it (vLLM,
llama.cpp, Ollama). Every model call is a ``chat {model}`` span with GenAI attributes and the
full request and response as blobs: enough to replay the trial without the model.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from pydantic import Field, field_validator

from traces.vocab import Attr, Span

from ._agent import AgentContext, AgentOptions, AgentSession, TimeUp

SYSTEM = (
    "You are an autonomous agent working in a Linux container through the `shell` tool. "
    "Commands run in a persistent bash session (cd and exported variables persist). Work "
    "step by step, check your results, and reply with a short summary when the task is done."
)

SHELL_PARAMS: dict[str, Any] = {
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
SHELL_DESCRIPTION = "Run shell commands in the task's Linux container."
TOOLS = ("shell",)  # the tools the model is given

# Why the agent stopped (recorded as Attr.AGENT_STOP_REASON and ctx.info["stop_reason"]).
DONE, MAX_STEPS, DEADLINE, ERROR = "done", "max_steps", "deadline", "error"


def truncate(text: str, limit: int) -> str:
    """Head and tail of ``text`` within ``limit`` characters, with a visible marker."""
    if len(text) <= limit:
        return text
    half = max(0, limit // 2)
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters omitted ...]\n{text[-half:]}"


class OpenAIOptions(AgentOptions):
    model: str = Field(default="gpt-5-mini", description="Model for the openai agent.")
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint (default: OpenAI's)."
    )
    api: str = Field(default="responses", description="openai agent: responses or chat.")
    api_key_env: str = Field(
        default="OPENAI_API_KEY", description="Environment variable holding the API key."
    )
    max_steps: int = Field(default=50, description="openai agent: most model calls.")
    temperature: float | None = Field(default=None, description="Sampling temperature.")
    seed: int | None = Field(default=None, description="Sampling seed.")
    reasoning_effort: str | None = Field(default=None, description="low, medium or high.")
    max_output_length: int = Field(
        default=16_000, description="openai agent: characters of output the model is shown."
    )
    retries: int = Field(default=5, description="openai agent: retries on 429 and 5xx.")
    backoff_s: float = Field(default=1.0, description="openai agent: first retry delay.")

    @field_validator("api")
    @classmethod
    def _api(cls, v: str) -> str:
        if v not in ("responses", "chat"):
            raise ValueError(f"api must be 'responses' or 'chat', not {v!r}")
        return v


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a server asked the client to wait: ``retry-after-ms`` (OpenAI's), then
    ``Retry-After`` as seconds or an HTTP date (RFC 9110). None when absent or unreadable."""
    lower = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = lower.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ModelResponseError(RuntimeError):
    """A model server's answer could not be read as the API's JSON."""


class ToolArgumentError(ValueError):
    """A tool call's arguments do not fit the tool's schema; the model is told why."""


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ShellArgs:
    commands: list[str]
    timeout_s: float | None
    max_output_length: int | None


def parse_shell_args(raw: str) -> ShellArgs:
    """The shell tool's arguments, checked against its schema.

    Raises:
        ToolArgumentError: what is wrong, in words the model can act on.
    """
    try:
        args = json.loads(raw)
    except ValueError as exc:
        raise ToolArgumentError(f"arguments are not JSON ({exc})") from None
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


class OpenAIAgent:
    """A model drives the sandbox through the shell tool; see :class:`OpenAIOptions`.

    Time: every model request's timeout is the session's remaining time, no model call starts
    and no tool call runs once it is gone. Retries on 429 and 5xx wait as the server's
    ``Retry-After`` says (else back off exponentially), never past the deadline, and each one
    is recorded. Why the agent stopped (done, max_steps, deadline, error) is recorded on the
    stage's ``agent`` span and in ``ctx.info["stop_reason"]``."""

    name = "openai"
    Options = OpenAIOptions

    def __init__(self, options: OpenAIOptions | None = None) -> None:
        o = options or OpenAIOptions()
        self.options = o
        self.model, self.base_url, self.api = o.model, o.base_url, o.api
        self.api_key_env = o.api_key_env
        self.max_steps, self.temperature, self.seed = o.max_steps, o.temperature, o.seed
        self.reasoning_effort = o.reasoning_effort
        self.max_output_length, self.retries, self.backoff_s = (
            o.max_output_length,
            o.retries,
            o.backoff_s,
        )

    def _client(self) -> Any:
        import openai

        key = os.environ.get(self.api_key_env)
        if not key:
            raise RuntimeError(
                f"no API key: set {self.api_key_env} in harness's environment "
                "(it is never passed into the container or the record)"
            )
        return openai.OpenAI(api_key=key, base_url=self.base_url, max_retries=0)

    # -- the loop ------------------------------------------------------------------------

    def run(self, instruction: str, session: AgentSession, ctx: AgentContext) -> None:
        reason = ERROR
        try:
            reason = self._loop(instruction, session, ctx)
        finally:
            # The current span is the stage's `agent` span: the trial's record of the stage.
            ctx.info["stop_reason"] = reason
            trace.get_current_span().set_attribute(Attr.AGENT_STOP_REASON, reason)

    def _loop(self, instruction: str, session: AgentSession, ctx: AgentContext) -> str:
        client = self._client()
        tracer = ctx.tracer or trace.get_tracer("harness.agent")
        ctx.info.update({"model": self.model, "api": self.api})
        if self.api == "responses":
            items: list[dict[str, Any]] = [{"role": "user", "content": instruction}]
        else:
            items = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": instruction},
            ]
        for _ in range(self.max_steps):
            if session.remaining() <= 0:
                return DEADLINE
            data = self._call(client, tracer, ctx, session, items)
            if data is None:
                return DEADLINE
            calls = self._tool_calls(data, items)
            if not calls:
                return DONE  # the model answered without a tool call
            for i, call in enumerate(calls):
                if session.remaining() <= 0:
                    for late in calls[i:]:
                        self._refuse(tracer, late)
                    return DEADLINE
                output = self._tool(tracer, session, call)
                if self.api == "responses":
                    items.append(
                        {"type": "function_call_output", "call_id": call.call_id, "output": output}
                    )
                else:
                    items.append({"role": "tool", "tool_call_id": call.call_id, "content": output})
        return DEADLINE if session.remaining() <= 0 else MAX_STEPS

    def _request(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        if self.api == "responses":
            req: dict[str, Any] = {
                "model": self.model,
                "instructions": SYSTEM,
                "input": items,
                "store": False,
                "tools": [
                    {
                        "type": "function",
                        "name": "shell",
                        "description": SHELL_DESCRIPTION,
                        "parameters": SHELL_PARAMS,
                    }
                ],
            }
            if self.reasoning_effort:
                req["reasoning"] = {"effort": self.reasoning_effort}
        else:
            req = {
                "model": self.model,
                "messages": items,
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "shell",
                            "description": SHELL_DESCRIPTION,
                            "parameters": SHELL_PARAMS,
                        },
                    }
                ],
            }
            if self.seed is not None:
                req["seed"] = self.seed
            if self.reasoning_effort:
                req["reasoning_effort"] = self.reasoning_effort
        if self.temperature is not None:
            req["temperature"] = self.temperature
        return req

    def _call(
        self,
        client: Any,
        tracer: Any,
        ctx: AgentContext,
        session: AgentSession,
        items: list[dict[str, Any]],
    ) -> dict[str, Any] | None:
        """One model call (with its retries) as a ``chat {model}`` span; None when the agent's
        time ran out before the model answered."""
        import openai

        req = self._request(items)
        if self.api == "responses" and self.seed is not None:
            req["extra_body"] = {"seed": self.seed}
        create = (
            client.responses if self.api == "responses" else client.chat.completions
        ).with_raw_response.create
        with tracer.start_as_current_span(
            Span.chat(self.model),
            kind=trace.SpanKind.CLIENT,
            attributes={
                Attr.GEN_AI_OPERATION: Span.CHAT,
                Attr.GEN_AI_SYSTEM: "openai",
                Attr.GEN_AI_REQUEST_MODEL: self.model,
                Attr.API: self.api,
            },
        ) as span:
            if ctx.put_blob is not None:
                logged = {k: v for k, v in req.items() if k != "extra_body"}
                logged.update(req.get("extra_body") or {})
                span.set_attribute(
                    Attr.REQUEST_BLOB, ctx.put_blob(json.dumps(logged, sort_keys=True).encode())
                )
            attempt = 0
            while True:
                left = session.remaining()
                if left <= 0:
                    span.set_status(Status(StatusCode.ERROR, "no time left for the model call"))
                    span.set_attribute(Attr.REFUSED_REASON, DEADLINE)
                    return None
                try:
                    raw = create(**req, timeout=left)
                    break
                except (
                    openai.RateLimitError,
                    openai.InternalServerError,
                    openai.APIConnectionError,
                ) as exc:
                    if isinstance(exc, openai.APITimeoutError) and session.remaining() <= 0:
                        span.set_status(
                            Status(
                                StatusCode.ERROR,
                                f"the model did not answer within the agent's last {left:.1f} s",
                            )
                        )
                        return None
                    response = getattr(exc, "response", None)
                    asked = retry_after(response.headers) if response is not None else None
                    wanted = asked if asked is not None else self.backoff_s * (2**attempt)
                    # Never past the deadline; nothing to wait for once giving up.
                    delay = 0.0 if attempt == self.retries else min(wanted, session.remaining())
                    event: dict[str, Any] = {
                        "attempt": attempt + 1,
                        "http.status_code": getattr(exc, "status_code", None) or 0,
                        "error": str(exc)[:500],
                        Attr.RETRY_DELAY: delay,
                    }
                    if asked is not None:
                        event[Attr.RETRY_AFTER] = asked
                    span.add_event("retry", event)
                    if attempt == self.retries:
                        span.set_status(Status(StatusCode.ERROR, f"gave up after {attempt + 1}"))
                        raise
                    time.sleep(delay)
                    attempt += 1
            data = self._read(raw, span, ctx)
            usage = data.get("usage") or {}
            if self.api == "responses":
                tin, tout = usage.get("input_tokens"), usage.get("output_tokens")
                cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
                finish = [str(data.get("status", ""))]
            else:
                tin, tout = usage.get("prompt_tokens"), usage.get("completion_tokens")
                cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
                finish = [str(c.get("finish_reason")) for c in data.get("choices", [])]
            attrs = {
                Attr.GEN_AI_RESPONSE_ID: data.get("id"),
                Attr.GEN_AI_RESPONSE_MODEL: data.get("model"),
                Attr.GEN_AI_INPUT_TOKENS: tin,
                Attr.GEN_AI_OUTPUT_TOKENS: tout,
                Attr.GEN_AI_CACHED_TOKENS: cached,
                Attr.GEN_AI_FINISH_REASONS: finish,
            }
            span.set_attributes({k: v for k, v in attrs.items() if v is not None})
            for key, value in (("input_tokens", tin), ("output_tokens", tout)):
                ctx.info[key] = ctx.info.get(key, 0) + int(value or 0)
        return data

    def _read(self, raw: Any, span: Any, ctx: AgentContext) -> dict[str, Any]:
        """The response's JSON object; a clear error naming the URL for anything else."""
        http = raw.http_response
        body: bytes = http.content
        try:
            data = json.loads(body)
            problem = "" if isinstance(data, dict) else f"JSON {type(data).__name__}, not an object"
        except ValueError as exc:
            data, problem = None, f"not JSON ({exc})"
        if ctx.put_blob is not None:
            stored = json.dumps(data, sort_keys=True).encode() if not problem else body
            span.set_attribute(Attr.RESPONSE_BLOB, ctx.put_blob(stored))
        if problem:
            span.set_status(Status(StatusCode.ERROR, "unreadable response"))
            start = body[:300].decode("utf-8", errors="replace")
            raise ModelResponseError(
                f"the model server at {http.url} answered HTTP {http.status_code} "
                f"({http.headers.get('content-type', 'no content-type')}) with a body that is "
                f"{problem}; it starts: {start!r}. Point --base-url at an OpenAI-compatible "
                "API (usually ending in /v1)."
            )
        assert isinstance(data, dict)
        return data

    def _tool_calls(self, data: dict[str, Any], items: list[dict[str, Any]]) -> list[ToolCall]:
        """Append the model's turn to the conversation; return its function calls."""
        calls: list[ToolCall] = []
        if self.api == "responses":
            for item in data.get("output") or []:
                items.append(item)
                if item.get("type") == "function_call":
                    calls.append(
                        ToolCall(
                            str(item.get("call_id")),
                            str(item.get("name", "")),
                            str(item.get("arguments", "")),
                        )
                    )
            return calls
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        items.append({k: v for k, v in message.items() if v is not None})
        for tc in message.get("tool_calls") or []:
            fn = tc.get("function") or {}
            calls.append(
                ToolCall(str(tc.get("id")), str(fn.get("name", "")), str(fn.get("arguments", "")))
            )
        return calls

    def _span(self, tracer: Any, call: ToolCall) -> Any:
        return tracer.start_as_current_span(
            Span.tool(call.name),
            attributes={
                Attr.GEN_AI_OPERATION: Span.EXECUTE_TOOL,
                Attr.GEN_AI_TOOL_NAME: call.name,
                Attr.GEN_AI_TOOL_CALL_ID: call.call_id,
                Attr.GEN_AI_TOOL_CALL_ARGUMENTS: call.arguments,
            },
        )

    def _refuse(self, tracer: Any, call: ToolCall) -> None:
        """Record a tool call that came after the deadline: not run."""
        with self._span(tracer, call) as span:
            span.set_attribute(Attr.REFUSED_REASON, DEADLINE)
            span.set_status(Status(StatusCode.ERROR, "refused: the agent's time is up"))

    def _tool(self, tracer: Any, session: AgentSession, call: ToolCall) -> str:
        with self._span(tracer, call) as span:
            if call.name not in TOOLS:
                message = (
                    f"unknown tool {call.name!r}: the tools you have are "
                    f"{', '.join(TOOLS)}. Call shell with JSON like "
                    '{"commands": ["ls -la"]}.'
                )
                span.set_status(Status(StatusCode.ERROR, "unknown tool"))
                span.set_attribute(Attr.TOOL_ERROR, message)
                return json.dumps({"error": message})
            try:
                args = parse_shell_args(call.arguments)
            except ToolArgumentError as exc:
                span.set_status(Status(StatusCode.ERROR, "malformed arguments"))
                span.set_attribute(Attr.TOOL_ERROR, str(exc))
                return json.dumps(
                    {
                        "error": f"invalid arguments for shell: {exc}. Expected JSON like "
                        '{"commands": ["ls -la"], "timeout_ms": 60000, '
                        '"max_output_length": 4000}.'
                    }
                )
            limit = args.max_output_length or self.max_output_length
            results = []
            for command in args.commands:
                try:
                    if session.remaining() <= 0:
                        raise TimeUp(f"the agent's time is up; {command!r} was not run")
                    r = session.run(command, timeout=args.timeout_s)
                except TimeUp:
                    # Commands after the deadline are not run: the loop ends after this call.
                    span.set_attribute(Attr.REFUSED_REASON, DEADLINE)
                    span.set_status(Status(StatusCode.ERROR, "refused: the agent's time is up"))
                    break
                outcome = (
                    {"type": "timeout"}
                    if r.timed_out
                    else {"type": "exit", "exit_code": r.exit_code}
                )
                results.append(
                    {
                        "stdout": truncate(r.stdout_text, limit),
                        "stderr": truncate(r.stderr_text, limit),
                        "outcome": outcome,
                    }
                )
            return json.dumps({"output": results})
