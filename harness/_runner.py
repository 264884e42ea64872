"""Suite runs: many trials of many tasks, concurrently, each recorded as one trace.

A run's configuration is recorded first (a ``harness.run`` span), so ``--resume RUN_ID`` can
run exactly the trials that have no outcome yet, even after the runner was SIGKILLed.
"""

from __future__ import annotations

import fnmatch
import json
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import traces

from ._agents import load_agent
from ._build import BuildError, TaskImage, task_image
from ._tasks import Task, TaskError, find_tasks, load_task
from ._trial import TrialResult, run_trial


@dataclass
class RunConfig:
    """Everything needed to run (or resume) a suite; stored with the run."""

    tasks: list[str]
    agent: str
    agent_options: dict[str, Any] = field(default_factory=dict)  # never an API key
    trials: int = 1
    concurrency: int = 1
    task_filter: str | None = None
    timeout_multiplier: float = 1.0
    image_map: dict[str, str] = field(default_factory=dict)
    force_build: bool = False
    footer: bool = True

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls(**json.loads(text))


def load_suite(cfg: RunConfig) -> list[Task]:
    """The tasks a config names, filtered; raises TaskError for the first invalid one."""
    tasks = []
    for path in find_tasks(list(cfg.tasks)):
        if cfg.task_filter and not fnmatch.fnmatch(Path(path).name, cfg.task_filter):
            continue
        task, problems = load_task(path)
        if task is None:
            raise TaskError(Path(path), problems)
        tasks.append(task)
    return tasks


def new_run_id() -> str:
    return f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def record_config(recorder: traces.Recorder, run_id: str, cfg: RunConfig) -> None:
    tracer = recorder.tracer("harness.runner")
    with tracer.start_as_current_span(
        "harness.run",
        attributes={
            "harness.run.id": run_id,
            "harness.run.config": cfg.to_json(),
        },
    ):
        pass


def stored_config(store: traces.TraceStore, run_id: str) -> RunConfig:
    df = store.sql(
        "SELECT json_extract_string(attributes, '$.\"harness.run.config\"') AS c "
        "FROM spans WHERE name = 'harness.run' AND run_id = ? LIMIT 1",
        [run_id],
    )
    if df.empty:
        raise traces.StoreError(f"no run {run_id!r} in {store.path} (see `harness runs`)")
    return RunConfig.from_json(str(df.c[0]))


def finished_trials(store: traces.TraceStore, run_id: str) -> set[tuple[str, int]]:
    df = store.sql(
        "SELECT task, trial_index FROM trials WHERE run_id = ? AND outcome IS NOT NULL", [run_id]
    )
    return {(str(t), int(i)) for t, i in zip(df.task, df.trial_index, strict=True)}


def run_suite(
    tasks: list[Task],
    cfg: RunConfig,
    recorder: traces.Recorder,
    run_id: str,
    skip: set[tuple[str, int]] | None = None,
    on_result: Callable[[TrialResult], None] | None = None,
    on_build: Callable[[str], None] | None = None,
) -> list[TrialResult]:
    """Run every (task, trial) not in ``skip``; one trial's failure never stops the others."""
    skip = skip or set()
    todo = [(t, i) for t in tasks for i in range(cfg.trials) if (t.id, i) not in skip]
    images: dict[str, TaskImage | BuildError] = {}
    locks: dict[str, threading.Lock] = {t.id: threading.Lock() for t in tasks}

    def image_for(task: Task) -> TaskImage | BuildError:
        with locks[task.id]:  # one build per task, however many trials wait for it
            if task.id not in images:
                if on_build is not None:
                    on_build(task.id)
                try:
                    images[task.id] = task_image(task, cfg.image_map, cfg.force_build)
                except BuildError as exc:
                    images[task.id] = exc
            return images[task.id]

    def one(task: Task, index: int) -> TrialResult:
        agent = load_agent(cfg.agent, cfg.agent_options)
        return run_trial(
            task,
            agent,
            image_for(task),
            recorder,
            run_id,
            index,
            timeout_multiplier=cfg.timeout_multiplier,
            footer=cfg.footer,
        )

    results: list[TrialResult] = []
    with ThreadPoolExecutor(
        max_workers=max(1, cfg.concurrency), thread_name_prefix="trial"
    ) as pool:
        futures = [pool.submit(one, t, i) for t, i in todo]
        for fut in as_completed(futures):
            res = fut.result()
            results.append(res)
            if on_result is not None:
                on_result(res)
    return results


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


def summarize(store: traces.TraceStore, run_id: str, trials: int) -> dict[str, Any]:
    """Per-task rows and suite figures for a run, from the store."""
    df = store.sql("SELECT * FROM trials WHERE run_id = ? ORDER BY task, trial_index", [run_id])
    per_task = []
    passes: dict[str, tuple[int, int]] = {}
    for task, g in df.groupby("task", sort=True):
        n, c = len(g), int(g.passed.fillna(False).astype(bool).sum())
        passes[str(task)] = (n, c)
        per_task.append(
            {
                "task": task,
                "trials": n,
                "pass_rate": c / n if n else 0.0,
                "mean_reward": float(g.reward.mean()) if g.reward.notna().any() else None,
                "mean_steps": float(g.steps.mean()) if g.steps.notna().any() else None,
                "input_tokens": int(g.input_tokens.fillna(0).sum()),
                "output_tokens": int(g.output_tokens.fillna(0).sum()),
                "mean_duration_s": float(g.duration_s.mean()),
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
    errors = Counter(o for o in df.outcome if o not in ("passed", "failed"))
    return {
        "run_id": run_id,
        "tasks": per_task,
        "trials": n_all,
        "passed": c_all,
        "pass_rate": c_all / n_all if n_all else 0.0,
        "pass_rate_ci95": [lo, hi],
        **pass_k,
        "errors": dict(errors),
    }
