"""A run's trials read at once (``traces.trial_records``) say exactly what the per-trial read
model says of each trial, plus its phases and the sandbox's limits; and they take one session,
not one lookup per trial and kind."""

from __future__ import annotations

from pathlib import Path

import pytest

import traces
from tests.reports.synthetic import GIB, synthetic_run
from tests.traces.test_model import record_model_trial
from traces import Recorder, StoreError, TraceStore
from traces.vocab import Outcome, Span


def _same_as_the_read_model(store: TraceStore, rec: traces.TrialRecord) -> None:
    tid = rec.trial.trial_id
    assert rec.trial == store.trial(tid)
    assert list(rec.commands) == store.commands(tid)
    assert list(rec.actions) == store.actions(tid)
    assert list(rec.file_changes) == store.file_changes(tid)
    assert list(rec.resource_samples) == store.resource_samples(tid)
    assert list(rec.model_turns) == store.model_turns(tid)


def test_hand_built_trials_read_alike(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.duckdb")
    with Recorder(store) as rec:
        record_model_trial(rec, run_id="run-a", trial_id="trial-a1", task="t1")
        record_model_trial(
            rec, run_id="run-a", trial_id="trial-a2", task="t2", offset_ms=2000,
            outcome=Outcome.INFRA_ERROR, error="sandbox died",
        )  # fmt: skip
        record_model_trial(rec, run_id="run-b", trial_id="other-b1", task="t1", offset_ms=5000)
    records = traces.trial_records(store, "run-a")
    assert [r.trial.trial_id for r in records] == ["trial-a1", "trial-a2"]  # not run-b's
    for r in records:
        _same_as_the_read_model(store, r)
        # Its phases in the order they started, each with its stage; no sandbox start here.
        assert [(p.name, p.stage) for p in r.phases] == [
            (Span.SETUP, None),
            (Span.AGENT, "build"),
            (Span.VERIFY, "build"),
        ]
        assert r.memory_limit_bytes is None and r.cpu_limit is None
    assert records[0].phases[1].duration_ms == 500.0
    only = traces.trial_records(store, "run-a", trial_ids=["trial-a2"])
    assert [r.trial.trial_id for r in only] == ["trial-a2"]
    with pytest.raises(StoreError, match="no run 'run-c'"):
        traces.trial_records(store, "run-c")


def test_a_synthetic_run_reads_alike(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.duckdb")
    run = synthetic_run(store, trials=30, actions=6, seed=3)
    records = traces.trial_records(store, run.run_id)
    assert len(records) == 30
    assert {r.trial.trial_id: r.trial.outcome for r in records} == run.outcomes
    for r in records[::7]:
        _same_as_the_read_model(store, r)
        assert r.memory_limit_bytes == 2 * GIB and r.cpu_limit == 1.0
        assert [p.name for p in r.phases][:2] == [Span.SETUP, Span.SANDBOX_START]
        assert r.phases[-1].name == Span.SANDBOX_STOP
