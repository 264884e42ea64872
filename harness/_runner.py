"""Suite runs: many trials of many tasks, concurrently, each recorded as one trace.

A run's configuration is recorded first (a ``harness.run`` span), so ``--resume RUN_ID`` can
run exactly the trials that have no outcome yet, even after the runner was SIGKILLed.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanContext, TraceFlags

import traces
from sandbox import SandboxError
from traces.vocab import Attr, Span

from ._build import BuildError, TaskImage, task_image
from ._control import RunControl
from ._record import SCOPE, new_run_id
from ._tasks import Task, TaskError, find_tasks, load_task
from ._trial import TrialResult, TrialSettings, run_trial
from .agents import load_agent


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
    network: str | None = None  # "none" turns every task's network off
    skip_invalid: bool = False  # run the valid tasks when some are invalid
    engine_wait_s: float = 120.0  # wait this long for an engine that stopped answering
    snapshot: bool = False  # commit the sandbox after each agent step (fork restores from it)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})

    def trial_settings(self) -> TrialSettings:
        return TrialSettings(
            self.timeout_multiplier,
            self.footer,
            network=self.network,
            engine_wait_s=self.engine_wait_s,
            snapshot=self.snapshot,
        )


@dataclass
class Suite:
    """The tasks a run names: the valid ones, the problems of the invalid ones, and notes
    (folders that hold no task)."""

    tasks: list[Task]
    invalid: list[TaskError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find_suite(cfg: RunConfig) -> Suite:
    """Every task the config names, loaded and filtered; never raises for a bad task."""
    suite = Suite([])
    for given in map(Path, cfg.tasks):
        if given.is_dir() and not (given / "task.toml").is_file():
            empty = sorted(
                c.name
                for c in given.iterdir()
                if c.is_dir() and not c.name.startswith(".") and not (c / "task.toml").is_file()
            )
            if empty:
                suite.notes.append(
                    f"{given}: skipped {len(empty)} folder(s) without a task.toml: "
                    + ", ".join(empty[:10])
                    + (" ..." if len(empty) > 10 else "")
                )
    for path in find_tasks(list(cfg.tasks)):
        if cfg.task_filter and not fnmatch.fnmatch(Path(path).name, cfg.task_filter):
            continue
        task, problems = load_task(path)
        if task is None:
            suite.invalid.append(TaskError(Path(path), problems))
        else:
            suite.tasks.append(task)
    return suite


def load_suite(cfg: RunConfig) -> list[Task]:
    """The tasks a config names, filtered; raises TaskError for the first invalid one."""
    suite = find_suite(cfg)
    if suite.invalid:
        raise suite.invalid[0]
    return suite.tasks


def record_config(recorder: traces.Recorder, run_id: str, cfg: RunConfig) -> SpanContext:
    """Record a new run's configuration as its ``harness.run`` span, in the run's session;
    its trials link to it."""
    tracer = recorder.tracer(SCOPE)
    with tracer.start_as_current_span(
        Span.RUN,
        attributes={Attr.RUN_ID: run_id, Attr.SESSION_ID: run_id, Attr.RUN_CONFIG: cfg.to_json()},
    ) as span:
        context: SpanContext = span.get_span_context()
    return context


def recorded_run(store: traces.TraceStore, run_id: str) -> tuple[RunConfig, SpanContext]:
    """A recorded run's configuration and its ``harness.run`` span (a resume's trials link
    to it), from that one span.

    Raises:
        traces.StoreError: the store has no such run.
    """
    df = store.sql(
        f"SELECT trace_id, span_id, json_extract_string(attributes, '$.\"{Attr.RUN_CONFIG}\"') "
        "AS c FROM spans WHERE name = ? AND run_id = ? LIMIT 1",
        [Span.RUN, run_id],
    )
    if df.empty:
        raise traces.StoreError(f"no run {run_id!r} in {store.path} (see `harness runs`)")
    span = SpanContext(
        int(df.trace_id[0], 16),
        int(df.span_id[0], 16),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return RunConfig.from_json(str(df.c[0])), span


def finished_trials(store: traces.TraceStore, run_id: str) -> set[tuple[str, int]]:
    """The (task, trial index) pairs of a run that already have an outcome."""
    return {
        (t.task, t.trial_index)
        for t in store.trials(run_id)
        if t.outcome is not None and t.task is not None and t.trial_index is not None
    }


def run_suite(
    tasks: list[Task],
    cfg: RunConfig,
    recorder: traces.Recorder,
    run_id: str,
    skip: set[tuple[str, int]] | None = None,
    on_result: Callable[[TrialResult], None] | None = None,
    on_build: Callable[[str], None] | None = None,
    control: RunControl | None = None,
    run_context: SpanContext | None = None,
) -> list[TrialResult]:
    """Run every (task, trial) not in ``skip``; one trial's failure never stops the others.

    With ``control``, a stop request starts no more trials, and an abort stops the running
    ones (they come back interrupted). Each trial's root links to ``run_context``, the run's
    ``harness.run`` span, when given.
    """
    skip = skip or set()
    todo = [(t, i) for t in tasks for i in range(cfg.trials) if (t.id, i) not in skip]
    images: dict[str, TaskImage | BuildError] = {}
    locks: dict[str, threading.Lock] = {t.id: threading.Lock() for t in tasks}
    settings = replace(cfg.trial_settings(), run_span=run_context)

    def image_for(task: Task) -> TaskImage | BuildError:
        with locks[task.id]:  # one build per task, however many trials wait for it
            if task.id not in images:
                if on_build is not None:
                    on_build(task.id)
                try:
                    images[task.id] = task_image(task, cfg.image_map, cfg.force_build)
                except BuildError as exc:
                    images[task.id] = exc
                except SandboxError as exc:
                    images[task.id] = BuildError(f"task {task.id}: image build failed: {exc}")
            return images[task.id]

    def one(task: Task, index: int) -> TrialResult | None:
        if control is not None and control.stopping.is_set():
            return None  # never started: a resume runs it
        agent = load_agent(cfg.agent, cfg.agent_options)
        image = image_for(task)
        return run_trial(
            task,
            agent,
            image,
            recorder,
            run_id,
            index,
            settings=settings,
            control=control,
            build_s=getattr(image, "build_s", None),
        )

    results: list[TrialResult] = []
    with ThreadPoolExecutor(
        max_workers=max(1, cfg.concurrency), thread_name_prefix="trial"
    ) as pool:
        futures = [pool.submit(one, t, i) for t, i in todo]
        for fut in as_completed(futures):
            res = fut.result()
            if res is None:
                continue
            results.append(res)
            if on_result is not None:
                on_result(res)
    return results


@dataclass
class RunPlan:
    """A run ready to start: its id, configuration, tasks, and the trials already done."""

    run_id: str
    config: RunConfig
    tasks: list[Task]
    skip: set[tuple[str, int]] = field(default_factory=set)
    resumed: bool = False
    invalid: list[TaskError] = field(default_factory=list)  # skipped with --skip-invalid
    notes: list[str] = field(default_factory=list)  # e.g. folders that hold no task
    run_context: SpanContext | None = None  # a resumed run's `harness.run` span

    @property
    def total(self) -> int:
        """Trials this run will start."""
        ids = {t.id for t in self.tasks}
        done = sum(1 for task, _ in self.skip if task in ids)
        return len(self.tasks) * self.config.trials - done


class SuiteInvalid(ValueError):
    """Some tasks of a run are invalid: every problem of every one, and the way out."""

    def __init__(self, invalid: list[TaskError], valid: int) -> None:
        self.invalid = invalid
        lines = [f"{len(invalid)} invalid task(s):"]
        for err in invalid:
            lines.append(f"{err.path}:")
            lines += [f"  {p}" for p in err.problems if p.severity == "error"]
        lines.append(
            f"fix them (`harness tasks check` says how), or pass --skip-invalid to run the "
            f"{valid} valid task(s)"
        )
        super().__init__("\n".join(lines))


def plan_run(
    store: traces.TraceStore, config: RunConfig | None = None, resume: str | None = None
) -> RunPlan:
    """Check everything a run needs before any trial starts: its tasks load, its agent loads
    with its options; for ``resume``, which trials of that run still lack an outcome.

    Raises:
        TaskError, ValueError (a bad agent or option), traces.StoreError (no such run).
    """
    run_context = None
    if resume:
        config, run_context = recorded_run(store, resume)
        run_id, skip = resume, finished_trials(store, resume)
    elif config is None:
        raise ValueError("name at least one task folder (or use --resume RUN_ID)")
    else:
        run_id, skip = new_run_id(), set()
    suite = find_suite(config)
    if suite.invalid and not config.skip_invalid:
        raise SuiteInvalid(suite.invalid, len(suite.tasks))
    load_agent(config.agent, config.agent_options)  # a bad agent fails now, not in every trial
    return RunPlan(
        run_id,
        config,
        suite.tasks,
        skip,
        resumed=bool(resume),
        invalid=suite.invalid,
        notes=suite.notes,
        run_context=run_context,
    )


def execute_run(
    plan: RunPlan,
    recorder: traces.Recorder,
    on_result: Callable[[TrialResult], None] | None = None,
    on_build: Callable[[str], None] | None = None,
    control: RunControl | None = None,
) -> list[TrialResult]:
    """Record the run's configuration (a new run) and run its remaining trials."""
    context = plan.run_context
    if not plan.resumed:
        context = record_config(recorder, plan.run_id, plan.config)
    return run_suite(
        plan.tasks,
        plan.config,
        recorder,
        plan.run_id,
        plan.skip,
        on_result,
        on_build,
        control,
        context,
    )
