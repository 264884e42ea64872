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
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Status, StatusCode, Tracer

import traces
from sandbox import Limits, Recording, Sandbox, SandboxError
from traces.vocab import OUTCOMES, Attr, Outcome, Span

from ._build import BuildError, TaskImage
from ._record import SCOPE, finish_trial, new_trial_id, trial_root
from ._tasks import Healthcheck, Step, Task
from .agents import Agent, AgentContext, AgentSession, upload_dir

__all__ = ["OUTCOMES", "TrialResult", "TrialSettings", "read_reward", "run_trial"]

# Output of a download that failed for want of network (curl, wget, pip, apt, DNS).
_OFFLINE = re.compile(
    r"(Could not resolve host[^\n]*|Temporary failure in name resolution[^\n]*|"
    r"Network is unreachable[^\n]*|Failed to establish a new connection[^\n]*|"
    r"unable to resolve host[^\n]*|Could not resolve '[^\n]*)",
    re.IGNORECASE,
)

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

    @property
    def passed(self) -> bool:
        return self.outcome == Outcome.PASSED


@dataclass(frozen=True)
class TrialSettings:
    """How trials of a run are run, beyond the task and the agent."""

    timeout_multiplier: float = 1.0
    footer: bool = True  # tell the agent its time budget
    infra_retries: int = 2


@dataclass
class Findings:
    """What the phases saw in one attempt; :func:`decide` makes the outcome of them."""

    setup_error: str = ""
    agent_error: str = ""
    agent_timed_out: bool = False
    verifier_timeout: str = ""
    verifier_error: str = ""
    rewards: list[float] = field(default_factory=list)  # one per stage verified
    named_rewards: dict[str, float] = field(default_factory=dict)
    steps: int = 0

    @property
    def stopped(self) -> bool:
        """A phase failed in a way that makes the remaining phases pointless."""
        return bool(self.setup_error or self.agent_error or self.verifier_timeout) or bool(
            self.verifier_error
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
    sandbox: Sandbox | None = None
    findings: Findings = field(default_factory=Findings)


def decide(task: Task, f: Findings) -> tuple[str, str, float | None]:
    """The outcome, error text and reward of an attempt: the one place outcomes are made.

    A trial scores only when every stage was verified; one that stopped early has no reward.
    """
    if f.setup_error:
        return Outcome.INFRA_ERROR, f.setup_error, None
    if f.agent_error:
        return Outcome.INFRA_ERROR, f.agent_error, None
    if f.verifier_timeout:
        return Outcome.VERIFIER_TIMEOUT, f.verifier_timeout, None
    if f.verifier_error:
        return Outcome.VERIFIER_ERROR, f.verifier_error, None
    rewards = f.rewards
    reward = rewards[-1] if task.reward_strategy == "final" else sum(rewards) / len(rewards)
    if f.agent_timed_out:
        return Outcome.AGENT_TIMEOUT, "the agent ran out of time", reward
    return (Outcome.PASSED if reward >= 1.0 else Outcome.FAILED), "", reward


def read_reward(sb: Sandbox) -> tuple[float, dict[str, float]] | None:
    """The verifier's reward: reward.json (a dict of floats) or reward.txt (one float)."""
    r = sb.run(
        "for f in /logs/verifier/reward.json /logs/verifier/reward.txt; do "
        'if [ -f "$f" ]; then echo "$f"; cat "$f"; break; fi; done'
    )
    name, _, body = r.stdout_text.partition("\n")
    try:
        if name.endswith(".json"):
            rewards = {str(k): float(v) for k, v in json.loads(body).items()}
            main = rewards.get("reward", sum(rewards.values()) / len(rewards) if rewards else 0.0)
            return main, rewards
        if name.endswith(".txt"):
            return float(body.strip()), {}
    except (ValueError, TypeError, AttributeError):
        pass
    return None


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
) -> TrialResult:
    """Run one trial and record it as one trace; returns its outcome."""
    settings = TrialSettings(timeout_multiplier, footer, infra_retries)
    trial_id = trial_id or new_trial_id()
    tracer = recorder.tracer(SCOPE)
    t0 = time.monotonic()
    result = TrialResult(task.id, trial_index, trial_id, Outcome.INFRA_ERROR)
    built = image if isinstance(image, TaskImage) else None
    model = getattr(agent, "model", None)
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
    ) as root:
        if isinstance(image, BuildError):
            result.outcome, result.error = Outcome.BUILD_ERROR, str(image)
            if image.log:
                root.set_attribute(Attr.BUILD_LOG, recorder.put_blob(image.log.encode()))
        else:
            root_context = otel_context.get_current()
            for attempt in range(settings.infra_retries + 1):
                ctx = TrialContext(
                    task, agent, image, recorder, tracer, run_id, settings, root_context
                )
                try:
                    _attempt(ctx)
                except SandboxError as exc:
                    result.outcome, result.error = (
                        Outcome.INFRA_ERROR,
                        f"{type(exc).__name__}: {exc}",
                    )
                    result.steps = ctx.findings.steps
                    root.add_event(
                        Outcome.INFRA_ERROR, {"attempt": attempt, "error": str(exc)[:2000]}
                    )
                    continue
                outcome, error, reward = decide(task, ctx.findings)
                result.outcome, result.error, result.reward = outcome, error, reward
                result.rewards = dict(ctx.findings.named_rewards)
                result.steps = ctx.findings.steps
                break
        result.duration_s = time.monotonic() - t0
        finish_trial(
            root, result.outcome, steps=result.steps, reward=result.reward, error=result.error
        )
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
            ctx.sandbox.close()


