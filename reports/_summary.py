"""A run's figures: pass rate with its 95% interval, unbiased pass@k, per-task rows, errors."""

from __future__ import annotations

import math
from collections import Counter
from itertools import groupby
from statistics import mean
from typing import Any

import traces
from traces.vocab import Outcome

from ._cost import Price, PricesError, cost_usd, load_prices


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of pass@k from n trials with c passes (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a pass rate."""
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _mean(values: list[float | int | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return mean(present) if present else None


def effective_trials(trials: list[traces.Trial]) -> list[traces.Trial]:
    """The trials that count: one per (task, trial index), the latest that has an outcome.

    A trial that was interrupted has no outcome, and one that a resume ran again is
    superseded (the store marks both); neither counts in a summary, a pass rate or a
    comparison.
    """
    return sorted(
        (t for t in trials if not t.superseded),
        key=lambda t: (t.task or "", t.trial_index or 0),
    )


def _tokens(trials: list[traces.Trial], prices: dict[str, Price] | None) -> dict[str, Any]:
    """Token totals and their cost at ``prices`` (None when no trial's model has one, or
    there is no usable price list)."""
    costs = [
        cost_usd(t.model, t.input_tokens, t.output_tokens, t.cached_tokens, prices)
        if prices is not None
        else None
        for t in trials
    ]
    known = [c for c in costs if c is not None]
    return {
        "input_tokens": sum(t.input_tokens or 0 for t in trials),
        "output_tokens": sum(t.output_tokens or 0 for t in trials),
        "cached_tokens": sum(t.cached_tokens or 0 for t in trials),
        "reasoning_tokens": sum(t.reasoning_tokens or 0 for t in trials),
        "cost_usd": sum(known) if known else None,
    }


def summarize(store: traces.TraceStore, run_id: str, trials: int) -> dict[str, Any]:
    """Per-task rows and suite figures for a run, from the store (effective trials only).

    Args:
        store: the trace store the run was recorded in.
        run_id: the run.
        trials: trials per task the run asked for; pass@k is given for k up to it.
    """
    rows = effective_trials(store.trials(run_id))
    # A broken $HARNESS_PRICES costs the summary its prices, never the run its summary.
    prices: dict[str, Price] | None
    try:
        prices, price_error = load_prices(), None
    except PricesError as exc:
        prices, price_error = None, str(exc)
    per_task = []
    passes: dict[str, tuple[int, int]] = {}
    for task, group in groupby(rows, key=lambda t: t.task or ""):
        g = list(group)
        n, c = len(g), sum(1 for t in g if t.passed)
        passes[task] = (n, c)
        per_task.append(
            {
                "task": task,
                "trials": n,
                "pass_rate": c / n if n else 0.0,
                "mean_reward": _mean([t.reward for t in g]),
                "mean_steps": _mean([t.steps for t in g]),
                **_tokens(g, prices),
                "mean_duration_s": _mean([t.duration_s for t in g]) or 0.0,
                "outcomes": dict(Counter(str(t.outcome) for t in g)),
            }
        )
    n_all = sum(n for n, _ in passes.values())
    c_all = sum(c for _, c in passes.values())
    lo, hi = wilson(c_all, n_all)
    pass_k = {}
    for k in range(1, max(1, trials) + 1):
        vals = [pass_at_k(n, c, k) for n, c in passes.values() if n >= k]
        if vals:
            pass_k[f"pass@{k}"] = sum(vals) / len(vals)
    errors = Counter(t.outcome for t in rows if Outcome.is_error(t.outcome))
    return {
        "run_id": run_id,
        "tasks": per_task,
        "trials": n_all,
        "passed": c_all,
        "pass_rate": c_all / n_all if n_all else 0.0,
        "pass_rate_ci95": [lo, hi],
        **pass_k,
        **_tokens(rows, prices),
        "errors": dict(errors),
        **({"price_error": price_error} if price_error else {}),
    }
