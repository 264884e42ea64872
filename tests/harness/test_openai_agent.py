"""The openai agent against a real HTTP server on 127.0.0.1 speaking the Responses and Chat
Completions APIs with scripted replies, through the real ``openai`` client."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import traces
from harness import load_agent, load_task, run_trial, task_image
from tests.conftest import harness_cli

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "tasks"
FIXED = """def median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2
"""


class Model:
    """Scripted replies, served in order; every request is kept for assertions."""

    def __init__(self, replies: list[tuple[int, dict[str, Any]]]) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []


def _server(model: Model) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            headers = {k.lower(): v for k, v in self.headers.items()}
            model.requests.append((self.path, headers, body))
            status, reply = model.replies.pop(0)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(model: Model) -> str:
        srv = _server(model)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/v1"

    yield start
    for srv in servers:
        srv.shutdown()


def call(i: int, args: str | dict[str, Any]) -> tuple[int, dict[str, Any]]:
    arguments = args if isinstance(args, str) else json.dumps(args)
    return 200, {
        "id": f"resp_{i}",
        "object": "response",
        "model": "test-model",
        "status": "completed",
        "output": [
            {
                "type": "function_call",
                "id": f"fc_{i}",
                "call_id": f"call_{i}",
                "name": "shell",
                "arguments": arguments,
                "status": "completed",
            }
        ],
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
                                        "id": "call_a",
                                        "type": "function",
                                        "function": {
                                            "name": "shell",
                                            "arguments": json.dumps({"commands": [command]}),
                                        },
                                    }
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
    config = (
        traces.TraceStore(db)
        .sql("SELECT attributes FROM spans WHERE name = 'harness.run'")
        .attributes[0]
    )
    assert api_key not in config and "test-chat" in config
