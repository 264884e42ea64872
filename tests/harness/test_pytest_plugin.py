"""The pytest plugin, as a team uses it: `pytest --harness-tasks tasks/ --harness-agent X` in a
separate pytest process (the plugin loaded from its `pytest11` entry point), each task a test
item; -k, -x and --junitxml work; the trials are recorded in the store."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Imported now, not inside a test: pytester restores sys.modules after each test, and numpy
# (under the store) cannot be imported twice in one process.
from traces import TraceStore

pytest_plugins = ["pytester"]

BUNDLED = ROOT / "tasks"
BUNDLED_TASKS = sorted(p.name for p in BUNDLED.iterdir() if (p / "task.toml").is_file())


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        *args, "-p", "no:cacheprovider", "--harness-concurrency", "4", timeout=900
    )


def test_bundled_suite_passes_with_oracle(base_image: str, pytester: pytest.Pytester) -> None:
    db, junit = pytester.path / "t.duckdb", pytester.path / "junit.xml"
    res = _run(
        pytester,
        f"--harness-tasks={BUNDLED}", "--harness-agent", "oracle",
        "--harness-db", str(db), f"--junitxml={junit}",
    )  # fmt: skip
    res.assert_outcomes(passed=len(BUNDLED_TASKS))
    assert res.ret == 0
    res.stdout.fnmatch_lines(["collected 12 items", "harness: run run-* recorded*"])
    cases = list(ET.parse(junit).iter("testcase"))
    assert sorted(c.get("name") or "" for c in cases) == BUNDLED_TASKS
    assert {c.get("classname") for c in cases} == {"tasks"}
    props = {p.get("name"): p.get("value") for p in cases[0].iter("property")}
    assert (props["trials"], props["passed"]) == ("1", "1")
    # One suite run holds every trial, recorded like `harness run`'s.
    (run,) = TraceStore(db).runs()
    assert (run.trials, run.passed, run.agents) == (12, 12, ("oracle",))
    assert props["run_id"] == run.run_id


def test_bundled_suite_fails_with_nop(base_image: str, pytester: pytest.Pytester) -> None:
    db = pytester.path / "t.duckdb"
    res = _run(
        pytester, f"--harness-tasks={BUNDLED}", "--harness-agent", "nop", "--harness-db", str(db)
    )
    res.assert_outcomes(failed=len(BUNDLED_TASKS))
    assert res.ret == 1
    res.stdout.fnmatch_lines(
        [
            "fix-python-bug: 0/1 trials passed (0%), needs 100%; trial 0: failed (reward 0).*",
            "FAILED tasks::fix-python-bug - fix-python-bug: 0/1 trials*",
        ]
    )
    assert "Traceback" not in res.stdout.str()


def _tiny_suite(root: Path) -> Path:
    """Three tasks that pass when /tmp/done exists; the oracle creates it."""
    for name in ("alpha", "beta", "gamma"):
        d = root / name
        for rel, text in {
            "task.toml": "[agent]\ntimeout_sec = 20\n[verifier]\ntimeout_sec = 20\n",
            "instruction.md": "Create /tmp/done.",
            "environment/Dockerfile": "FROM harness-base:bookworm\n",
            "solution/solve.sh": "touch /tmp/done\n",
            "tests/test.sh": "test -f /tmp/done && echo 1 > /logs/verifier/reward.txt || "
            "echo 0 > /logs/verifier/reward.txt\n",
        }.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(text)
    return root


def test_k_selects_tasks_before_anything_runs(base_image: str, pytester: pytest.Pytester) -> None:
    suite = _tiny_suite(pytester.path / "suite")
    db = pytester.path / "t.duckdb"
    res = _run(
        pytester,
        f"--harness-tasks={suite}", "--harness-db", str(db), "--harness-trials", "2",
        "-k", "alpha or gamma",
    )  # fmt: skip
    res.assert_outcomes(passed=2, deselected=1)
    ran = TraceStore(db).sql("SELECT task, count(*) AS n FROM trials GROUP BY 1 ORDER BY 1")
    assert list(zip(ran.task, ran.n, strict=True)) == [("alpha", 2), ("gamma", 2)]


def test_x_stops_at_the_first_failing_task_and_min_pass_is_the_bar(
    base_image: str, pytester: pytest.Pytester
) -> None:
    suite = _tiny_suite(pytester.path / "suite")
    script = pytester.path / "agent.yaml"  # does alpha's work only
    script.write_text("tasks:\n  alpha: ['touch /tmp/done']\n")
    args = (
        f"--harness-tasks={suite}", "--harness-db", str(pytester.path / "t.duckdb"),
        "--harness-agent", "scripted", "--harness-agent-option", f"script={script}",
    )  # fmt: skip
    res = _run(pytester, *args, "-x")
    res.assert_outcomes(passed=1, failed=1)  # alpha passed, beta failed, gamma never ran
    res.stdout.fnmatch_lines(["*stopping after 1 failures*"])
    # No bar at all: every task passes whatever its trials did.
    assert _run(pytester, *args, "--harness-min-pass", "0").ret == 0
    # A bad option is a usage error before anything runs.
    bad = _run(pytester, f"--harness-tasks={suite}", "--harness-agent", "scripted")
    assert bad.ret == 4 and "--script FILE" in bad.stderr.str()
    bad = _run(pytester, f"--harness-tasks={suite}", "--harness-min-pass", "2")
    assert bad.ret == 4 and "--harness-min-pass 2.0: give a pass rate in 0..1" in bad.stderr.str()
