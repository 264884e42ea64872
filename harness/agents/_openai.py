"""The ``openai`` agent: a model drives the trial's sandbox through a ``shell`` tool.

The tool's arguments and results are shaped like the hosted shell tool's (``commands``,
``timeout_ms``, ``max_output_length``; per command stdout, stderr and an exit or timeout
outcome), so prompts written for hosted containers carry over. It speaks the Responses API,
or Chat Completions (``api="chat"``) for OpenAI-compatible servers without it (vLLM,
llama.cpp, Ollama). Every model call is a ``chat {model}`` span with GenAI attributes and the
full request and response as blobs: enough to replay the trial without the model.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from pydantic import Field, field_validator

from traces.vocab import Attr, Span

from ._agent import AgentContext, AgentOptions, AgentSession

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


class OpenAIAgent:
    """A model drives the sandbox through the shell tool; see :class:`OpenAIOptions`.
    Retries on 429 and 5xx back off exponentially and each one is recorded."""

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
                return
            data = self._call(client, tracer, ctx, items)
            calls = self._tool_calls(data, items)
            if not calls:
                return  # the model answered without a tool call: done
            for call_id, raw_args in calls:
                output = self._tool(tracer, session, call_id, raw_args)
                if self.api == "responses":
                    items.append(
                        {"type": "function_call_output", "call_id": call_id, "output": output}
                    )
                else:
                    items.append({"role": "tool", "tool_call_id": call_id, "content": output})

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
        self, client: Any, tracer: Any, ctx: AgentContext, items: list[dict[str, Any]]
    ) -> dict[str, Any]:
        import openai

        req = self._request(items)
        extra = {"seed": self.seed} if self.api == "responses" and self.seed is not None else None
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
                span.set_attribute(
                    Attr.REQUEST_BLOB, ctx.put_blob(json.dumps(req, sort_keys=True).encode())
                )
            for attempt in range(self.retries + 1):
                try:
                    create = (
                        client.responses if self.api == "responses" else client.chat.completions
                    ).with_raw_response.create
                    raw = create(**req, extra_body=extra) if extra else create(**req)
                    data: dict[str, Any] = json.loads(raw.http_response.text)
                    break
                except (
                    openai.RateLimitError,
                    openai.InternalServerError,
                    openai.APIConnectionError,
                ) as exc:
                    status = getattr(exc, "status_code", None) or 0
                    span.add_event(
                        "retry",
                        {
                            "attempt": attempt + 1,
                            "http.status_code": status,
                            "error": str(exc)[:500],
                        },
                    )
                    if attempt == self.retries:
                        span.set_status(Status(StatusCode.ERROR, f"gave up after {attempt + 1}"))
                        raise
                    time.sleep(self.backoff_s * (2**attempt))
            if ctx.put_blob is not None:
                span.set_attribute(
                    Attr.RESPONSE_BLOB,
                    ctx.put_blob(json.dumps(data, sort_keys=True).encode()),
                )
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

    def _tool_calls(
        self, data: dict[str, Any], items: list[dict[str, Any]]
    ) -> list[tuple[str, str]]:
        """Append the model's turn to the conversation; return its shell calls."""
        calls: list[tuple[str, str]] = []
        if self.api == "responses":
            for item in data.get("output") or []:
                items.append(item)
                if item.get("type") == "function_call":
                    calls.append((str(item.get("call_id")), str(item.get("arguments", ""))))
            return calls
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        items.append({k: v for k, v in message.items() if v is not None})
        for tc in message.get("tool_calls") or []:
            fn = tc.get("function") or {}
            calls.append((str(tc.get("id")), str(fn.get("arguments", ""))))
        return calls

    def _tool(self, tracer: Any, session: AgentSession, call_id: str, raw_args: str) -> str:
        with tracer.start_as_current_span(
            Span.tool("shell"),
            attributes={
                Attr.GEN_AI_OPERATION: Span.EXECUTE_TOOL,
                Attr.GEN_AI_TOOL_NAME: "shell",
                Attr.GEN_AI_TOOL_CALL_ID: call_id,
                Attr.GEN_AI_TOOL_CALL_ARGUMENTS: raw_args,
            },
        ) as span:
            try:
                args = json.loads(raw_args)
                commands = args["commands"]
                if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
                    raise ValueError("commands must be a list of strings")
            except (ValueError, KeyError, TypeError) as exc:
                span.set_status(Status(StatusCode.ERROR, "malformed arguments"))
                span.set_attribute(Attr.TOOL_ERROR, str(exc))
                return json.dumps(
                    {
                        "error": f"invalid arguments for shell: {exc}. Expected "
                        'JSON like {"commands": ["ls -la"]}.'
                    }
                )
            timeout = args.get("timeout_ms")
            limit = int(args.get("max_output_length") or self.max_output_length)
            results = []
            for command in commands:
                r = session.run(command, timeout=timeout / 1000 if timeout else None)
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
