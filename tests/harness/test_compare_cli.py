"""`harness results`, `compare` and `gate` on real runs: a planted regression fails the gate
with a JUnit failure for exactly that task, two oracle runs do not, a one-trial flip is not a
regression, an edited task is not comparable; every number equals `harness sql`'s."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
import yaml
from scipy import stats

import traces
from tests.conftest import ROOT, harness_cli

SCHEMA = xmlschema.XMLSchema(ROOT / "tests" / "reports" / "junit.xsd")
TASKS = ("alpha", "beta", "breakable")  # each passes when /tmp/done exists


def _suite(root: Path) -> Path:
    for name in TASKS:
        d = root / name
        for rel, text in {
            "task.toml": "[agent]\ntimeout_sec = 20\n[verifier]\ntimeout_sec = 20\n",
            "instruction.md": f"Create /tmp/done ({name}).",
            "environment/Dockerfile": "FROM harness-base:bookworm\n",
            "solution/solve.sh": "touch /tmp/done\n",
            "tests/test.sh": "test -f /tmp/done && echo 1 > /logs/verifier/reward.txt || "
            "echo 0 > /logs/verifier/reward.txt\n",
        }.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(text)
    return root


def _run(db: Path, suite: Path, agent: str, trials: int, *extra: str) -> str:
    res = harness_cli(
        "run", str(suite), "--agent", agent, "--trials", str(trials), "--concurrency", "4",
        "--db", str(db), "--json", *extra,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()[0]


@pytest.fixture(scope="module")
def runs(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One store with the runs every test compares (built once: real trials are slow)."""
    tmp = tmp_path_factory.mktemp("compare")
    suite = _suite(tmp / "suite")
    # The same suite with one task's instruction edited: its content hash differs.
    edited = tmp / "edited"
    shutil.copytree(suite, edited)
    (edited / "beta" / "instruction.md").write_text("Create /tmp/done, and say so.")
    breaks = tmp / "breaks.yaml"  # does the work for alpha and beta, not for breakable
    breaks.write_text("tasks:\n  alpha: ['touch /tmp/done']\n  beta: ['touch /tmp/done']\n")
    db = tmp / "t.duckdb"
    ids = {
        "base": _run(db, suite, "oracle", 4),
        "planted": _run(db, suite, "scripted", 4, "--script", str(breaks)),
        "oracle2": _run(db, suite, "oracle", 2),
        "one": _run(db, suite, "oracle", 1),
        "one_flip": _run(db, suite, "scripted", 1, "--script", str(breaks)),
        "edited": _run(db, edited, "oracle", 1),
    }
    return {**ids, "db": str(db), "tmp": str(tmp)}


