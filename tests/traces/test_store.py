"""The trace store: spans in, every field out, through tables and views."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pytest
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

import traces
from traces import Recorder, StoreError, TraceStore
from traces._store import encode_blob
from traces.vocab import Attr, Outcome, Span

ROOT = Path(__file__).resolve().parents[2]


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


# -- read-only queries -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM spans",
        "SELECT 1; DELETE FROM spans",
        "UPDATE spans SET name = 'x'",
        "DROP VIEW trials",
        "CREATE TABLE t AS SELECT 1",
        "EXPLAIN ANALYZE DELETE FROM spans",
        "CHECKPOINT",
        "COPY spans FROM '/dev/null'",
        "INSERT INTO blobs (sha256) VALUES ('x')",
    ],
)
def test_queries_are_read_only_unless_asked(store: TraceStore, query: str) -> None:
    with Recorder(store) as rec:
        record_trial(rec)
    with pytest.raises(traces.QueryError, match=r"write=True") as info:
        store.sql(query)
    assert info.value.refused is not None
    with pytest.raises(traces.QueryError, match=r"write=True"):
        store.arrow(query)
    # Refused by the statement's type, even on a read-write connection (this process has
    # the file open for writing, so a read shares that connection mode).
    with store.transaction(), pytest.raises(traces.QueryError, match=r"write=True"):
        store.sql(query)
    assert store.sql("SELECT count(*) AS n FROM spans").n[0] == 5
    assert "trials" in store.views() and len(store.sql("SELECT * FROM trials")) == 1


def test_reads_of_every_kind_still_work(store: TraceStore) -> None:
    store.init()
    for query in (
        "SELECT 1",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "FROM trials",
        "DESCRIBE spans",
        "SHOW TABLES",
        "EXPLAIN SELECT * FROM commands",
        "SELECT 1; SELECT 2",
    ):
        store.sql(query)


def test_writes_when_asked_in_one_transaction(store: TraceStore) -> None:
    with Recorder(store) as rec:
        record_trial(rec, run_id="keep")
        record_trial(rec, run_id="drop")
    res = store.sql("DELETE FROM spans WHERE run_id = ?", ["drop"], write=True)
    assert res.iloc[0, 0] == 1  # the root span carries the run id
    assert list(store.sql("SELECT run_id FROM trials").run_id) == ["keep"]
    # All or nothing: the second statement fails, so the first is rolled back.
    with pytest.raises(traces.QueryError, match="no_such_table"):
        store.sql("DELETE FROM spans; DELETE FROM no_such_table", write=True)
    assert store.sql("SELECT count(*) AS n FROM spans").n[0] == 9
    with pytest.raises(traces.QueryError, match="one transaction of its own"):
        store.sql("BEGIN; DELETE FROM spans; COMMIT", write=True)
    assert store.sql("SELECT count(*) AS n FROM spans").n[0] == 9


# -- text from plain SQL (schema 2) ----------------------------------------------------------


def _plain(db: Path, query: str) -> list[tuple[Any, ...]]:
    """A query through the bare duckdb package, as a `duckdb` shell on the file runs it."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


VERIFIER_STDOUT_SQL = """
SELECT t.task, t.outcome, t.error, c.exit_code, c.stdout, c.stderr
FROM trials t JOIN commands c ON c.trace_id = t.trace_id
JOIN spans v ON v.span_id = c.parent_span_id AND v.trace_id = c.trace_id
WHERE v.name = 'verify' AND NOT t.passed AND c.command LIKE '%test.sh'
"""


