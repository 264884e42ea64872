"""The trace store: spans in, every field out, through tables and views."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

import traces
from traces import Recorder, StoreError, TraceStore


def record_trial(rec: Recorder, run_id: str = "run-1", task: str = "task-a") -> dict[str, str]:
    """One trial as later capabilities will record it; returns ids for assertions."""
    tracer = rec.tracer("tests", "1.2.3")
    stdout_ref = rec.put_blob(b"hello\n")
    linked = SpanContext(
        trace_id=0x1234,
        span_id=0x5678,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "value")]),
    )
    with tracer.start_as_current_span(
        "invoke_agent oracle",
        attributes={
            "harness.run.id": run_id,
            "harness.task.id": task,
            "gen_ai.agent.name": "oracle",
            "harness.outcome": "passed",
            "harness.reward": 1.0,
            "harness.trial.index": 0,
        },
    ) as root:
        with tracer.start_as_current_span(
            "chat gpt-test",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.request.model": "gpt-test",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.operation.name": "chat",
                "gen_ai.response.finish_reasons": ["stop"],
            },
        ):
            pass
        with (
            tracer.start_as_current_span(
                "execute_tool shell",
                attributes={
                    "gen_ai.tool.name": "shell",
                    "gen_ai.tool.call.id": "call_1",
                    "gen_ai.tool.call.arguments": '{"commands": ["ls"]}',
                },
            ),
            tracer.start_as_current_span(
                "sandbox.exec",
                links=[Link(linked, {"why": "retry-of", "n": 2})],
                attributes={
                    "process.command_line": "ls -la",
                    "process.exit.code": 2,
                    "process.working_directory": "/root",
                    "harness.timed_out": False,
                    "harness.stdout.sha256": stdout_ref,
                    "harness.stdout.bytes": 6,
                    "process.cpu.time": 0.25,
                    "harness.memory.peak": 1 << 20,
                    "tags": ("a", "b"),
                    "ints": (1, 2, 3),
                    "floats": (1.0, 2.5),
                    "flags": (True, False),
                    "whole_float": 3.0,
                },
            ) as exec_span,
        ):
            exec_span.add_event("stdout", {"bytes": 6, "text": "hi"}, timestamp=123)
            exec_span.set_status(Status(StatusCode.ERROR, "exit code 2"))
        with tracer.start_as_current_span(
            "verify",
            attributes={
                "harness.reward": 0.75,
                "harness.reward.tests": 0.5,
                "harness.reward.style": 1.0,
            },
        ):
            pass
    return {
        "trace_id": format(root.get_span_context().trace_id, "032x"),
        "root": format(root.get_span_context().span_id, "016x"),
        "exec": format(exec_span.get_span_context().span_id, "016x"),
        "stdout": stdout_ref,
    }


@pytest.fixture
def store(tmp_path: Path) -> TraceStore:
    return TraceStore(tmp_path / "traces.duckdb")


def test_every_span_field_round_trips(store: TraceStore) -> None:
    with Recorder(
        store, service_name="svc-test", resource_attributes={"deployment.environment": "ci"}
    ) as rec:
        ids = record_trial(rec)
    spans = store.sql("SELECT * FROM spans ORDER BY start_ns")
    assert len(spans) == 5
    ex = spans[spans.span_id == ids["exec"]].iloc[0]
    assert ex.trace_id == ids["trace_id"] and len(ex.trace_id) == 32
    assert ex.kind == "INTERNAL" and ex.status_code == "ERROR"
    assert ex.status_message == "exit code 2"
    assert ex.scope_name == "tests" and ex.scope_version == "1.2.3"
    assert ex.service_name == "svc-test"
    assert json.loads(ex.resource_attributes)["deployment.environment"] == "ci"
    assert ex.duration_ns == ex.end_ns - ex.start_ns > 0
    assert ex.exit_code == 2  # promoted column
    attrs = json.loads(ex.attributes)
    assert attrs["tags"] == ["a", "b"] and attrs["ints"] == [1, 2, 3]
    assert attrs["floats"] == [1.0, 2.5] and attrs["flags"] == [True, False]
    assert isinstance(attrs["whole_float"], float) and isinstance(attrs["process.exit.code"], int)
    assert attrs["harness.timed_out"] is False
    root = spans[spans.parent_span_id.isna()].iloc[0]
    assert root.span_id == ids["root"] and root.run_id == "run-1" and root.task_id == "task-a"
    chat = spans[spans.name == "chat gpt-test"].iloc[0]
    assert chat.kind == "CLIENT" and chat.model == "gpt-test"
    assert (chat.input_tokens, chat.output_tokens) == (120, 30)
    assert chat.parent_span_id == ids["root"]

    ev = store.sql("SELECT * FROM span_events").iloc[0]
    assert (ev.span_id, ev["name"], ev.time_ns, ev.seq) == (ids["exec"], "stdout", 123, 0)
    assert json.loads(ev.attributes) == {"bytes": 6, "text": "hi"}
    lk = store.sql("SELECT * FROM span_links").iloc[0]
    assert (lk.linked_trace_id, lk.linked_span_id) == (f"{0x1234:032x}", f"{0x5678:016x}")
    assert lk.trace_state == "vendor=value" and json.loads(lk.attributes) == {
        "why": "retry-of",
        "n": 2,
    }


def test_views_answer_from_span_conventions(store: TraceStore) -> None:
    with Recorder(store) as rec:
        ids = record_trial(rec, run_id="run-7", task="task-x")
        record_trial(rec, run_id="run-7", task="task-y")
    trials = store.sql("SELECT * FROM trials ORDER BY task")
    assert list(trials.task) == ["task-x", "task-y"]
    t = trials.iloc[0]
    assert (t.run_id, t.agent, t.outcome, bool(t.passed), t.reward) == (
        "run-7",
        "oracle",
        "passed",
        True,
        1.0,
    )
    assert (t.input_tokens, t.output_tokens, t.steps) == (120, 30, 1)
    assert t.duration_s > 0
    runs = store.sql("SELECT * FROM runs").iloc[0]
    assert (runs.run_id, runs.trials, runs.passed, runs.tasks) == ("run-7", 2, 2, 2)
    cmd = store.sql("SELECT * FROM commands WHERE trial_id = ?", [ids["trace_id"]]).iloc[0]
    assert (cmd.command, cmd.exit_code, cmd.cwd, cmd.task) == ("ls -la", 2, "/root", "task-x")
    assert cmd.stdout_bytes == 6 and cmd.cpu_s == 0.25 and not cmd.timed_out
    assert store.blob_text(cmd.stdout_sha256) == "hello\n"
    llm = store.sql("SELECT * FROM llm_calls").iloc[0]
    assert (llm.model, llm.input_tokens, json.loads(llm.finish_reasons)) == (
        "gpt-test",
        120,
        ["stop"],
    )
    tool = store.sql("SELECT * FROM tool_calls").iloc[0]
    assert (tool.tool_name, tool.call_id) == ("shell", "call_1")
    scores = store.sql("SELECT key, value FROM scores WHERE task = 'task-x' ORDER BY key")
    assert list(zip(scores.key, scores.value, strict=True)) == [
        ("reward", 0.75),
        ("style", 1.0),
        ("tests", 0.5),
    ]
    for view in traces.VIEW_DOCS:
        store.sql(f"SELECT * FROM {view} LIMIT 1")  # every documented view exists


def test_blobs_deduplicate_and_round_trip(store: TraceStore) -> None:
    payloads = [b"same" * 1000, b"same" * 1000, os.urandom(50_000), b"", "é\u2603".encode()]
    with Recorder(store) as rec:
        refs = [rec.put_blob(p) for p in payloads]
        with rec.tracer().start_as_current_span("x", attributes={"harness.run.id": "r"}):
            pass
    assert refs[0] == refs[1] and refs[0].startswith("sha256:")
    assert store.sql("SELECT count(*) AS n FROM blobs").n[0] == 4
    for ref, p in zip(refs, payloads, strict=True):
        assert store.blob(ref) == p
    enc = dict(store.sql("SELECT sha256, encoding FROM blobs").values.tolist())
    assert enc[refs[0].removeprefix("sha256:")] == "zlib"  # compressible
    assert enc[refs[2].removeprefix("sha256:")] == "raw"  # random stays raw
    assert store.blob_text(refs[4]) == "é\u2603"
    assert store.put_blobs([b"same" * 1000]) == [refs[0].removeprefix("sha256:")]
    assert store.sql("SELECT count(*) AS n FROM blobs").n[0] == 4
    with pytest.raises(KeyError):
        store.blob("sha256:" + "0" * 64)


def test_large_attributes_move_to_blobs_untruncated(store: TraceStore) -> None:
    big = "line\n" * 100_000
    with (
        Recorder(store) as rec,
        rec.tracer().start_as_current_span(
            "sandbox.exec", attributes={"harness.run.id": "r", "process.command_line": big}
        ),
    ):
        pass
    attrs = json.loads(store.sql("SELECT attributes FROM spans").attributes[0])
    assert "process.command_line" not in attrs
    assert attrs["process.command_line.bytes"] == len(big)
    assert store.blob_text(attrs["process.command_line.sha256"]) == big


def test_schema_version_newer_is_refused_clearly(store: TraceStore) -> None:
    store.init()
    con = duckdb.connect(str(store.path))
    con.execute("UPDATE harness_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StoreError, match="newer harness.*schema 99"):
        TraceStore(store.path).sql("SELECT 1")
    with pytest.raises(StoreError, match="newer harness"):
        TraceStore(store.path).init()


def test_not_a_store_and_missing_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no trace store"):
        TraceStore(tmp_path / "missing.duckdb").sql("SELECT 1")
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    with pytest.raises(StoreError, match="not a harness trace store"):
        TraceStore(other).sql("SELECT 1")


def test_query_error_lists_views(store: TraceStore) -> None:
    store.init()
    with pytest.raises(traces.QueryError) as info:
        store.sql("SELECT * FROM no_such_view")
    assert "no_such_view" in str(info.value) and "trials" in info.value.views


def test_default_path_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HARNESS_DB", str(tmp_path / "env.duckdb"))
    assert traces.open().path == tmp_path / "env.duckdb"
    monkeypatch.delenv("HARNESS_DB")
    assert str(traces.open().path) == ".harness/traces.duckdb"
