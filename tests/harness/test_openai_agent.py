"""The openai agent against a strict stand-in for the OpenAI API (``openai_api``: a real HTTP
server on 127.0.0.1 with scripted replies that enforces the API's rules), through the real
``openai`` client: the native shell tool and the function tool, stateless and stateful
reasoning state, Chat Completions, retries, deadlines and unreadable answers."""

from __future__ import annotations

import email.utils
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import traces
from harness import Task, load_agent, load_task, run_trial, task_image
from harness.agents._openai import retry_after
from reports._cost import cost_usd
from sandbox import DEFAULT_IMAGE
from tests.conftest import harness_cli
from tests.harness.openai_api import (
    Model,
    Reply,
    function_call,
    message,
    reasoning,
    response,
    shell_call,
    usage,
)
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


def call(
    i: int, args: str | dict[str, Any], name: str = "shell", *more: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """A Responses API answer with one function call (and any ``more``)."""
    return 200, response(i, function_call(i, args, name), *more, use=usage(100, 20, cached=10))


def final(i: int) -> tuple[int, dict[str, Any]]:
    return 200, response(i, message(i), use=usage(100, 5))


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
    agent = load_agent(
        "openai",
        {"model": "test-model", "base_url": url, "backoff_s": 0.05, "shell_tool": "function"},
    )
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


# -- six turns in each mode: native or function tool, stateless or stateful ----------------

STEPS = [
    ["cat /app/stats.py"],
    ["cd /app && ls", "export NOTE=checked"],
    ["python3 -m unittest test_stats"],  # in /app (cwd persists), and it fails
    [f"cat > /app/stats.py <<'EOF'\n{FIXED}EOF"],
    ["python3 -m unittest test_stats", "echo $NOTE"],
]
TURN_USAGE = usage(200, 50, cached=100, reasoning=30)


def six_turns(native: bool) -> list[Reply | tuple[int, dict[str, Any]]]:
    """Five turns of reasoning and a shell call (native or function), then a final answer."""
    turns: list[Reply | tuple[int, dict[str, Any]]] = []
    for i, commands in enumerate(STEPS, 1):
        limit = 4000 if i == 2 else None
        tool = (
            shell_call(i, commands, max_output_length=limit)
            if native
            else function_call(i, {"commands": commands, "max_output_length": limit or 16000})
        )
        turns.append((200, response(i, reasoning(i, f"plan {i}"), tool, use=TURN_USAGE)))
    turns.append((200, response(6, reasoning(6, "plan 6"), message(6), use=TURN_USAGE)))
    return turns


def _present(value: Any) -> Any:
    """A cell's value, None for SQL NULL (which pandas may show as NaN)."""
    return None if value is None or value != value else value


def _answers(body: dict[str, Any]) -> dict[str, Any]:
    """A request's answers to tool calls, by call id (parsed)."""
    found = {}
    for item in body["input"]:
        if item.get("type") == "shell_call_output":
            found[item["call_id"]] = item
        elif item.get("type") == "function_call_output":
            found[item["call_id"]] = {**item, "output": json.loads(item["output"])["output"]}
    return found


@pytest.mark.parametrize(
    ("shell_tool", "store"),
    [("native", False), ("native", True), ("function", False), ("function", True)],
)
def test_six_turns_pass_a_task_in_each_mode(
    base_image: str, tmp_path: Path, serve: Any, api_key: str, shell_tool: str, store: bool
) -> None:
    native = shell_tool == "native"
    model = Model(six_turns(native))
    url = serve(model)
    task, _ = load_task(TASKS / "fix-python-bug")
    assert task is not None
    options = {"model": "test-model", "base_url": url, "shell_tool": shell_tool, "store": store}
    if store:
        options["reasoning_summary"] = "auto"
    db = tmp_path / "t.duckdb"
    with traces.Recorder(traces.TraceStore(db)) as rec:
        result = run_trial(task, load_agent("openai", options), task_image(task), rec, "run-6")
    assert result.outcome == "passed", result.error
    assert model.errors == [] and model.replies == [] and len(model.requests) == 6
    bodies = [body for _, _, body in model.requests]

    # The shell was offered as asked, and every turn kept the reasoning state as the API wants.
    tool_types = {t["type"] for b in bodies for t in b["tools"]}
    assert tool_types == ({"shell"} if native else {"function"})
    for n, body in enumerate(bodies, 1):
        assert body["store"] is store
        if store:
            assert body.get("previous_response_id") == (f"resp_{n - 1}" if n > 1 else None)
            assert "include" not in body
            # Only what is new: the instruction first, then the answer to the last call.
            assert len(body["input"]) == 1
        else:
            assert body["include"] == ["reasoning.encrypted_content"]
            assert "previous_response_id" not in body
            sent = [i for i in body["input"] if i.get("type") == "reasoning"]
            assert [r["id"] for r in sent] == [f"rs_{k}" for k in range(1, n)]
            assert all(r["encrypted_content"] == model.encrypted[r["id"]] for r in sent)

    # Each call was answered in its own shape, with each command's outcome.
    answers: dict[str, Any] = {}
    for body in bodies:
        answers.update(_answers(body))
    assert sorted(answers) == [f"call_{i}" for i in range(1, 6)]
    kind = "shell_call_output" if native else "function_call_output"
    assert {a["type"] for a in answers.values()} == {kind}
    assert [len(answers[f"call_{i}"]["output"]) for i in range(1, 6)] == [1, 2, 1, 1, 2]
    assert "def median" in answers["call_1"]["output"][0]["stdout"]
    failing = answers["call_3"]["output"][0]
    assert failing["outcome"]["type"] == "exit" and failing["outcome"]["exit_code"] != 0
    fixed, note = answers["call_5"]["output"]
    assert fixed["outcome"] == {"type": "exit", "exit_code": 0}
    assert note["stdout"] == "checked\n"  # the shell kept its state between calls
    if native:
        assert [answers[f"call_{i}"]["max_output_length"] for i in (1, 2)] == [16000, 4000]

    # The record: every call and its chain, tokens, and the tool calls with their results.
    store_ = traces.TraceStore(db)
    llm = store_.sql("SELECT * FROM llm_calls ORDER BY started_at")
    assert list(llm.response_id) == [f"resp_{i}" for i in range(1, 7)]
    assert list(llm.reasoning_tokens) == [30] * 6 and list(llm.cached_tokens) == [100] * 6
    chain = [_present(p) for p in llm.previous_response_id]
    assert chain == ([None] + [f"resp_{i}" for i in range(1, 6)] if store else [None] * 6)
    finish = [json.loads(f) for f in llm.finish_reasons]
    assert finish == [["tool_calls"]] * 5 + [["stop"]]
    summaries = store_.sql(
        f"SELECT {_attr(Attr.REASONING_SUMMARY)} AS s FROM spans "
        f"WHERE name LIKE '{Span.CHAT}%' ORDER BY start_ns"
    ).s
    assert [_present(x) for x in summaries] == (
        [f"plan {i}" for i in range(1, 7)] if store else [None] * 6
    )
    tools = store_.sql(
        "SELECT call_id, tool_name, arguments, result FROM tool_calls ORDER BY started_at"
    )
    assert list(tools.call_id) == [f"call_{i}" for i in range(1, 6)]
    assert set(tools.tool_name) == {"shell"}
    assert json.loads(tools.arguments[3])["commands"] == STEPS[3]
    recorded = json.loads(tools.result[4])
    outcomes = [o["outcome"] for o in (recorded if native else recorded["output"])]
    assert outcomes == [{"type": "exit", "exit_code": 0}] * 2
    trial = store_.trials()[0]
    assert (trial.input_tokens, trial.cached_tokens) == (1200, 600)
    assert (trial.output_tokens, trial.reasoning_tokens) == (300, 180)


def run_openai(url: str, db: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``harness run`` of the openai agent on fix-python-bug; ``options`` come last (and
    win: a later ``--model`` replaces test-model)."""
    return harness_cli(
        "run",
        str(TASKS),
        "--task-filter",
        "fix-python-bug",
        "--agent",
        "openai",
        "--model",
        "test-model",
        "--base-url",
        url,
        "--db",
        str(db),
        *options,
    )


def test_store_on_an_endpoint_that_keeps_nothing_names_the_fix(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    model = Model([(200, response(1, shell_call(1, ["true"]))), final(2)], stores=False)
    result, _ = _trial(tmp_path, serve(model), 60, store=True)
    assert result.outcome == "infra_error"
    assert "has not kept the previous response" in result.error
    assert "run without --store" in result.error
    assert [e.code for e in model.errors] == ["previous_response_not_found"]


def test_the_run_summary_shows_tokens_and_cost(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    model = Model(six_turns(native=True))
    db = tmp_path / "t.duckdb"
    res = run_openai(serve(model), db, "--model", "gpt-5-mini", "--store")
    assert res.returncode == 0, res.stderr
    assert model.errors == [] and all(b["store"] for _, _, b in model.requests)
    usd = cost_usd("gpt-5-mini", 1200, 300, cached_tokens=600)
    assert usd is not None
    line = next(x for x in res.stdout.splitlines() if x.startswith("tokens "))
    assert line == f"tokens 1,200 (600)/300 (180), cost ${usd:.4f}"


def test_an_endpoint_without_the_native_shell_tool_names_the_fix(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    model = Model([final(1)], native_shell=False)
    result, store = _trial(tmp_path, serve(model), 60)
    assert result.outcome == "infra_error"
    assert "native shell tool" in result.error and "--shell-tool function" in result.error
    assert [e.param for e in model.errors] == ["tools[0].type"]
    # The error shows as an error in any trace list: status and error.type, root and call.
    failed = store.sql(
        f"SELECT name, status_code, {_attr(Attr.ERROR_TYPE)} AS error_type FROM spans "
        f"WHERE name LIKE '{Span.TRIAL}%' OR name LIKE '{Span.CHAT}%' ORDER BY start_ns"
    )
    assert list(failed.status_code) == ["ERROR", "ERROR"]
    assert list(failed.error_type) == ["infra_error", "BadRequestError"]
    # The same endpoint serves the function tool.
    model = Model([final(1)], native_shell=False)
    result, _ = _trial(tmp_path / "again", serve(model), 60, shell_tool="function")
    assert result.outcome == "failed" and model.errors == [], result.error


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
    assert summary["cost_usd"] is None  # no list price for this model: none is guessed
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
    result, store = _trial(tmp_path, url, 120, backoff_s=0.05, max_steps=4, shell_tool="function")
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
    result, store = _trial(tmp_path, serve(model), 3, shell_tool="function")
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