def record_failed_trial(rec: Recorder, stdout: bytes, stderr: bytes, diff: bytes) -> None:
    tracer = rec.tracer()
    with tracer.start_as_current_span(
        Span.trial("oracle"),
        attributes={
            Attr.RUN_ID: "run-f",
            Attr.TASK_ID: "task-f",
            Attr.OUTCOME: Outcome.VERIFIER_ERROR,
            Attr.ERROR: "tests/test.sh (exit 2) wrote no reward",
        },
    ):
        with (
            tracer.start_as_current_span(Span.AGENT),
            tracer.start_as_current_span(
                Span.EXEC, attributes={Attr.COMMAND_LINE: "sed -i s/a/b/ f"}
            ),
            tracer.start_as_current_span(
                Span.FS_CHANGE,
                attributes={Attr.FS_PATH: "/f", Attr.FS_DIFF_BLOB: rec.put_blob(diff)},
            ),
        ):
            pass
        with (
            tracer.start_as_current_span(Span.VERIFY),
            tracer.start_as_current_span(
                Span.EXEC,
                attributes={
                    Attr.COMMAND_LINE: "bash /tests/test.sh",
                    Attr.EXIT_CODE: 2,
                    Attr.STDOUT_BLOB: rec.put_blob(stdout),
                    Attr.STDERR_BLOB: rec.put_blob(stderr),
                },
            ),
        ):
            pass


def test_failed_trial_text_is_readable_from_a_bare_duckdb_session(store: TraceStore) -> None:
    stdout = ("collected 3 items\nFAILED test_x - assert 1 == 2 é\n" * 100).encode()
    with Recorder(store) as rec:
        record_failed_trial(rec, stdout, b"warning: slow\n", b"-a\n+b\n")
    rows = _plain(store.path, VERIFIER_STDOUT_SQL)
    assert rows == [
        (
            "task-f",
            Outcome.VERIFIER_ERROR,
            "tests/test.sh (exit 2) wrote no reward",
            2,
            stdout.decode(),
            "warning: slow\n",
        )
    ]
    # The README shows this very query.
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert " ".join(VERIFIER_STDOUT_SQL.split()) in readme
    assert _plain(store.path, "SELECT path, diff FROM file_changes") == [("/f", "-a\n+b\n")]
    # Refs join as spans carry them; the zlib-compressed stdout is text all the same.
    joined = _plain(
        store.path,
        "SELECT b.encoding, b.text FROM commands c JOIN blobs b ON b.ref = c.stdout_sha256",
    )
    assert joined == [("zlib", stdout.decode())]


def test_blob_text_is_null_for_binary_and_oversized_blobs(store: TraceStore) -> None:
    payloads = {
        "text": "ünïcode text\n".encode(),
        "invalid": b"\xff\xfe not utf-8",
        "nul": b"a\x00b",
        "at_cap": b"x" * traces.BLOB_TEXT_CAP,
        "over_cap": b"x" * (traces.BLOB_TEXT_CAP + 1),
        "empty": b"",
    }
    with Recorder(store) as rec:
        refs = {k: rec.put_blob(v) for k, v in payloads.items()}
    texts = dict(_plain(store.path, "SELECT ref, text FROM blobs"))
    assert texts == {
        refs["text"]: "ünïcode text\n",
        refs["invalid"]: None,
        refs["nul"]: None,
        refs["at_cap"]: "x" * traces.BLOB_TEXT_CAP,
        refs["over_cap"]: None,
        refs["empty"]: "",
    }
    for key, data in payloads.items():
        assert store.blob(refs[key]) == data  # the bytes are all there either way


