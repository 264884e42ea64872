"""The gate's decision, and the comparison as CI reads it: JUnit XML and Markdown.

JUnit XML is what every CI system shows as tests (GitLab's merge request widget, Jenkins'
junit step, GitHub's test reporter actions): one testcase per task, ``classname`` the suite,
a ``failure`` for each task whose verdict the gate fails on (with the numbers in its
message), ``skipped`` for a task that cannot be compared (with why). The suite's figures are
properties of the testsuite. Markdown is for a pull request comment and
``$GITHUB_STEP_SUMMARY``: the suite first, then a table with regressions first, kept under
GitHub's comment limit (65,536 characters) however many tasks there are.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from xml.etree import ElementTree as ET

from ._compare import Comparison, SideStats, SuiteComparison, TaskComparison, Verdict
from ._story import printable

FAIL_ON: Final = ("regression", "any-change")
MARKDOWN_LIMIT: Final = 60_000  # GitHub's comment limit is 65,536; room for a header


def failing_verdicts(fail_on: str) -> tuple[str, ...]:
    """The verdicts the gate fails on: regressions, or (``any-change``) improvements too."""
    if fail_on not in FAIL_ON:
        raise ValueError(f"fail_on {fail_on!r}: expected one of {', '.join(FAIL_ON)}")
    if fail_on == "regression":
        return (Verdict.REGRESSION,)
    return (Verdict.REGRESSION, Verdict.IMPROVEMENT)


@dataclass(frozen=True)
class GateResult:
    """What the gate decided: exit code 1 with the reasons, or 0 with none."""

    exit_code: int
    reasons: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


def gate(
    comparison: Comparison, *, fail_on: str = "regression", per_task: bool = False
) -> GateResult:
    """Whether the candidate may land: it fails (exit code 1) when the suite's verdict is one
    ``fail_on`` names, or, with ``per_task``, when any task's is.

    A comparison that could not be made never gets here (:class:`CompareError`): that is
    the CLI's exit code 2.
    """
    bad = failing_verdicts(fail_on)
    reasons: list[str] = []
    if comparison.suite.verdict in bad:
        reasons.append(f"suite: {describe_suite(comparison.suite)}")
    if per_task:
        reasons += [
            f"task {t.task}: {describe_task(t, comparison.alpha)}"
            for t in comparison.tasks
            if t.verdict in bad
        ]
    return GateResult(1 if reasons else 0, tuple(reasons))


# -- numbers for people ----------------------------------------------------------------------


def fmt_p(p: float | None) -> str:
    """A p-value: four decimals, or scientific below 0.0001."""
    if p is None:
        return ""
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def fmt_rate(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def fmt_pp(delta: float | None, arrows: bool = True) -> str:
    """A pass-rate change in percentage points, with an arrow: ``↓ 100.0 pp``."""
    if delta is None:
        return ""
    points = delta * 100
    if not arrows:
        return f"{points:+.1f} pp"
    if round(points, 1) == 0:
        return "→ 0.0 pp"
    return f"{'↑' if points > 0 else '↓'} {abs(points):.1f} pp"


def fmt_counts(side: SideStats | None) -> str:
    """``passed/trials (rate)``."""
    if side is None:
        return "-"
    return f"{side.passed}/{side.trials} ({fmt_rate(side.pass_rate)})"


def fmt_reward(side: SideStats | None) -> str:
    return "-" if side is None or side.mean_reward is None else f"{side.mean_reward:.2f}"


def fmt_change(before: float | None, after: float | None, unit: str) -> str:
    """``a → b (+x%)`` for tokens (``unit`` ``tok``), dollars (``$``) or seconds (``s``)."""

    def one(v: float | None) -> str:
        if v is None:
            return "n/a"
        if unit == "$":
            return f"${v:.4f}"
        if unit == "s":
            return f"{v:.1f} s"
        return f"{v:,.0f}"

    text = f"{one(before)} → {one(after)}"
    if before and after is not None:
        text += f" ({(after - before) / before * 100:+.1f}%)"
    return text


def describe_task(t: TaskComparison, alpha: float) -> str:
    """One line with a task's numbers, as the JUnit message and the gate's reasons say it."""
    if t.verdict == Verdict.NOT_COMPARABLE:
        return f"not comparable: {t.reason}"
    return (
        f"{t.verdict}: pass rate {fmt_counts(t.baseline)} -> {fmt_counts(t.candidate)}, "
        f"{fmt_pp(t.delta, arrows=False)}, p = {fmt_p(t.p_value)} "
        f"(Fisher's exact test, alpha {alpha:g}); mean reward {fmt_reward(t.baseline)} -> "
        f"{fmt_reward(t.candidate)}"
    )


def describe_suite(s: SuiteComparison) -> str:
    lo, hi = s.ci95
    return (
        f"{s.verdict}: pass rate {fmt_rate(s.baseline_pass_rate)} -> "
        f"{fmt_rate(s.candidate_pass_rate)} ({fmt_pp(s.delta, arrows=False)}, 95% CI "
        f"{lo * 100:+.1f} to {hi * 100:+.1f} pp) over {s.tasks} tasks; {s.test}: "
        f"p = {fmt_p(s.p_value)}"
    )


# -- JUnit XML -------------------------------------------------------------------------------

# XML 1.0 allows tab, newline, carriage return and everything from space up, less surrogates
# and U+FFFE/U+FFFF: anything else (an ANSI escape in a task name) is written as \xNN.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", printable(value, newlines=True))


def junit_xml(
    comparison: Comparison,
    *,
    suite: str = "harness",
    fail_on: str = "regression",
    timestamp: datetime | None = None,
) -> str:
    """The comparison as a JUnit XML report (the Ant/Jenkins/GitLab schema): one testcase per
    task, a failure for each task whose verdict ``fail_on`` names, skipped for a task that
    cannot be compared."""
    bad = failing_verdicts(fail_on)
    s = comparison.suite
    failures = sum(1 for t in comparison.tasks if t.verdict in bad)
    skipped = sum(1 for t in comparison.tasks if t.verdict == Verdict.NOT_COMPARABLE)
    total_time = sum(t.candidate.duration_s for t in comparison.tasks if t.candidate)
    counts = {
        "tests": str(len(comparison.tasks)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": f"{total_time:.3f}",
    }
    root = ET.Element("testsuites", {"name": _xml_text(suite), **counts})
    when = (timestamp or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    ts = ET.SubElement(
        root,
        "testsuite",
        {
            "name": _xml_text(suite),
            **counts,
            "timestamp": when.isoformat(timespec="seconds"),
            "hostname": _xml_text(socket.gethostname() or "localhost"),
        },
    )
    props = ET.SubElement(ts, "properties")
    for name, value in (
        ("baseline", comparison.baseline.source),
        ("candidate", comparison.candidate.source),
        ("alpha", f"{comparison.alpha:g}"),
        ("min_delta", f"{comparison.min_delta:g}"),
        ("fail_on", fail_on),
        ("suite.tasks", str(s.tasks)),
        ("suite.baseline_pass_rate", repr(s.baseline_pass_rate)),
        ("suite.candidate_pass_rate", repr(s.candidate_pass_rate)),
        ("suite.delta", repr(s.delta)),
        ("suite.ci95_low", repr(s.ci95[0])),
        ("suite.ci95_high", repr(s.ci95[1])),
        ("suite.p_value", repr(s.p_value)),
        ("suite.test", s.test),
        ("suite.verdict", s.verdict),
    ):
        ET.SubElement(props, "property", {"name": name, "value": _xml_text(value)})
    for t in comparison.tasks:
        case = ET.SubElement(
            ts,
            "testcase",
            {
                "classname": _xml_text(suite),
                "name": _xml_text(t.task),
                "time": f"{t.candidate.duration_s if t.candidate else 0.0:.3f}",
            },
        )
        line = _xml_text(describe_task(t, comparison.alpha))
        if t.verdict == Verdict.NOT_COMPARABLE:
            ET.SubElement(case, "skipped", {"message": line})
        elif t.verdict in bad:
            failure = ET.SubElement(case, "failure", {"message": line, "type": t.verdict})
            failure.text = _xml_text(_details(t))
        out = ET.SubElement(case, "system-out")
        out.text = _xml_text(_details(t))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _details(t: TaskComparison) -> str:
    lines = []
    for name, side in (("baseline", t.baseline), ("candidate", t.candidate)):
        if side is None:
            lines.append(f"{name}: not run")
            continue
        cost = "n/a" if side.cost_usd is None else f"${side.cost_usd:.4f}"
        lines.append(
            f"{name}: {side.passed}/{side.trials} passed, mean reward {fmt_reward(side)}, "
            f"tokens {side.input_tokens:,} in / {side.output_tokens:,} out, cost {cost}, "
            f"time {side.duration_s:.1f} s"
        )
    if t.p_value is not None:
        lines.append(f"Fisher's exact test p = {t.p_value!r}")
    return "\n".join(lines)


def write_junit(
    comparison: Comparison,
    path: str | os.PathLike[str],
    *,
    suite: str = "harness",
    fail_on: str = "regression",
) -> Path:
    """Write :func:`junit_xml` to ``path`` (its folder is created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(junit_xml(comparison, suite=suite, fail_on=fail_on), encoding="utf-8")
    return out


# -- Markdown --------------------------------------------------------------------------------

_PUNCT = re.compile(r"([\\`*_\[\]<>|~&#!$@])")
_MARK = {
    Verdict.REGRESSION: "🔴",
    Verdict.IMPROVEMENT: "🟢",
    Verdict.NOT_COMPARABLE: "⚪",
    Verdict.NO_CHANGE: "",
}


def md_text(value: str) -> str:
    """Text from a task or a file, shown literally in Markdown: control characters as
    ``\\xNN``, every character Markdown or HTML could act on escaped."""
    return _PUNCT.sub(r"\\\1", printable(value))


def markdown(
    comparison: Comparison,
    *,
    fail_on: str = "regression",
    per_task: bool = False,
    limit: int = MARKDOWN_LIMIT,
) -> str:
    """The comparison as Markdown for a pull request comment or a step summary: the gate's
    decision, the suite, then every task (regressions first) while it fits in ``limit``
    characters; the tasks left out are counted by verdict."""
    decision = gate(comparison, fail_on=fail_on, per_task=per_task)
    s = comparison.suite
    b, c = comparison.baseline, comparison.candidate
    head = "❌ regression" if decision.exit_code else "✅ no regression"
    if fail_on == "any-change":
        head = "❌ changed" if decision.exit_code else "✅ no change"
    lo, hi = s.ci95
    lines = [
        f"### harness gate: {head}",
        "",
        f"Baseline {md_text(b.label)} ({len(b.rows)} trials) vs candidate "
        f"{md_text(c.label)} ({len(c.rows)} trials); "
        f"alpha {comparison.alpha:g}, min delta {comparison.min_delta * 100:g} pp"
        + (", every task gates" if per_task else "")
        + ".",
        "",
        f"**Suite** ({s.tasks} tasks compared): pass rate {fmt_rate(s.baseline_pass_rate)} → "
        f"{fmt_rate(s.candidate_pass_rate)} ({fmt_pp(s.delta)}, 95% CI {lo * 100:+.1f} to "
        f"{hi * 100:+.1f} pp); {md_text(s.test)}: p = {fmt_p(s.p_value)} → **{s.verdict}**",
        "",
        f"Per trial: tokens "
        f"{fmt_change(s.baseline.tokens_per_trial, s.candidate.tokens_per_trial, 'tok')}, cost "
        f"{fmt_change(s.baseline.cost_per_trial, s.candidate.cost_per_trial, '$')}, time "
        f"{fmt_change(s.baseline.duration_per_trial, s.candidate.duration_per_trial, 's')}.",
        "",
        " · ".join(f"{v}: {len(comparison.by_verdict(v))}" for v in Verdict.ALL),
        "",
        "| | task | baseline | candidate | Δ pass rate | p | mean reward | verdict |",
        "|:-:|---|--:|--:|--:|--:|--:|---|",
    ]
    text = "\n".join(lines) + "\n"
    left: dict[str, int] = {}
    for t in comparison.tasks:
        row = _md_row(t)
        if left or len(text) + len(row) + 400 > limit:
            left[t.verdict] = left.get(t.verdict, 0) + 1
            continue
        text += row
    if left:
        counted = ", ".join(f"{n} {v}" for v, n in left.items())
        text += (
            f"\n{sum(left.values())} more tasks not listed ({counted}), to stay within a "
            "comment's size; `harness compare --json` lists every task.\n"
        )
    if comparison.notes:
        text += "\n" + "\n".join(f"Note: {md_text(n)}" for n in comparison.notes) + "\n"
    return text


def _md_row(t: TaskComparison) -> str:
    if t.verdict == Verdict.NOT_COMPARABLE:
        verdict = f"not comparable: {md_text(t.reason or '')}"
    elif t.verdict == Verdict.NO_CHANGE:
        verdict = t.verdict
    else:
        verdict = f"**{t.verdict}**"
    reward = f"{fmt_reward(t.baseline)} → {fmt_reward(t.candidate)}"
    cells = [
        _MARK[t.verdict],
        md_text(t.task),
        fmt_counts(t.baseline),
        fmt_counts(t.candidate),
        fmt_pp(t.delta),
        fmt_p(t.p_value),
        reward,
        verdict,
    ]
    return "| " + " | ".join(cells) + " |\n"


def write_markdown(
    comparison: Comparison,
    path: str | os.PathLike[str],
    *,
    fail_on: str = "regression",
    per_task: bool = False,
    limit: int = MARKDOWN_LIMIT,
) -> Path:
    """Write :func:`markdown` to ``path`` (its folder is created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(comparison, fail_on=fail_on, per_task=per_task, limit=limit)
    out.write_text(text, encoding="utf-8")
    return out
