"""The openai agent against a real HTTP server on 127.0.0.1 speaking the Responses and Chat
Completions APIs with scripted replies, through the real ``openai`` client. The server keeps
the APIs' documented rules: a bearer key, every function call answered by its output (and no
output without its call), and ``Retry-After`` on its rate limits."""

from __future__ import annotations

import email.utils
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import traces
from harness import Task, load_agent, load_task, run_trial, task_image
from harness.agents._openai import retry_after
from sandbox import DEFAULT_IMAGE
from tests.conftest import harness_cli
from traces.vocab import Attr, Span

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "tasks"
FIXED = """def median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2
"""


@dataclass
class Reply:
    """One scripted answer: a status, a JSON body (or raw bytes), headers (a callable is
    evaluated when the answer is sent), or no answer at all (``hang``)."""

    status: int = 200
    body: dict[str, Any] | bytes = field(default_factory=dict)
    headers: dict[str, str | Callable[[], str]] = field(default_factory=dict)
    hang: bool = False


class Model:
    """Scripted replies, served in order; every request is kept for assertions, with the
    time it arrived."""

    def __init__(self, replies: list[Reply | tuple[int, dict[str, Any]]]) -> None:
        self.replies = [r if isinstance(r, Reply) else Reply(*r) for r in replies]
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.times: list[float] = []
        self.release = threading.Event()  # ends any hanging answer


def _api_error(path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, str]:
    """The API's own refusal of a request that breaks its documented rules, or (0, '')."""
    if not headers.get("authorization", "").startswith("Bearer "):
        return 401, "You didn't provide an API key."
    if path.endswith("/responses"):
        calls = set()
        for item in body.get("input") or []:
            if item.get("type") == "function_call":
                calls.add(item["call_id"])
            elif item.get("type") == "function_call_output":
                if item["call_id"] not in calls:
                    return 400, (
                        "No tool call found for function call output with call_id "
                        f"{item['call_id']}."
                    )
                calls.discard(item["call_id"])
        if calls:
            return 400, f"No tool output found for function call {sorted(calls)[0]}."
    elif path.endswith("/chat/completions"):
        pending: set[str] = set()
        for msg in body.get("messages") or []:
            if msg.get("role") == "tool":
                if msg.get("tool_call_id") not in pending:
                    return 400, (
                        "Invalid parameter: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'."
                    )
                pending.discard(msg["tool_call_id"])
            elif pending:
                break
            if msg.get("role") == "assistant" and msg.get("tool_calls"):
                pending = {tc["id"] for tc in msg["tool_calls"]}
        if pending:
            return 400, (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(sorted(pending))}"
            )
    return 0, ""


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
            model.times.append(time.monotonic())
            model.requests.append((self.path, headers, body))
            status, message = _api_error(self.path, headers, body)
            if status:
                error = {"error": {"message": message, "type": "invalid_request_error"}}
                self._send(status, json.dumps(error).encode(), {"Content-Type": "application/json"})
                return
            if not model.replies:
                self._send(500, b'{"error": {"message": "no scripted reply left"}}', {})
                return
            reply = model.replies.pop(0)
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


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[tuple[ThreadingHTTPServer, Model]] = []

    def start(model: Model) -> str:
        srv = _server(model)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append((srv, model))
        return f"http://127.0.0.1:{srv.server_address[1]}/v1"

    yield start
    for srv, model in servers:
        model.release.set()
        srv.shutdown()


def function_call(i: int, args: str | dict[str, Any], name: str = "shell") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{i}",
        "call_id": f"call_{i}",
        "name": name,
        "arguments": args if isinstance(args, str) else json.dumps(args),
        "status": "completed",
    }


