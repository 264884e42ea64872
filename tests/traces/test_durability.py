"""Recorded data is never lost: SIGKILL, concurrent readers, back-pressure."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from traces import BackpressureSpanProcessor, Recorder, TraceStore

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import os, sys, time
from traces import Recorder
db, trials, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
hang = mode == "hang"
rec = Recorder(db, schedule_delay=0.05)
tracer = rec.tracer()
i = 0
while i < trials or (mode != "hang" and not os.path.exists(mode)):
    with tracer.start_as_current_span("invoke_agent w", attributes={
            "harness.run.id": "run-w", "harness.task.id": f"t{i}"}):
        for j in range(50):
            with tracer.start_as_current_span("sandbox.exec", attributes={
                    "process.command_line": f"echo {i}-{j}", "process.exit.code": 0}):
                pass
    print(i, flush=True)  # trial i has ended: it must be durable from here on
    i += 1
if hang:
    with tracer.start_as_current_span("invoke_agent w", attributes={"harness.run.id": "run-w"}):
        for j in range(10):
            with tracer.start_as_current_span("sandbox.exec"):
                pass
        print("in-trial", flush=True)
        time.sleep(600)
rec.shutdown()
"""


def _writer(db: Path, trials: int, mode: str) -> subprocess.Popen[str]:
    """mode "hang": stay inside a trial after `trials`; otherwise a stop file's path."""
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(trials), mode],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def test_sigkill_keeps_every_ended_trial(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    proc = _writer(db, 5, "hang")
    assert proc.stdout is not None
    lines = [proc.stdout.readline().strip() for _ in range(6)]
    assert lines[-1] == "in-trial"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = TraceStore(db)
    trials = store.sql("SELECT task, count(*) AS n FROM trials GROUP BY task ORDER BY task")
    assert list(trials.task) == [f"t{i}" for i in range(5)]
    commands = store.sql("SELECT count(*) AS n FROM commands").n[0]
    assert commands >= 250  # all 5 ended trials; the killed one's spans may or may not be in
    # The store re-opens for writing and takes new data.
    with (
        Recorder(store) as rec,
        rec.tracer().start_as_current_span(
            "invoke_agent again", attributes={"harness.run.id": "run-2"}
        ),
    ):
        pass
    assert store.sql("SELECT count(*) AS n FROM runs").n[0] == 2


OPEN_TRIAL = """
import signal
import sys, time
from traces import Recorder
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
with Recorder(sys.argv[1], schedule_delay=600) as rec:
    tracer = rec.tracer()
    with tracer.start_as_current_span("invoke_agent open", attributes={"harness.run.id": "r"}):
        for j in range(3):
            with tracer.start_as_current_span("sandbox.exec", attributes={"i": j}):
                pass
        print("ready", flush=True)
        time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_flush_queued_spans(tmp_path: Path, sig: int) -> None:
    db = tmp_path / "t.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-c", OPEN_TRIAL, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    # Nothing is exported yet: the batch delay is long and the trial has not ended.
    proc.send_signal(sig)
    proc.wait(timeout=30)
    names = TraceStore(db).sql("SELECT name FROM spans ORDER BY name").name.tolist()
    # The three ended commands and the root, ended by the unwinding `with`.
    assert names == ["invoke_agent open", "sandbox.exec", "sandbox.exec", "sandbox.exec"]


def test_reader_queries_while_another_process_writes(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    TraceStore(db).init()
    stop = tmp_path / "stop"
    proc = _writer(db, 0, str(stop))
    assert proc.stdout is not None
    proc.stdout.readline()  # the writer is under way
    seen: list[int] = []
    for _ in range(4):
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "sql",
                "--db",
                str(db),
                "--format",
                "json",
                "SELECT count(*) AS n FROM trials",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert res.returncode == 0, res.stderr
        seen.append(json.loads(res.stdout)[0]["n"])
    stop.touch()
    written = len(proc.stdout.readlines()) + 1
    assert proc.wait() == 0
    assert seen == sorted(seen) and seen[0] >= 1, seen
    assert seen[-1] > seen[0], "the writer made no progress while being read"
    assert TraceStore(db).sql("SELECT count(*) AS n FROM trials").n[0] == written


class _SlowExporter(SpanExporter):
    def __init__(self) -> None:
        self.got: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        time.sleep(0.01)
        self.got.extend(s.name for s in spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def test_full_queue_applies_back_pressure_instead_of_dropping() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    slow = _SlowExporter()
    proc = BackpressureSpanProcessor([slow], max_queue=8, max_batch=4, schedule_delay=0.01)
    provider = TracerProvider()
    provider.add_span_processor(proc)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root"):
        for i in range(300):
            with tracer.start_as_current_span(f"s{i}"):
                pass
    provider.shutdown()
    assert proc.dropped == 0 and proc.failed == 0
    assert sorted(slow.got) == sorted([f"s{i}" for i in range(300)] + ["root"])
    # After shutdown nothing is silently lost: it is counted (and said on stderr).
    with tracer.start_as_current_span("late"):
        pass
    assert proc.dropped == 1
