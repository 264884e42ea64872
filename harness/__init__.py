"""harness: run agent tasks in instrumented containers, record everything, replay and score.

This package holds orchestration and the ``harness`` CLI; the container runtime lives in
``sandbox``, the trace store in ``traces``, reading runs back in ``reports``. The names below
are the public Python API (tests, benchmarks and users import nothing private)::

    import harness

    tasks = harness.load_tasks(["tasks"])
    plan = harness.plan_run(harness.open_store(), harness.RunConfig(tasks=["tasks"],
                                                                    agent="oracle"))
    with harness.Recorder(harness.open_store()) as rec:
        results = harness.execute_run(plan, rec)

Names are imported on first use, so ``harness --version`` loads no engine or store code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from reports import summarize
    from traces import Recorder
    from traces import open as open_store
    from traces.vocab import OUTCOMES, Outcome

    from ._build import BuildError, TaskImage, map_dockerfile, parse_image_map, task_image
    from ._control import RunControl
    from ._exec import exec_commands
    from ._fork import ForkError, ForkResult, fork_trial
    from ._record import new_run_id
    from ._replay import ReplayError, ReplayReport, replay_trial
    from ._replay_compare import PRESETS, Normalizer, StepVerdict, normalizers
    from ._runner import (
        RunConfig,
        RunPlan,
        execute_run,
        finished_trials,
        load_suite,
        plan_run,
        run_suite,
    )
    from ._tasks import Problem, Task, TaskError, find_tasks, load_task, load_tasks
    from ._trial import TrialResult, run_trial
    from .agents import (
        Agent,
        AgentContext,
        AgentError,
        AgentOptions,
        AgentSession,
        load_agent,
    )

# Public name -> (module, attribute), imported on first use.
_EXPORTS: dict[str, tuple[str, str]] = {
    "Agent": ("harness.agents", "Agent"),
    "AgentContext": ("harness.agents", "AgentContext"),
    "AgentError": ("harness.agents", "AgentError"),
    "AgentOptions": ("harness.agents", "AgentOptions"),
    "AgentSession": ("harness.agents", "AgentSession"),
    "BuildError": ("harness._build", "BuildError"),
    "OUTCOMES": ("traces.vocab", "OUTCOMES"),
    "Outcome": ("traces.vocab", "Outcome"),
    "Problem": ("harness._tasks", "Problem"),
    "Recorder": ("traces", "Recorder"),
    "RunConfig": ("harness._runner", "RunConfig"),
    "RunPlan": ("harness._runner", "RunPlan"),
    "Task": ("harness._tasks", "Task"),
    "TaskError": ("harness._tasks", "TaskError"),
    "TaskImage": ("harness._build", "TaskImage"),
    "TrialResult": ("harness._trial", "TrialResult"),
    "exec_commands": ("harness._exec", "exec_commands"),
    "fork_trial": ("harness._fork", "fork_trial"),
    "ForkError": ("harness._fork", "ForkError"),
    "ForkResult": ("harness._fork", "ForkResult"),
    "execute_run": ("harness._runner", "execute_run"),
    "find_tasks": ("harness._tasks", "find_tasks"),
    "finished_trials": ("harness._runner", "finished_trials"),
    "RunControl": ("harness._control", "RunControl"),
    "load_agent": ("harness.agents", "load_agent"),
    "load_suite": ("harness._runner", "load_suite"),
    "load_task": ("harness._tasks", "load_task"),
    "load_tasks": ("harness._tasks", "load_tasks"),
    "map_dockerfile": ("harness._build", "map_dockerfile"),
    "new_run_id": ("harness._record", "new_run_id"),
    "open_store": ("traces", "open"),
    "parse_image_map": ("harness._build", "parse_image_map"),
    "plan_run": ("harness._runner", "plan_run"),
    "replay_trial": ("harness._replay", "replay_trial"),
    "ReplayError": ("harness._replay", "ReplayError"),
    "ReplayReport": ("harness._replay", "ReplayReport"),
    "normalizers": ("harness._replay_compare", "normalizers"),
    "Normalizer": ("harness._replay_compare", "Normalizer"),
    "StepVerdict": ("harness._replay_compare", "StepVerdict"),
    "PRESETS": ("harness._replay_compare", "PRESETS"),
    "run_suite": ("harness._runner", "run_suite"),
    "run_trial": ("harness._trial", "run_trial"),
    "summarize": ("reports", "summarize"),
    "task_image": ("harness._build", "task_image"),
}

__all__ = [
    "__version__",
    "Agent",
    "AgentContext",
    "AgentError",
    "AgentOptions",
    "AgentSession",
    "BuildError",
    "OUTCOMES",
    "Outcome",
    "Problem",
    "Recorder",
    "RunConfig",
    "RunPlan",
    "Task",
    "TaskError",
    "TaskImage",
    "TrialResult",
    "exec_commands",
    "fork_trial",
    "ForkError",
    "ForkResult",
    "execute_run",
    "find_tasks",
    "finished_trials",
    "RunControl",
    "load_agent",
    "load_suite",
    "load_task",
    "load_tasks",
    "map_dockerfile",
    "new_run_id",
    "open_store",
    "parse_image_map",
    "plan_run",
    "PRESETS",
    "Normalizer",
    "ReplayError",
    "ReplayReport",
    "StepVerdict",
    "normalizers",
    "replay_trial",
    "run_suite",
    "run_trial",
    "summarize",
    "task_image",
]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
