"""A held store never costs a span: batches spool next to it and reach it exactly once.

Every test holds the store the way a user does, from another process with a DuckDB read
connection open on the file, and then checks what reached the store, span by span.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from traces import Recorder, TraceStore
from traces.vocab import Attr, Span

ROOT = Path(__file__).resolve().parents[2]

# Holds a read connection on the store until its stdin closes, or for argv[2] seconds.
HOLDER = """
import sys, threading, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SELECT count(*) FROM spans").fetchall()
print("held", flush=True)
t = threading.Thread(target=sys.stdin.read, daemon=True)
t.start()
t.join(float(sys.argv[2]))
con.close()
"""


def _hold(db: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@contextmanager
def held(db: Path) -> Iterator[subprocess.Popen[str]]:
    """The store held by a reader in another process for the block's duration."""
    proc = _hold(db, 600)
    try:
        yield proc
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=30)


def record(rec: Recorder, trial: int, commands: int, run_id: str = "run-s") -> float:
    """One synthetic trial; each command has its own stdout blob. Returns how long the
    recorded code was held up by the trial's end (the root waits until its spans are
    durable)."""
    tracer = rec.tracer()
    with tracer.start_as_current_span(
        Span.trial("spool"),
        attributes={Attr.RUN_ID: run_id, Attr.TASK_ID: f"t{trial}", Attr.TRIAL_INDEX: trial},
    ):
        for j in range(commands):
            ref = rec.put_blob(f"trial {trial} command {j}\n".encode())
            with tracer.start_as_current_span(
                Span.EXEC,
                attributes={
                    Attr.COMMAND_LINE: f"echo {trial}-{j}",
                    Attr.EXIT_CODE: 0,
                    Attr.STDOUT_BLOB: ref,
                },
            ):
                pass
        t = time.perf_counter()
    return time.perf_counter() - t


def assert_complete(db: Path, trials: int, commands: int) -> None:
    """Every span of every trial exactly once, and every command's stdout blob."""
    store = TraceStore(db)
    spans = store.sql("SELECT count(*) AS n, count(DISTINCT (trace_id, span_id)) AS d FROM spans")
    assert (spans.n[0], spans.d[0]) == (trials * (commands + 1),) * 2
    per_trial = store.sql("SELECT task, steps FROM trials ORDER BY trial_index")
    assert list(per_trial.task) == [f"t{i}" for i in range(trials)]
    cmds = store.sql("SELECT command, stdout FROM commands")
    assert len(cmds) == trials * commands
    assert all(
        out == f"trial {cmd.split()[1].replace('-', ' command ')}\n"
        for cmd, out in zip(cmds.command, cmds.stdout, strict=True)
    )
    assert store.sql("SELECT count(*) AS n FROM blobs").n[0] == trials * commands


def test_two_minute_read_during_recording_loses_nothing_and_stalls_nothing(
    tmp_path: Path,
) -> None:
    """The issue's scenario: a reader holds the store for two minutes while trials end."""
    db = tmp_path / "t.duckdb"
    TraceStore(db).init()
    reader = _hold(db, 120)
    trials, commands = 60, 20
    rec = Recorder(db, schedule_delay=0.05)
    waits = [record(rec, i, commands) for i in range(trials)]
    # All of it recorded while the file was held, none of it stalled for long.
    assert reader.poll() is None, "the reader let go early; the test proves nothing"
    assert max(waits) < 5, waits
    assert rec.late_spans == trials * (commands + 1)
    assert rec.pending_spans == rec.late_spans
    assert TraceStore(db).sql("SELECT count(*) AS n FROM spans").n[0] == 0  # read-only peek
    assert reader.wait(timeout=180) == 0
    # Appended as soon as the file is free, without waiting for shutdown.
    deadline = time.monotonic() + 60
    while rec.pending_spans and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rec.pending_spans == 0
    rec.shutdown()
    assert rec.processor.failed == 0 and rec.processor.dropped == 0
    assert_complete(db, trials, commands)
    assert not any(rec.spool_path.iterdir())


