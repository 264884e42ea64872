"""Every bundled task passes with the oracle and fails with nop: both facts are tested."""

from __future__ import annotations

from pathlib import Path

import pytest

import traces
from harness import find_tasks, load_agent, load_task, run_trial, task_image

TASKS = Path(__file__).resolve().parents[2] / "tasks"
BUNDLED = sorted(p.name for p in find_tasks([TASKS]))


def test_the_suite_has_at_least_twelve_valid_tasks() -> None:
    assert len(BUNDLED) >= 12
    for name in BUNDLED:
        task, problems = load_task(TASKS / name)
        assert task is not None and not problems, (name, problems)
        assert task.environment.network == "none"


@pytest.mark.parametrize("name", BUNDLED)
def test_oracle_passes_and_nop_fails(name: str, base_image: str, tmp_path: Path) -> None:
    task, _ = load_task(TASKS / name)
    assert task is not None
    image = task_image(task)
    with traces.Recorder(tmp_path / "t.duckdb") as rec:
        oracle = run_trial(task, load_agent("oracle"), image, rec, "run-bundled", 0)
        nop = run_trial(task, load_agent("nop"), image, rec, "run-bundled", 1)
    assert (oracle.outcome, oracle.reward) == ("passed", 1.0), oracle.error
    assert nop.outcome == "failed" and nop.reward == 0.0, nop.error
