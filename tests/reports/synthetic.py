"""A synthetic suite run written through the real recorder, shaped like the harness records one.

The report's scale claim (500 trials of about 20 actions each, ``benchmarks/report_open.py``)
and the report's fast tests need runs far larger or quicker than Docker can make; this builds
them span by span with the OpenTelemetry API and the shared vocabulary, the way a trial's
phases, model calls, commands, file changes, resource samples and verifier are recorded, so the
read model and the report see nothing they would not see from ``harness run``. Outputs are
varied, text-like and seeded (deterministic), so the report's size is an honest one: a run
whose every output were identical would compress to nothing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span as OtelSpan
from opentelemetry.trace import Tracer

import traces
from traces.vocab import Actor, Attr, Outcome, Span

__all__ = ["Synthetic", "synthetic_run"]

T0 = 1_800_000_000_000_000_000  # ns
MS = 1_000_000
GIB = 1 << 30

WORDS = (
    "parse", "load", "write", "index", "report", "config", "median", "cache", "token", "stream",
    "build", "check", "merge", "split", "queue", "worker", "buffer", "session", "record",
    "value", "error", "result", "handle", "retry",
)  # fmt: skip


@dataclass(frozen=True)
class Synthetic:
    """What was written: the run id, its trial ids by task, and the outcome of each."""

    run_id: str
    trials: dict[str, list[str]]
    outcomes: dict[str, str]


class _Builder:
    def __init__(self, tracer: Tracer, rec: traces.Recorder, rnd: random.Random) -> None:
        self.tracer = tracer
        self.rec = rec
        self.rnd = rnd

    @contextmanager
    def span(
        self, name: str, start_ms: float, end_ms: float, parent: OtelSpan | None, **attrs: Any
    ) -> Iterator[OtelSpan]:
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            name, context=ctx, attributes=attrs or None, start_time=int(T0 + start_ms * MS)
        )
        yield span
        span.end(end_time=int(T0 + end_ms * MS))

    def start(self, name: str, start_ms: float, parent: OtelSpan | None, **attrs: Any) -> OtelSpan:
        """A span to end by hand (its end is known only later)."""
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(
            name, context=ctx, attributes=attrs or None, start_time=int(T0 + start_ms * MS)
        )

    def leaf(self, name: str, at: float, parent: OtelSpan, **attrs: Any) -> None:
        with self.span(name, at, at, parent, **attrs):
            pass

    # -- text that looks like what agents see ----------------------------------------------

    def word(self) -> str:
        return self.rnd.choice(WORDS)

    def output(self, lines: int) -> bytes:
        r = self.rnd
        kind = r.randrange(4)
        out = []
        for i in range(lines):
            if kind == 0:
                out.append(
                    f"-rw-r--r-- 1 root root {r.randrange(10, 99999):>6} Nov 27 "
                    f"{r.randrange(24):02d}:{r.randrange(60):02d} "
                    f"{self.word()}_{r.randrange(999)}.py"
                )
            elif kind == 1:
                status = "PASSED" if r.random() < 0.85 else "FAILED"
                out.append(
                    f"tests/test_{self.word()}.py::test_{self.word()}_{r.randrange(99)} {status}"
                    f" [{(i + 1) * 100 // lines:3d}%]"
                )
            elif kind == 2:
                out.append(
                    f"src/{self.word()}/{self.word()}.py:{r.randrange(1, 900)}:     "
                    f"{self.word()} = {self.word()}_{r.randrange(99)}({self.word()}, "
                    f"{r.randrange(1000)})"
                )
            else:
                out.append(
                    f"2027-01-15 10:{r.randrange(60):02d}:{r.randrange(60):02d} INFO "
                    f"{self.word()}.{self.word()}: {self.word()} {r.randrange(1000)} items "
                    f"in {r.randrange(1, 500)} ms"
                )
        return ("\n".join(out) + "\n").encode() if out else b""

    def diff(self, path: str, lines: int) -> bytes:
        r = self.rnd
        body = [f"--- a{path}", f"+++ b{path}", f"@@ -1,{lines} +1,{lines} @@"]
        for _ in range(lines):
            line = f"    {self.word()} = {self.word()}({r.randrange(100)})"
            roll = r.random()
            if roll < 0.15:
                body += ["-" + line, f"+    {self.word()} = {self.word()}({r.randrange(100)})"]
            else:
                body.append(" " + line)
        return ("\n".join(body) + "\n").encode()


def synthetic_run(
    store: traces.TraceStore | str | Path,
    trials: int = 500,
    actions: int = 20,
    tasks: int | None = None,
    run_id: str = "run-synthetic",
    seed: int = 7,
    agent: str = "synthetic",
    model: str = "gpt-5-mini",
    extra_output: dict[int, bytes] | None = None,
    names: list[str] | None = None,
) -> Synthetic:
    """Write a run of ``trials`` trials (over ``tasks`` tasks, default a fifth of the trials:
    5 trials each) with about ``actions`` agent actions each, through a Recorder.

    Outcomes are mixed (mostly passed, some failed, a few timeouts and errors); each action is
    a model call then a command with varied output, some with file changes (modified with a
    diff, added, a binary), and the container is sampled about every 2 s. ``extra_output``
    maps a trial number to the stdout its first command shows instead (for escaping tests);
    ``names`` are the tasks' names (default ``task-000``, ...).
    """
    db = store if isinstance(store, traces.TraceStore) else traces.TraceStore(store)
    rnd = random.Random(seed)
    n_tasks = len(names) if names else tasks or max(1, trials // 5)
    by_task: dict[str, list[str]] = {}
    outcomes: dict[str, str] = {}
    with traces.Recorder(db) as rec:
        b = _Builder(rec.tracer("synthetic"), rec, rnd)
        # Per-task difficulty: some tasks always pass, some never, most in between.
        difficulty = [rnd.choice((0.0, 0.3, 0.6, 0.9, 1.0)) for _ in range(n_tasks)]
        for i in range(trials):
            task_no = i % n_tasks
            task = names[task_no] if names else f"task-{task_no:03d}"
            trial_id = f"{seed:02x}{i:06d}" + f"{rnd.getrandbits(96):024x}"
            roll = rnd.random()
            if roll < difficulty[task_no]:
                outcome = Outcome.PASSED
            elif roll < difficulty[task_no] + 0.06:
                outcome = Outcome.AGENT_TIMEOUT
            elif roll < difficulty[task_no] + 0.09:
                outcome = Outcome.INFRA_ERROR
            else:
                outcome = Outcome.FAILED
            start = i * 20_000.0  # 20 s apart
            _trial(
                b,
                run_id=run_id,
                task=task,
                trial_id=trial_id,
                index=i // n_tasks,
                start=start,
                outcome=outcome,
                actions=max(1, actions + rnd.randrange(-4, 5)),
                agent=agent,
                model=model,
                first_output=(extra_output or {}).get(i),
                number=i,
            )
            by_task.setdefault(task, []).append(trial_id)
            outcomes[trial_id] = outcome
    return Synthetic(run_id, by_task, outcomes)


def _trial(
    b: _Builder,
    *,
    run_id: str,
    task: str,
    trial_id: str,
    index: int,
    start: float,
    outcome: str,
    actions: int,
    agent: str,
    model: str,
    first_output: bytes | None,
    number: int,
) -> None:
    r, rec = b.rnd, b.rec
    scored = outcome in Outcome.SCORED
    root_attrs: dict[str, Any] = {
        Attr.RUN_ID: run_id,
        Attr.TASK_ID: task,
        Attr.TRIAL_ID: trial_id,
        Attr.TRIAL_INDEX: index,
        Attr.GEN_AI_AGENT_NAME: agent,
        Attr.GEN_AI_REQUEST_MODEL: model,
        Attr.IMAGE_NAME: f"harness-task/{task}:{r.getrandbits(64):016x}",
        Attr.TASK_CONTENT_HASH: f"{hash(task) & (2**64 - 1):016x}",
        Attr.OUTCOME: outcome,
        Attr.PASSED: outcome == Outcome.PASSED,
    }
    if scored:
        root_attrs[Attr.REWARD] = 1.0 if outcome == Outcome.PASSED else 0.0
    if outcome == Outcome.AGENT_TIMEOUT:
        root_attrs[Attr.ERROR] = "the agent ran out of time (120 s)"
    if outcome == Outcome.INFRA_ERROR:
        root_attrs[Attr.ERROR] = "the Docker engine stopped answering"
    t = start
    root = b.start(Span.trial(agent), start, None, **root_attrs)
    setup_end = t + r.uniform(600, 1500)
    limits = {
        Attr.LIMITS_MEMORY: 2 * GIB,
        Attr.LIMITS_CPUS: 1.0,
        Attr.LIMITS_PIDS: 1024,
        Attr.NETWORK: "none",
    }
    with (
        b.span(Span.SETUP, t, setup_end, root) as setup,
        b.span(Span.SANDBOX_START, t + 2, setup_end - 10, setup, **limits),
    ):
        pass
    t = setup_end + 5
    samples: list[tuple[float, float]] = []  # (time, cumulative cpu)
    cpu = 0.05
    mem = 40_000_000
    agent_span = b.start(Span.AGENT, t, root, **{Attr.STAGE: "main"})
    for a in range(actions):
        # The model's turn, then the command it asked for.
        dur = r.uniform(400, 3000)
        step = a + 1
        text = (
            f"I will {b.word()} the {b.word()} module next: the {b.word()} test "
            f"fails because {b.word()} returns {r.randrange(100)}."
        )
        body = {
            "id": f"resp_{trial_id[:8]}_{a}",
            "object": "response",
            "model": model,
            "output": [
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text}],
                },
                {"type": "function_call", "call_id": f"call_{a}", "name": "shell"},
            ],
        }
        with b.span(
            Span.chat(model),
            t,
            t + dur,
            agent_span,
            **{
                Attr.GEN_AI_OPERATION: Span.CHAT,
                Attr.GEN_AI_REQUEST_MODEL: model,
                Attr.GEN_AI_INPUT_TOKENS: 1500 + 400 * a,
                Attr.GEN_AI_OUTPUT_TOKENS: r.randrange(40, 400),
                Attr.GEN_AI_CACHED_TOKENS: 1000 + 300 * a,
                Attr.RESPONSE_BLOB: rec.put_blob(json.dumps(body).encode()),
                Attr.CAUSED_STEPS: [step],
            },
        ):
            pass
        t += dur + 3
        run_ms = r.choice((15.0, 40.0, 120.0, 800.0, 3500.0)) * r.uniform(0.5, 1.5)
        failed = r.random() < 0.2
        big = a == actions // 2
        stdout = b.output(r.randrange(250, 400) if big else r.randrange(0, 25))
        if a == 0 and first_output is not None:
            stdout = first_output
        stderr = b.output(r.randrange(1, 6)) if failed else b""
        command = r.choice(
            (
                f"ls -la src/{b.word()}",
                f"python3 -m pytest -q tests/test_{b.word()}.py",
                f"grep -rn '{b.word()}' src/",
                f"sed -i 's/{b.word()}/{b.word()}/' src/{b.word()}.py",
                f"cat src/{b.word()}/{b.word()}.py",
                f"make -j2 {b.word()}",
            )
        )
        timed_out = outcome == Outcome.AGENT_TIMEOUT and a == actions - 1
        code = 124 if timed_out else (r.choice((1, 2, 127)) if failed else 0)
        with b.span(
            Span.tool("shell"),
            t,
            t + run_ms + 2,
            agent_span,
            **{Attr.GEN_AI_TOOL_NAME: "shell", Attr.GEN_AI_TOOL_CALL_ID: f"call_{a}"},
        ) as tool:
            exec_attrs = {
                Attr.COMMAND_LINE: command,
                Attr.CWD: "/app",
                Attr.ACTOR: Actor.AGENT,
                Attr.PHASE: Span.AGENT,
                Attr.STEP: step,
                Attr.STAGE: "main",
                Attr.EXIT_CODE: code,
                Attr.TIMED_OUT: timed_out,
                Attr.OOM_KILLED: False,
                Attr.STDOUT_BLOB: rec.put_blob(stdout),
                Attr.STDOUT_BYTES: len(stdout),
                Attr.STDERR_BLOB: rec.put_blob(stderr),
                Attr.STDERR_BYTES: len(stderr),
                Attr.CPU_TIME: round(run_ms / 1000 * 0.6, 6),
                Attr.MEMORY_PEAK: mem + r.randrange(50_000_000),
                Attr.TIMEOUT: 120.0,
            }
            with b.span(Span.exec(command), t + 1, t + 1 + run_ms, tool, **exec_attrs) as ex:
                _changes(b, ex, t + run_ms, a, binary=a == 1 and number % 4 == 2)
        t += run_ms + 5
        cpu += run_ms / 1000 * 0.6 + 0.01
        mem = max(20_000_000, mem + r.randrange(-20_000_000, 30_000_000))
        samples.append((t, cpu))
        b.leaf(
            Span.RESOURCES,
            t,
            root,
            **{
                Attr.CONTAINER_CPU_TIME: cpu,
                Attr.CONTAINER_MEMORY: mem,
                Attr.CONTAINER_MEMORY_PEAK: mem + 5_000_000,
                Attr.CONTAINER_PIDS: r.randrange(2, 9),
            },
        )
    agent_span.end(end_time=int(T0 + t * MS))
    if scored or outcome == Outcome.AGENT_TIMEOUT:
        v0 = t + 5
        v_dur = r.uniform(300, 2500)
        reward = 1.0 if outcome == Outcome.PASSED else 0.0
        with b.span(Span.VERIFY, v0, v0 + v_dur, root, **{Attr.STAGE: "main"}) as verify:
            verify.set_attribute(Attr.REWARD, reward)
            vout = b.output(r.randrange(5, 40))
            verr = b"" if reward else b.output(3)
            with b.span(
                Span.exec("bash /tests/test.sh"),
                v0 + 10,
                v0 + v_dur - 10,
                verify,
                **{
                    Attr.COMMAND_LINE: "bash /tests/test.sh",
                    Attr.CWD: "/app",
                    Attr.ACTOR: Actor.VERIFIER,
                    Attr.PHASE: Span.VERIFY,
                    Attr.STAGE: "main",
                    Attr.EXIT_CODE: 0 if reward else 1,
                    Attr.STDOUT_BLOB: rec.put_blob(vout),
                    Attr.STDOUT_BYTES: len(vout),
                    Attr.STDERR_BLOB: rec.put_blob(verr),
                    Attr.STDERR_BYTES: len(verr),
                },
            ):
                pass
        t = v0 + v_dur
    with b.span(Span.SANDBOX_STOP, t + 2, t + 60, root):
        pass
    root.end(end_time=int(T0 + (t + 61) * MS))


def _changes(b: _Builder, parent: OtelSpan, at: float, a: int, binary: bool) -> None:
    """Some of a command's file changes: a modified text file with its diff, now and then an
    added file, and a binary when asked (and once in a while)."""
    r, rec = b.rnd, b.rec
    if r.random() < 0.35:
        path = f"/app/src/{b.word()}.py"
        diff = b.diff(path, r.randrange(4, 30))
        b.leaf(
            Span.FS_CHANGE,
            at,
            parent,
            **{
                Attr.FS_PATH: path,
                Attr.FS_OP: "modified",
                Attr.FS_TYPE: "file",
                Attr.FS_SIZE: len(diff) * 3,
                Attr.FS_MODE: "0644",
                Attr.FS_BEFORE_BLOB: rec.put_blob(diff + b"before"),
                Attr.FS_AFTER_BLOB: rec.put_blob(diff + b"after"),
                Attr.FS_DIFF_BLOB: rec.put_blob(diff),
            },
        )
    if r.random() < 0.15:
        content = b.output(r.randrange(2, 12))
        b.leaf(
            Span.FS_CHANGE,
            at,
            parent,
            **{
                Attr.FS_PATH: f"/app/notes_{a}.txt",
                Attr.FS_OP: "added",
                Attr.FS_TYPE: "file",
                Attr.FS_SIZE: len(content),
                Attr.FS_MODE: "0644",
                Attr.FS_AFTER_BLOB: rec.put_blob(content),
            },
        )
    if binary or r.random() < 0.03:
        data = bytes(r.getrandbits(8) for _ in range(64)) + b"\x00"
        b.leaf(
            Span.FS_CHANGE,
            at,
            parent,
            **{
                Attr.FS_PATH: f"/app/build/{b.word()}.o",
                Attr.FS_OP: "added",
                Attr.FS_TYPE: "file",
                Attr.FS_SIZE: len(data),
                Attr.FS_MODE: "0644",
                Attr.FS_AFTER_BLOB: rec.put_blob(data),
            },
        )
