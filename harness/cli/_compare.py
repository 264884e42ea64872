"""`harness results`, `harness compare` and `harness gate`: a run as rows, two runs compared
with significance tests, and the CI gate on the comparison.

The statistics, the verdicts and the JUnit/Markdown reports are :mod:`reports`; this module
reads the arguments, lays out the answer and picks the exit status. Task names and sources
are printed as ``Text`` (literally, never as markup).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ._common import DbOption, JsonOption, fail, out, say

if TYPE_CHECKING:
    import reports

__all__ = ["compare", "gate", "register", "results"]

# Exit statuses of `gate`: may land, regressed, could not compare.
PASS, REGRESSED, CANNOT = 0, 1, 2

PricesOption = Annotated[
    Path | None,
    typer.Option(
        "--prices",
        metavar="FILE",
        help="A TOML price list (USD per million tokens) extending the built-in one and "
        "$HARNESS_PRICES; see README.",
    ),
]
SideArgument = Annotated[
    str, typer.Argument(help="A run id in the store (or a unique prefix), or a results file.")
]
AlphaOption = Annotated[
    float, typer.Option(help="Significance level: a p-value at most this is significant.")
]
MinDeltaOption = Annotated[
    float,
    typer.Option(
        help="Smallest pass-rate change that counts, 0..1 (0.1 = 10 points); 0: any "
        "significant change."
    ),
]
PerTaskOption = Annotated[
    bool,
    typer.Option(help="Gate on any task's regression too, not only the suite's."),
]


def register(app: typer.Typer) -> None:
    app.command()(results)
    app.command()(compare)
    app.command()(gate)


def results(
    run_id: Annotated[str, typer.Argument(help="The run (or a unique prefix of its id).")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the rows to FILE: .parquet, .csv or .json (by its suffix).",
        ),
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
    prices: PricesOption = None,
) -> None:
    """A run's trials, one row each (task, trial index, agent, model, outcome, reward,
    steps, tokens, cost, duration, task content hash): small and stable, for committing as
    a baseline that `harness compare` and `harness gate` read."""
    import reports
    import traces

    store = traces.open(db)
    try:
        table = reports.load_prices(prices)
        rows = reports.run_results(store, reports.find_run(store, run_id), table)
        if output is not None:
            reports.write_results(rows, output)
    except (traces.StoreError, reports.ResultsError, reports.PricesError) as exc:
        raise fail(str(exc), CANNOT) from None
    tasks = len({r.task for r in rows.rows})
    if output is not None:
        say(f"wrote {len(rows.rows)} rows ({tasks} tasks) of {rows.label} to {output}")
        return
    if as_json:
        print(json.dumps(rows.to_dicts(), ensure_ascii=False))
        return
    table_out = Table(title=Text(f"results {rows.label}"), header_style="bold")
    columns = ["task", "trial", "outcome", "reward", "steps", "tokens in/out", "cost", "time"]
    for col in columns:
        table_out.add_column(col)
    for r in rows.rows:
        table_out.add_row(
            _text(r.task),
            "" if r.trial_index is None else str(r.trial_index),
            _text(r.outcome or ""),
            "" if r.reward is None else f"{r.reward:.2f}",
            "" if r.steps is None else str(r.steps),
            f"{r.input_tokens or 0:,}/{r.output_tokens or 0:,}",
            "n/a" if r.cost_usd is None else f"${r.cost_usd:.4f}",
            "" if r.duration_s is None else f"{r.duration_s:.1f} s",
        )
    out.print(table_out)
    say(f"{len(rows.rows)} trials of {tasks} tasks; `-o FILE` writes them (.parquet/.csv/.json)")


def _text(value: str) -> Text:
    import reports

    return Text(reports.printable(value))


def _compare(
    baseline: str,
    candidate: str,
    alpha: float,
    min_delta: float,
    db: str | None,
    prices: Path | None,
) -> reports.Comparison:
    """Load both sides and compare them; anything that stops that is exit status 2."""
    import reports
    import traces

    try:
        table = reports.load_prices(prices)
        store = traces.open(db)
        base = reports.load_results(baseline, store, table)
        cand = reports.load_results(candidate, store, table)
        return reports.compare(base, cand, alpha=alpha, min_delta=min_delta)
    except reports.CompareError as exc:
        raise fail(f"cannot compare: {exc}", CANNOT) from None
    except (reports.ResultsError, reports.PricesError, ValueError) as exc:
        raise fail(str(exc), CANNOT) from None


def compare(
    baseline: SideArgument,
    candidate: SideArgument,
    alpha: AlphaOption = 0.05,
    min_delta: MinDeltaOption = 0.0,
    per_task: PerTaskOption = False,
    as_json: JsonOption = False,
    db: DbOption = None,
    prices: PricesOption = None,
) -> None:
    """Compare a candidate run with a baseline: per task the pass rate, mean reward, their
    change and Fisher's exact p-value with a verdict (regression, improvement, no change,
    not comparable when the task's content changed); for the suite the pass-rate change
    paired over tasks with its 95% interval, p-value and verdict; tokens, cost and time.

    Exit 0 whenever the runs could be compared (whatever the verdict: `harness gate` is
    the one that fails), 2 when they cannot be (no common task, an unreadable file)."""
    import reports

    comparison = _compare(baseline, candidate, alpha, min_delta, db, prices)
    decision = reports.gate(comparison, per_task=per_task)
    if as_json:
        print(json.dumps(_json(comparison, decision, "regression", per_task), ensure_ascii=False))
        return
    _print_comparison(comparison, only_changes=False)
    _print_decision(decision, "regression", would=True)


def gate(
    baseline: SideArgument,
    candidate: SideArgument,
    fail_on: Annotated[
        str,
        typer.Option(
            "--fail-on",
            help="regression: fail on a significant drop; any-change: on a significant rise "
            "too (a change to explain before it lands).",
        ),
    ] = "regression",
    per_task: PerTaskOption = False,
    junit: Annotated[
        Path | None,
        typer.Option(
            "--junit",
            metavar="FILE",
            help="Write a JUnit XML report: a testcase per task, a failure per regression.",
        ),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option(
            "--markdown",
            metavar="FILE",
            help="Write a Markdown summary (a PR comment, or $GITHUB_STEP_SUMMARY).",
        ),
    ] = None,
    suite: Annotated[
        str, typer.Option(help="The suite's name in the JUnit report (testcase classname).")
    ] = "harness",
    alpha: AlphaOption = 0.05,
    min_delta: MinDeltaOption = 0.0,
    as_json: JsonOption = False,
    db: DbOption = None,
    prices: PricesOption = None,
) -> None:
    """Gate CI on a comparison (the same arguments as `harness compare`): exit 1 when the
    candidate regressed (the suite; with --per-task any task; with --fail-on any-change any
    significant change), 0 when it may land, 2 when the two cannot be compared. The reason
    is printed; --junit and --markdown write the reports CI systems show."""
    import reports

    if fail_on not in reports.FAIL_ON:
        raise fail(f"--fail-on {fail_on!r}: expected one of {', '.join(reports.FAIL_ON)}", 2)
    comparison = _compare(baseline, candidate, alpha, min_delta, db, prices)
    decision = reports.gate(comparison, fail_on=fail_on, per_task=per_task)
    try:
        if junit is not None:
            reports.write_junit(comparison, junit, suite=suite, fail_on=fail_on)
        if markdown is not None:
            reports.write_markdown(comparison, markdown, fail_on=fail_on, per_task=per_task)
    except OSError as exc:
        raise fail(f"cannot write the report: {exc}", CANNOT) from None
    if as_json:
        print(json.dumps(_json(comparison, decision, fail_on, per_task), ensure_ascii=False))
    else:
        _print_comparison(comparison, only_changes=True)
        _print_decision(decision, fail_on, would=False)
    if not decision.passed:
        raise typer.Exit(REGRESSED)


def _json(
    comparison: reports.Comparison, decision: reports.GateResult, fail_on: str, per_task: bool
) -> dict[str, Any]:
    doc = comparison.to_dict()
    doc["gate"] = {
        "exit_code": decision.exit_code,
        "passed": decision.passed,
        "reasons": list(decision.reasons),
        "fail_on": fail_on,
        "per_task": per_task,
    }
    return doc


def _print_comparison(comparison: reports.Comparison, only_changes: bool) -> None:
    import reports
    from reports import Verdict

    b, c = comparison.baseline, comparison.candidate
    out.print(Text(f"baseline  {b.source} ({len(b.rows)} trials)"), soft_wrap=True)
    out.print(Text(f"candidate {c.source} ({len(c.rows)} trials)"), soft_wrap=True)
    table = Table(header_style="bold")
    for col in ("task", "baseline", "candidate", "Δ pass rate", "p", "mean reward", "verdict"):
        table.add_column(col)
    styles = {Verdict.REGRESSION: "bold red", Verdict.IMPROVEMENT: "bold green"}
    hidden = 0
    for t in comparison.tasks:
        if only_changes and t.verdict == Verdict.NO_CHANGE:
            hidden += 1
            continue
        verdict = Text(t.verdict, style=styles.get(t.verdict, ""))
        if t.reason:
            verdict.append(f": {reports.printable(t.reason)}")
        table.add_row(
            _text(t.task),
            _side(t.baseline),
            _side(t.candidate),
            _pp(t.delta),
            "" if t.p_value is None else f"{t.p_value:.4f}",
            f"{_reward(t.baseline)} -> {_reward(t.candidate)}",
            verdict,
        )
    if table.rows:
        out.print(table)
    if hidden:
        out.print(
            f"{hidden} tasks with no change not listed (`harness compare` lists every task)",
            highlight=False,
        )
    s = comparison.suite
    lo, hi = s.ci95
    line = Text(
        f"suite: pass rate {s.baseline_pass_rate:.1%} -> {s.candidate_pass_rate:.1%} "
        f"({_pp(s.delta)}, 95% CI {lo * 100:+.1f} to {hi * 100:+.1f} pp) over {s.tasks} tasks; "
        f"{s.test}: p = {s.p_value:.4f} -> "
    )
    line.append(s.verdict, style=styles.get(s.verdict, "bold"))
    out.print(line, soft_wrap=True)
    usage = (
        "per trial: tokens "
        + _change(s.baseline.tokens_per_trial, s.candidate.tokens_per_trial, "{:,.0f}")
        + ", cost "
        + _change(s.baseline.cost_per_trial, s.candidate.cost_per_trial, "${:.4f}")
        + ", time "
        + _change(s.baseline.duration_per_trial, s.candidate.duration_per_trial, "{:.1f} s")
    )
    out.print(Text(usage), soft_wrap=True)
    for note in comparison.notes:
        say(f"note: {note}")


def _print_decision(decision: reports.GateResult, fail_on: str, would: bool) -> None:
    if decision.passed:
        out.print(Text("gate: pass" + (" (harness gate would exit 0)" if would else "")))
        return
    head = "gate would fail" if would else "gate: FAIL (exit 1)"
    out.print(Text(f"{head}, --fail-on {fail_on}:", style="bold red"))
    for reason in decision.reasons:
        out.print(Text(f"  {reason}"), soft_wrap=True)
    sys.stdout.flush()


def _side(side: reports.SideStats | None) -> str:
    if side is None:
        return "-"
    return f"{side.passed}/{side.trials} ({side.pass_rate:.0%})"


def _reward(side: reports.SideStats | None) -> str:
    return "-" if side is None or side.mean_reward is None else f"{side.mean_reward:.2f}"


def _pp(delta: float | None) -> str:
    return "" if delta is None else f"{delta * 100:+.1f} pp"


def _change(before: float | None, after: float | None, fmt: str) -> str:
    def one(v: float | None) -> str:
        return "n/a" if v is None else fmt.format(v)

    text = f"{one(before)} -> {one(after)}"
    if before and after is not None:
        text += f" ({(after - before) / before * 100:+.1f}%)"
    return text