def _sql_counts(db: str, run_id: str) -> dict[str, tuple[int, int]]:
    """(trials, passed) per task, as a user gets them from `harness sql`."""
    res = harness_cli(
        "sql",
        "SELECT task, count(*) AS n, count(*) FILTER (WHERE passed) AS c FROM trials "
        f"WHERE run_id = '{run_id}' AND NOT superseded GROUP BY task ORDER BY task",
        "--db", db, "--format", "json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return {r["task"]: (r["n"], r["c"]) for r in json.loads(res.stdout)}


def _fisher(b: tuple[int, int], c: tuple[int, int]) -> float:
    return float(stats.fisher_exact([[b[1], b[0] - b[1]], [c[1], c[0] - c[1]]]).pvalue)


def test_a_planted_regression_fails_the_gate_for_exactly_that_task(
    runs: dict[str, str], tmp_path: Path
) -> None:
    junit, md = tmp_path / "junit.xml", tmp_path / "summary.md"
    res = harness_cli(
        "gate", runs["base"], runs["planted"], "--db", runs["db"], "--per-task",
        "--junit", str(junit), "--markdown", str(md), "--suite", "bundled",
    )  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    assert "gate: FAIL (exit 1)" in res.stdout
    assert "task breakable: regression: pass rate 4/4 (100.0%) -> 0/4 (0.0%)" in res.stdout
    assert "Traceback" not in res.stderr
    SCHEMA.validate(str(junit))
    cases = {c.get("name"): c for c in ET.parse(junit).iter("testcase")}
    assert set(cases) == set(TASKS) and {c.get("classname") for c in cases.values()} == {"bundled"}
    failed = [name for name, c in cases.items() if c.find("failure") is not None]
    assert failed == ["breakable"]
    # The right p-value: Fisher's exact test on 4/4 against 0/4 is 2/70.
    message = cases["breakable"].find("failure").get("message")  # type: ignore[union-attr]
    assert "p = 0.0286" in message and abs(2 / 70 - 0.0286) < 5e-5
    # Without --per-task the suite decides: one task of three moving is not a suite change.
    suite_only = harness_cli("gate", runs["base"], runs["planted"], "--db", runs["db"])
    assert suite_only.returncode == 0, suite_only.stdout
    assert "gate: pass" in suite_only.stdout


def test_junit_and_markdown_numbers_equal_what_sql_returns(
    runs: dict[str, str], tmp_path: Path
) -> None:
    junit, md = tmp_path / "junit.xml", tmp_path / "summary.md"
    harness_cli(
        "gate", runs["base"], runs["planted"], "--db", runs["db"], "--per-task",
        "--junit", str(junit), "--markdown", str(md),
    )  # fmt: skip
    base, cand = _sql_counts(runs["db"], runs["base"]), _sql_counts(runs["db"], runs["planted"])
    assert base == {"alpha": (4, 4), "beta": (4, 4), "breakable": (4, 4)}
    assert cand == {"alpha": (4, 4), "beta": (4, 4), "breakable": (4, 0)}
    rows = {}
    for line in md.read_text(encoding="utf-8").splitlines():
        m = re.match(
            r"\| [^|]* \| (\S+) \| (\d+)/(\d+) [^|]*\| (\d+)/(\d+) [^|]*\|[^|]*\| ([\d.]+) \|", line
        )
        if m:
            task, bc, bn, cc, cn, p = m.groups()
            rows[task] = ((int(bn), int(bc)), (int(cn), int(cc)), float(p))
    assert set(rows) == set(TASKS)
    for task, (b, c, p) in rows.items():
        assert (b, c) == (base[task], cand[task])
        assert p == pytest.approx(_fisher(base[task], cand[task]), abs=5e-5)
    for case in ET.parse(junit).iter("testcase"):
        task = case.get("name") or ""
        out = case.findtext("system-out") or ""
        b, c = base[task], cand[task]
        assert (
            f"baseline: {b[1]}/{b[0]} passed" in out and f"candidate: {c[1]}/{c[0]} passed" in out
        )
        p = float(re.search(r"Fisher's exact test p = (\S+)", out).group(1))  # type: ignore[union-attr]
        assert p == pytest.approx(_fisher(b, c), rel=1e-12)
    # The suite's pass rates are the tasks' mean pass rate, as SQL computes it.
    suite_sql = harness_cli(
        "sql",
        f"SELECT avg(r) AS rate FROM (SELECT avg(passed::INT) AS r FROM trials WHERE run_id = "
        f"'{runs['planted']}' AND NOT superseded GROUP BY task)",
        "--db", runs["db"], "--format", "json",
    )  # fmt: skip
    rate = json.loads(suite_sql.stdout)[0]["rate"]
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).iter("property")}
    assert float(props["suite.candidate_pass_rate"] or "nan") == pytest.approx(rate)
    assert f"{rate * 100:.1f}%" in md.read_text(encoding="utf-8")


def test_two_oracle_runs_give_no_change(runs: dict[str, str]) -> None:
    res = harness_cli("gate", runs["base"], runs["oracle2"], "--db", runs["db"], "--per-task")
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(
        harness_cli("compare", runs["base"], runs["oracle2"], "--db", runs["db"], "--json").stdout
    )
    assert {t["verdict"] for t in doc["tasks"]} == {"no change"}
    assert doc["suite"]["verdict"] == "no change" and doc["suite"]["delta"] == 0
    assert doc["gate"] == {
        "exit_code": 0, "passed": True, "reasons": [], "fail_on": "regression", "per_task": False,
    }  # fmt: skip


