"""Export, import and OTLP: a record moves between machines and to any OTel backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import harness_cli
from traces import Recorder, StoreError, TraceStore, export_run, import_path

from .test_store import record_trial

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "spans": "trace_id, span_id",
    "span_events": "trace_id, span_id, seq",
    "span_links": "trace_id, span_id, seq",
    "blobs": "sha256",
}


@pytest.fixture
def source(tmp_path: Path) -> TraceStore:
    store = TraceStore(tmp_path / "src.duckdb")
    with Recorder(store) as rec:
        record_trial(rec, run_id="run-a", task="t1")
        record_trial(rec, run_id="run-a", task="t2")
        record_trial(rec, run_id="run-b", task="t3")
    return store


def _rows(store: TraceStore, table: str, where: str = "") -> list[tuple[object, ...]]:
    df = store.sql(f"SELECT * FROM {table} {where} ORDER BY {TABLES[table]}")
    return [tuple(r) for r in df.astype(object).where(df.notna(), None).itertuples(index=False)]


def test_parquet_export_then_import_gives_the_same_rows(source: TraceStore, tmp_path: Path) -> None:
    counts = export_run(source, "run-a", "parquet", tmp_path / "exp")
    assert counts["spans"] == 10 and counts["blobs"] == 1
    dest = TraceStore(tmp_path / "dest.duckdb")
    result = import_path(dest, tmp_path / "exp")
    assert (result.spans, result.events, result.links, result.blobs) == (10, 2, 2, 1)
    run_a = "WHERE trace_id IN (SELECT trace_id FROM trials WHERE run_id = 'run-a')"
    for table in ("spans", "span_events", "span_links"):
        assert _rows(dest, table) == _rows(source, table, run_a), table
    assert _rows(dest, "blobs") == _rows(source, "blobs")
    assert dest.sql("SELECT count(*) AS n FROM trials").n[0] == 2
    again = import_path(dest, tmp_path / "exp")
    assert again.spans == 0 and again.skipped_spans == 10
    assert dest.sql("SELECT count(*) AS n FROM spans").n[0] == 10


def test_otlp_json_export_then_import_gives_the_same_rows(
    source: TraceStore, tmp_path: Path
) -> None:
    out = tmp_path / "run.jsonl"
    export_run(source, "run-a", "otlp-json", out)
    first = json.loads(out.read_text().splitlines()[0])
    span = first["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and span["startTimeUnixNano"].isdigit()
    dest = TraceStore(tmp_path / "dest.duckdb")
    assert import_path(dest, out).spans == 10
    run_a = "WHERE trace_id IN (SELECT trace_id FROM trials WHERE run_id = 'run-a')"
    for table in ("spans", "span_events", "span_links"):
        assert _rows(dest, table) == _rows(source, table, run_a), table


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('{"resourceSpans": []}\n{"resourceSpans": [ oops\n', ":4:21: invalid JSON"),
        (
            '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": '
            '"0000000000000001", "name": "x", "startTimeUnixNano": "1"}]}]}]}\n',
            ":3: resourceSpans[0].scopeSpans[0].spans[0].traceId: expected 32 hex digits",
        ),
        (
            '{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "0000000000000001"}]}]}]}',
            ":3: resourceSpans[0].scopeSpans[0].spans[0]: missing traceId",
        ),
        ('{"spans": []}', ":3: $: expected an object with a resourceSpans list"),
    ],
)
def test_malformed_otlp_json_names_file_and_position_and_writes_nothing(
    source: TraceStore, tmp_path: Path, content: str, where: str
) -> None:
    good = tmp_path / "good.jsonl"
    export_run(source, "run-a", "otlp-json", good)
    bad = tmp_path / "bad.jsonl"
    # Two valid traces first (lines 1-2): a partial import would write them.
    bad.write_text(good.read_text() + content)
    dest = TraceStore(tmp_path / "dest.duckdb")
    dest.init()
    with pytest.raises(StoreError) as info:
        import_path(dest, bad)
    msg = str(info.value)
    assert msg.startswith(str(bad)) and where in msg
    assert dest.sql("SELECT count(*) AS n FROM spans").n[0] == 0


def test_export_of_unknown_run_says_which_exist(source: TraceStore, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no run 'nope'.*run-a, run-b"):
        export_run(source, "nope", "parquet", tmp_path / "x")


def test_spans_also_go_to_an_otlp_collector_with_blobs_referenced(
    tmp_path: Path, collector: tuple[str, list[ExportTraceServiceRequest]]
) -> None:
    endpoint, received = collector
    store = TraceStore(tmp_path / "t.duckdb")
    with Recorder(store, otlp_endpoint=endpoint) as rec:
        ids = record_trial(rec)
        with rec.tracer().start_as_current_span(
            "sandbox.exec", attributes={"harness.run.id": "r", "process.command_line": "x" * 50_000}
        ):
            pass
    spans = [
        s
        for req in received
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    assert len(spans) == 6 == store.sql("SELECT count(*) AS n FROM spans").n[0]
    assert {s.trace_id.hex() for s in spans} >= {ids["trace_id"]}
    big = next(
        s for s in spans if any(a.key == "process.command_line.sha256" for a in s.attributes)
    )
    keys = {a.key: a.value for a in big.attributes}
    assert "process.command_line" not in keys
    assert keys["process.command_line.bytes"].int_value == 50_000
    ref = keys["process.command_line.sha256"].string_value
    assert store.blob_text(ref) == "x" * 50_000


def test_cli_sql_formats_and_errors(source: TraceStore, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return harness_cli(*args, "--db", str(source.path))

    q = "SELECT task, exit_code FROM commands ORDER BY task"
    res = run("sql", q, "--format", "json")
    assert res.returncode == 0
    assert json.loads(res.stdout) == [{"task": t, "exit_code": 2} for t in ("t1", "t2", "t3")]
    res = run("sql", q, "--format", "csv")
    assert res.stdout.splitlines() == ['"task","exit_code"', '"t1",2', '"t2",2', '"t3",2']
    res = run("sql", q, "--format", "jsonl")
    assert len(res.stdout.splitlines()) == 3
    res = run("sql", q)
    assert "t3" in res.stdout and "exit_code" in res.stdout
    pq = tmp_path / "out.parquet"
    assert run("sql", q, "--format", "parquet", "-o", str(pq)).returncode == 0
    import pyarrow.parquet as papq

    assert papq.read_table(pq).num_rows == 3
    bad = run("sql", "SELECT * FROM trails")
    assert bad.returncode == 2
    assert "trails" in bad.stderr and "trials" in bad.stderr and "commands" in bad.stderr
    exp = tmp_path / "exp"
    assert run("export", "--run", "run-b", "-o", str(exp)).returncode == 0
    res = harness_cli("import", str(exp), "--db", str(tmp_path / "new.duckdb"))
    assert res.returncode == 0 and "imported 5 spans" in res.stdout


def test_otlp_endpoint_from_the_standard_environment(
    tmp_path: Path,
    collector: tuple[str, list[ExportTraceServiceRequest]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, received = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    with Recorder(tmp_path / "t.duckdb") as rec, rec.tracer().start_as_current_span("x"):
        pass
    assert [
        s.name
        for req in received
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ] == ["x"]


def test_cli_otlp_endpoint_flag_sends_recorded_spans(
    tmp_path: Path, collector: tuple[str, list[ExportTraceServiceRequest]], base_image: str
) -> None:
    endpoint, received = collector
    res = harness_cli(
        "--otlp-endpoint", endpoint, "exec", "--db", str(tmp_path / "t.duckdb"), "echo hi > /tmp/x"
    )
    assert res.returncode == 0, res.stderr
    names = [
        s.name
        for req in received
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    assert {"invoke_agent harness-exec", "sandbox.exec echo", "fs.change"} <= set(names)
    stored = TraceStore(tmp_path / "t.duckdb").sql("SELECT count(*) AS n FROM spans").n[0]
    assert stored == len(names)


# -- malformed imports: a clear error, exit 2, and the store as it was -----------------------


def _span(**fields: object) -> dict[str, object]:
    """A valid OTLP JSON span, with ``fields`` replaced or added."""
    span: dict[str, object] = {
        "traceId": "0" * 32,
        "spanId": "0000000000000001",
        "name": "x",
        "startTimeUnixNano": "1",
    }
    return {**span, **fields}


def _doc(*spans: object, **scope_spans: object) -> object:
    return {"resourceSpans": [{"scopeSpans": [{"spans": list(spans), **scope_spans}]}]}


def _attr(value: object) -> list[object]:
    return [{"key": "k", "value": value}]


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"resourceSpans": [{"scopeSpans": "x"}]}, "resourceSpans[0].scopeSpans: expected a list"),
        ({"resourceSpans": ["x"]}, "resourceSpans[0]: expected an object"),
        ({"resourceSpans": [{"resource": []}]}, "resourceSpans[0].resource: expected an object"),
        (
            {"resourceSpans": [{"resource": {"attributes": "x"}}]},
            "resourceSpans[0].resource.attributes: attributes must be a list",
        ),
        (_doc(spans={}), "scopeSpans[0].spans: expected a list"),
        (_doc(scope="s"), "scopeSpans[0].scope: expected an object"),
        ({"resourceSpans": [{"scopeSpans": [7]}]}, "scopeSpans[0]: expected an object"),
        (_doc(_span(name=5)), "spans[0].name: expected a string"),
        (_doc(_span(status="ok")), "spans[0].status: expected an object"),
        (_doc(_span(kind=1.5)), "spans[0].kind: expected a number or a name"),
        (_doc(_span(events=[1])), "spans[0].events[0]: expected an object"),
        (_doc(_span(links={"a": 1})), "spans[0].links: expected a list"),
        (
            _doc(_span(attributes=_attr({"arrayValue": []}))),
            "spans[0].attributes[0].value.arrayValue: expected an object",
        ),
        (
            _doc(_span(attributes=_attr({"doubleValue": [1]}))),
            "spans[0].attributes[0].value.doubleValue: expected a number",
        ),
        (_doc(_span(startTimeUnixNano=[1])), "spans[0].startTimeUnixNano: expected nanoseconds"),
    ],
)
def test_otlp_json_of_wrong_types_names_the_json_path_and_creates_no_store(
    tmp_path: Path, doc: object, where: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    db = tmp_path / "new.duckdb"
    res = harness_cli("import", str(bad), "--db", str(db))
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert f"{bad}:1:" in res.stderr and where in " ".join(res.stderr.split()), res.stderr
    assert not db.exists()


def _damage(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a parquet file cut off half way


@pytest.mark.parametrize("table", ["spans", "span_events", "blobs"])
def test_corrupt_parquet_export_is_named_and_changes_no_store(
    source: TraceStore, tmp_path: Path, table: str
) -> None:
    exp = tmp_path / "exp"
    export_run(source, "run-a", "parquet", exp)
    _damage(exp / f"{table}.parquet")
    fresh = tmp_path / "fresh.duckdb"
    res = harness_cli("import", str(exp), "--db", str(fresh))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"{table}.parquet" in res.stderr and "export the run again" in res.stderr
    assert not fresh.exists()
    # An existing store stays exactly as it was.
    before = {t: _rows(source, t) for t in TABLES}
    res = harness_cli("import", str(exp), "--db", str(source.path))
    assert res.returncode == 2, res.stderr
    assert {t: _rows(source, t) for t in TABLES} == before


def test_parquet_blob_that_does_not_match_its_hash_is_refused(
    source: TraceStore, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as papq

    exp = tmp_path / "exp"
    export_run(source, "run-a", "parquet", exp)
    blobs = papq.read_table(exp / "blobs.parquet")
    data = blobs.column("data").to_pylist()
    blobs = blobs.set_column(
        blobs.schema.get_field_index("data"), "data", pa.array([b"tampered"] + data[1:])
    )
    papq.write_table(blobs, exp / "blobs.parquet")
    dest = TraceStore(tmp_path / "dest.duckdb")
    with pytest.raises(StoreError, match=r"blobs.parquet: row 0: the content does not match"):
        import_path(dest, exp)
    assert not dest.path.exists()


def test_import_of_a_version_1_export_fills_blob_text(source: TraceStore, tmp_path: Path) -> None:
    """Exports carry blobs as content (sha256, size, encoding, data), as version 1 wrote
    them; text and ref are derived again on import."""
    import pyarrow.parquet as papq

    exp = tmp_path / "exp"
    export_run(source, "run-a", "parquet", exp)
    assert papq.read_table(exp / "blobs.parquet").column_names == [
        "sha256",
        "size",
        "encoding",
        "data",
    ]
    dest = TraceStore(tmp_path / "dest.duckdb")
    import_path(dest, exp)
    assert list(dest.sql("SELECT DISTINCT stdout FROM commands").stdout) == ["hello\n"]


# -- harness sql: read-only, interruptible ---------------------------------------------------


def test_cli_sql_refuses_writes(source: TraceStore) -> None:
    for query in ("DELETE FROM spans", "DROP TABLE blobs", "SELECT 1; DELETE FROM spans"):
        res = harness_cli("sql", query, "--db", str(source.path))
        assert res.returncode == 2, res.stderr
        assert "only reads the store" in res.stderr and "Traceback" not in res.stderr
    assert source.sql("SELECT count(*) AS n FROM spans").n[0] == 15


def _opened(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (it has begun its query)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd) == str(path) for fd in fds.iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_cli_sql_stops_on_ctrl_c(source: TraceStore) -> None:
    # Hours of work: a cross join no optimizer can skip.
    slow = (
        "SELECT count(*) FROM range(1000000000) a, range(1000000000) b WHERE a.range + b.range = -1"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "sql", slow, "--db", str(source.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while not _opened(proc.pid, source.path.resolve()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
