"""Snapshots: `harness run --snapshot` commits the sandbox after each agent step; what they
cost is said; `harness gc` prunes those whose run is gone, or by age."""

from __future__ import annotations

import json
from pathlib import Path

import docker

import traces
from sandbox import Sandbox, find_snapshots
from tests.conftest import harness_cli

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "tasks"


def test_run_snapshots_each_step_and_gc_prunes_them(base_image: str, tmp_path: Path) -> None:
    script = tmp_path / "s.yaml"
    script.write_text(
        json.dumps(
            {"commands": ["echo one > /tmp/one", "echo two > /tmp/two", "echo three > /tmp/three"]}
        )
    )
    db = tmp_path / "t.duckdb"
    res = harness_cli(
        "run", str(TASKS), "--task-filter", "word-frequency", "--agent", "scripted",
        "--script", str(script), "--db", str(db), "--snapshot", "--json",
    )  # fmt: skip
    assert res.returncode in (0, 1), res.stderr
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["snapshots"]["count"] == 3 and summary["snapshots"]["seconds"] > 0
    store = traces.TraceStore(db)
    trial = store.trials()[0].trial_id
    try:
        snaps = find_snapshots(trial)
        assert [s.step for s in snaps] == [1, 2, 3]
        assert {s.run_id for s in snaps} == {store.trials()[0].run_id}
        # Recorded as spans of the agent phase, with their image and size.
        spans = store.sql(
            "SELECT attributes->>'$.\"harness.action.step\"' AS step, "
            "attributes->>'$.\"harness.snapshot.image\"' AS image FROM spans "
            "WHERE name = 'sandbox.snapshot' ORDER BY start_ns"
        )
        assert list(spans.step) == ["1", "2", "3"]
        assert list(spans.image) == [s.image_id for s in snaps]
        # A sandbox from the snapshot after step 2 holds steps 1 and 2's files, not step 3's.
        with Sandbox(snaps[1].image_id) as sb:
            assert sb.run("cat /tmp/one /tmp/two").stdout_text == "one\ntwo\n"
            assert sb.run("test -e /tmp/three").exit_code == 1
        # The run is still in its store: a plain gc keeps its snapshots ...
        assert f"trial {trial[:8]}" not in harness_cli("gc", "--dry-run").stdout
        bad = harness_cli("gc", "--snapshots", "--older-than", "soon")
        assert bad.returncode == 2 and "e.g. 7d" in bad.stderr
        # ... until the store is gone.
        db.unlink()
        res = harness_cli("gc", "--json")
        assert res.returncode == 0, res.stderr
        removed = [r for r in json.loads(res.stdout)["removed"] if r["kind"] == "snapshot"]
        assert {r["id"] for r in removed} >= {s.image_id for s in snaps}
        assert find_snapshots(trial) == []
    finally:
        api = docker.from_env().api
        for s in find_snapshots(trial):
            api.remove_image(s.image_id, force=True)


def test_snapshots_are_pruned_by_age(base_image: str, tmp_path: Path) -> None:
    with Sandbox(base_image) as sb:
        sb.run("echo x > /tmp/x")
        snap = sb.snapshot({"harness.trial.id": "age-test", "harness.action.step": "1"})
    try:
        assert harness_cli("gc", "--snapshots", "--older-than", "1d", "--json").returncode == 0
        assert [s.image_id for s in find_snapshots("age-test")] == [snap.image_id]
        res = harness_cli("gc", "--snapshots", "--older-than", "0s", "--json")
        assert snap.image_id in [r["id"] for r in json.loads(res.stdout)["removed"]]
        assert find_snapshots("age-test") == []
    finally:
        for s in find_snapshots("age-test"):
            docker.from_env().api.remove_image(s.image_id, force=True)
