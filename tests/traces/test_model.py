"""The typed read model: what a trial recorded comes back as runs, trials, steps, changes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import Span as OtelSpan
from opentelemetry.trace import Tracer

import traces
from traces import (
    Command,
    FileChange,
    Recorder,
    ResourceSample,
    Run,
    StoreError,
    TraceStore,
    Trial,
)
from traces.vocab import Attr, Outcome, Span

T0 = 1_700_000_000_000_000_000  # ns; every span below starts at T0 + a whole millisecond
MS = 1_000_000


def at(ms: int) -> datetime:
    return datetime.fromtimestamp((T0 + ms * MS) / 1e9, tz=UTC)


class Trace:
    """Builds one trial trace with explicit times, so expectations can be exact."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    @contextmanager
    def span(
        self,
        name: str,
        start_ms: int,
        end_ms: int,
        parent: OtelSpan | None = None,
        **attributes: Any,
    ) -> Iterator[OtelSpan]:
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            name, context=ctx, attributes=attributes or None, start_time=T0 + start_ms * MS
        )
        yield span
        span.end(end_time=T0 + end_ms * MS)

    def leaf(
        self, name: str, start_ms: int, end_ms: int, parent: OtelSpan, attrs: dict[str, Any]
    ) -> str:
        with self.span(name, start_ms, end_ms, parent, **attrs) as s:
            return format(s.get_span_context().span_id, "016x")


def sid(span: OtelSpan) -> str:
    return format(span.get_span_context().span_id, "016x")


