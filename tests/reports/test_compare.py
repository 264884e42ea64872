"""Comparing runs: every p-value and interval is scipy's on the same counts, verdicts follow
alpha and min-delta, changed or missing tasks are not compared, and results files round-trip
(Parquet, CSV, JSON) or are refused with the file, the row and the column."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import reports
import traces
from reports import ResultRow, Results, Verdict, compare, results_from_rows


def side(
    counts: dict[str, tuple[int, int]],
    hashes: dict[str, str] | None = None,
    label: str = "side",
    **extra: object,
) -> Results:
    """Rows for {task: (trials, passed)}: the first ``passed`` trials of each task pass."""
    rows = []
    for task, (n, c) in counts.items():
        for i in range(n):
            rows.append(
                ResultRow(
                    task=task,
                    trial_index=i,
                    passed=i < c,
                    outcome="passed" if i < c else "failed",
                    reward=1.0 if i < c else 0.0,
                    duration_s=2.0,
                    content_hash=(hashes or {}).get(task, f"hash-{task}"),
                    **extra,  # type: ignore[arg-type]
                )
            )
    return results_from_rows(rows, label)


@pytest.mark.parametrize(
    ("base", "cand"),
    [((5, 5), (5, 0)), ((4, 4), (4, 0)), ((3, 3), (3, 0)), ((10, 7), (10, 2)), ((6, 1), (8, 7))],
)
def test_each_task_gets_fishers_exact_p_on_its_pass_counts(
    base: tuple[int, int], cand: tuple[int, int]
) -> None:
    got = compare(side({"t": base, "same": (3, 3)}), side({"t": cand, "same": (3, 3)}))
    task = next(t for t in got.tasks if t.task == "t")
    (nb, cb), (nc, cc) = base, cand
    expected = stats.fisher_exact([[cb, nb - cb], [cc, nc - cc]], alternative="two-sided").pvalue
    assert task.p_value == pytest.approx(expected, rel=1e-12)
    assert task.delta == pytest.approx(cc / nc - cb / nb)
    significant = expected <= 0.05
    want = Verdict.NO_CHANGE
    if significant:
        want = Verdict.REGRESSION if task.delta < 0 else Verdict.IMPROVEMENT
    assert task.verdict == want


def test_three_trials_flipping_are_not_enough_and_four_are() -> None:
    """3/3 -> 0/3 gives p = 0.1: three trials cannot show it at 0.05; 4/4 -> 0/4 can."""
    three = compare(side({"t": (3, 3)}), side({"t": (3, 0)}))
    assert three.tasks[0].p_value == pytest.approx(0.1)
    assert three.tasks[0].verdict == Verdict.NO_CHANGE
    four = compare(side({"t": (4, 4)}), side({"t": (4, 0)}))
    assert four.tasks[0].p_value == pytest.approx(2 / 70)
    assert four.tasks[0].verdict == Verdict.REGRESSION


def test_a_one_trial_flip_on_a_noisy_task_is_not_a_regression() -> None:
    tasks = {f"t{i}": (1, 1) for i in range(10)}
    flipped = {**tasks, "t3": (1, 0)}
    got = compare(side(tasks), side(flipped))
    t3 = next(t for t in got.tasks if t.task == "t3")
    assert (t3.delta, t3.p_value, t3.verdict) == (-1.0, 1.0, Verdict.NO_CHANGE)
    # One trial per task: the suite is McNemar's exact test on the one discordant task.
    assert got.suite.test.startswith("McNemar's exact test")
    assert got.suite.p_value == 1.0 and got.suite.verdict == Verdict.NO_CHANGE
    assert reports.gate(got, per_task=True).exit_code == 0


def test_one_trial_per_task_suite_is_mcnemars_exact_test() -> None:
    base = {f"t{i:02}": (1, 1 if i < 12 else 0) for i in range(15)}
    # 9 tasks go pass -> fail, 1 fail -> pass, 5 stay as they were.
    cand = dict(base)
    for i in range(9):
        cand[f"t{i:02}"] = (1, 0)
    cand["t12"] = (1, 1)
    got = compare(side(base), side(cand))
    s = got.suite
    assert (s.worse, s.better) == (9, 1)
    assert s.p_value == pytest.approx(stats.binomtest(1, 10, 0.5).pvalue, rel=1e-12)
    assert "10 discordant tasks (9 pass->fail, 1 fail->pass)" in s.test
    assert s.p_value < 0.05 and s.verdict == Verdict.REGRESSION
    # McNemar's exact test is the sign-flip test on +-1 differences: the two agree.
    flip, exact = reports.sign_flip_p([-1.0] * 9 + [1.0] + [0.0] * 5)
    assert exact and flip == pytest.approx(s.p_value, rel=1e-9)


def _brute_force_sign_flip(diffs: list[float]) -> float:
    """P(|sum| >= |observed sum|) over every sign pattern: the test from its definition."""
    observed = abs(sum(diffs))
    patterns = list(itertools.product((1, -1), repeat=len(diffs)))
    hits = sum(
        1
        for signs in patterns
        if abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) >= observed - 1e-12
    )
    return hits / len(patterns)


def test_suite_is_the_exact_sign_flip_test_paired_over_tasks() -> None:
    base = {
        "a": (4, 4),
        "b": (4, 3),
        "c": (4, 4),
        "d": (4, 2),
        "e": (4, 4),
        "f": (4, 4),
        "g": (4, 1),
    }
    cand = {
        "a": (4, 1),
        "b": (4, 0),
        "c": (4, 2),
        "d": (4, 0),
        "e": (4, 3),
        "f": (4, 4),
        "g": (4, 2),
    }
    got = compare(side(base), side(cand))
    s = got.suite
    diffs = [cand[t][1] / 4 - base[t][1] / 4 for t in sorted(base)]
    assert s.delta == pytest.approx(np.mean(diffs))
    assert s.baseline_pass_rate == pytest.approx(np.mean([base[t][1] / 4 for t in base]))
    assert (s.worse, s.better) == (5, 1)
    nonzero = [d for d in diffs if d]
    assert s.p_value == pytest.approx(_brute_force_sign_flip(nonzero), rel=1e-9)
    # scipy called directly on all the per-task pass rates, zero differences included.
    direct = stats.permutation_test(
        (
            np.array([cand[t][1] / 4 for t in sorted(base)]),
            np.array([base[t][1] / 4 for t in sorted(base)]),
        ),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=2**7,
        alternative="two-sided",
    )
    assert s.p_value == pytest.approx(direct.pvalue, rel=1e-9)
    assert "exact" in s.test and "sign-flip" in s.test
    # The interval is scipy's paired bootstrap of the per-task differences, seeded.
    boot = stats.bootstrap(
        (np.array(diffs),),
        np.mean,
        n_resamples=reports.RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(reports.SEED),
    )
    assert s.ci95 == pytest.approx((boot.confidence_interval.low, boot.confidence_interval.high))
    assert s.ci95[0] <= s.delta <= s.ci95[1]


def test_many_changed_tasks_use_seeded_random_sign_patterns() -> None:
    rng = np.random.default_rng(1)
    base = {f"t{i:03}": (5, int(rng.integers(0, 6))) for i in range(200)}
    cand = {t: (5, max(0, c - int(rng.integers(0, 2)))) for t, (_, c) in base.items()}
    got = compare(side(base), side(cand))
    again = compare(side(base), side(cand))
    assert got.suite.p_value == again.suite.p_value  # seeded: a gate answers the same twice
    assert "9,999 random sign patterns" in got.suite.test
    diffs = [cand[t][1] / 5 - base[t][1] / 5 for t in sorted(base)]
    nonzero = np.array([d for d in diffs if d])
    direct = stats.permutation_test(
        (nonzero, np.zeros_like(nonzero)),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=reports.RESAMPLES,
        alternative="two-sided",
        rng=np.random.default_rng(reports.SEED),
    )
    assert got.suite.p_value == pytest.approx(direct.pvalue)
    assert got.suite.verdict == Verdict.REGRESSION and got.suite.p_value < 0.001


def test_min_delta_and_alpha_decide_what_counts() -> None:
    base, cand = side({"t": (8, 8)}), side({"t": (8, 4)})  # -50 points, p = 0.077
    p = stats.fisher_exact([[8, 0], [4, 4]]).pvalue
    assert compare(base, cand).tasks[0].verdict == Verdict.NO_CHANGE
    assert compare(base, cand, alpha=0.1).tasks[0].verdict == Verdict.REGRESSION
    assert compare(base, cand, alpha=0.1, min_delta=0.6).tasks[0].verdict == Verdict.NO_CHANGE
    assert compare(base, cand, alpha=0.1, min_delta=0.5).tasks[0].verdict == Verdict.REGRESSION
    assert compare(base, cand).tasks[0].p_value == pytest.approx(p)
    up = compare(cand, base, alpha=0.1)
    assert up.tasks[0].verdict == Verdict.IMPROVEMENT and up.tasks[0].delta == 0.5
    with pytest.raises(ValueError, match="alpha 0 is not a significance level"):
        compare(base, cand, alpha=0)
    with pytest.raises(ValueError, match="min_delta 5"):
        compare(base, cand, min_delta=5)


def test_changed_and_missing_tasks_are_not_comparable_and_stay_out_of_the_suite() -> None:
    base = side({"same": (4, 4), "edited": (4, 4), "removed": (4, 4)})
    cand = side({"same": (4, 4), "edited": (4, 0), "added": (4, 0)}, hashes={"edited": "hash-new"})
    got = compare(base, cand)
    by = {t.task: t for t in got.tasks}
    assert by["edited"].verdict == Verdict.NOT_COMPARABLE and by["edited"].p_value is None
    assert "task content changed" in (by["edited"].reason or "")
    assert "hash-edited" in (by["edited"].reason or "")
    assert "only in the baseline" in (by["removed"].reason or "")
    assert "only in the candidate" in (by["added"].reason or "")
    assert by["same"].verdict == Verdict.NO_CHANGE
    # Only "same" is paired: the suite did not change, and the 4/4 -> 0/4 of "edited" is
    # not counted as a regression.
    assert got.suite.tasks == 1 and got.suite.delta == 0.0
    assert got.suite.verdict == Verdict.NO_CHANGE
    assert reports.gate(got, per_task=True).exit_code == 0
    assert [t.verdict for t in got.tasks][-1] == Verdict.NO_CHANGE  # shown last


def test_a_run_with_two_versions_of_a_task_is_not_comparable_on_it() -> None:
    rows = list(side({"t": (2, 2), "u": (2, 2)}).rows)
    rows[1] = ResultRow(task="t", trial_index=1, passed=True, content_hash="other")
    got = compare(results_from_rows(rows), side({"t": (2, 2), "u": (2, 2)}))
    t = next(x for x in got.tasks if x.task == "t")
    assert t.verdict == Verdict.NOT_COMPARABLE and "2 versions" in (t.reason or "")


def test_nothing_comparable_is_an_error_that_says_why() -> None:
    with pytest.raises(reports.CompareError, match="no task in common"):
        compare(side({"a": (1, 1)}), side({"b": (1, 1)}))
    with pytest.raises(reports.CompareError, match="every task the runs share changed"):
        compare(side({"a": (1, 1)}), side({"a": (1, 1)}, hashes={"a": "new"}))
    with pytest.raises(reports.CompareError, match="no counted trials"):
        compare(results_from_rows([], "empty"), side({"a": (1, 1)}))


def test_tokens_cost_and_time_are_totalled_per_side() -> None:
    base = side({"t": (2, 2)}, model="gpt-5-mini", input_tokens=1000, output_tokens=100)
    cand = side({"t": (2, 2)}, model="gpt-5-mini", input_tokens=3000, output_tokens=100)
    priced = [
        replace(r, cost_usd=reports.cost_usd(r.model, r.input_tokens, r.output_tokens))
        for r in base.rows
    ]
    base = results_from_rows(priced, "b")
    got = compare(base, cand)
    s = got.suite
    assert (s.baseline.tokens, s.candidate.tokens) == (2200, 6200)
    assert s.baseline.tokens_per_trial == 1100 and s.candidate.duration_per_trial == 2.0
    assert s.baseline.cost_usd == pytest.approx(2 * (1000 * 0.25 + 100 * 2.0) / 1e6)
    assert s.candidate.cost_usd is None  # those rows were never priced
    doc = got.to_dict()
    assert doc["suite"]["baseline"]["cost_usd"] == pytest.approx(s.baseline.cost_usd)
    json.dumps(doc)  # JSON-ready as it is


# -- results files ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".json"])
def test_results_files_round_trip(tmp_path: Path, suffix: str) -> None:
    rows = side({"a|b <x>": (2, 1), "c": (1, 0)}, model="gpt-5", input_tokens=5, run_id="r1").rows
    original = Results(rows[:2] + (ResultRow(task="c", passed=False),), "x", "x")
    path = reports.write_results(original, tmp_path / f"base{suffix}")
    back = reports.read_results(path)
    assert back.rows == original.rows
    assert back.label == f"base{suffix}" and back.run_ids == ("r1",)
    again = reports.load_results(str(path), prices=reports.builtin_prices())
    assert again.rows[0].cost_usd == pytest.approx(5 * 1.25 / 1e6)  # priced on reading


def test_a_committed_json_baseline_is_one_row_per_line(tmp_path: Path) -> None:
    path = reports.write_results(side({"a": (3, 2)}), tmp_path / "b.json")
    lines = path.read_text().splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 5
    assert list(json.loads(lines[1].rstrip(","))) == list(reports.COLUMNS)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", "{not json", "not valid JSON"),
        ("obj.json", '{"task": "a"}', "expected a JSON list of row objects"),
        ("nopass.json", '[{"task": "a"}]', "row 1: neither `passed`"),
        ("notask.json", '[{"passed": true}]', "row 1: no task"),
        (
            "type.json",
            '[{"task": "a", "passed": true}, {"task": "b", "passed": "yes"}]',
            "row 2, column passed: 'yes' is not true or false",
        ),
        ("steps.csv", "task,passed,steps\na,true,many\n", "not a readable CSV results file"),
        ("bad.parquet", "PAR1 nope", "not a readable Parquet results file"),
        ("rows.txt", "", "unknown results format '.txt'"),
    ],
)
def test_malformed_results_files_say_where_and_what(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(reports.ResultsError) as exc:
        reports.read_results(path)
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_outcome_alone_says_whether_a_trial_passed(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("task,outcome\na,passed\na,failed\n")
    got = reports.read_results(path)
    assert [r.passed for r in got.rows] == [True, False]


def test_a_side_that_is_neither_file_nor_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(reports.ResultsError, match="is a folder"):
        reports.load_results(str(tmp_path))
    with pytest.raises(reports.ResultsError, match="no results file"):
        reports.load_results(str(tmp_path / "missing.json"))
    store = traces.open(tmp_path / "none.duckdb")
    with pytest.raises(reports.ResultsError, match="neither a results file nor a run"):
        reports.load_results("run-nope", store)


# -- prices ----------------------------------------------------------------------------------


def test_builtin_prices_come_from_the_shipped_toml() -> None:
    prices = reports.builtin_prices()
    assert prices["gpt-5-mini"] == reports.Price(0.25, 0.025, 2.0)
    assert prices["gpt-5.1"].output == 10.0  # a dotted name, quoted in the file
    assert prices == reports.PRICES


def test_a_user_price_file_extends_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "prices.toml"
    mine.write_text(
        '["my-model"]\ninput = 1.0\noutput = 3.0\n\n["gpt-5-mini"]\ninput = 9\noutput = 9\n'
    )
    prices = reports.load_prices(mine)
    assert prices["my-model"] == reports.Price(1.0, 1.0, 3.0)  # cached defaults to input
    assert prices["gpt-5-mini"].input == 9.0 and prices["gpt-5"].input == 1.25
    assert reports.cost_usd("my-model-2025-01-02", 1_000_000, 0, prices=prices) == 1.0
    assert reports.cost_usd("my-model", 10, 10) is None  # not without the file
    monkeypatch.setenv(reports.PRICES_ENV, str(mine))
    assert reports.cost_usd("my-model", 1_000_000, 1_000_000) == 4.0  # $HARNESS_PRICES
    later = tmp_path / "later.toml"
    later.write_text('["my-model"]\ninput = 2.0\noutput = 3.0\n')
    assert reports.load_prices(later)["my-model"].input == 2.0  # --prices wins over the env


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[gpt-9.1]\ninput = 1\noutput = 1\n", 'quote the model name, ["gpt-9.1"]'),
        ('["m"]\ninput = 1\noutput = 1\ncache = 1\n', "unknown field 'cache'"),
        ('["m"]\ninput = 1\n', "missing `output = ...`"),
        ('["m"]\ninput = -1\noutput = 1\n', "input = -1 is not a price"),
        ('["m"]\ninput = "cheap"\noutput = 1\n', "input = 'cheap' is not a price"),
        ("m = 3\n", "expected a table of prices"),
        ('["m"\ninput = 1', "not valid TOML"),
    ],
)
def test_a_bad_price_file_names_the_model_and_the_fix(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(reports.PricesError) as exc:
        reports.load_prices(path)
    assert message in str(exc.value) and str(path) in str(exc.value)
    with pytest.raises(reports.PricesError, match="price file .*missing.toml"):
        reports.load_prices(tmp_path / "missing.toml")
