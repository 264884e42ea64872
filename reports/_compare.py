"""Two runs side by side, and whether the difference is real: per task and for the suite.

Each question gets the test that answers it with the data at hand (the README's "Compare runs
and gate CI" says the same for users):

- Did task X get worse? Its trials are independent passes and fails on each side: a 2x2 table
  of pass/fail counts, tested with Fisher's exact test (two-sided). Exact at any count, so a
  task with 3 trials per side is judged honestly: a 3/3 -> 0/3 flip gives p = 0.1, which is
  not significant at 0.05, and that is the truth about three trials.
- Did the suite get worse? Tasks differ in difficulty, so the suite is compared *paired by
  task*: each task's pass-rate difference is one observation. Under "no change" either run
  could have been the baseline, so each difference's sign could flip: the sign-flip
  permutation test (exact over every sign pattern when at most 16 tasks changed, else 9,999
  random sign patterns with a fixed seed, so a gate gives the same answer twice). With one
  trial per task per side this is McNemar's exact test on the discordant tasks (a binomial
  test of pass->fail against fail->pass), and it is reported as such.
- How big is the change? The mean of the per-task differences with a 95% paired bootstrap
  interval (tasks resampled with replacement, percentile method, fixed seed). The interval
  shows the size; the verdict comes from the test.

A change is a regression when its p-value is at most ``alpha`` AND the pass rate fell by at
least ``min_delta`` (an improvement likewise upward); anything else is "no change". Tasks
whose content differs between the runs (``harness.task.content_hash``) are "not comparable"
and take no part in the suite's test, and neither do tasks only one side ran.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from itertools import groupby
from statistics import mean
from typing import Any, Final

from ._results import ResultRow, Results

SEED: Final = 20240521  # fixed: the same runs always get the same p-value and interval
EXACT_MAX_TASKS: Final = 16  # exact sign-flip test up to 2**16 sign patterns
RESAMPLES: Final = 9_999
# Resamples drawn at a time: bounds the memory a suite of 1,000 tasks needs (all 9,999 at
# once would hold 9,999 x tasks values, some copies of it).
BATCH: Final = 500


class Verdict:
    """What a comparison says about a task or the suite."""

    REGRESSION: Final = "regression"
    IMPROVEMENT: Final = "improvement"
    NO_CHANGE: Final = "no change"
    NOT_COMPARABLE: Final = "not comparable"

    ALL: Final = (REGRESSION, IMPROVEMENT, NOT_COMPARABLE, NO_CHANGE)  # the order shown


class CompareError(ValueError):
    """Two sides that cannot be compared at all (no task in common that can be): the message
    says why."""


@dataclass(frozen=True)
class SideStats:
    """One side's figures for a set of trials (a task's, or the suite's comparable ones).

    Totals and per-trial means; ``cost_usd`` is None when no trial's model has a price.
    ``content_hashes`` are the distinct task content hashes the trials ran with.
    """

    trials: int
    passed: int
    mean_reward: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    duration_s: float
    content_hashes: tuple[str, ...] = ()

    @property
    def pass_rate(self) -> float:
        return self.passed / self.trials if self.trials else 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def tokens_per_trial(self) -> float | None:
        return self.tokens / self.trials if self.trials else None

    @property
    def cost_per_trial(self) -> float | None:
        return None if self.cost_usd is None or not self.trials else self.cost_usd / self.trials

    @property
    def duration_per_trial(self) -> float | None:
        return self.duration_s / self.trials if self.trials else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "passed": self.passed,
            "pass_rate": self.pass_rate,
            "mean_reward": self.mean_reward,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens_per_trial": self.tokens_per_trial,
            "cost_usd": self.cost_usd,
            "cost_per_trial_usd": self.cost_per_trial,
            "duration_s": self.duration_s,
            "duration_per_trial_s": self.duration_per_trial,
            "content_hashes": list(self.content_hashes),
        }


def side_stats(rows: list[ResultRow]) -> SideStats:
    rewards = [r.reward for r in rows if r.reward is not None]
    costs = [r.cost_usd for r in rows if r.cost_usd is not None]
    return SideStats(
        trials=len(rows),
        passed=sum(1 for r in rows if r.passed),
        mean_reward=mean(rewards) if rewards else None,
        input_tokens=sum(r.input_tokens or 0 for r in rows),
        output_tokens=sum(r.output_tokens or 0 for r in rows),
        cost_usd=sum(costs) if costs else None,
        duration_s=sum(r.duration_s or 0.0 for r in rows),
        content_hashes=tuple(sorted({r.content_hash for r in rows if r.content_hash})),
    )


@dataclass(frozen=True)
class TaskComparison:
    """One task in both runs: each side's figures, the pass-rate difference (candidate minus
    baseline), Fisher's exact p-value, and the verdict (with the reason when the task is not
    comparable)."""

    task: str
    verdict: str
    baseline: SideStats | None
    candidate: SideStats | None
    p_value: float | None = None
    reason: str | None = None

    @property
    def delta(self) -> float | None:
        """Candidate pass rate minus baseline pass rate."""
        if self.baseline is None or self.candidate is None:
            return None
        return self.candidate.pass_rate - self.baseline.pass_rate

    @property
    def reward_delta(self) -> float | None:
        b = self.baseline.mean_reward if self.baseline else None
        c = self.candidate.mean_reward if self.candidate else None
        return None if b is None or c is None else c - b

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "verdict": self.verdict,
            "reason": self.reason,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "candidate": self.candidate.to_dict() if self.candidate else None,
            "delta": self.delta,
            "reward_delta": self.reward_delta,
            "p_value": self.p_value,
            "test": "fisher_exact" if self.p_value is not None else None,
        }


@dataclass(frozen=True)
class SuiteComparison:
    """The suite over the tasks both runs can be compared on, paired by task.

    Pass rates are the mean of the per-task pass rates (each task weighs the same, whatever
    its trial count; with equal counts this is the pooled rate). ``test`` names the test
    that gave ``p_value``; ``ci95`` is the paired bootstrap interval of ``delta``.
    ``baseline``/``candidate`` total those tasks' trials (tokens, cost, time).
    """

    tasks: int
    baseline_pass_rate: float
    candidate_pass_rate: float
    ci95: tuple[float, float]
    p_value: float
    test: str
    verdict: str
    baseline: SideStats
    candidate: SideStats
    worse: int = 0  # tasks whose pass rate fell
    better: int = 0  # tasks whose pass rate rose

    @property
    def delta(self) -> float:
        return self.candidate_pass_rate - self.baseline_pass_rate

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "baseline_pass_rate": self.baseline_pass_rate,
            "candidate_pass_rate": self.candidate_pass_rate,
            "delta": self.delta,
            "ci95": list(self.ci95),
            "p_value": self.p_value,
            "test": self.test,
            "verdict": self.verdict,
            "tasks_worse": self.worse,
            "tasks_better": self.better,
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
        }


@dataclass(frozen=True)
class Comparison:
    """A candidate run against a baseline: every task (ordered regressions, improvements,
    not comparable, no change; then by p-value and name) and the suite."""

    baseline: Results
    candidate: Results
    tasks: tuple[TaskComparison, ...]
    suite: SuiteComparison
    alpha: float
    min_delta: float
    notes: tuple[str, ...] = field(default=())

    def by_verdict(self, verdict: str) -> list[TaskComparison]:
        return [t for t in self.tasks if t.verdict == verdict]

    def to_dict(self) -> dict[str, Any]:
        counts = {v: len(self.by_verdict(v)) for v in Verdict.ALL}
        return {
            "baseline": {"source": self.baseline.source, "label": self.baseline.label},
            "candidate": {"source": self.candidate.source, "label": self.candidate.label},
            "alpha": self.alpha,
            "min_delta": self.min_delta,
            "suite": self.suite.to_dict(),
            "counts": counts,
            "tasks": [t.to_dict() for t in self.tasks],
            "notes": list(self.notes),
        }


def verdict(p_value: float, delta: float, alpha: float, min_delta: float) -> str:
    """Regression or improvement when significant at ``alpha`` and at least ``min_delta``
    in size (in pass-rate units, 0..1); otherwise no change."""
    if p_value <= alpha and delta != 0 and abs(delta) >= min_delta:
        return Verdict.REGRESSION if delta < 0 else Verdict.IMPROVEMENT
    return Verdict.NO_CHANGE


def fisher_p(baseline: SideStats, candidate: SideStats) -> float:
    """Two-sided Fisher's exact test on [[pass, fail] baseline, [pass, fail] candidate]."""
    from scipy.stats import fisher_exact

    table = [
        [baseline.passed, baseline.trials - baseline.passed],
        [candidate.passed, candidate.trials - candidate.passed],
    ]
    return float(fisher_exact(table, alternative="two-sided").pvalue)