def call(
    i: int, args: str | dict[str, Any], name: str = "shell", *more: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """A Responses API answer with one function call (and any ``more``)."""
    return 200, {
        "id": f"resp_{i}",
        "object": "response",
        "model": "test-model",
        "status": "completed",
        "output": [function_call(i, args, name), *more],
        "usage": {
            "input_tokens": 100,
            "output_tokens": 20,
            "total_tokens": 120,
            "input_tokens_details": {"cached_tokens": 10},
        },
    }


def final(i: int) -> tuple[int, dict[str, Any]]:
    return 200, {
        "id": f"resp_{i}",
        "object": "response",
        "model": "test-model",
        "status": "completed",
        "output": [
            {
                "type": "message",
                "id": f"msg_{i}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Done.", "annotations": []}],
            }
        ],
        "usage": {"input_tokens": 100, "output_tokens": 5, "total_tokens": 105},
    }


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = "sk-test-" + secrets.token_hex(16)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    return key


def test_responses_agent_solves_a_task_with_retries_and_a_malformed_call(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    model = Model(
        [
            call(1, {"commands": ["cat /app/stats.py", "env"]}),
            call(2, "{not json"),
            (429, {"error": {"message": "slow down", "type": "rate_limit"}}),
            call(
                3,
                {
                    "commands": [
                        f"cat > /app/stats.py <<'EOF'\n{FIXED}EOF",
                        "cd /app && python3 -m unittest test_stats",
                    ]
                },
            ),
            final(4),
        ]
    )
    url = serve(model)
    task, _ = load_task(TASKS / "fix-python-bug")
    assert task is not None
    agent = load_agent("openai", {"model": "test-model", "base_url": url, "backoff_s": 0.05})
    store = traces.TraceStore(tmp_path / "t.duckdb")
    with traces.Recorder(store) as rec:
        result = run_trial(task, agent, task_image(task), rec, "run-openai")
    assert result.outcome == "passed", result.error
    assert model.replies == []
    # The malformed call was answered with an error the model can act on, not a crash.
    third = model.requests[2][2]["input"]
    err = next(
        i for i in third if i.get("type") == "function_call_output" and i["call_id"] == "call_2"
    )
    assert "invalid arguments" in err["output"]
    # The first tool result carries the file and the hosted-shell result shape.
    first = json.loads(
        next(
            i
            for i in model.requests[1][2]["input"]
            if i.get("call_id") == "call_1" and i["type"] == "function_call_output"
        )["output"]
    )
    assert "def median" in first["output"][0]["stdout"]
    assert first["output"][0]["outcome"] == {"type": "exit", "exit_code": 0}
    assert all(h.get("authorization") == f"Bearer {api_key}" for _, h, _ in model.requests)

    llm = store.sql("SELECT * FROM llm_calls ORDER BY started_at")
    assert len(llm) == 4 and set(llm.model) == {"test-model"}
    assert list(llm.input_tokens) == [100, 100, 100, 100] and llm.cached_tokens[0] == 10
    assert json.loads(store.blob_text(llm.request_sha256[0]))["input"][0]["content"].startswith(
        "The tests in /app/test_stats.py fail"
    )
    assert json.loads(store.blob_text(llm.response_sha256[0]))["id"] == "resp_1"
    retries = store.sql("SELECT count(*) AS n FROM span_events WHERE name = 'retry'").n[0]
    assert retries == 1
    tools = store.sql("SELECT call_id, status_code FROM tool_calls ORDER BY started_at")
    assert list(tools.call_id) == ["call_1", "call_2", "call_3"]
    assert list(tools.status_code) == ["UNSET", "ERROR", "UNSET"]
    trial = store.sql("SELECT * FROM trials").iloc[0]
    assert (trial.model, trial.input_tokens, trial.output_tokens) == ("test-model", 400, 65)
    # The exec spans of the tool calls hang under them.
    nested = store.sql(
        "SELECT count(*) AS n FROM commands c JOIN tool_calls t ON c.parent_span_id = t.span_id"
    ).n[0]
    assert nested == 4
    assert _agent_attrs(store)[Attr.AGENT_STOP_REASON] == "done"

    # The key never reached the container (`env` printed its environment) or the record.
    env_out = store.sql("SELECT stdout_sha256 FROM commands WHERE command = 'env'")
    assert api_key not in store.blob_text(env_out.stdout_sha256[0])
    with store.session() as con:
        for enc, data in con.execute("SELECT encoding, data FROM blobs").fetchall():
            assert api_key.encode() not in traces._store.decode_blob(enc, data)
        attrs = con.execute("SELECT string_agg(attributes::VARCHAR, '') FROM spans").fetchall()
        assert api_key not in attrs[0][0]


def test_chat_completions_agent_through_the_cli(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    solve = (TASKS / "word-frequency" / "solution" / "solve.sh").read_text()
    command = solve.split("\n", 1)[1]
    model = Model(
        [
            (
                200,
                {
                    "id": "chat-1",
                    "object": "chat.completion",
                    "model": "test-chat",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "tool_calls",
                            "message": {
                                "role": "assistant",
                                "content": None,
                                "tool_calls": [
                                    {
                                        "id": "call_x",
                                        "type": "function",
                                        "function": {"name": "browser", "arguments": "{}"},
                                    },
                                    {
                                        "id": "call_a",
                                        "type": "function",
                                        "function": {
                                            "name": "shell",
                                            "arguments": json.dumps({"commands": [command]}),
                                        },
                                    },
                                ],
                            },
                        }
                    ],
                    "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
                },
            ),
            (
                200,
                {
                    "id": "chat-2",
                    "object": "chat.completion",
                    "model": "test-chat",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "Done."},
                        }
                    ],
                    "usage": {"prompt_tokens": 70, "completion_tokens": 3, "total_tokens": 73},
                },
            ),
        ]
    )
    url = serve(model)
    db = tmp_path / "t.duckdb"
    res = harness_cli(
        "run",
        str(TASKS),
        "--task-filter",
        "word-frequency",
        "--agent",
        "openai",
        "--api",
        "chat",
        "--model",
        "test-chat",
        "--base-url",
        url,
        "--db",
        str(db),
        "--json",
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["passed"] == 1 and summary["tasks"][0]["input_tokens"] == 120
    assert [p for p, _, _ in model.requests] == ["/v1/chat/completions"] * 2
    second = model.requests[1][2]["messages"]
    assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == "call_a"
    # The unknown tool was not run: its answer names the tools the model has.
    unknown = next(m for m in second if m.get("tool_call_id") == "call_x")
    assert "unknown tool 'browser'" in unknown["content"] and "shell" in unknown["content"]
    config = (
        traces.TraceStore(db)
        .sql("SELECT attributes FROM spans WHERE name = 'harness.run'")
        .attributes[0]
    )
    assert api_key not in config and "test-chat" in config


# -- time, retries, unreadable answers and tool-call errors --------------------------------


def _agent_attrs(store: traces.TraceStore) -> dict[str, Any]:
    rows = store.sql(f"SELECT attributes FROM spans WHERE name = '{Span.AGENT}'")
    assert len(rows) == 1
    attrs: dict[str, Any] = json.loads(rows.attributes[0])
    return attrs


def _attr(key: str) -> str:
    """SQL for one attribute of a span row."""
    return f"json_extract_string(attributes, '$.\"{key}\"')"


def _agent_commands(store: traces.TraceStore) -> list[str]:
    """The commands the agent's tool calls ran."""
    return list(
        store.sql(
            "SELECT c.command FROM commands c JOIN tool_calls t ON c.parent_span_id = t.span_id "
            "ORDER BY c.started_at"
        ).command
    )


def _agent_seconds(store: traces.TraceStore) -> float:
    return (
        float(store.sql(f"SELECT duration_ns FROM spans WHERE name = '{Span.AGENT}'").iloc[0, 0])
        / 1e9
    )


def _task(tmp_path: Path, agent_seconds: float) -> Task:
    """A task in the base image whose agent has ``agent_seconds``; its tests always fail."""
    d = tmp_path / "short"
    (d / "tests").mkdir(parents=True)
    (d / "task.toml").write_text(
        f"[agent]\ntimeout_sec = {agent_seconds}\n[verifier]\ntimeout_sec = 60\n"
        f'[environment]\ndocker_image = "{DEFAULT_IMAGE}"\nallow_internet = false\n'
    )
    (d / "instruction.md").write_text("Write /app/done.\n")
    (d / "tests" / "test.sh").write_text("echo 0 > /logs/verifier/reward.txt\n")
    task, problems = load_task(d)
    assert task is not None, problems
    return task


def _trial(
    tmp_path: Path, url: str, agent_seconds: float, **options: Any
) -> tuple[Any, traces.TraceStore]:
    task = _task(tmp_path, agent_seconds)
    agent = load_agent("openai", {"model": "test-model", "base_url": url, **options})
    store = traces.TraceStore(tmp_path / "t.duckdb")
    with traces.Recorder(store) as rec:
        result = run_trial(task, agent, task_image(task), rec, "run-openai")
    return result, store


def test_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({"retry-after": "1.5"}) == 1.5
    assert retry_after({"retry-after-ms": "250", "Retry-After": "7"}) == 0.25
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after({"Retry-After": date}, now=now) == 30.0
    assert retry_after({"Retry-After": email.utils.formatdate(now - 30, usegmt=True)}, now) == 0
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None


def test_tool_errors_retry_after_and_max_steps(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    def in_two_seconds() -> str:
        return email.utils.formatdate(time.time() + 2, usegmt=True)

    slow = {"error": {"message": "slow down", "type": "rate_limit"}}
    model = Model(
        [
            Reply(429, slow, {"retry-after-ms": "1500"}),
            call(1, {"commands": ["touch /tmp/python-ran"]}, "python"),
            Reply(503, {"error": {"message": "overloaded"}}, {"Retry-After": "2"}),
            call(2, {"commands": ["touch /tmp/soon"], "timeout_ms": "soon"}),
            Reply(429, slow, {"Retry-After": in_two_seconds}),
            call(3, {"commands": ["touch /tmp/lots"], "max_output_length": "lots"}),
            call(4, {"commands": ["ls /tmp"]}),
        ]
    )
    url = serve(model)
    result, store = _trial(tmp_path, url, 120, backoff_s=0.05, max_steps=4)
    assert result.outcome == "failed", result.error  # the agent ran to its end, no crash
    assert model.replies == []
    # Each retry waited as long as the server asked, not the 0.05 s backoff.
    gaps = [b - a for a, b in zip(model.times, model.times[1:], strict=False)]
    assert gaps[0] >= 1.5 and gaps[2] >= 2.0 and gaps[4] >= 1.0, gaps
    events = store.sql("SELECT attributes FROM span_events WHERE name = 'retry' ORDER BY time_ns")
    asked = [json.loads(a) for a in events.attributes]
    assert [e[Attr.RETRY_AFTER] for e in asked][:2] == [1.5, 2.0]
    assert 1.0 <= asked[2][Attr.RETRY_AFTER] <= 2.0
    assert all(e[Attr.RETRY_DELAY] == e[Attr.RETRY_AFTER] for e in asked)

    # Every bad call was answered with an error the model can act on, and nothing ran.
    last = model.requests[-1][2]["input"]
    outputs = {i["call_id"]: i["output"] for i in last if i.get("type") == "function_call_output"}
    assert "unknown tool 'python'" in outputs["call_1"] and "shell" in outputs["call_1"]
    assert "timeout_ms" in outputs["call_2"] and "'soon'" in outputs["call_2"]
    assert "max_output_length" in outputs["call_3"] and "'lots'" in outputs["call_3"]
    assert set(outputs) == {"call_1", "call_2", "call_3"}  # call_4 was the last step's
    tools = store.sql(
        "SELECT call_id, tool_name, status_code, span_id FROM tool_calls ORDER BY started_at"
    )
    assert list(tools.tool_name) == ["python", "shell", "shell", "shell"]
    assert list(tools.status_code) == ["ERROR", "ERROR", "ERROR", "UNSET"]
    names = store.sql("SELECT name FROM spans WHERE name LIKE 'execute_tool%' ORDER BY start_ns")
    assert names.name[0] == Span.tool("python")
    commands = _agent_commands(store)
    assert commands == ["ls /tmp"], commands
    errors = store.sql(
        f"SELECT {_attr(Attr.TOOL_ERROR)} AS e FROM spans "
        f"WHERE name LIKE '{Span.EXECUTE_TOOL}%' ORDER BY start_ns"
    ).e
    assert "unknown tool" in errors[0] and "timeout_ms" in errors[1]
    # It stopped because it used its steps, and the record says so.
    assert _agent_attrs(store)[Attr.AGENT_STOP_REASON] == "max_steps"


def test_hanging_model_server_is_cut_at_the_deadline(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    model = Model([Reply(hang=True)])
    result, store = _trial(tmp_path, serve(model), 3)
    assert result.outcome == "agent_timeout", result.error
    assert len(model.requests) == 1
    assert _agent_seconds(store) < 3 + 2.0
    assert _agent_attrs(store)[Attr.AGENT_STOP_REASON] == "deadline"
    chat = store.sql("SELECT status_code, status_message FROM llm_calls")
    assert list(chat.status_code) == ["ERROR"] and "did not answer" in chat.status_message[0]


def test_retry_after_past_the_deadline_waits_only_until_it(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    limited = {"error": {"message": "try again in an hour", "type": "rate_limit"}}
    model = Model([Reply(429, limited, {"Retry-After": "3600"})])
    result, store = _trial(tmp_path, serve(model), 3)
    assert result.outcome == "agent_timeout", result.error
    assert len(model.requests) == 1  # no model call starts once the time is gone
    assert _agent_seconds(store) < 3 + 2.0
    event = json.loads(
        store.sql("SELECT attributes FROM span_events WHERE name = 'retry'").attributes[0]
    )
    assert event[Attr.RETRY_AFTER] == 3600 and event[Attr.RETRY_DELAY] <= 3
    assert _agent_attrs(store)[Attr.AGENT_STOP_REASON] == "deadline"


def test_tool_calls_after_the_deadline_are_refused(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    # One turn, two calls: the first uses up the agent's time, the second comes too late.
    late = function_call(2, {"commands": ["touch /tmp/late"]})
    model = Model([call(1, {"commands": ["sleep 30"]}, "shell", late)])
    result, store = _trial(tmp_path, serve(model), 3)
    assert result.outcome == "agent_timeout", result.error
    assert len(model.requests) == 1  # the loop ended; no model call after the deadline
    tools = store.sql(
        f"SELECT {_attr(Attr.GEN_AI_TOOL_CALL_ID)} AS call_id, status_code, "
        f"{_attr(Attr.REFUSED_REASON)} AS refused FROM spans "
        f"WHERE name LIKE '{Span.EXECUTE_TOOL}%' ORDER BY start_ns"
    )
    assert list(tools.call_id) == ["call_1", "call_2"]
    assert (tools.status_code[1], tools.refused[1]) == ("ERROR", "deadline")
    commands = _agent_commands(store)
    assert commands == ["sleep 30"]
    assert _agent_attrs(store)[Attr.AGENT_STOP_REASON] == "deadline"


def test_an_answer_that_is_not_json_names_the_url_and_shows_the_body(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    page = b"<html><body>Welcome to nginx!</body></html>"
    model = Model([Reply(200, page, {"Content-Type": "text/html"})])
    url = serve(model)
    result, store = _trial(tmp_path, url, 60)
    assert result.outcome == "infra_error"
    assert f"{url}/responses" in result.error and "Welcome to nginx!" in result.error
    assert "not JSON" in result.error and "--base-url" in result.error
    assert "JSONDecodeError" not in result.error
    assert _agent_attrs(store)[Attr.AGENT_STOP_REASON] == "error"