def test_a_one_trial_flip_is_not_a_regression(runs: dict[str, str]) -> None:
    res = harness_cli(
        "compare", runs["one"], runs["one_flip"], "--db", runs["db"], "--json", "--per-task"
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    flip = next(t for t in doc["tasks"] if t["task"] == "breakable")
    assert (flip["delta"], flip["p_value"], flip["verdict"]) == (-1.0, 1.0, "no change")
    assert doc["suite"]["test"].startswith("McNemar's exact test on the 1 discordant tasks")
    assert doc["suite"]["p_value"] == stats.binomtest(0, 1, 0.5).pvalue == 1.0
    gate = harness_cli("gate", runs["one"], runs["one_flip"], "--db", runs["db"], "--per-task")
    assert gate.returncode == 0, gate.stdout


def test_a_task_whose_content_changed_is_not_comparable(
    runs: dict[str, str], tmp_path: Path
) -> None:
    junit = tmp_path / "junit.xml"
    res = harness_cli(
        "gate", runs["one"], runs["edited"], "--db", runs["db"], "--per-task", "--junit", str(junit)
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "beta" in res.stdout and "not comparable: task content changed" in res.stdout
    SCHEMA.validate(str(junit))
    skipped = {
        c.get("name"): c.find("skipped").get("message")  # type: ignore[union-attr]
        for c in ET.parse(junit).iter("testcase")
        if c.find("skipped") is not None
    }
    assert list(skipped) == ["beta"] and "content hash" in (skipped["beta"] or "")
    hashes = traces.TraceStore(runs["db"]).sql(
        "SELECT run_id, content_hash FROM trials WHERE task = 'beta' AND run_id IN (?, ?)",
        [runs["one"], runs["edited"]],
    )
    by_run = dict(zip(hashes.run_id, hashes.content_hash, strict=True))
    assert by_run[runs["one"]] != by_run[runs["edited"]]
    assert (
        by_run[runs["one"]][:12] in skipped["beta"]
        and by_run[runs["edited"]][:12] in skipped["beta"]
    )


def test_a_committed_results_file_gates_like_the_run(runs: dict[str, str], tmp_path: Path) -> None:
    rows = json.loads(harness_cli("results", runs["base"], "--db", runs["db"], "--json").stdout)
    assert len(rows) == 12 and None not in {r["content_hash"] for r in rows}
    assert [(r["task"], r["trial_index"]) for r in rows] == [
        (t, i) for t in TASKS for i in range(4)
    ]
    from_run = harness_cli("compare", runs["base"], runs["planted"], "--db", runs["db"], "--json")
    expected = json.loads(from_run.stdout)
    for suffix in (".json", ".csv", ".parquet"):
        baseline = tmp_path / f"baseline{suffix}"
        res = harness_cli("results", runs["base"], "--db", runs["db"], "-o", str(baseline))
        assert res.returncode == 0 and "wrote 12 rows (3 tasks)" in res.stderr, res.stderr
        from_file = harness_cli(
            "compare", str(baseline), runs["planted"], "--db", runs["db"], "--json"
        )
        got = json.loads(from_file.stdout)
        assert (got["tasks"], got["suite"]) == (expected["tasks"], expected["suite"]), suffix
    gate = harness_cli("gate", str(baseline), runs["planted"], "--db", runs["db"], "--per-task")
    assert gate.returncode == 1


def test_what_cannot_be_compared_exits_2_with_the_reason(
    runs: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    other = tmp_path / "other.json"
    other.write_text('[{"task": "elsewhere", "passed": true}]')
    cases = {
        (str(bad), runs["base"]): "not valid JSON",
        (str(tmp_path / "missing.csv"), runs["base"]): "no results file",
        ("run-does-not-exist", runs["base"]): "neither a results file nor a run",
        (str(other), runs["base"]): "cannot compare: the runs have no task in common",
    }
    for i, ((left, right), message) in enumerate(cases.items()):
        command = ("gate", "compare")[i % 2]  # both exit 2 the same way
        res = harness_cli(command, left, right, "--db", runs["db"])
        assert res.returncode == 2, (command, left, res.stdout, res.stderr)
        assert message in res.stderr and "Traceback" not in res.stderr
    res = harness_cli("gate", runs["base"], runs["planted"], "--db", runs["db"], "--fail-on", "x")
    assert res.returncode == 2 and "--fail-on 'x'" in res.stderr
    res = harness_cli("compare", runs["base"], runs["planted"], "--db", runs["db"], "--alpha", "2")
    assert res.returncode == 2 and "alpha 2.0 is not a significance level" in res.stderr
    res = harness_cli("results", runs["base"], "--db", runs["db"], "-o", str(tmp_path / "r.xlsx"))
    assert res.returncode == 2 and "*.parquet, *.csv or *.json" in res.stderr


def test_prices_from_a_user_file_reach_results(runs: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "prices.toml"
    bad.write_text("[gpt-9.1]\ninput = 1\noutput = 1\n")
    res = harness_cli("results", runs["base"], "--db", runs["db"], "--prices", str(bad))
    assert res.returncode == 2 and 'quote the model name, ["gpt-9.1"]' in res.stderr


def test_the_example_workflow_is_a_complete_github_actions_workflow() -> None:
    path = ROOT / ".ci" / "github-workflow-example.yml"
    text = path.read_text()
    doc = yaml.safe_load(text)
    assert doc["name"]
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in on
    (job,) = doc["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    steps = job["steps"]
    assert all(("uses" in s) != ("run" in s) for s in steps)
    uses = [s["uses"].split("@")[0] for s in steps if "uses" in s]
    assert uses == ["actions/checkout", "actions/setup-python", "actions/upload-artifact"]
    runs = " ".join(s.get("run", "") for s in steps)
    for needed in (
        "harness setup",
        "harness run",
        "harness gate",
        "--junit",
        "$GITHUB_STEP_SUMMARY",
    ):
        assert needed in runs
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and "record.duckdb" in upload["with"]["path"]
    # The README shows this very file.
    readme = (ROOT / "README.md").read_text()
    assert "```yaml\n" + text + "```" in readme