def mcnemar_p(worse: int, better: int) -> float:
    """McNemar's exact test: of the discordant tasks (``worse`` went pass -> fail, ``better``
    fail -> pass), is the split more uneven than a fair coin gives? Two-sided."""
    from scipy.stats import binomtest

    n = worse + better
    return 1.0 if n == 0 else float(binomtest(better, n, 0.5, alternative="two-sided").pvalue)


def sign_flip_p(differences: list[float]) -> tuple[float, bool]:
    """The sign-flip permutation test of "the mean paired difference is 0", two-sided:
    (p-value, whether it was exact). Zero differences are left out (flipping them changes
    nothing); exact over all 2**k sign patterns up to :data:`EXACT_MAX_TASKS` non-zero
    differences, else :data:`RESAMPLES` random patterns from a fixed seed."""
    import numpy as np
    from scipy.stats import permutation_test

    nonzero = np.array([d for d in differences if d != 0], dtype=float)
    if nonzero.size < 2:
        return 1.0, True  # one difference: +d and -d are equally extreme
    exact = nonzero.size <= EXACT_MAX_TASKS
    res = permutation_test(
        (nonzero, np.zeros_like(nonzero)),
        _mean_difference,
        permutation_type="samples",
        vectorized=True,
        n_resamples=2**nonzero.size if exact else RESAMPLES,
        batch=BATCH,
        alternative="two-sided",
        rng=np.random.default_rng(SEED),
    )
    return float(res.pvalue), exact


