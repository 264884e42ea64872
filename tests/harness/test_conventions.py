"""What an OpenTelemetry backend receives of a run, checked against the semantic conventions.

A run of the openai agent goes to a local OTLP collector (``--otlp-endpoint`` given after the
subcommand, as users type it). Every GenAI span must carry what the conventions require for
its operation, no attribute the conventions have replaced or removed may appear, and the
opt-in message attributes must have the conventions' JSON shapes, so a backend renders the
conversation. The run, its trials and their links must arrive whole.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from opentelemetry import semconv
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from harness.agents._conversation import SYSTEM
from tests.conftest import otlp_spans
from tests.harness.openai_api import Model, message, response, shell_call
from tests.harness.test_openai_agent import STEPS, run_openai, six_turns
from traces import TraceStore
from traces._content import CONTENT, MESSAGES
from traces.vocab import Attr, Span

# -- the conventions, read from the semantic-conventions package ----------------------------


def deprecated_keys() -> dict[str, str]:
    """Every attribute key the semantic-conventions package marks as replaced or removed (not
    those merely moved to the GenAI repository or promoted to stable under the same name),
    with the reason."""
    found = {}
    root = Path(semconv.__path__[0])
    for path in [*root.glob("attributes/*.py"), *root.glob("_incubating/attributes/*.py")]:
        body = ast.parse(path.read_text()).body
        for node, after in zip(body, body[1:], strict=False):
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Constant)):
                continue
            doc = after.value.value if isinstance(after, ast.Expr) else ""
            if not isinstance(doc, str):
                continue
            line = next((x.strip() for x in doc.splitlines() if "Deprecated" in x), "")
            if line.startswith(("Deprecated: Replaced", "Deprecated: Removed", "Deprecated: Use")):
                found[str(node.value.value)] = line
    return found


# Deprecated names kept on purpose (for users' queries), each documented in the README: none.
KEPT_DEPRECATED: set[str] = set()

# What the GenAI conventions require of each operation's span (required, and conditionally
# required when the value is known, as it always is here), plus what we promise beyond.
REQUIRED = {
    Span.TRIAL: {Attr.GEN_AI_OPERATION, Attr.GEN_AI_PROVIDER_NAME, Attr.GEN_AI_AGENT_NAME},
    Span.CHAT: {
        Attr.GEN_AI_OPERATION,
        Attr.GEN_AI_PROVIDER_NAME,
        Attr.GEN_AI_REQUEST_MODEL,
        Attr.SERVER_ADDRESS,
        Attr.SERVER_PORT,
        Attr.GEN_AI_RESPONSE_ID,
        Attr.GEN_AI_RESPONSE_MODEL,
        Attr.GEN_AI_FINISH_REASONS,
        Attr.GEN_AI_INPUT_TOKENS,
        Attr.GEN_AI_OUTPUT_TOKENS,
    },
    Span.EXECUTE_TOOL: {
        Attr.GEN_AI_OPERATION,
        Attr.GEN_AI_TOOL_NAME,
        Attr.GEN_AI_TOOL_CALL_ID,
        Attr.GEN_AI_TOOL_TYPE,
    },
}


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextPart(_Shape):
    type: Literal["text"]
    content: str


class ToolCallRequestPart(_Shape):
    type: Literal["tool_call"]
    id: str | None = None
    name: str
    arguments: Any = None


class ToolCallResponsePart(_Shape):
    type: Literal["tool_call_response"]
    id: str | None = None
    response: Any


class ReasoningPart(_Shape):
    type: Literal["reasoning"]
    content: str


Part = Annotated[
    TextPart | ToolCallRequestPart | ToolCallResponsePart | ReasoningPart,
    Field(discriminator="type"),
]


class ChatMessage(_Shape):
    role: Literal["system", "user", "assistant", "tool"]
    parts: list[Part]
    name: str | None = None


class OutputMessage(ChatMessage):
    finish_reason: str


class ToolDefinition(_Shape):
    type: str
    name: str


INPUT = TypeAdapter(list[ChatMessage])
OUTPUT = TypeAdapter(list[OutputMessage])
INSTRUCTIONS = TypeAdapter(list[Part])
TOOLS = TypeAdapter(list[ToolDefinition])


# -- reading what the collector got -----------------------------------------------------------


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind)


def attrs(span: Any) -> dict[str, Any]:
    return {a.key: _value(a.value) for a in span.attributes}


def operation(span: Any) -> str | None:
    op = attrs(span).get(Attr.GEN_AI_OPERATION)
    return str(op) if op is not None else None


@pytest.fixture
def run(
    base_image: str, tmp_path: Path, serve: Any, api_key: str, collector: Any
) -> tuple[list[Any], Path]:
    """A six-turn openai trial sent to a collector; (the spans it received, the store)."""
    endpoint, received = collector
    db = tmp_path / "t.duckdb"
    res = run_openai(serve(Model(six_turns(native=True))), db, "--otlp-endpoint", endpoint)
    assert res.returncode == 0, res.stderr
    return otlp_spans(received), db


def test_genai_spans_carry_what_the_conventions_require(run: tuple[list[Any], Path]) -> None:
    spans, _ = run
    by_op: dict[str, list[Any]] = {}
    for s in spans:
        if operation(s) is not None:
            by_op.setdefault(str(operation(s)), []).append(s)
    assert {k: len(v) for k, v in by_op.items()} == {
        Span.TRIAL: 1,
        Span.CHAT: 6,
        Span.EXECUTE_TOOL: 5,
    }
    for op, group in by_op.items():
        for s in group:
            missing = REQUIRED[op] - set(attrs(s))
            assert not missing, f"{s.name} lacks {sorted(missing)}"
    root = by_op[Span.TRIAL][0]
    assert attrs(root)[Attr.GEN_AI_PROVIDER_NAME] == "openai"
    chat = attrs(by_op[Span.CHAT][0])
    assert (chat[Attr.GEN_AI_PROVIDER_NAME], chat[Attr.OPENAI_API_TYPE]) == ("openai", "responses")
    assert (chat[Attr.SERVER_ADDRESS], chat[Attr.GEN_AI_REASONING_TOKENS]) == ("127.0.0.1", 30)
    assert [attrs(s)[Attr.GEN_AI_FINISH_REASONS] for s in by_op[Span.CHAT]] == [
        ["tool_calls"]
    ] * 5 + [["stop"]]
    kinds = {s.kind for s in by_op[Span.CHAT]}
    assert kinds == {3}  # SPAN_KIND_CLIENT: the model is a remote service


def test_no_replaced_or_removed_name_is_emitted(run: tuple[list[Any], Path]) -> None:
    spans, _ = run
    deprecated = deprecated_keys()
    assert "gen_ai.system" in deprecated  # the check reads the package, and knows this one
    emitted = {k for s in spans for k in attrs(s)} | {
        a.key for s in spans for e in s.events for a in e.attributes
    }
    assert not (emitted & set(deprecated)) - KEPT_DEPRECATED, {
        k: deprecated[k] for k in emitted & set(deprecated)
    }


def test_message_attributes_have_the_conventions_shapes(run: tuple[list[Any], Path]) -> None:
    spans, db = run
    chats = [attrs(s) for s in spans if operation(s) == Span.CHAT]
    for a in chats:
        INPUT.validate_json(a[Attr.GEN_AI_INPUT_MESSAGES])
        OUTPUT.validate_json(a[Attr.GEN_AI_OUTPUT_MESSAGES])
        INSTRUCTIONS.validate_json(a[Attr.GEN_AI_SYSTEM_INSTRUCTIONS])
        TOOLS.validate_json(a[Attr.GEN_AI_TOOL_DEFINITIONS])
    first = json.loads(chats[0][Attr.GEN_AI_INPUT_MESSAGES])
    assert first[0]["role"] == "user" and "test_stats" in first[0]["parts"][0]["content"]
    assert json.loads(chats[0][Attr.GEN_AI_SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": SYSTEM}
    ]
    assert json.loads(chats[0][Attr.GEN_AI_TOOL_DEFINITIONS]) == [
        {"type": "shell", "name": "shell"}
    ]
    # A turn's reasoning and shell call, and the next turn's answer to it.
    out = json.loads(chats[0][Attr.GEN_AI_OUTPUT_MESSAGES])
    assert out[0]["finish_reason"] == "tool_calls"
    call = next(p for p in out[0]["parts"] if p["type"] == "tool_call")
    assert (call["id"], call["name"], call["arguments"]["commands"]) == (
        "call_1",
        "shell",
        STEPS[0],
    )
    sent = json.loads(chats[1][Attr.GEN_AI_INPUT_MESSAGES])
    answer = next(p for m in sent for p in m["parts"] if p["type"] == "tool_call_response")
    assert answer["id"] == "call_1" and "def median" in answer["response"][0]["stdout"]
    last = json.loads(chats[-1][Attr.GEN_AI_OUTPUT_MESSAGES])
    assert last[0]["parts"][-1] == {"type": "text", "content": "Done."}
    # The store keeps the request and response blobs instead: no copy of the messages.
    store = TraceStore(db)
    keys = set(store.sql("SELECT unnest(json_keys(attributes)) AS k FROM spans").k)
    assert not keys & MESSAGES
    assert (
        len(store.sql("SELECT request_sha256 FROM llm_calls WHERE request_sha256 IS NOT NULL")) == 6
    )


def test_the_run_arrives_whole_with_its_trials_linked(run: tuple[list[Any], Path]) -> None:
    spans, db = run
    store = TraceStore(db)
    assert len(spans) == store.sql("SELECT count(*) AS n FROM spans").n[0]
    assert (
        sum(len(s.links) for s in spans) == store.sql("SELECT count(*) AS n FROM span_links").n[0]
    )
    run_span = next(s for s in spans if s.name == Span.RUN)
    root = next(s for s in spans if operation(s) == Span.TRIAL)
    run_id = attrs(run_span)[Attr.RUN_ID]
    assert attrs(run_span)[Attr.SESSION_ID] == attrs(root)[Attr.SESSION_ID] == run_id
    assert [(link.trace_id, link.span_id) for link in root.links] == [
        (run_span.trace_id, run_span.span_id)
    ]
    # Commands are named by what ran; the commands view is still the query surface.
    execs = [s for s in spans if s.name.startswith(Span.EXEC)]
    names = {s.name for s in execs}
    assert {f"{Span.EXEC} cat", f"{Span.EXEC} python3"} <= names, names
    assert len(store.sql("SELECT * FROM commands")) == len(execs)


def test_content_can_be_kept_from_the_collector(
    base_image: str, tmp_path: Path, serve: Any, api_key: str, collector: Any
) -> None:
    endpoint, received = collector
    model = Model([(200, response(1, shell_call(1, ["id"]))), (200, response(2, message(2)))])
    db = tmp_path / "t.duckdb"
    res = run_openai(serve(model), db, "--no-otlp-content", "--otlp-endpoint", endpoint)
    assert res.returncode == 0, res.stderr
    spans = otlp_spans(received)
    assert sum(operation(s) == Span.CHAT for s in spans) == 2
    assert not {k for s in spans for k in attrs(s)} & CONTENT
    # The store still has the tool call's arguments and result.
    tools = TraceStore(db).sql("SELECT arguments, result FROM tool_calls")
    assert json.loads(tools.arguments[0])["commands"] == ["id"]
    assert "uid=" in tools.result[0]