def test_trial_resource_totals(store: TraceStore) -> None:
    rec = Recorder(store)
    tracer = rec.tracer()
    with tracer.start_as_current_span(
        Span.trial("x"), attributes={Attr.RUN_ID: "r", Attr.TASK_ID: "commands-only"}
    ):
        for cpu, peak in ((0.25, 100), (0.5, 300)):
            with tracer.start_as_current_span(
                Span.EXEC, attributes={Attr.CPU_TIME: cpu, Attr.MEMORY_PEAK: peak}
            ):
                pass
    with tracer.start_as_current_span(
        Span.trial("x"), attributes={Attr.RUN_ID: "r", Attr.TASK_ID: "sampled"}
    ):
        with tracer.start_as_current_span(
            Span.EXEC, attributes={Attr.CPU_TIME: 5.0, Attr.MEMORY_PEAK: 700}
        ):
            pass
        for cpu, usage, peak in ((2.0, 500, 900), (3.0, 600, None)):
            attrs: dict[str, Any] = {Attr.CONTAINER_CPU_TIME: cpu, Attr.CONTAINER_MEMORY: usage}
            if peak is not None:
                attrs[Attr.CONTAINER_MEMORY_PEAK] = peak
            with tracer.start_as_current_span(Span.RESOURCES, attributes=attrs):
                pass
    with tracer.start_as_current_span(
        Span.trial("x"), attributes={Attr.RUN_ID: "r", Attr.TASK_ID: "nothing"}
    ):
        pass
    rec.shutdown()
    rows = _plain(store.path, "SELECT task, peak_memory_bytes, cpu_s FROM trials ORDER BY task")
    assert rows == [
        ("commands-only", 300, 0.75),  # no samples: the commands' sum
        ("nothing", None, None),
        ("sampled", 900, 3.0),  # the last sample, not the commands' 5.0
    ]
    totals = {t.task: (t.peak_memory_bytes, t.cpu_s) for t in store.trials("r")}
    assert totals == {
        "commands-only": (300, 0.75),
        "nothing": (None, None),
        "sampled": (900, 3.0),
    }


def test_a_version_1_store_is_upgraded_on_the_next_write(tmp_path: Path) -> None:
    db = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(db))
    con.execute((Path(__file__).parent / "schema_v1.sql").read_text())
    texts = {
        "plain": b"plain text\n",
        "packed": ("compressible line\n" * 500).encode(),
        "binary": bytes(range(256)) * 4,
    }
    for data in texts.values():
        encoding, stored = encode_blob(data)
        con.execute(
            "INSERT INTO blobs VALUES (?, ?, ?, ?)",
            [hashlib.sha256(data).hexdigest(), len(data), encoding, stored],
        )
    con.execute(
        "INSERT INTO spans (trace_id, span_id, name, start_ns, end_ns, duration_ns, attributes, "
        "run_id) VALUES ('t1', 's1', ?, 0, 10, 10, ?, 'r1')",
        [Span.trial("old"), json.dumps({Attr.RUN_ID: "r1", Attr.ERROR: "it broke"})],
    )
    con.close()
    store = TraceStore(db)
    with pytest.raises(StoreError, match="schema 1; it is upgraded to 2"):
        store.sql("SELECT 1")
    TraceStore(db).init()  # any write
    assert _plain(db, "SELECT value FROM harness_meta WHERE key = 'schema_version'") == [("2",)]
    rows = dict(_plain(db, "SELECT size, text FROM blobs"))
    assert rows == {
        len(texts["plain"]): "plain text\n",
        len(texts["packed"]): texts["packed"].decode(),
        len(texts["binary"]): None,
    }
    refs = _plain(db, "SELECT count(*) FROM blobs WHERE ref = 'sha256:' || sha256")
    assert refs == [(3,)]
    assert _plain(db, "SELECT error, peak_memory_bytes FROM trials") == [("it broke", None)]
    assert store.trials()[0].error == "it broke"


def test_views_an_older_harness_defined_are_redefined_before_a_read(tmp_path: Path) -> None:
    """A store written by an older harness has views without today's columns; the first read
    redefines them, so the read model works on it without a write of the user's."""
    path = tmp_path / "old.duckdb"
    TraceStore(path).init()
    old = TraceStore(path)
    old.sql("CREATE OR REPLACE VIEW trials AS SELECT 1 AS x", write=True)
    old.sql("UPDATE harness_meta SET value = 'older' WHERE key = 'views'", write=True)
    store = TraceStore(path)  # a new process's view of it
    assert store.trials() == []  # would fail on the old view: no run_id column
    assert "replay_of" in list(store.sql("SELECT * FROM trials LIMIT 0").columns)
