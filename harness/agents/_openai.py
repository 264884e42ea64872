"""The ``openai`` agent: a model drives the trial's sandbox through the shell tool.

It speaks the Responses API with its native ``shell`` tool (the model emits ``shell_call``
items and gets ``shell_call_output`` back, as it was trained to), or offers the shell as a
function tool (``--shell-tool function``) for OpenAI-compatible servers without the native
one, or speaks Chat Completions (``--api chat``) for servers without the Responses API (vLLM,
llama.cpp, Ollama). Reasoning state is kept either way the API allows: stateless, passing
encrypted reasoning back, or stateful (``--store``), threading ``previous_response_id``.
Every model call is a ``chat {model}`` span with GenAI attributes and the full request and
response as blobs: enough to replay the trial without the model.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from pydantic import Field, field_validator, model_validator

from traces.vocab import Attr, Span

from . import _genai_content as content
from . import _shell_tool as shell
from ._agent import AgentContext, AgentOptions, AgentSession
from ._conversation import FUNCTION, NATIVE, Chat, Conversation, Responses, ToolCall, Turn

TOOLS = (shell.NAME,)  # the tools the model is given

# Why the agent stopped (recorded as Attr.AGENT_STOP_REASON and ctx.info["stop_reason"]).
DONE, MAX_STEPS, DEADLINE, ERROR = "done", "max_steps", "deadline", "error"


class OpenAIOptions(AgentOptions):
    model: str = Field(default="gpt-5-mini", description="Model for the openai agent.")
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint (default: OpenAI's)."
    )
    api: str = Field(default="responses", description="openai agent: responses or chat.")
    shell_tool: str | None = Field(
        default=None,
        description="openai agent: native (the default) or function (for servers without "
        "the native shell tool; always so with --api chat).",
    )
    store: bool = Field(
        default=False,
        description="openai agent: the API keeps the conversation (previous_response_id).",
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY", description="Environment variable holding the API key."
    )
    max_steps: int = Field(default=50, description="openai agent: most model calls.")
    temperature: float | None = Field(default=None, description="Sampling temperature.")
    seed: int | None = Field(default=None, description="Sampling seed.")
    reasoning_effort: str | None = Field(default=None, description="low, medium or high.")
    reasoning_summary: str | None = Field(
        default=None,
        description="openai agent: ask for reasoning summaries: auto, concise, detailed.",
    )
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

    @field_validator("shell_tool")
    @classmethod
    def _shell_tool(cls, v: str | None) -> str | None:
        if v not in (None, NATIVE, FUNCTION):
            raise ValueError(f"shell tool must be {NATIVE!r} or {FUNCTION!r}, not {v!r}")
        return v

    @field_validator("reasoning_summary")
    @classmethod
    def _summary(cls, v: str | None) -> str | None:
        if v not in (None, "auto", "concise", "detailed"):
            raise ValueError(f"reasoning summary must be auto, concise or detailed, not {v!r}")
        return v

    @model_validator(mode="after")
    def _fits_the_api(self) -> OpenAIOptions:
        if self.api == "chat":
            given = [
                flag
                for flag, bad in (
                    ("--shell-tool native", self.shell_tool == NATIVE),
                    ("--store", self.store),
                    ("--reasoning-summary", self.reasoning_summary is not None),
                )
                if bad
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)} needs --api responses: Chat Completions has only "
                    "function tools and keeps no conversation"
                )
        return self

    def tool_mode(self) -> str:
        """How the shell is offered: native with the Responses API unless told otherwise."""
        if self.api == "chat":
            return FUNCTION
        return self.shell_tool or NATIVE


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


class ModelRequestRefused(RuntimeError):
    """The endpoint refused a request for an option it lacks; the message names the fix."""


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
        self.options = o = options or OpenAIOptions()
        self.model, self.base_url, self.api = o.model, o.base_url, o.api
        self.shell_tool = o.tool_mode()
        host = urlsplit(o.base_url or "").hostname or ""
        # gen_ai.provider.name: Azure's OpenAI service, or OpenAI (and OpenAI-compatible APIs).
        self.provider = "azure.ai.openai" if host.endswith(".openai.azure.com") else "openai"

    def _client(self) -> Any:
        import openai

        key = os.environ.get(self.options.api_key_env)
        if not key:
            raise RuntimeError(
                f"no API key: set {self.options.api_key_env} in harness's environment "
                "(it is never passed into the container or the record)"
            )
        return openai.OpenAI(api_key=key, base_url=self.base_url, max_retries=0)

    def _conversation(
        self, instruction: str, history: list[dict[str, Any]] | None = None
    ) -> Conversation:
        """A new conversation, or the one handed over (a fork) continued."""
        o = self.options
        if self.api == "chat":
            return Chat(instruction, reasoning_effort=o.reasoning_effort, history=history)
        reasoning = {
            k: v
            for k, v in (("effort", o.reasoning_effort), ("summary", o.reasoning_summary))
            if v is not None
        }
        return Responses(
            instruction,
            shell_tool=self.shell_tool,
            store=o.store,
            reasoning=reasoning or None,
            history=history,
        )

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
        ctx.info.update({"model": self.model, "api": self.api, "shell_tool": self.shell_tool})
        conversation = self._conversation(instruction, ctx.history)
        for _ in range(self.options.max_steps):
            if session.remaining() <= 0:
                return DEADLINE
            called = self._call(client, tracer, ctx, session, conversation)
            if called is None:
                return DEADLINE
            turn, chat, answered_ns = called
            first = session.step
            try:
                if not turn.calls:
                    return DONE  # the model answered without a tool call
                if not self._tools(tracer, session, conversation, turn):
                    return DEADLINE
            finally:
                # The turn's span ends when the model answered, but says which steps it
                # caused: those are known only once its tool calls have run.
                if session.step > first:
                    chat.set_attribute(Attr.CAUSED_STEPS, list(range(first + 1, session.step + 1)))
                chat.end(end_time=answered_ns)
        return DEADLINE if session.remaining() <= 0 else MAX_STEPS

    def _tools(
        self, tracer: Any, session: AgentSession, conversation: Conversation, turn: Turn
    ) -> bool:
        """Run a turn's tool calls in order; False when the agent's time ran out."""
        for i, call in enumerate(turn.calls):
            if session.remaining() <= 0:
                for late in turn.calls[i:]:
                    self._refuse(tracer, late)
                return False
            if not self._tool(tracer, session, conversation, call):
                return False
        return True

    def _request(self, conversation: Conversation) -> dict[str, Any]:
        """The next request: the conversation's body plus the model and sampling options."""
        o = self.options
        req = {"model": self.model, **conversation.request()}
        if o.temperature is not None:
            req["temperature"] = o.temperature
        if o.seed is not None and self.api == "chat":
            req["seed"] = o.seed
        elif o.seed is not None:
            req["extra_body"] = {"seed": o.seed}  # not a Responses API parameter
        return req

    def _call(
        self,
        client: Any,
        tracer: Any,
        ctx: AgentContext,
        session: AgentSession,
        conversation: Conversation,
    ) -> tuple[Turn, Any, int] | None:
        """One model call (with its retries) as a ``chat {model}`` span: the turn, its span
        (still open: the caller ends it) and when the model answered; None when the agent's
        time ran out before the model answered."""
        req = self._request(conversation)
        span = tracer.start_span(
            Span.chat(self.model), kind=trace.SpanKind.CLIENT, attributes=self._attributes(req)
        )
        try:
            with trace.use_span(span, end_on_exit=False):
                turn = self._exchange(client, span, ctx, session, conversation, req)
        except BaseException:
            span.end()
            raise
        if turn is None:
            span.end()
            return None
        return turn, span, time.time_ns()

    def _exchange(
        self,
        client: Any,
        span: Any,
        ctx: AgentContext,
        session: AgentSession,
        conversation: Conversation,
        req: dict[str, Any],
    ) -> Turn | None:
        """The call itself, with its retries, recorded on ``span``."""
        import openai

        create = (
            client.responses if self.api == "responses" else client.chat.completions
        ).with_raw_response.create
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
                span.set_attributes({Attr.REFUSED_REASON: DEADLINE, Attr.ERROR_TYPE: DEADLINE})
                return None
            try:
                raw = create(**req, timeout=left)
                break
            except (
                openai.BadRequestError,
                openai.NotFoundError,
                openai.UnprocessableEntityError,
            ) as exc:
                span.set_attribute(Attr.ERROR_TYPE, type(exc).__qualname__)
                self._explain_refusal(exc)
                raise
            except (
                openai.RateLimitError,
                openai.InternalServerError,
                openai.APIConnectionError,
            ) as exc:
                if isinstance(exc, openai.APITimeoutError) and session.remaining() <= 0:
                    span.set_attribute(Attr.ERROR_TYPE, "timeout")
                    span.set_status(
                        Status(
                            StatusCode.ERROR,
                            f"the model did not answer within the agent's last {left:.1f} s",
                        )
                    )
                    return None
                response = getattr(exc, "response", None)
                asked = retry_after(response.headers) if response is not None else None
                wanted = asked if asked is not None else self.options.backoff_s * (2**attempt)
                # Never past the deadline; nothing to wait for once giving up.
                last = attempt == self.options.retries
                delay = 0.0 if last else min(wanted, session.remaining())
                event: dict[str, Any] = {
                    "attempt": attempt + 1,
                    "http.status_code": getattr(exc, "status_code", None) or 0,
                    "error": str(exc)[:500],
                    Attr.RETRY_DELAY: delay,
                }
                if asked is not None:
                    event[Attr.RETRY_AFTER] = asked
                span.add_event("retry", event)
                if last:
                    span.set_attribute(Attr.ERROR_TYPE, type(exc).__qualname__)
                    span.set_status(Status(StatusCode.ERROR, f"gave up after {attempt + 1}"))
                    raise
                time.sleep(delay)
                attempt += 1
        data = self._read(raw, span, ctx)
        turn = conversation.take(data)
        out = content.output_messages(self.api, data, turn.finish_reasons)
        attrs = {
            Attr.GEN_AI_OUTPUT_MESSAGES: content.capped(out)[0],
            Attr.GEN_AI_RESPONSE_ID: turn.response_id,
            Attr.GEN_AI_RESPONSE_MODEL: turn.response_model,
            Attr.GEN_AI_INPUT_TOKENS: turn.input_tokens,
            Attr.GEN_AI_OUTPUT_TOKENS: turn.output_tokens,
            Attr.GEN_AI_CACHED_TOKENS: turn.cached_tokens,
            Attr.GEN_AI_REASONING_TOKENS: turn.reasoning_tokens,
            Attr.GEN_AI_FINISH_REASONS: turn.finish_reasons,
            Attr.REASONING_SUMMARY: turn.reasoning_summary,
        }
        span.set_attributes({k: v for k, v in attrs.items() if v is not None})
        for key, value in (
            ("input_tokens", turn.input_tokens),
            ("output_tokens", turn.output_tokens),
            ("cached_tokens", turn.cached_tokens),
            ("reasoning_tokens", turn.reasoning_tokens),
        ):
            ctx.info[key] = ctx.info.get(key, 0) + int(value or 0)
        return turn

    def _attributes(self, req: dict[str, Any]) -> dict[str, Any]:
        """A model call's attributes as the GenAI conventions name them, with the request's
        content (the opt-in attributes OTel backends render as a conversation)."""
        o = self.options
        url = urlsplit(self.base_url or "https://api.openai.com/v1")
        port = url.port or (443 if url.scheme == "https" else 80)
        messages, omitted = content.capped(content.input_messages(self.api, req))
        attrs = {
            Attr.GEN_AI_OPERATION: Span.CHAT,
            Attr.GEN_AI_PROVIDER_NAME: self.provider,
            Attr.GEN_AI_REQUEST_MODEL: self.model,
            Attr.GEN_AI_REQUEST_TEMPERATURE: o.temperature,
            Attr.GEN_AI_REQUEST_SEED: o.seed,
            Attr.OPENAI_API_TYPE: "chat_completions" if self.api == "chat" else "responses",
            Attr.SHELL_TOOL: self.shell_tool,
            Attr.SERVER_ADDRESS: url.hostname,
            Attr.SERVER_PORT: port,
            Attr.PREVIOUS_RESPONSE_ID: req.get("previous_response_id"),
            Attr.GEN_AI_INPUT_MESSAGES: messages,
            Attr.MESSAGES_OMITTED: omitted or None,
            Attr.GEN_AI_SYSTEM_INSTRUCTIONS: json.dumps(content.system_instructions(req)),
            Attr.GEN_AI_TOOL_DEFINITIONS: json.dumps(content.tool_definitions(self.api, req)),
        }
        if self.api == "chat":
            del attrs[Attr.GEN_AI_SYSTEM_INSTRUCTIONS]  # the system message is in the messages
        return {k: v for k, v in attrs.items() if v is not None}

    def _explain_refusal(self, exc: Any) -> None:
        """A request refused because of an option this endpoint lacks (the native shell
        tool, stored responses) says so, and names the fix."""
        body = getattr(exc, "body", None)
        message = str(body.get("message", "")) if isinstance(body, dict) else str(exc)
        code = body.get("code") if isinstance(body, dict) else None
        where = (
            f"the model server at {self.base_url or 'OpenAI'} (model {self.model!r}, HTTP "
            f"{getattr(exc, 'status_code', '?')}: {message})"
        )
        if self.shell_tool == NATIVE and "shell" in message.lower():
            raise ModelRequestRefused(
                f"{where} refused the native shell tool. If this endpoint or model has no "
                "native shell tool, run with --shell-tool function to offer the shell as a "
                "function tool instead."
            ) from None
        if self.options.store and (
            code == "previous_response_not_found" or "previous response" in message.lower()
        ):
            raise ModelRequestRefused(
                f"{where} has not kept the previous response. If this endpoint does not store "
                "responses, run without --store: the whole conversation is then sent each "
                "turn."
            ) from None

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
            span.set_attribute(Attr.ERROR_TYPE, ModelResponseError.__qualname__)
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

    # -- tool calls ----------------------------------------------------------------------

    def _span(self, tracer: Any, call: ToolCall) -> Any:
        attrs = {
            Attr.GEN_AI_OPERATION: Span.EXECUTE_TOOL,
            Attr.GEN_AI_TOOL_NAME: call.name,
            Attr.GEN_AI_TOOL_TYPE: "function",  # run by the client, not the provider
            Attr.GEN_AI_TOOL_CALL_ID: call.call_id,
            Attr.GEN_AI_TOOL_CALL_ARGUMENTS: call.arguments,
        }
        if call.name in TOOLS:
            attrs[Attr.GEN_AI_TOOL_DESCRIPTION] = shell.DESCRIPTION
        return tracer.start_as_current_span(Span.tool(call.name), attributes=attrs)

    def _refuse(self, tracer: Any, call: ToolCall) -> None:
        """Record a tool call that came after the deadline: not run."""
        with self._span(tracer, call) as span:
            span.set_attributes({Attr.REFUSED_REASON: DEADLINE, Attr.ERROR_TYPE: DEADLINE})
            span.set_status(Status(StatusCode.ERROR, "refused: the agent's time is up"))

    def _tool(
        self, tracer: Any, session: AgentSession, conversation: Conversation, call: ToolCall
    ) -> bool:
        """Run one tool call and answer it; False when the agent's time ran out in it."""
        with self._span(tracer, call) as span:
            args = self._arguments(call)
            if isinstance(args, tuple):
                status, message = args
                span.set_status(Status(StatusCode.ERROR, status))
                span.set_attributes({Attr.TOOL_ERROR: message, Attr.ERROR_TYPE: status})
                answer = conversation.answer(call, None, message)
                span.set_attribute(Attr.GEN_AI_TOOL_CALL_RESULT, answer)
                return True
            result = shell.run_commands(session, args, self.options.max_output_length)
            span.set_attribute(
                Attr.GEN_AI_TOOL_CALL_RESULT, conversation.answer(call, result, None)
            )
            if result.refused:
                # Commands after the deadline are not run: the loop ends after this call.
                span.set_attributes({Attr.REFUSED_REASON: DEADLINE, Attr.ERROR_TYPE: DEADLINE})
                span.set_status(Status(StatusCode.ERROR, "refused: the agent's time is up"))
                return False
            return True

    @staticmethod
    def _arguments(call: ToolCall) -> shell.ShellArgs | tuple[str, str]:
        """The call's checked arguments, or why it cannot run: (status, words for the model)."""
        if call.name not in TOOLS:
            return "unknown_tool", (
                f"unknown tool {call.name!r}: the tools you have are {', '.join(TOOLS)}. "
                'Call shell with JSON like {"commands": ["ls -la"]}.'
            )
        try:
            if call.native:
                return shell.check_action(call.action)
            return shell.parse_arguments(call.arguments)
        except shell.ToolArgumentError as exc:
            return "invalid_arguments", (
                f"invalid arguments for shell: {exc}. Expected JSON like {shell.EXAMPLE}."
            )
