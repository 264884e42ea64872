"""A run stops cleanly (Ctrl-C, SIGTERM, the engine going away) and never loses its record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

import traces
from harness import RunControl, finished_trials
from reports import summarize
from tests.conftest import ROOT

PY = sys.executable


def _task(root: Path, name: str, seconds: float = 0) -> Path:
    d = root / name
    files = {
        "task.toml": "[agent]\ntimeout_sec = 120\n[verifier]\ntimeout_sec = 30\n",
        "instruction.md": "Write done.",
        "environment/Dockerfile": "FROM harness-base:bookworm\n",
        "solution/solve.sh": f"sleep {seconds}\necho done > /tmp/out\n",
        "tests/test.sh": "grep -q done /tmp/out && echo 1 > /logs/verifier/reward.txt || "
        "echo 0 > /logs/verifier/reward.txt\n",
    }
    for rel, text in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "harness", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _finished(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        return int(
            traces.TraceStore(db)
            .sql("SELECT count(*) AS n FROM trials WHERE outcome IS NOT NULL")
            .n[0]
        )
    except traces.StoreError:
        return 0


def _orphans(store: traces.TraceStore) -> int:
    """Spans whose parent is not in the store (a trial cut off mid-way leaves these)."""
    return int(
        store.sql(
            "SELECT count(*) AS n FROM spans s WHERE s.parent_span_id IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM spans p WHERE p.span_id = s.parent_span_id)"
        ).n[0]
    )


def _containers(run_id: str) -> list[str]:
    return [
        c.id
        for c in docker.from_env().containers.list(
            all=True, filters={"label": f"harness.run.id={run_id}"}
        )
    ]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_first_stop_lets_running_trials_finish_then_resume_runs_the_rest(
    base_image: str, tmp_path: Path, sig: int, code: int
) -> None:
    suite = tmp_path / "suite"
    _task(suite, "a-quick")
    _task(suite, "b-slow", 4)
    _task(suite, "c-never-started")
    _task(suite, "d-never-started")
    db = tmp_path / "t.duckdb"
    proc = _start("run", str(suite), "--concurrency", "1", "--db", str(db))
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    _wait_for(lambda: _finished(db) >= 1, 120, "the first trial")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"harness run --resume {run_id}" in err
    store = traces.TraceStore(db)
    done = store.sql("SELECT task, outcome FROM trials WHERE run_id = ? ORDER BY task", [run_id])
    # The trial running at the stop finished within the grace period; no new one started.
    assert list(zip(done.task, done.outcome, strict=True)) == [
        ("a-quick", "passed"),
        ("b-slow", "passed"),
    ]
    assert _orphans(store) == 0
    assert _containers(run_id) == []

    res = subprocess.run(
        [PY, "-m", "harness", "run", "--resume", run_id, "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "resuming 2 trials" in res.stderr
    summary = json.loads(res.stdout.splitlines()[-1])
    assert (summary["trials"], summary["passed"]) == (4, 4)
    counts = store.sql("SELECT task, count(*) AS n FROM trials GROUP BY task ORDER BY task")
    assert counts.n.tolist() == [1, 1, 1, 1]  # exactly the rest ran


def test_second_signal_stops_running_trials_now_and_they_are_rerun(
    base_image: str, tmp_path: Path
) -> None:
    suite = tmp_path / "suite"
    _task(suite, "long", 600)
    db = tmp_path / "t.duckdb"
    proc = _start("run", str(suite), "--db", str(db), "--grace", "600")
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    _wait_for(lambda: _running(run_id, "sleep 600"), 60, "the agent's command")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    first = _lines_until(proc.stderr, "starting no more trials")
    proc.send_signal(signal.SIGTERM)
    _out, rest = proc.communicate(timeout=60)
    err = "".join(first) + rest
    assert proc.returncode == 143, err
    assert time.monotonic() - t0 < 60  # not the 600 s grace, nor the 600 s command
    store = traces.TraceStore(db)
    roots = store.sql(
        "SELECT attributes->>'$.\"harness.outcome\"' AS outcome, "
        "attributes->>'$.\"harness.interrupted\"' AS interrupted, status_code "
        "FROM spans WHERE parent_span_id IS NULL AND name LIKE 'invoke_agent%'"
    )
    assert roots.outcome.isna().all()
    assert roots.interrupted.tolist() == ["true"] and roots.status_code.tolist() == ["ERROR"]
    assert _orphans(store) == 0
    _wait_for(lambda: _containers(run_id) == [], 30, "the container's removal")
    # No outcome: it never counts, and a resume would run it again.
    assert summarize(store, run_id, 1)["trials"] == 0
    assert finished_trials(store, run_id) == set()
    runs = store.sql("SELECT trials, superseded FROM runs WHERE run_id = ?", [run_id])
    assert (int(runs.trials[0]), int(runs.superseded[0])) == (0, 1)


def _running(run_id: str, command: str) -> bool:
    """Whether ``command`` runs in the run's container (from the engine's process list)."""
    for cid in _containers(run_id):
        try:
            top = docker.from_env().api.top(cid)
        except docker.errors.APIError:
            continue
        if any(command in " ".join(p) for p in top.get("Processes") or []):
            return True
    return False


def _lines_until(stream, marker: str) -> list[str]:  # type: ignore[no-untyped-def]
    seen = []
    for line in stream:
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"never saw {marker!r} in:\n{''.join(seen)}")


def _require_local_engine() -> None:
    """The engine tests restart dockerd on this host; CI always has one there."""
    if os.environ.get("DOCKER_HOST", "unix://").startswith(("tcp:", "ssh:")):
        message = "these tests restart the engine on this host; DOCKER_HOST is remote"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # never hide these tests in CI
        pytest.skip(message)


def _stop_engine() -> None:
    """Stop the Docker engine as an upgrade or a crash would, under whatever runs."""
    pid = int(
        subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()[0]
    )
    os.kill(pid, signal.SIGTERM)
    _wait_for(lambda: not Path(f"/proc/{pid}").exists(), 60, "dockerd to stop")


def _start_engine() -> None:
    setup = subprocess.run(
        [PY, "-m", "harness", "setup"], capture_output=True, text=True, cwd=ROOT, timeout=180
    )
    assert setup.returncode == 0, setup.stderr


def test_engine_restart_mid_suite_retries_the_trials_it_hit(
    base_image: str, tmp_path: Path
) -> None:
    _require_local_engine()
    suite = tmp_path / "suite"
    for name in ("a", "b", "c"):
        _task(suite, name, 3)
    db = tmp_path / "t.duckdb"
    proc = _start("run", str(suite), "--concurrency", "3", "--db", str(db), "--json")
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    _wait_for(lambda: len(_containers(run_id)) == 3, 120, "three running trials")
    _stop_engine()
    _start_engine()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "not answering" in err  # it said it was waiting
    summary = json.loads(out.splitlines()[-1])
    assert (summary["trials"], summary["passed"], summary["errors"]) == (3, 3, {})
    store = traces.TraceStore(db)
    hit = store.sql(
        "SELECT count(DISTINCT e.trace_id) AS n FROM span_events e WHERE e.name = 'infra_error'"
    ).n[0]
    assert hit >= 1  # the outage is in the record
    assert _orphans(store) == 0


HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SELECT count(*) FROM spans").fetchall()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def test_a_two_minute_read_during_a_suite_loses_no_span(base_image: str, tmp_path: Path) -> None:
    """A user's long query holds the store while a suite runs: the suite goes on, every
    trial's spans reach the store once the reader lets go, and the run says they were late."""
    suite = tmp_path / "suite"
    names = [f"t{i}" for i in range(4)]
    for name in names:
        _task(suite, name)
    db = tmp_path / "t.duckdb"
    traces.TraceStore(db).init()
    reader = subprocess.Popen([PY, "-c", HOLD, str(db), "120"], stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "held"
    proc = _start("run", str(suite), "--db", str(db), "--json", "--concurrency", "2")
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    # Every trial ran while the reader held the file: the run did not wait for it.
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "a reader holds" in line:
            break
    assert any("a reader holds" in line for line in seen), "".join(seen)
    assert reader.poll() is None
    out, rest = proc.communicate(timeout=300)
    err = "".join(seen) + rest
    assert proc.returncode == 0, err
    assert reader.wait(timeout=60) == 0
    summary = json.loads(out.splitlines()[-1])
    assert (summary["trials"], summary["passed"], summary["pending_spans"]) == (4, 4, 0)
    assert summary["late_spans"] > 0 and "added late" in err
    store = traces.TraceStore(db)
    per_trial = store.sql(
        "SELECT t.task, count(*) FILTER (WHERE s.name LIKE 'sandbox.exec%') AS commands, "
        "count(*) FILTER (WHERE s.name IN ('setup', 'agent', 'verify')) AS phases "
        "FROM trials t JOIN spans s ON s.trace_id = t.trace_id WHERE t.run_id = ? "
        "GROUP BY t.task ORDER BY t.task",
        [run_id],
    )
    assert per_trial.task.tolist() == names
    assert (per_trial.phases == 3).all() and (per_trial.commands >= 3).all()
    assert _orphans(store) == 0


def test_an_engine_that_does_not_come_back_stops_the_run_with_a_resume_hint(
    base_image: str, tmp_path: Path
) -> None:
    _require_local_engine()
    suite = tmp_path / "suite"
    _task(suite, "a", 30)
    db = tmp_path / "t.duckdb"
    proc = _start("run", str(suite), "--db", str(db), "--engine-wait", "3")
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    _wait_for(lambda: bool(_containers(run_id)), 120, "the trial's container")
    try:
        _stop_engine()
        _out, err = proc.communicate(timeout=120)
    finally:
        _start_engine()
    assert proc.returncode == 1, err
    assert "did not answer for 3 s" in err and f"harness run --resume {run_id}" in err
    store = traces.TraceStore(db)
    assert finished_trials(store, run_id) == set()  # the hit trial runs again on resume
    assert _orphans(store) == 0


def test_the_second_stop_request_aborts_and_says_it_was_not_the_first() -> None:
    """The CLI's signal handler says what a request did from its answer (a second signal can
    arrive while the first is being said)."""
    control = RunControl(grace_s=600, say=lambda _m: None)
    assert control.request_stop("SIGTERM", 143) is True
    assert control.stopping.is_set() and not control.aborting.is_set()
    assert control.request_stop("SIGTERM", 143) is False
    assert control.aborting.is_set() and (control.reason, control.exit_code) == ("SIGTERM", 143)
