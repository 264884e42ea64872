"""The gate's decision and its reports: JUnit XML valid against the schema CI systems read,
with a failure exactly where the gate fails; Markdown with regressions first, literal task
names, and under GitHub's comment limit for 1,000 tasks."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

import reports
from reports import ResultRow, Verdict, compare, results_from_rows

SCHEMA = xmlschema.XMLSchema(Path(__file__).with_name("junit.xsd"))
GITHUB_COMMENT_LIMIT = 65_000


def side(
    counts: dict[str, tuple[int, int]], hashes: dict[str, str] | None = None
) -> reports.Results:
    rows = [
        ResultRow(
            task=task,
            trial_index=i,
            passed=i < c,
            reward=1.0 if i < c else 0.0,
            duration_s=1.5,
            content_hash=(hashes or {}).get(task, "h-" + task),
        )
        for task, (n, c) in counts.items()
        for i in range(n)
    ]
    return results_from_rows(rows, "side")


BASE = {"worse": (5, 5), "better": (5, 0), "edited": (5, 5), "steady": (5, 4), "gone": (2, 2)}
CAND = {"worse": (5, 0), "better": (5, 5), "edited": (5, 5), "steady": (5, 5), "new": (1, 1)}


@pytest.fixture(scope="module")
def mixed() -> reports.Comparison:
    return compare(side(BASE), side(CAND, hashes={"edited": "h-changed"}))


def test_verdicts_of_the_mixed_comparison(mixed: reports.Comparison) -> None:
    assert [(t.task, t.verdict) for t in mixed.tasks] == [
        ("worse", Verdict.REGRESSION),
        ("better", Verdict.IMPROVEMENT),
        ("edited", Verdict.NOT_COMPARABLE),
        ("gone", Verdict.NOT_COMPARABLE),
        ("new", Verdict.NOT_COMPARABLE),
        ("steady", Verdict.NO_CHANGE),
    ]


def test_the_gate_fails_on_the_suite_or_with_per_task_on_any_task(
    mixed: reports.Comparison,
) -> None:
    # The suite (worse, better, steady) did not move significantly: only --per-task fails.
    assert mixed.suite.verdict == Verdict.NO_CHANGE
    assert reports.gate(mixed).exit_code == 0
    per_task = reports.gate(mixed, per_task=True)
    assert per_task.exit_code == 1 and len(per_task.reasons) == 1
    assert per_task.reasons[0].startswith("task worse: regression: pass rate 5/5")
    assert "p = 0.0079" in per_task.reasons[0]
    any_change = reports.gate(mixed, fail_on="any-change", per_task=True)
    assert [r.split(":")[0] for r in any_change.reasons] == ["task worse", "task better"]
    suite_down = compare(
        side({f"t{i}": (1, 1) for i in range(8)}), side({f"t{i}": (1, 0) for i in range(8)})
    )
    down = reports.gate(suite_down)
    assert down.exit_code == 1 and down.reasons[0].startswith("suite: regression")
    with pytest.raises(ValueError, match="fail_on 'sometimes'"):
        reports.gate(mixed, fail_on="sometimes")


def _cases(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml)
    return {c.get("name") or "": c for c in root.iter("testcase")}


def test_junit_is_valid_and_fails_exactly_the_regressed_task(mixed: reports.Comparison) -> None:
    xml = reports.junit_xml(mixed, suite="my-suite")
    SCHEMA.validate(xml)
    cases = _cases(xml)
    assert set(cases) == {"worse", "better", "edited", "gone", "new", "steady"}
    assert {c.get("classname") for c in cases.values()} == {"my-suite"}
    failed = {n for n, c in cases.items() if c.find("failure") is not None}
    skipped = {n for n, c in cases.items() if c.find("skipped") is not None}
    assert failed == {"worse"} and skipped == {"edited", "gone", "new"}
    failure = cases["worse"].find("failure")
    assert failure is not None and failure.get("type") == "regression"
    message = failure.get("message") or ""
    assert "pass rate 5/5 (100.0%) -> 0/5 (0.0%)" in message and "p = 0.0079" in message
    skipped_edited = cases["edited"].find("skipped")
    assert skipped_edited is not None
    assert "task content changed" in (skipped_edited.get("message") or "")
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("6", "1", "3")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert float(props["suite.p_value"] or "nan") == mixed.suite.p_value
    assert props["suite.verdict"] == "no change"
    # With --fail-on any-change the improvement is a failure too.
    both = _cases(reports.junit_xml(mixed, fail_on="any-change"))
    assert {n for n, c in both.items() if c.find("failure") is not None} == {"worse", "better"}


def test_the_schema_rejects_what_ci_systems_reject() -> None:
    """The vendored schema is not vacuous: a testcase without classname, a count that is not
    a number, or a failure and a skip together are invalid."""
    good = (
        '<testsuites><testsuite name="s" tests="1" failures="0" errors="0">'
        '<testcase classname="s" name="t"/></testsuite></testsuites>'
    )
    SCHEMA.validate(good)
    for bad in (
        good.replace(' classname="s"', ""),
        good.replace('tests="1"', 'tests="one"'),
        good.replace(
            '<testcase classname="s" name="t"/>',
            '<testcase classname="s" name="t"><failure message="m" type="x"/><skipped/></testcase>',
        ),
    ):
        assert not SCHEMA.is_valid(bad), bad


def test_task_names_are_shown_literally(tmp_path: Path) -> None:
    names = ["pipe|name", "[bold]x[/bold]", "<script>", "esc\x1b[31mred", "@team *now*"]
    got = compare(side({n: (4, 4) for n in names}), side({n: (4, 0) for n in names}))
    xml_path = reports.write_junit(got, tmp_path / "out" / "j.xml")
    SCHEMA.validate(str(xml_path))
    assert set(_cases(xml_path.read_text())) == {
        "pipe|name",
        "[bold]x[/bold]",
        "<script>",
        "esc\\x1b[31mred",
        "@team *now*",
    }
    md = reports.markdown(got)
    rows = [line for line in md.splitlines() if line.startswith("| ") and "regression" in line]
    assert len(rows) == 5
    for row in rows:  # every row has its 8 cells: no name broke out of its cell
        assert len(re.split(r"(?<!\\)\|", row)) == 10, row
    assert "pipe\\|name" in md and "\\<script\\>" in md and "\\x1b\\[31mred" in md
    assert "\\@team \\*now\\*" in md and "\x1b" not in md


def test_markdown_lists_regressions_first_with_arrows_and_p_values(
    mixed: reports.Comparison,
) -> None:
    md = reports.markdown(mixed, per_task=True)
    assert md.startswith("### harness gate: ❌ regression")
    table = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[1] for row in table] == [
        "worse",
        "better",
        "edited",
        "gone",
        "new",
        "steady",
    ]
    assert "| 5/5 (100.0%) | 0/5 (0.0%) | ↓ 100.0 pp | 0.0079 |" in table[0]
    assert "↑ 100.0 pp" in table[1] and "**improvement**" in table[1]
    assert "not comparable: task content changed" in table[2]
    assert reports.markdown(mixed).startswith("### harness gate: ✅ no regression")


def test_markdown_for_1000_tasks_fits_a_github_comment() -> None:
    long = "x" * 60
    base = {f"task-{i:04}-{long}": (5, 5) for i in range(1000)}
    cand = dict(base)
    for i in range(0, 1000, 25):  # 40 regressions, spread through the suite
        cand[f"task-{i:04}-{long}"] = (5, 0)
    got = compare(side(base), side(cand))
    md = reports.markdown(got, per_task=True)
    assert len(md) < GITHUB_COMMENT_LIMIT
    regressed = [line for line in md.splitlines() if line.startswith("| 🔴 |")]
    assert len(regressed) == 40  # every regression is listed, before anything else
    assert "more tasks not listed" in md and "no change" in md.splitlines()[-1]
    listed = sum(1 for line in md.splitlines() if line.startswith("| ") and "task-" in line)
    counted = int(re.search(r"(\d+) more tasks not listed", md).group(1))  # type: ignore[union-attr]
    assert listed + counted == 1000
    assert got.suite.verdict == Verdict.REGRESSION  # 40 of 1,000 tasks all down is real


def test_reports_are_written_where_asked(tmp_path: Path, mixed: reports.Comparison) -> None:
    md = reports.write_markdown(mixed, tmp_path / "a" / "summary.md", per_task=True)
    assert md.read_text(encoding="utf-8") == reports.markdown(mixed, per_task=True)
    xml = reports.write_junit(mixed, tmp_path / "b" / "junit.xml")
    SCHEMA.validate(str(xml))