def record_model_trial(
    rec: Recorder,
    *,
    run_id: str,
    trial_id: str,
    task: str,
    offset_ms: int = 0,
    outcome: str = Outcome.PASSED,
    error: str | None = None,
    agent: str = "x",
) -> dict[str, Any]:
    """A trial as the harness records it: phases, tool calls, commands, changes, samples.

    Returns what the read model should give back.
    """
    tb = Trace(rec.tracer("tests"))
    o = offset_ms
    out_ref = rec.put_blob(b"built\n")
    err_ref = rec.put_blob(b"1 failed\n")
    after_ref = rec.put_blob(b"print('hi')\n")
    diff_ref = rec.put_blob(b"+print('hi')\n")
    long_command = "echo " + "y" * 20_000  # longer than the recorder keeps inline
    root_attrs: dict[str, Any] = {
        Attr.RUN_ID: run_id,
        Attr.TASK_ID: task,
        Attr.TRIAL_ID: trial_id,
        Attr.TRIAL_INDEX: 0,
        Attr.GEN_AI_AGENT_NAME: agent,
        Attr.OUTCOME: outcome,
        Attr.REWARD: 1.0 if outcome == Outcome.PASSED else 0.0,
        Attr.IMAGE_NAME: "img:1",
    }
    if error is not None:
        root_attrs[Attr.ERROR] = error
    ids: dict[str, Any] = {}
    with tb.span(Span.trial(agent), o, o + 1000, **root_attrs) as root:
        ids["trace_id"] = format(root.get_span_context().trace_id, "032x")
        with tb.span(Span.SETUP, o + 10, o + 100, root) as setup:
            ids["s1"] = tb.leaf(
                Span.EXEC,
                o + 20,
                o + 30,
                setup,
                {Attr.COMMAND_LINE: "mkdir -p /app", Attr.EXIT_CODE: 0, Attr.CWD: "/"},
            )
        with tb.span(Span.AGENT, o + 100, o + 600, root, **{Attr.STAGE: "build"}) as agent_span:
            with tb.span(
                Span.chat("gpt-test"),
                o + 110,
                o + 150,
                agent_span,
                **{
                    Attr.GEN_AI_REQUEST_MODEL: "gpt-test",
                    Attr.GEN_AI_INPUT_TOKENS: 100,
                    Attr.GEN_AI_OUTPUT_TOKENS: 20,
                },
            ):
                pass
            with (
                tb.span(
                    Span.tool("shell"),
                    o + 160,
                    o + 300,
                    agent_span,
                    **{Attr.GEN_AI_TOOL_NAME: "shell", Attr.GEN_AI_TOOL_CALL_ID: "call_1"},
                ) as tool,
                tb.span(
                    Span.EXEC,
                    o + 170,
                    o + 250,
                    tool,
                    **{
                        Attr.COMMAND_LINE: "python make.py",
                        Attr.EXIT_CODE: 0,
                        Attr.CWD: "/app",
                        Attr.STDOUT_BLOB: out_ref,
                        Attr.STDOUT_BYTES: 6,
                        Attr.STDERR_BYTES: 0,
                        Attr.CPU_TIME: 0.5,
                        Attr.MEMORY_PEAK: 4096,
                        Attr.TIMED_OUT: False,
                    },
                ) as ex,
            ):
                ids["s2"] = sid(ex)
                tb.leaf(
                    Span.FS_CHANGE,
                    o + 249,
                    o + 249,
                    ex,
                    {
                        Attr.FS_PATH: "/app/main.py",
                        Attr.FS_OP: "create",
                        Attr.FS_TYPE: "file",
                        Attr.FS_SIZE: 12,
                        Attr.FS_MODE: "0644",
                        Attr.FS_AFTER_BLOB: after_ref,
                        Attr.FS_DIFF_BLOB: diff_ref,
                    },
                )
                tb.leaf(
                    Span.FS_CHANGE,
                    o + 249,
                    o + 249,
                    ex,
                    {
                        Attr.FS_PATH: "/app/link",
                        Attr.FS_OP: "create",
                        Attr.FS_TYPE: "symlink",
                        Attr.FS_LINK_TARGET: "main.py",
                    },
                )
                tb.leaf(
                    Span.FS_CHANGE,
                    o + 250,
                    o + 250,
                    ex,
                    {
                        Attr.FS_PATH: "/app/new.bin",
                        Attr.FS_OP: "rename",
                        Attr.FS_TYPE: "file",
                        Attr.FS_OLD_PATH: "/app/old.bin",
                        Attr.FS_CONTENT_OMITTED: True,
                    },
                )
            ids["s3"] = tb.leaf(
                Span.EXEC,
                o + 310,
                o + 410,
                agent_span,
                {
                    Attr.COMMAND_LINE: "sleep 100",
                    Attr.EXIT_CODE: 124,
                    Attr.TIMED_OUT: True,
                    Attr.OOM_KILLED: False,
                },
            )
            ids["s4"] = tb.leaf(
                Span.EXEC, o + 420, o + 430, agent_span, {Attr.COMMAND_LINE: long_command}
            )
            tb.leaf(
                Span.RESOURCES,
                o + 200,
                o + 200,
                agent_span,
                {
                    Attr.CONTAINER_CPU_TIME: 0.25,
                    Attr.CONTAINER_MEMORY: 1000,
                    Attr.CONTAINER_MEMORY_PEAK: 2000,
                    Attr.CONTAINER_PIDS: 3,
                    Attr.CONTAINER_DISK_READ: 10,
                    Attr.CONTAINER_DISK_WRITE: 20,
                    Attr.CONTAINER_NET_RX: 30,
                    Attr.CONTAINER_NET_TX: 40,
                },
            )
            tb.leaf(
                Span.RESOURCES,
                o + 500,
                o + 500,
                agent_span,
                {Attr.CONTAINER_CPU_TIME: 0.75, Attr.CONTAINER_MEMORY: 1500},
            )
        with tb.span(Span.VERIFY, o + 600, o + 900, root, **{Attr.STAGE: "build"}) as verify:
            ids["s5"] = tb.leaf(
                Span.EXEC,
                o + 610,
                o + 890,
                verify,
                {
                    Attr.COMMAND_LINE: "pytest",
                    Attr.EXIT_CODE: 1,
                    Attr.STDERR_BLOB: err_ref,
                    Attr.STDERR_BYTES: 9,
                },
            )
        ids["s6"] = tb.leaf(
            Span.EXEC, o + 950, o + 960, root, {Attr.COMMAND_LINE: "true", Attr.EXIT_CODE: 0}
        )
    ids.update(
        out_ref=out_ref,
        err_ref=err_ref,
        after_ref=after_ref,
        diff_ref=diff_ref,
        long_command=long_command,
    )
    return ids


@pytest.fixture
def store(tmp_path: Path) -> TraceStore:
    return TraceStore(tmp_path / "traces.duckdb")