# -- phases --------------------------------------------------------------------------------


def _setup(ctx: TrialContext) -> None:
    """Start the sandbox and what the image serves; wait until the environment is healthy."""
    env = ctx.task.environment
    with ctx.tracer.start_as_current_span(Span.SETUP) as span:
        ctx.sandbox = Sandbox(
            ctx.image.tag,
            limits=Limits(memory=env.memory_mb << 20, cpus=env.cpus),
            env=env.env,
            workdir=env.workdir,
            network=env.network,
            run_id=ctx.run_id,
            record=Recording(tracer=ctx.tracer, blobs=ctx.recorder, parent=ctx.root_context),
        ).start()
        _start_services(ctx.sandbox, ctx.image)
        if env.healthcheck is not None:
            problem = _wait_healthy(ctx.sandbox, env.healthcheck)
            if problem:
                span.set_status(Status(StatusCode.ERROR, "never healthy"))
                ctx.findings.setup_error = problem


def _start_services(sb: Sandbox, image: TaskImage) -> None:
    """Start the image's ENTRYPOINT in the background, as the image would on `docker run`
    (the container's PID 1 is harness's own shell)."""
    if image.entrypoint:
        argv = " ".join(shlex.quote(a) for a in image.entrypoint)
        sb.run(f"(setsid {argv} >/tmp/.harness-entrypoint.log 2>&1 </dev/null &)")


def _wait_healthy(sb: Sandbox, hc: Healthcheck) -> str:
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
    session = AgentSession(ctx.sandbox, task.agent_user, time.monotonic() + budget)
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
        thread.join(budget + 5.0)
        timed_out = thread.is_alive() or session.remaining() <= 0
        if thread.is_alive():
            ctx.sandbox.kill_processes()  # whatever the agent is waiting for returns now
            thread.join(30.0)
        f.steps += session.commands
        f.agent_timed_out = f.agent_timed_out or timed_out
        if timed_out:
            span.set_status(Status(StatusCode.ERROR, "timed out"))
        elif error:
            span.set_status(Status(StatusCode.ERROR, "agent failed"))
            f.agent_error = f"agent {agent.name} failed: {type(error[0]).__name__}: {error[0]}"


def _verify(ctx: TrialContext, stage: Step) -> None:
    """Run the stage's tests and read the reward they wrote."""
    sb, f = ctx.sandbox, ctx.findings
    assert sb is not None
    timeout = stage.verifier_timeout_sec * ctx.settings.timeout_multiplier
    with ctx.tracer.start_as_current_span(Span.VERIFY, attributes={Attr.STAGE: stage.name}) as span:
        sb.run(
            "rm -rf /tests /logs/verifier && mkdir -p /tests /logs/verifier "
            "&& chmod 777 /logs /logs/verifier"
        )
        if stage.tests_dir is not None:
            upload_dir(sb, stage.tests_dir, "/tests")
        r = sb.run(f"{_exports(stage.verifier_env)}bash /tests/test.sh", timeout=timeout)
        if r.timed_out:
            span.set_status(Status(StatusCode.ERROR, "verifier timed out"))
            f.verifier_timeout = f"tests/test.sh ran past {timeout:.0f} s"
            return
        got = read_reward(sb)
        if got is None:
            tail = (r.stdout_text + r.stderr_text)[-1500:]
            span.set_status(Status(StatusCode.ERROR, "no reward file"))
            f.verifier_error = (
                f"tests/test.sh (exit {r.exit_code}) wrote no "
                f"/logs/verifier/reward.txt or reward.json; its output ends:\n{tail}"
            )
            return
        reward, rewards = got
        output = r.stdout_text + r.stderr_text
        if reward <= 0 and (m := _OFFLINE.search(output)):
            # The tests could not run: they need a download this trial has no network for.
            span.set_status(Status(StatusCode.ERROR, "verifier needs the network"))
            f.verifier_error = (
                "tests/test.sh needs network access the trial "
                f"does not have ({m.group(0).strip()}); its output ends:\n"
                f"{output[-1500:]}"
            )
            return
        span.set_attribute(Attr.REWARD, reward)
        for k, v in rewards.items():
            span.set_attribute(Attr.reward(k), v)
        f.named_rewards.update(rewards)
        f.rewards.append(reward)
