"""One trial: a task, an agent, a fresh recorded sandbox, a verifier, an outcome.

A trial runs as phases, each its own span under the trial root: ``setup`` (the sandbox, the
image's services, the healthcheck), then per stage of the task ``agent`` and ``verify``. The
phases share one small :class:`TrialContext` and only record what happened in its
:class:`Findings`; :func:`decide` alone turns findings into the outcome. Replay and fork
swap the agent phase.

Outcomes: ``passed``/``failed`` (with a reward), ``agent_timeout``, ``verifier_timeout``,
``verifier_error`` (no reward file; the test output is in the record), ``build_error`` and
``infra_error`` (the engine failed; retried first). A trial never raises for any of these.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanContext, Status, StatusCode, Tracer

import traces
from sandbox import (
    CommandResult,
    EngineUnavailable,
    ImageNotFound,
    LimitNotSupported,
    Limits,
    Recording,
    Sandbox,
    SandboxError,
    UnknownUser,
)
from traces.vocab import Actor, Attr, Label, Outcome, Span

from ._build import BuildError, TaskImage
from ._control import RunControl, wait_for_engine
from ._record import SCOPE, finish_trial, new_trial_id, trial_root
from ._tasks import Healthcheck, Step, Task
from .agents import Agent, AgentContext, AgentSession, upload_dir
from .agents._agent import SESSION as AGENT_SESSION

__all__ = ["TrialResult", "TrialSettings", "read_reward", "run_trial"]

# Output of a download that failed for want of network (curl, wget, pip, apt, DNS).
_OFFLINE = re.compile(
    r"(Could not resolve host[^\n]*|Temporary failure in name resolution[^\n]*|"
    r"Network is unreachable[^\n]*|Failed to establish a new connection[^\n]*|"
    r"unable to resolve host[^\n]*|Could not resolve '[^\n]*)",
    re.IGNORECASE,
)

# Not an outcome: what a trial stopped by the user or an engine outage reports to its caller.
# Its record has no outcome, so `--resume` runs it again and no summary counts it.
INTERRUPTED = "interrupted"

# Setup errors that another attempt would only repeat: the task or image must change.
_WONT_CHANGE = (UnknownUser, ImageNotFound, LimitNotSupported)

FOOTER = (
    "\n\n---\nYou have {seconds:.0f} seconds for this task; commands still running "
    "after that are stopped.\n"
)


@dataclass
class TrialResult:
    task: str
    trial_index: int
    trial_id: str
    outcome: str
    reward: float | None = None
    rewards: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    duration_s: float = 0.0
    error: str = ""
    hint: str = ""  # a likely cause shown beside the outcome (e.g. tests that needed network)
    snapshots: int = 0  # taken with --snapshot, and what they cost
    snapshot_seconds: float = 0.0
    snapshot_bytes: int = 0

    @property
    def passed(self) -> bool:
        return self.outcome == Outcome.PASSED

    @property
    def interrupted(self) -> bool:
        """Stopped before it had an outcome; a resume runs it again."""
        return self.outcome == INTERRUPTED


@dataclass(frozen=True)
class TrialSettings:
    """How trials of a run are run, beyond the task and the agent."""

    timeout_multiplier: float = 1.0
    footer: bool = True  # tell the agent its time budget
    infra_retries: int = 2
    network: str | None = None  # overrides every task's network policy (e.g. "none")
    engine_wait_s: float = 120.0  # how long to wait for an engine that stopped answering
    run_span: SpanContext | None = None  # the run's `harness.run` span: trials link to it
    source_date_epoch: int | None = None  # the run's; default: when the trial starts
    # Put on the trial root (a replay's or fork's origin), and further spans it links to.
    root_attributes: Mapping[str, Any] = field(default_factory=dict)
    links: tuple[SpanContext, ...] = ()
    # Called with the trial root and the result once the outcome is known, before the root
    # ends: what it sets on the root is part of the trial (a replay's verdict).
    before_end: Callable[[Any, TrialResult], None] | None = None
    # Commit the sandbox as an image after each of the agent's steps (fork restores from it).
    snapshot: bool = False


# What every trial's sandbox is given so a command's output depends on the task and the
# command, not on the machine or the moment (see README, "Determinism"); the task's own
# environment variables win over these.
HOSTNAME = "sandbox"
DETERMINISM_ENV: Mapping[str, str] = {
    "TZ": "UTC",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    # Bytecode caches embed their source's modification time: a file change no replay repeats.
    "PYTHONDONTWRITEBYTECODE": "1",
}


class _Issuer:
    """The sandbox as harness or the verifier uses it: every command and file write is
    recorded with who issued it and in which phase (and stage)."""

    def __init__(self, sandbox: Sandbox, actor: str, phase: str, stage: str = "") -> None:
        self.sandbox = sandbox
        self.attributes = {Attr.ACTOR: actor, Attr.PHASE: phase}
        if stage:
            self.attributes[Attr.STAGE] = stage

    def run(self, command: str, timeout: float | None = 60.0) -> CommandResult:
        return self.sandbox.run(command, timeout=timeout, attributes=self.attributes)

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        self.sandbox.write_file(path, data, mode, attributes=self.attributes)


@dataclass
class Findings:
    """What the phases saw in one attempt; :func:`decide` makes the outcome of them."""

    setup_error: str = ""
    agent_error: str = ""
    agent_timed_out: bool = False
    storage_exceeded: str = ""
    verifier_timeout: str = ""
    verifier_error: str = ""
    rewards: list[float] = field(default_factory=list)  # one per stage verified
    named_rewards: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    hint: str = ""
    snapshots: int = 0  # taken after the agent's steps (``--snapshot``), and their cost
    snapshot_seconds: float = 0.0
    snapshot_bytes: int = 0

    @property
    def stopped(self) -> bool:
        """A phase failed in a way that makes the remaining phases pointless."""
        return any(
            (
                self.setup_error,
                self.agent_error,
                self.storage_exceeded,
                self.verifier_timeout,
                self.verifier_error,
            )
        )


@dataclass
class TrialContext:
    """What the phases of one trial share."""

    task: Task
    agent: Agent
    image: TaskImage
    recorder: traces.Recorder
    tracer: Tracer
    run_id: str
    settings: TrialSettings
    root_context: Any  # the OTel context of the trial root
    control: RunControl | None = None
    sandbox: Sandbox | None = None
    services: Any = None  # the processes setup left running (the image's services)
    findings: Findings = field(default_factory=Findings)
    trial_id: str = ""


def decide(task: Task, f: Findings) -> tuple[str, str, float | None]:
    """The outcome, error text and reward of an attempt: the one place outcomes are made.

    A trial scores only when every stage was verified; one that stopped early has no reward.
    """
    if f.setup_error:
        return Outcome.INFRA_ERROR, f.setup_error, None
    if f.agent_error:
        return Outcome.INFRA_ERROR, f.agent_error, None
    if f.storage_exceeded:
        return Outcome.STORAGE_EXCEEDED, f.storage_exceeded, None
    if f.verifier_timeout:
        return Outcome.VERIFIER_TIMEOUT, f.verifier_timeout, None
    if f.verifier_error:
        return Outcome.VERIFIER_ERROR, f.verifier_error, None
    rewards = f.rewards
    reward = rewards[-1] if task.reward_strategy == "final" else sum(rewards) / len(rewards)
    if f.agent_timed_out:
        return Outcome.AGENT_TIMEOUT, "the agent ran out of time", reward
    return (Outcome.PASSED if reward >= 1.0 else Outcome.FAILED), "", reward


def read_reward(sb: Sandbox | _Issuer) -> tuple[float, dict[str, float]] | str:
    """The verifier's reward: reward.json (a dict of numbers) or reward.txt (one number);
    otherwise why there is none, in words a task author can act on."""
    r = sb.run(
        "for f in /logs/verifier/reward.json /logs/verifier/reward.txt; do "
        'if [ -f "$f" ]; then echo "$f"; head -c 4096 "$f"; break; fi; done'
    )
    name, _, body = r.stdout_text.partition("\n")
    if not name:
        return "wrote no /logs/verifier/reward.txt or reward.json"
    shown = body.strip()[:200]
    if name.endswith(".json"):
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or not data:
                raise ValueError("not an object of numbers")
            rewards = {str(k): _number(v) for k, v in data.items()}
        except (ValueError, TypeError) as exc:
            return (
                f"wrote {name}, but it is not a JSON object of numbers ({exc}): {shown!r}; "
                'write e.g. {"reward": 1.0}'
            )
        main = rewards.get("reward", sum(rewards.values()) / len(rewards))
        return main, rewards
    try:
        return _number(body.strip()), {}
    except ValueError:
        return f"wrote {name}, but its content {shown!r} is not a number; write e.g. 1 or 0.5"


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{value!r} is not a number")
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _exports(env: dict[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}; " for k, v in env.items())


def run_trial(
    task: Task,
    agent: Agent,
    image: TaskImage | BuildError,
    recorder: traces.Recorder,
    run_id: str,
    trial_index: int = 0,
    *,
    timeout_multiplier: float = 1.0,
    footer: bool = True,
    infra_retries: int = 2,
    trial_id: str | None = None,
    settings: TrialSettings | None = None,
    control: RunControl | None = None,
    build_s: float | None = None,
) -> TrialResult:
    """Run one trial and record it as one trace; returns its outcome.

    Args:
        settings: how to run it (default: from ``timeout_multiplier``, ``footer`` and
            ``infra_retries``).
        control: lets the runner stop the trial (Ctrl-C, an engine gone for good); a
            stopped trial is recorded as interrupted, with no outcome.
        build_s: how long this trial waited for its image (recorded with the trial).
    """
    settings = settings or TrialSettings(timeout_multiplier, footer, infra_retries)
    trial_id = trial_id or new_trial_id()
    tracer = recorder.tracer(SCOPE)
    t0 = time.monotonic()
    result = TrialResult(task.id, trial_index, trial_id, Outcome.INFRA_ERROR)
    built = image if isinstance(image, TaskImage) else None
    model = getattr(agent, "model", None)
    say = control.say if control is not None else (lambda _m: None)
    with trial_root(
        tracer,
        run_id=run_id,
        task_id=task.id,
        agent=agent.name,
        trial_id=trial_id,
        trial_index=trial_index,
        content_hash=task.content_hash,
        model=str(model) if model else None,
        image_name=built.tag if built else None,
        image_id=built.image_id if built else None,
        provider=getattr(agent, "provider", None),
        run_span=settings.run_span,
        links=settings.links,
    ) as root:
        root.set_attribute(Attr.EFFECTIVE_NETWORK, settings.network or task.environment.network)
        if settings.source_date_epoch is None:
            settings = replace(settings, source_date_epoch=int(time.time()))
        root.set_attribute(Attr.SOURCE_DATE_EPOCH, settings.source_date_epoch)
        if settings.root_attributes:
            root.set_attributes(dict(settings.root_attributes))
        if task.archive is not None:
            root.set_attribute(Attr.TASK_ARCHIVE, recorder.put_blob(task.archive))
        if built is not None:
            root.set_attribute(Attr.BUILD_CACHED, built.cached)
        if build_s is not None:
            root.set_attribute(Attr.BUILD_SECONDS, round(build_s, 3))
        log = image.log if isinstance(image, (TaskImage, BuildError)) else ""
        if log:
            root.set_attribute(Attr.BUILD_LOG, recorder.put_blob(log.encode()))
        if isinstance(image, BuildError):
            result.outcome, result.error = Outcome.BUILD_ERROR, str(image)
        else:
            root_context = otel_context.get_current()
            attempt = 0
            ctx: TrialContext | None = None
            while True:
                if control is not None and control.aborting.is_set():
                    result.outcome = INTERRUPTED
                    break
                ctx = TrialContext(
                    task,
                    agent,
                    image,
                    recorder,
                    tracer,
                    run_id,
                    settings,
                    root_context,
                    control,
                    trial_id=trial_id,
                )
                try:
                    _attempt(ctx)
                except (ValueError, TypeError) as exc:
                    # The task asks for something the sandbox refuses (e.g. a limit out of
                    # range): this trial's error, never the suite's.
                    result.outcome = Outcome.INFRA_ERROR
                    result.error = f"the sandbox refused this task's settings: {exc}"
                    break
                except SandboxError as exc:
                    result.steps = ctx.findings.steps
                    if control is not None and control.aborting.is_set():
                        result.outcome = INTERRUPTED
                        break
                    result.outcome, result.error = (
                        Outcome.INFRA_ERROR,
                        f"{type(exc).__name__}: {exc}",
                    )
                    root.add_event(
                        Outcome.INFRA_ERROR, {"attempt": attempt, "error": str(exc)[:2000]}
                    )
                    if isinstance(exc, EngineUnavailable):
                        # An outage is no fault of the trial: wait, then try again.
                        if wait_for_engine(settings.engine_wait_s, control, say):
                            continue
                        if control is not None:
                            waited = settings.engine_wait_s
                            control.request_stop(
                                f"the Docker engine did not answer for {waited:.0f} s", 1
                            )
                            result.outcome = INTERRUPTED
                        break
                    attempt += 1
                    if attempt > settings.infra_retries or isinstance(exc, _WONT_CHANGE):
                        break
                    continue
                outcome, error, reward = decide(task, ctx.findings)
                result.outcome, result.error, result.reward = outcome, error, reward
                result.rewards = dict(ctx.findings.named_rewards)
                result.steps = ctx.findings.steps
                result.hint = ctx.findings.hint
                break
            if ctx is not None and ctx.findings.snapshots:
                f = ctx.findings
                result.snapshots, result.snapshot_bytes = f.snapshots, f.snapshot_bytes
                result.snapshot_seconds = f.snapshot_seconds
                root.set_attributes(
                    {
                        Attr.SNAPSHOTS: f.snapshots,
                        Attr.SNAPSHOTS_SECONDS: round(f.snapshot_seconds, 3),
                        Attr.SNAPSHOTS_BYTES: f.snapshot_bytes,
                    }
                )
        result.duration_s = time.monotonic() - t0
        if result.interrupted:
            root.set_attributes({Attr.INTERRUPTED: True, Attr.STEPS: result.steps})
            root.set_status(Status(StatusCode.ERROR, "interrupted"))
        else:
            finish_trial(
                root,
                result.outcome,
                steps=result.steps,
                reward=result.reward,
                error=result.error,
            )
        if result.hint:
            root.set_attribute(Attr.HINT, result.hint)
        if settings.before_end is not None:
            settings.before_end(root, result)
    return result


def _attempt(ctx: TrialContext) -> None:
    """One try at the trial in a fresh sandbox: setup, then agent and verify per stage."""
    try:
        _setup(ctx)
        for stage in ctx.task.steps:
            if ctx.findings.stopped:
                break
            _agent_phase(ctx, stage)
            if ctx.findings.stopped:
                break
            _verify(ctx, stage)
        if not ctx.findings.stopped and len(ctx.findings.rewards) > 1:
            ctx.findings.named_rewards.update(
                {
                    f"step.{s.name}": r
                    for s, r in zip(ctx.task.steps, ctx.findings.rewards, strict=False)
                }
            )
    finally:
        if ctx.sandbox is not None:
            if ctx.control is not None:
                ctx.control.detach(ctx.sandbox)
            ctx.sandbox.close()


# -- phases --------------------------------------------------------------------------------


def _setup(ctx: TrialContext) -> None:
    """Start the sandbox and what the image serves; wait until the environment is healthy."""
    env = ctx.task.environment
    disk = env.storage_mb << 20 if env.storage_mb else None
    epoch = {"SOURCE_DATE_EPOCH": str(ctx.settings.source_date_epoch or 0)}
    with ctx.tracer.start_as_current_span(Span.SETUP) as span:
        ctx.sandbox = Sandbox(
            # Pinned by id: a tag rebuilt or retagged since cannot change what runs.
            ctx.image.image_id or ctx.image.tag,
            limits=Limits(memory=env.memory_mb << 20, cpus=env.cpus, disk=disk),
            env={**DETERMINISM_ENV, **epoch, **env.env},
            hostname=HOSTNAME,
            workdir=env.workdir,
            network=ctx.settings.network or env.network,
            run_id=ctx.run_id,
            record=Recording(tracer=ctx.tracer, blobs=ctx.recorder, parent=ctx.root_context),
        )
        # The agent's shell starts alongside the sandbox's own (nothing runs in it before the
        # agent's first command).
        ctx.sandbox.prepare_session(AGENT_SESSION, ctx.task.agent_user)
        ctx.sandbox.start()
        if ctx.control is not None:
            ctx.control.attach(ctx.sandbox)
        sb = _Issuer(ctx.sandbox, Actor.HARNESS, Span.SETUP)
        _start_services(sb, ctx.image)
        # What runs now is the environment's; anything the agent starts later is stopped
        # before the verifier runs.
        ctx.services = ctx.sandbox.processes()
        if env.healthcheck is not None:
            problem = _wait_healthy(sb, env.healthcheck)
            if problem:
                span.set_status(Status(StatusCode.ERROR, "never healthy"))
                ctx.findings.setup_error = problem


def _start_services(sb: _Issuer, image: TaskImage) -> None:
    """Start the image's ENTRYPOINT in the background, as the image would on `docker run`
    (the container's PID 1 is harness's own shell)."""
    if image.entrypoint:
        argv = " ".join(shlex.quote(a) for a in image.entrypoint)
        sb.run(f"(setsid {argv} >/tmp/.harness-entrypoint.log 2>&1 </dev/null &)")


def _wait_healthy(sb: _Issuer, hc: Healthcheck) -> str:
    """'' once the healthcheck passes; otherwise why the environment never became healthy."""
    deadline = time.monotonic() + hc.start_period_sec + hc.retries * hc.interval_sec + 60
    failures = 0
    started = time.monotonic()
    while True:
        r = sb.run(hc.command, timeout=hc.timeout_sec)
        if r.exit_code == 0:
            return ""
        in_start_period = time.monotonic() - started < hc.start_period_sec
        failures += 0 if in_start_period else 1
        if failures > hc.retries or time.monotonic() > deadline:
            return f"the environment never became healthy: {hc.command!r} exited {r.exit_code}"
        wait = hc.start_interval_sec if in_start_period else hc.interval_sec
        time.sleep(min(wait, max(0.0, deadline - time.monotonic())))


def _agent_phase(ctx: TrialContext, stage: Step) -> None:
    """Run the agent on one stage, within its time budget."""
    assert ctx.sandbox is not None
    task, agent, f = ctx.task, ctx.agent, ctx.findings
    budget = stage.agent_timeout_sec * ctx.settings.timeout_multiplier
    session = AgentSession(
        ctx.sandbox, task.agent_user, time.monotonic() + budget, step=f.steps, stage=stage.name
    )
    if ctx.settings.snapshot:
        session.after_step = _snapshotter(ctx, session)
    footer = FOOTER.format(seconds=budget) if ctx.settings.footer else ""
    agent_ctx = AgentContext(
        task,
        stage,
        env=dict(task.solution_env),
        tracer=ctx.tracer,
        put_blob=ctx.recorder.put_blob,
    )
    with ctx.tracer.start_as_current_span(Span.AGENT, attributes={Attr.STAGE: stage.name}) as span:
        error: list[BaseException] = []
        parent = otel_context.get_current()  # the agent's spans belong to this phase

        def target() -> None:
            token = otel_context.attach(parent)
            try:
                agent.run(stage.instruction + footer, session, agent_ctx)
            except BaseException as exc:  # noqa: BLE001 - reported as the trial's error
                error.append(exc)
            finally:
                otel_context.detach(token)

        thread = threading.Thread(target=target, name=f"agent-{task.id}", daemon=True)
        thread.start()
        give_up = time.monotonic() + budget + 5.0
        while thread.is_alive() and time.monotonic() < give_up:
            thread.join(0.25)
            if ctx.control is not None and ctx.control.aborting.is_set():
                break  # the runner closes the sandbox; the trial is interrupted
        timed_out = thread.is_alive() or session.remaining() <= 0
        # Whatever the agent started (daemons, background jobs, a fork bomb) stops here, so
        # nothing of the agent's runs while the verifier does; the environment's services stay.
        # (Its shell is its own: nothing it defined there reaches the verifier's.)
        if thread.is_alive() or any(p not in ctx.services for p in ctx.sandbox.processes()):
            ctx.sandbox.kill_processes(keep=ctx.services)
        if thread.is_alive():
            thread.join(30.0)  # whatever the agent waited for has returned now
        f.steps = session.step
        f.agent_timed_out = f.agent_timed_out or timed_out
        if ctx.sandbox.disk_exceeded:
            limit = task.environment.storage_mb
            span.set_status(Status(StatusCode.ERROR, "storage exceeded"))
            f.storage_exceeded = (
                f"the agent wrote more than the task's storage limit ({limit} MB) to the "
                "container's disk; its processes were stopped"
            )
        elif timed_out:
            span.set_status(Status(StatusCode.ERROR, "timed out"))
        elif error:
            span.set_status(Status(StatusCode.ERROR, "agent failed"))
            f.agent_error = f"agent {agent.name} failed: {type(error[0]).__name__}: {error[0]}"


def _snapshotter(ctx: TrialContext, session: AgentSession) -> Callable[[int], None]:
    """After each step, the sandbox as an image; its cost is added to the trial's totals and
    given back to the agent's clock (the agent is not charged for harness's work)."""
    sandbox, f = ctx.sandbox, ctx.findings
    assert sandbox is not None
    trial_id = ctx.trial_id

    def take(step: int) -> None:
        t = time.monotonic()
        snap = sandbox.snapshot(
            {
                Label.RUN_ID: ctx.run_id,
                Label.TRIAL_ID: trial_id,
                Label.STEP: str(step),
                Label.STORE: str(ctx.recorder.store.path.resolve()),
            },
            {Attr.STEP: step},
        )
        f.snapshots += 1
        f.snapshot_bytes += snap.size
        took = time.monotonic() - t
        f.snapshot_seconds += took
        session.deadline += took

    return take


def _verify(ctx: TrialContext, stage: Step) -> None:
    """Run the stage's tests and read the reward they wrote."""
    assert ctx.sandbox is not None
    f = ctx.findings
    sb = _Issuer(ctx.sandbox, Actor.HARNESS, Span.VERIFY, stage.name)
    tests = _Issuer(ctx.sandbox, Actor.VERIFIER, Span.VERIFY, stage.name)
    timeout = stage.verifier_timeout_sec * ctx.settings.timeout_multiplier
    with ctx.tracer.start_as_current_span(Span.VERIFY, attributes={Attr.STAGE: stage.name}) as span:
        # Fresh, and the verifier's (root's): nothing the agent left there counts.
        sb.run(
            "rm -rf /tests /logs/verifier && mkdir -p /tests /logs/verifier "
            "&& chown root:root /logs/verifier && chmod 755 /logs/verifier "
            "&& chmod 1777 /logs"
        )
        if stage.tests_dir is not None:
            upload_dir(sb, stage.tests_dir, "/tests")
        r = tests.run(f"{_exports(stage.verifier_env)}bash /tests/test.sh", timeout=timeout)
        output = r.stdout_text + r.stderr_text
        offline = _OFFLINE.search(output)
        hint = (
            "tests/test.sh seems to need network access the trial does not have "
            f"({offline.group(0).strip()})"
            if offline
            else ""
        )
        if r.timed_out:
            span.set_status(Status(StatusCode.ERROR, "verifier timed out"))
            f.verifier_timeout = f"tests/test.sh ran past {timeout:.0f} s"
            return
        got = read_reward(sb)
        if isinstance(got, str):
            span.set_status(Status(StatusCode.ERROR, "no reward"))
            f.verifier_error = (
                f"tests/test.sh (exit {r.exit_code}) {got}; its output ends:\n{output[-1500:]}"
            )
            f.hint = hint  # added to the result, never instead of it
            return
        reward, rewards = got
        if reward <= 0 and hint:
            f.hint = hint
        span.set_attribute(Attr.REWARD, reward)
        for k, v in rewards.items():
            span.set_attribute(Attr.reward(k), v)
        f.named_rewards.update(rewards)
        f.rewards.append(reward)