@pytest.fixture
def recorded(store: TraceStore) -> dict[str, dict[str, Any]]:
    with Recorder(store) as rec:
        return {
            "a1": record_model_trial(rec, run_id="run-a", trial_id="trial-a1", task="t1"),
            "a2": record_model_trial(
                rec,
                run_id="run-a",
                trial_id="trial-a2",
                task="t2",
                offset_ms=2000,
                outcome=Outcome.INFRA_ERROR,
                error="sandbox died",
                agent="y",
            ),
            "b1": record_model_trial(
                rec, run_id="run-b", trial_id="other-b1", task="t1", offset_ms=5000
            ),
        }


def test_steps_come_back_in_order_with_phase_and_stage(
    store: TraceStore, recorded: dict[str, dict[str, Any]]
) -> None:
    ids = recorded["a1"]
    steps = store.commands("trial-a1")
    assert all(isinstance(s, Command) for s in steps)
    assert [s.index for s in steps] == [1, 2, 3, 4, 5, 6]
    assert [s.span_id for s in steps] == [ids[f"s{i}"] for i in range(1, 7)]
    assert [(s.phase, s.stage) for s in steps] == [
        (Span.SETUP, None),
        (Span.AGENT, "build"),  # under execute_tool inside the agent phase
        (Span.AGENT, "build"),
        (Span.AGENT, "build"),
        (Span.VERIFY, "build"),
        (None, None),  # outside every phase
    ]
    assert [s.command for s in steps] == [
        "mkdir -p /app",
        "python make.py",
        "sleep 100",
        ids["long_command"],  # moved to a blob by the recorder, read back whole
        "pytest",
        "true",
    ]
    offloaded = store.sql("SELECT command FROM commands WHERE span_id = ?", [ids["s4"]])
    assert offloaded.command.isna().all()  # the view alone does not have it
    assert steps[1] == Command(
        index=2,
        span_id=ids["s2"],
        command="python make.py",
        exit_code=0,
        cwd="/app",
        started_at=at(170),
        duration_ms=80.0,
        timed_out=False,
        oom_killed=False,
        stdout_ref=ids["out_ref"],
        stderr_ref=None,
        stdout_bytes=6,
        stderr_bytes=0,
        cpu_s=0.5,
        peak_memory_bytes=4096,
        phase=Span.AGENT,
        stage="build",
    )
    assert (steps[2].exit_code, steps[2].timed_out, steps[2].oom_killed) == (124, True, False)
    assert steps[3].exit_code is None and steps[3].cwd is None
    assert (steps[4].stderr_ref, steps[4].stderr_bytes) == (ids["err_ref"], 9)
    assert store.blob_text(steps[1].stdout_ref) == "built\n"
    assert steps[0].started_at.tzinfo is UTC


def test_file_changes_of_a_trial_and_of_one_step(
    store: TraceStore, recorded: dict[str, dict[str, Any]]
) -> None:
    ids = recorded["a1"]
    changes = store.file_changes("trial-a1")
    assert changes == [
        FileChange(
            step_span_id=ids["s2"],
            path="/app/link",
            op="create",
            file_type="symlink",
            size=None,
            mode=None,
            before_ref=None,
            after_ref=None,
            diff_ref=None,
            link_target="main.py",
            old_path=None,
            content_omitted=False,
            changed_at=at(249),
        ),
        FileChange(
            step_span_id=ids["s2"],
            path="/app/main.py",
            op="create",
            file_type="file",
            size=12,
            mode="0644",
            before_ref=None,
            after_ref=ids["after_ref"],
            diff_ref=ids["diff_ref"],
            link_target=None,
            old_path=None,
            content_omitted=False,
            changed_at=at(249),
        ),
        FileChange(
            step_span_id=ids["s2"],
            path="/app/new.bin",
            op="rename",
            file_type="file",
            size=None,
            mode=None,
            before_ref=None,
            after_ref=None,
            diff_ref=None,
            link_target=None,
            old_path="/app/old.bin",
            content_omitted=True,
            changed_at=at(250),
        ),
    ]
    assert store.file_changes("trial-a1", ids["s2"]) == changes
    assert store.file_changes("trial-a1", ids["s1"]) == []
    assert store.blob_text(changes[1].diff_ref) == "+print('hi')\n"
    # Another trial's changes stay its own.
    assert [c.step_span_id for c in store.file_changes("trial-a2")] == [recorded["a2"]["s2"]] * 3