def test_recorder_starts_and_records_while_the_store_is_held(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    TraceStore(db).init()
    with held(db):
        t = time.perf_counter()
        rec = Recorder(db, schedule_delay=0.05)
        started = time.perf_counter() - t
        assert record(rec, 0, 5) < 5
        rec.shutdown(drain_wait_s=0.2)  # the store stays held: the spool stays on disk
        assert started < 5
        assert rec.pending_spans == rec.late_spans == 6
        assert len(list(rec.spool_path.iterdir())) >= 1
        assert TraceStore(db).sql("SELECT count(*) AS n FROM spans").n[0] == 0
    # The next write connection of the store appends the spool first.
    TraceStore(db).init()
    assert_complete(db, 1, 5)
    assert rec.pending_spans == 0
    assert not any(rec.spool_path.iterdir())


def test_shutdown_appends_the_spool_when_the_store_frees_up_in_time(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    TraceStore(db).init()
    with held(db):
        rec = Recorder(db, schedule_delay=0.05)
        record(rec, 0, 3)
        rec.flush()
        assert rec.pending_spans == 4
    rec.shutdown()
    assert rec.pending_spans == 0 and rec.late_spans == 4
    assert_complete(db, 1, 3)


SPOOLING_WRITER = """
import sys
from traces import Recorder
from traces.vocab import Attr, Span
rec = Recorder(sys.argv[1], schedule_delay=600)
tracer = rec.tracer()
for i in range(int(sys.argv[2])):
    with tracer.start_as_current_span(Span.trial("w"), attributes={
            Attr.RUN_ID: "run-k", Attr.TASK_ID: f"t{i}", Attr.TRIAL_INDEX: i}):
        for j in range(10):
            ref = rec.put_blob(f"trial {i} command {j}\\n".encode())
            with tracer.start_as_current_span(Span.EXEC, attributes={
                    Attr.COMMAND_LINE: f"echo {i}-{j}", Attr.STDOUT_BLOB: ref}):
                pass
    print(rec.late_spans, flush=True)  # trial i ended: durable (here: in the spool)
sys.stdin.read()
"""


def test_a_killed_writers_spool_is_appended_by_the_next_recorder(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    TraceStore(db).init()
    with held(db):
        writer = subprocess.Popen(
            [sys.executable, "-c", SPOOLING_WRITER, str(db), "5"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert writer.stdout is not None
        late = [int(writer.stdout.readline()) for _ in range(5)]
        assert late == [11, 22, 33, 44, 55]  # every trial went to the spool
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    spool = TraceStore(db).spool_dir
    assert len(list(spool.iterdir())) == 5
    with Recorder(db) as rec:  # starting is a write: it appends the spool first
        assert rec.late_spans == 0
    assert_complete(db, 5, 10)
    assert not any(spool.iterdir())


def test_a_spooled_batch_is_appended_once_even_if_its_files_survive(tmp_path: Path) -> None:
    """A writer that dies between appending a batch and removing its files leaves the files;
    the next writer must not append the batch again."""
    db = tmp_path / "t.duckdb"
    TraceStore(db).init()
    with held(db):
        rec = Recorder(db, schedule_delay=0.05)
        record(rec, 0, 4)
        rec.shutdown(drain_wait_s=0)
    spool = rec.spool_path
    saved = tmp_path / "saved"
    shutil.copytree(spool, saved)
    TraceStore(db).init()
    assert_complete(db, 1, 4)
    shutil.rmtree(spool)
    shutil.copytree(saved, spool)  # as if the removal had never happened
    TraceStore(db).init()
    assert_complete(db, 1, 4)
    assert not any(spool.iterdir())


def test_a_damaged_spool_batch_is_set_aside_and_blocks_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "t.duckdb"
    TraceStore(db).init()
    with held(db):
        rec = Recorder(db, schedule_delay=0.05)
        record(rec, 0, 2)
        record(rec, 1, 2)
        rec.shutdown(drain_wait_s=0)
    batches = sorted(rec.spool_path.iterdir())
    manifest = json.loads((batches[0] / "batch.json").read_text())
    assert manifest["format"] == "harness-spool" and manifest["spans"] >= 1
    (batches[0] / "spans.arrow").write_bytes(b"not arrow")
    TraceStore(db).init()
    assert [p.name for p in rec.spool_path.iterdir()] == [batches[0].name + ".corrupt"]
    assert "cannot be read" in caplog.text and batches[0].name in caplog.text
    # The rest arrived, and the store takes new writes.
    n = TraceStore(db).sql("SELECT count(*) AS n FROM spans").n[0]
    assert n == 6 - manifest["spans"]
    with Recorder(db) as again:
        record(again, 2, 1)
    assert TraceStore(db).sql("SELECT count(*) AS n FROM spans").n[0] == n + 2


def test_spooled_rows_equal_directly_written_rows(tmp_path: Path) -> None:
    """The spool carries rows exactly as a direct write makes them (types, JSON, blobs)."""
    direct, spooled = tmp_path / "direct.duckdb", tmp_path / "spooled.duckdb"
    with Recorder(direct, schedule_delay=0.05) as rec:
        record(rec, 0, 3)
    TraceStore(spooled).init()
    with held(spooled):
        rec = Recorder(spooled, schedule_delay=0.05)
        record(rec, 0, 3)
        rec.shutdown(drain_wait_s=0)
    TraceStore(spooled).init()
    assert _rows(spooled) == _rows(direct)


def _rows(db: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Span rows (without their random ids) and blob rows, straight from the file."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        spans = con.execute(
            "SELECT name, kind, status_code, attributes, run_id, task_id, exit_code "
            "FROM spans ORDER BY name, attributes"
        ).fetchall()
        return spans, con.execute("SELECT * FROM blobs ORDER BY sha256").fetchall()
    finally:
        con.close()