def _mean_difference(x: Any, y: Any, axis: int = -1) -> Any:
    import numpy as np

    return np.mean(x - y, axis=axis)


def bootstrap_ci(differences: list[float]) -> tuple[float, float]:
    """95% interval of the mean per-task difference: tasks resampled with replacement
    (a paired bootstrap), percentile method, fixed seed. One task, or all differences
    equal: the interval is that one value."""
    import numpy as np
    from scipy.stats import bootstrap

    data = np.array(differences, dtype=float)
    if data.size < 2 or bool(np.all(data == data[0])):
        value = float(data.mean()) if data.size else 0.0
        return value, value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples of few tasks: expected
        res = bootstrap(
            (data,),
            np.mean,
            vectorized=True,
            n_resamples=RESAMPLES,
            batch=BATCH,
            confidence_level=0.95,
            method="percentile",
            rng=np.random.default_rng(SEED),
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _by_task(results: Results) -> dict[str, list[ResultRow]]:
    rows = sorted(results.rows, key=lambda r: r.task)
    return {task: list(g) for task, g in groupby(rows, key=lambda r: r.task)}


def _not_comparable(b: SideStats | None, c: SideStats | None) -> str | None:
    """Why a task cannot be compared, if it cannot."""
    if c is None:
        return "only in the baseline (the candidate did not run it)"
    if b is None:
        return "only in the candidate (new, or the baseline did not run it)"
    for name, side in (("baseline", b), ("candidate", c)):
        if len(side.content_hashes) > 1:
            return (
                f"the {name} ran {len(side.content_hashes)} versions of the task "
                f"({', '.join(h[:12] for h in side.content_hashes)})"
            )
    if b.content_hashes and c.content_hashes and b.content_hashes != c.content_hashes:
        return (
            f"task content changed (content hash {b.content_hashes[0][:12]} in the baseline, "
            f"{c.content_hashes[0][:12]} in the candidate): its results measure different tasks"
        )
    return None


_ORDER = {v: i for i, v in enumerate(Verdict.ALL)}


def compare(
    baseline: Results, candidate: Results, *, alpha: float = 0.05, min_delta: float = 0.0
) -> Comparison:
    """Compare ``candidate`` with ``baseline``: per task and for the suite.

    Args:
        baseline: the reference (a committed results file, or the main branch's run).
        candidate: the change under test.
        alpha: significance level of every test (a p-value at most this is significant).
        min_delta: the smallest pass-rate change (0..1) that counts, however significant.

    Raises:
        ValueError: ``alpha`` or ``min_delta`` out of range.
        CompareError: no task can be compared (none in common, or every common one changed).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha} is not a significance level; give one in (0, 1)")
    if not 0 <= min_delta <= 1:
        raise ValueError(
            f"min_delta {min_delta} is not a pass-rate change; give one in [0, 1] "
            "(0.1 = ten percentage points)"
        )
    base_rows, cand_rows = _by_task(baseline), _by_task(candidate)
    tasks: list[TaskComparison] = []
    paired: list[tuple[str, SideStats, SideStats]] = []
    for task in sorted(set(base_rows) | set(cand_rows)):
        b = side_stats(base_rows[task]) if task in base_rows else None
        c = side_stats(cand_rows[task]) if task in cand_rows else None
        reason = _not_comparable(b, c)
        if reason is not None or b is None or c is None:
            tasks.append(TaskComparison(task, Verdict.NOT_COMPARABLE, b, c, reason=reason))
            continue
        p = fisher_p(b, c)
        tasks.append(
            TaskComparison(task, verdict(p, c.pass_rate - b.pass_rate, alpha, min_delta), b, c, p)
        )
        paired.append((task, b, c))
    if not paired:
        raise CompareError(_why_none(baseline, candidate, base_rows, cand_rows))
    suite = _suite(paired, alpha, min_delta, base_rows, cand_rows)
    tasks.sort(key=lambda t: (_ORDER[t.verdict], 2.0 if t.p_value is None else t.p_value, t.task))
    notes = []
    missing = [
        t.task
        for t in tasks
        if t.baseline
        and t.candidate
        and not (t.baseline.content_hashes and t.candidate.content_hashes)
    ]
    if missing:
        notes.append(
            f"{len(missing)} task(s) have no content hash on one side (an older record or a "
            "hand-made file); they were compared as if their content were the same"
        )
    return Comparison(baseline, candidate, tuple(tasks), suite, alpha, min_delta, tuple(notes))


def _suite(
    paired: list[tuple[str, SideStats, SideStats]],
    alpha: float,
    min_delta: float,
    base_rows: dict[str, list[ResultRow]],
    cand_rows: dict[str, list[ResultRow]],
) -> SuiteComparison:
    diffs = [c.pass_rate - b.pass_rate for _, b, c in paired]
    worse = sum(1 for d in diffs if d < 0)
    better = sum(1 for d in diffs if d > 0)
    if all(b.trials == 1 and c.trials == 1 for _, b, c in paired):
        p = mcnemar_p(worse, better)
        test = (
            f"McNemar's exact test on the {worse + better} discordant tasks "
            f"({worse} pass->fail, {better} fail->pass)"
        )
    else:
        p, exact = sign_flip_p(diffs)
        how = (
            f"exact over 2^{worse + better} sign patterns"
            if exact
            else f"{RESAMPLES:,} random sign patterns (seed {SEED})"
        )
        test = f"sign-flip permutation test paired by task, {how}"
    base_rate = mean(b.pass_rate for _, b, _ in paired)
    cand_rate = mean(c.pass_rate for _, _, c in paired)
    names = [task for task, _, _ in paired]
    return SuiteComparison(
        tasks=len(paired),
        baseline_pass_rate=base_rate,
        candidate_pass_rate=cand_rate,
        ci95=bootstrap_ci(diffs),
        p_value=p,
        test=test,
        verdict=verdict(p, cand_rate - base_rate, alpha, min_delta),
        baseline=side_stats([r for t in names for r in base_rows[t]]),
        candidate=side_stats([r for t in names for r in cand_rows[t]]),
        worse=worse,
        better=better,
    )


def _why_none(
    baseline: Results,
    candidate: Results,
    base_rows: dict[str, list[ResultRow]],
    cand_rows: dict[str, list[ResultRow]],
) -> str:
    for side, rows in (("baseline", base_rows), ("candidate", cand_rows)):
        if not rows:
            source = baseline.source if side == "baseline" else candidate.source
            return f"the {side} ({source}) has no counted trials: nothing to compare"
    common = sorted(set(base_rows) & set(cand_rows))
    if not common:
        b, c = sorted(base_rows), sorted(cand_rows)
        return (
            f"the runs have no task in common (baseline: {_names(b)}; candidate: {_names(c)}); "
            "compare runs of the same suite"
        )
    return (
        f"every task the runs share changed its content ({_names(common)}): the results "
        "measure different tasks; record a new baseline with the changed tasks"
    )


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