def test_resource_samples_in_time_order(
    store: TraceStore, recorded: dict[str, dict[str, Any]]
) -> None:
    assert store.resource_samples("trial-a1") == [
        ResourceSample(
            sampled_at=at(200),
            cpu_s=0.25,
            memory_bytes=1000,
            memory_peak_bytes=2000,
            pids=3,
            block_read_bytes=10,
            block_write_bytes=20,
            net_rx_bytes=30,
            net_tx_bytes=40,
        ),
        ResourceSample(
            sampled_at=at(500),
            cpu_s=0.75,
            memory_bytes=1500,
            memory_peak_bytes=None,
            pids=None,
            block_read_bytes=None,
            block_write_bytes=None,
            net_rx_bytes=None,
            net_tx_bytes=None,
        ),
    ]


def test_trials_and_runs(store: TraceStore, recorded: dict[str, dict[str, Any]]) -> None:
    a1, a2 = store.trials("run-a")
    assert a1 == Trial(
        run_id="run-a",
        trial_id="trial-a1",
        trace_id=recorded["a1"]["trace_id"],
        task="t1",
        trial_index=0,
        agent="x",
        model=None,  # the root span names no model; its chat span does
        outcome=Outcome.PASSED,
        passed=True,
        reward=1.0,
        steps=1,  # one model call
        input_tokens=100,
        output_tokens=20,
        started_at=at(0),
        duration_s=1.0,
        image="img:1",
        error=None,
        # The highest of the samples' usage and peak and the commands' peak (4096 > 2000).
        peak_memory_bytes=4096,
        cpu_s=0.75,  # the last sample's cumulative CPU time, not the commands' sum
    )
    assert (a2.trial_id, a2.outcome, a2.passed, a2.error) == (
        "trial-a2",
        Outcome.INFRA_ERROR,
        False,
        "sandbox died",
    )
    assert [t.trial_id for t in store.trials()] == ["trial-a1", "trial-a2", "other-b1"]
    assert store.trials("no-such-run") == []

    assert [r.run_id for r in store.runs()] == ["run-a", "run-b"]
    assert store.run("run-a") == Run(
        run_id="run-a",
        started_at=at(0),
        ended_at=at(3000),
        trials=2,
        passed=1,
        pass_rate=0.5,
        mean_reward=0.5,
        errors=1,
        agents=("x", "y"),
        models=(),
        tasks=2,
        input_tokens=200,
        output_tokens=40,
    )
    for obj in (a1, store.run("run-b")):
        assert dataclasses.is_dataclass(obj)
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.run_id = "changed"  # type: ignore[misc]


def test_a_trial_by_id_or_unique_prefix(
    store: TraceStore, recorded: dict[str, dict[str, Any]]
) -> None:
    assert store.trial("trial-a2").trial_id == "trial-a2"
    assert store.trial("oth").trial_id == "other-b1"
    assert store.commands("oth")[0].command == "mkdir -p /app"
    with pytest.raises(StoreError, match="ambiguous.*trial-a1, trial-a2"):
        store.trial("trial-a")
    with pytest.raises(StoreError, match="no trial 'nope'"):
        store.trial("nope")
    for read in (store.commands, store.actions, store.file_changes, store.resource_samples):
        with pytest.raises(StoreError, match="no trial 'nope'"):
            read("nope")


def test_an_exact_id_wins_over_longer_ids_it_prefixes(store: TraceStore) -> None:
    with Recorder(store) as rec:
        record_model_trial(rec, run_id="r", trial_id="t1", task="a")
        for i in range(25):
            record_model_trial(rec, run_id="r", trial_id=f"t1{i:02d}", task="a", offset_ms=i)
    assert store.trial("t1").trial_id == "t1"
    assert store.trial("t105").trial_id == "t105"
    with pytest.raises(StoreError, match=r"ambiguous.*t100, t101, .*t109; give more"):
        store.trial("t10")
    with pytest.raises(StoreError, match=r"ambiguous.*: it matches t1, t100, .*t118, \.\.\.;"):
        store.trial("t")


def test_an_unknown_run_names_the_command_that_lists_runs(
    store: TraceStore, recorded: dict[str, dict[str, Any]]
) -> None:
    with pytest.raises(StoreError, match="no run 'nope'.*`harness runs`"):
        store.run("nope")


def test_model_types_are_public() -> None:
    assert traces.Run is Run and traces.Trial is Trial and traces.Command is Command
    assert traces.FileChange is FileChange and traces.ResourceSample is ResourceSample
