"""A pytest plugin: each task of a suite is a test, passed when the agent passes it.

For teams whose CI already gates on pytest (its exit status, ``--junitxml``, ``-k``, ``-x``)::

    pytest --harness-tasks tasks/ --harness-agent oracle [--harness-trials K]
           [--harness-min-pass 0.8] [--harness-db PATH] [--harness-concurrency N]

Registered through the ``pytest11`` entry point (``-p no:harness`` turns it off); without
``--harness-tasks`` it does nothing. Every selected task's trials run as ONE suite run, on the
runner's own concurrency (no xdist), when the first task item runs; each item then reads its
task's trials from the store. A test passes when its task's pass rate is at least
``--harness-min-pass`` (default 1: every trial). The run is recorded like ``harness run``'s
(``harness show RUN_ID`` tells it), and the run id is printed at the end.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import traces

__all__ = ["TaskItem", "TaskSuite"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "harness: agent tasks as tests")
    group.addoption(
        "--harness-tasks",
        action="append",
        metavar="PATH",
        help="A task folder or a suite folder; each task becomes a test (repeatable).",
    )
    group.addoption(
        "--harness-agent",
        default="oracle",
        metavar="NAME",
        help="The agent: oracle, nop, scripted, openai, a plug-in or module:Class (oracle).",
    )
    group.addoption(
        "--harness-agent-option",
        action="append",
        metavar="KEY=VALUE",
        help="An option for the agent, e.g. script=agent.yaml or model=gpt-5-mini (repeatable).",
    )
    group.addoption(
        "--harness-trials", type=int, default=1, metavar="K", help="Trials per task (1)."
    )
    group.addoption(
        "--harness-min-pass",
        type=float,
        default=1.0,
        metavar="RATE",
        help="Pass rate a task needs to pass, 0..1 (1: every trial).",
    )
    group.addoption(
        "--harness-concurrency",
        type=int,
        default=2,
        metavar="N",
        help="Trials at once, across all tasks (2).",
    )
    group.addoption(
        "--harness-db",
        metavar="PATH",
        help="Trace store to record the run in (default $HARNESS_DB or .harness/traces.duckdb).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "harness: a task of --harness-tasks (-m harness: only them)")
    if not config.getoption("harness_tasks"):
        return
    trials = config.getoption("harness_trials")
    rate = config.getoption("harness_min_pass")
    concurrency = config.getoption("harness_concurrency")
    if trials < 1:
        raise pytest.UsageError(f"--harness-trials {trials}: give at least 1")
    if not 0 <= rate <= 1:
        raise pytest.UsageError(f"--harness-min-pass {rate}: give a pass rate in 0..1")
    if concurrency < 1:
        raise pytest.UsageError(f"--harness-concurrency {concurrency}: give at least 1")
    from harness import find_tasks, load_agent

    for path in config.getoption("harness_tasks"):
        if not Path(path).is_dir():
            raise pytest.UsageError(f"--harness-tasks {path}: no such folder")
        if not find_tasks([path]):
            raise pytest.UsageError(
                f"--harness-tasks {path}: no task there (a task is a folder with a task.toml; "
                "give a task folder or a folder of them)"
            )
    # A bad agent or option stops the session now, not in every test.
    agent = config.getoption("harness_agent")
    try:
        load_agent(agent, _agent_options(config))
    except ValueError as exc:
        raise pytest.UsageError(f"--harness-agent {agent}: {exc}") from None
    config.stash[_RUN] = _SuiteRun(config)


def _agent_options(config: pytest.Config) -> dict[str, Any]:
    """``--harness-agent-option``s, validated by the agent's own options model.

    Raises:
        ValueError: a malformed pair, or an option the agent does not have.
    """
    from harness.agents import validate_options

    options: dict[str, Any] = {}
    for pair in config.getoption("harness_agent_option") or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--harness-agent-option {pair!r}: expected KEY=VALUE")
        options[key.replace("-", "_")] = value
    return validate_options(config.getoption("harness_agent"), options)


class TaskFailed(Exception):
    """A task that did not pass: the message says how its trials ended."""


class TaskSuite(pytest.Collector):
    """The tasks one ``--harness-tasks`` path names."""

    def __init__(self, *, given: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.given = given

    def collect(self) -> list[pytest.Item]:
        from harness import find_tasks, load_task

        items: list[pytest.Item] = []
        for path in find_tasks([self.given]):
            task, problems = load_task(path)
            errors = [str(p) for p in problems if p.severity == "error"]
            name = task.id if task is not None else Path(path).name
            item = TaskItem.from_parent(
                self,
                name=name,
                path=Path(path).resolve(),
                problems=tuple(errors) if task is None else (),
            )
            item.add_marker("harness")
            items.append(item)
        return items


class TaskItem(pytest.Item):
    """One task: passed when its pass rate reaches ``--harness-min-pass``."""

    def __init__(self, *, problems: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problems = problems

    def runtest(self) -> None:
        if self.problems:
            raise TaskFailed(f"invalid task {self.path}:\n  " + "\n  ".join(self.problems))
        run = self.config.stash[_RUN]
        trials = run.trials_of(self)
        need = self.config.getoption("harness_min_pass")
        passed = sum(1 for t in trials if t.passed)
        self.user_properties += [  # --junitxml writes them as the testcase's properties
            ("run_id", run.run_id or ""),
            ("trials", len(trials)),
            ("passed", passed),
            ("duration_s", round(sum(t.duration_s for t in trials), 3)),
        ]
        if not trials:
            raise TaskFailed(f"{self.name}: no trial of it was recorded ({run.where()})")
        if passed / len(trials) >= need:
            return
        ended = ", ".join(
            f"trial {t.trial_index}: {t.outcome or 'interrupted'}"
            + (f" (reward {t.reward:g})" if t.reward is not None else "")
            + (f" [{t.error}]" if t.error else "")
            for t in trials
        )
        raise TaskFailed(
            f"{self.name}: {passed}/{len(trials)} trials passed ({passed / len(trials):.0%}), "
            f"needs {need:.0%}; {ended}. {run.where()}"
        )

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        if isinstance(excinfo.value, TaskFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"harness task {self.name}"


class _SuiteRun:
    """The one run of every selected task, started by the first task item that runs."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.run_id: str | None = None
        self.db: str | None = config.getoption("harness_db")
        self.error: str | None = None
        self.by_task: dict[str, list[traces.Trial]] | None = None

    def where(self) -> str:
        if self.run_id is None:
            return ""
        db = f" --db {self.db}" if self.db else ""
        return f"`harness show {self.run_id}{db}` tells the run"

    def trials_of(self, item: TaskItem) -> list[traces.Trial]:
        if self.by_task is None and self.error is None:
            self.run(item.session)
        if self.error is not None:
            raise TaskFailed(f"the harness run failed: {self.error}")
        assert self.by_task is not None
        return self.by_task.get(item.name, [])

    def run(self, session: pytest.Session) -> None:
        """Run every selected task's trials as one suite run; the error, if it fails."""
        import harness
        import reports
        import traces

        opt = self.config.getoption
        items = [i for i in session.items if isinstance(i, TaskItem) and not i.problems]
        store = traces.open(self.db)
        try:
            agent = opt("harness_agent")
            config = harness.RunConfig(
                tasks=[str(i.path) for i in items],
                agent=agent,
                agent_options=_agent_options(self.config),
                trials=opt("harness_trials"),
                concurrency=opt("harness_concurrency"),
            )
            plan = harness.plan_run(store, config)
            self.run_id = plan.run_id
            self._say(
                f"harness: running {len(plan.tasks)} tasks x {config.trials} trial(s) with "
                f"{agent} (run {plan.run_id}, concurrency {config.concurrency})"
            )
            done = [0]

            def on_result(r: harness.TrialResult) -> None:
                done[0] += 1
                self._say(
                    f"harness: {done[0]}/{plan.total} {r.task} trial {r.trial_index}: {r.outcome}"
                )

            recorder = harness.Recorder(store)
            try:
                harness.execute_run(plan, recorder, on_result)
            finally:
                recorder.shutdown(drain_wait_s=10.0)
            trials = reports.effective_trials(store.trials(plan.run_id))
        except Exception as exc:  # the engine, the store, the agent: every item says why
            self.error = f"{type(exc).__name__}: {exc}"
            return
        self.by_task = {}
        for t in trials:
            self.by_task.setdefault(t.task or "", []).append(t)

    def _say(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
            reporter.flush()


_RUN = pytest.StashKey[_SuiteRun]()


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: they must see the tasks
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    given = config.getoption("harness_tasks")
    if not given:
        return
    names: set[str] = set()
    for path in given:
        resolved = Path(path).resolve()
        name = resolved.name or "tasks"
        while name in names:
            name += "_"
        names.add(name)
        suite = TaskSuite.from_parent(session, name=name, nodeid=name, path=resolved, given=path)
        # Collected as pytest collects files (collect reports, counts), then added.
        items.extend(session.genitems(suite))


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Run the selected tasks (those left after -k, -m, --deselect) before the first test
    reports, so the run's progress line comes first and the tests then only read."""
    run = session.config.stash.get(_RUN, None)
    if run is None or session.config.option.collectonly:
        return
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        return  # pytest stops for the collection errors
    if any(isinstance(i, TaskItem) and not i.problems for i in session.items):
        run.run(session)


def pytest_report_header(config: pytest.Config) -> str | None:
    if not config.getoption("harness_tasks"):
        return None
    db = config.getoption("harness_db") or os.environ.get("HARNESS_DB") or ".harness/traces.duckdb"
    return (
        f"harness: agent {config.getoption('harness_agent')}, "
        f"{config.getoption('harness_trials')} trial(s) per task, min pass rate "
        f"{config.getoption('harness_min_pass'):g}, store {db}"
    )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is None or run.run_id is None:
        return
    db = f" --db {run.db}" if run.db else ""
    terminalreporter.write_line(
        f"harness: run {run.run_id} recorded; `harness show {run.run_id}{db}` tells it, "
        f"`harness results {run.run_id}{db} -o baseline.json` keeps it as a baseline"
    )
