"""One trial: a task, an agent, a fresh recorded sandbox, a verifier, an outcome.

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
import uuid
from dataclasses import dataclass, field
from typing import Any

import docker.errors
from opentelemetry import context as otel_context
from opentelemetry.trace import Status, StatusCode

import traces
from sandbox import Limits, Recording, Sandbox, SandboxError

from ._agents import Agent, AgentContext, AgentSession, upload_dir
from ._build import BuildError, TaskImage
from ._tasks import Step, Task

# Output of a download that failed for want of network (curl, wget, pip, apt, DNS).
_OFFLINE = re.compile(
    r"(Could not resolve host[^\n]*|Temporary failure in name resolution[^\n]*|"
    r"Network is unreachable[^\n]*|Failed to establish a new connection[^\n]*|"
    r"unable to resolve host[^\n]*|Could not resolve '[^\n]*)",
    re.IGNORECASE,
)

OUTCOMES = (
    "passed",
    "failed",
    "agent_timeout",
    "verifier_timeout",
    "verifier_error",
    "build_error",
    "infra_error",
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
        return self.outcome == "passed"


class _Outcome(Exception):
    def __init__(self, outcome: str, error: str = "") -> None:
        super().__init__(error or outcome)
        self.outcome, self.error = outcome, error


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
    trial_id = trial_id or uuid.uuid4().hex
    tracer = recorder.tracer("harness.runner")
    attrs: dict[str, Any] = {
        "harness.run.id": run_id,
        "harness.task.id": task.id,
        "harness.trial.id": trial_id,
        "harness.trial.index": trial_index,
        "gen_ai.agent.name": agent.name,
        "harness.task.content_hash": task.content_hash,
    }
    if getattr(agent, "model", None):
        attrs["gen_ai.request.model"] = str(agent.model)  # type: ignore[attr-defined]
    if isinstance(image, TaskImage):
        attrs.update({"container.image.name": image.tag, "container.image.id": image.image_id})
    t0 = time.monotonic()
    result = TrialResult(task.id, trial_index, trial_id, "infra_error")
    with tracer.start_as_current_span(f"invoke_agent {agent.name}", attributes=attrs) as root:
        if isinstance(image, BuildError):
            result.outcome, result.error = "build_error", str(image)
            if image.log:
                root.set_attribute(
                    "harness.build_log.sha256", recorder.put_blob(image.log.encode())
                )
        else:
            for attempt in range(infra_retries + 1):
                try:
                    _attempt(
                        task,
                        agent,
                        image,
                        recorder,
                        tracer,
                        result,
                        run_id,
                        timeout_multiplier,
                        footer,
                    )
                    break
                except _Outcome as o:
                    result.outcome, result.error = o.outcome, o.error
                    break
                except (SandboxError, docker.errors.DockerException) as exc:
                    result.outcome, result.error = "infra_error", f"{type(exc).__name__}: {exc}"
                    root.add_event("infra_error", {"attempt": attempt, "error": str(exc)[:2000]})
        result.duration_s = time.monotonic() - t0
        root.set_attributes(
            {
                "harness.outcome": result.outcome,
                "harness.passed": result.passed,
                "harness.steps": result.steps,
                **({"harness.reward": result.reward} if result.reward is not None else {}),
                **({"harness.error": result.error[:4000]} if result.error else {}),
            }
        )
        if result.outcome not in ("passed", "failed"):
            root.set_status(Status(StatusCode.ERROR, result.outcome))
    return result


def _attempt(
    task: Task,
    agent: Agent,
    image: TaskImage,
    recorder: traces.Recorder,
    tracer: Any,
    result: TrialResult,
    run_id: str,
    mult: float,
    footer: bool,
) -> None:
    env = task.environment
    limits = Limits(memory=env.memory_mb << 20, cpus=env.cpus)
    with Sandbox(
        image.tag,
        limits=limits,
        env=env.env,
        workdir=env.workdir,
        network=env.network,
        run_id=run_id,
        record=Recording(tracer=tracer, blobs=recorder),
    ) as sb:
        _start_services(sb, image)
        if env.healthcheck is not None:
            _wait_healthy(sb, env.healthcheck)
        rewards: list[float] = []
        timed_out = False
        for step in task.steps:
            timed_out = (
                _agent_phase(task, step, agent, sb, result, mult, footer, tracer, recorder)
                or timed_out
            )
            reward = _verify(step, sb, tracer, mult, result)
            rewards.append(reward)
        result.reward = (
            rewards[-1] if task.reward_strategy == "final" else (sum(rewards) / len(rewards))
        )
        if len(rewards) > 1:
            result.rewards.update(
                {f"step.{s.name}": r for s, r in zip(task.steps, rewards, strict=True)}
            )
        if timed_out:
            raise _Outcome("agent_timeout", "the agent ran out of time")
        result.outcome = "passed" if result.reward >= 1.0 else "failed"


def _start_services(sb: Sandbox, image: TaskImage) -> None:
    """Start the image's ENTRYPOINT in the background, as the image would on `docker run`
    (the container's PID 1 is harness's own shell)."""
    if image.entrypoint:
        argv = " ".join(shlex.quote(a) for a in image.entrypoint)
        sb.run(f"(setsid {argv} >/tmp/.harness-entrypoint.log 2>&1 </dev/null &)")


def _wait_healthy(sb: Sandbox, hc: Any) -> None:
    deadline = time.monotonic() + hc.start_period_sec + hc.retries * hc.interval_sec + 60
    failures = 0
    started = time.monotonic()
    while True:
        r = sb.run(hc.command, timeout=hc.timeout_sec)
        if r.exit_code == 0:
            return
        in_start_period = time.monotonic() - started < hc.start_period_sec
        failures += 0 if in_start_period else 1
        if failures > hc.retries or time.monotonic() > deadline:
            raise _Outcome(
                "infra_error",
                f"the environment never became healthy: {hc.command!r} exited {r.exit_code}",
            )
        wait = hc.start_interval_sec if in_start_period else hc.interval_sec
        time.sleep(min(wait, max(0.0, deadline - time.monotonic())))


def _agent_phase(
    task: Task,
    step: Step,
    agent: Agent,
    sb: Sandbox,
    result: TrialResult,
    mult: float,
    footer: bool,
    tracer: Any,
    recorder: traces.Recorder,
) -> bool:
    """Run the agent on one step; True if it ran out of time."""
    budget = step.agent_timeout_sec * mult
    session = AgentSession(sb, task.agent_user, time.monotonic() + budget)
    instruction = step.instruction + (FOOTER.format(seconds=budget) if footer else "")
    ctx = AgentContext(
        task, step, env=dict(task.solution_env), tracer=tracer, put_blob=recorder.put_blob
    )
    error: list[BaseException] = []
    parent = otel_context.get_current()  # the agent's spans belong to this trial's trace

    def target() -> None:
        token = otel_context.attach(parent)
        try:
            agent.run(instruction, session, ctx)
        except BaseException as exc:  # noqa: BLE001 - reported as the trial's error
            error.append(exc)
        finally:
            otel_context.detach(token)

    thread = threading.Thread(target=target, name=f"agent-{task.id}", daemon=True)
    thread.start()
    thread.join(budget + 5.0)
    timed_out = thread.is_alive() or session.remaining() <= 0
    if thread.is_alive():
        sb.kill_processes()  # whatever the agent is waiting for returns now
        thread.join(30.0)
    result.steps += session.commands
    if error and not timed_out:
        raise _Outcome(
            "infra_error", f"agent {agent.name} failed: {type(error[0]).__name__}: {error[0]}"
        )
    return timed_out


def _verify(step: Step, sb: Sandbox, tracer: Any, mult: float, result: TrialResult) -> float:
    with tracer.start_as_current_span("verify", attributes={"harness.step": step.name}) as span:
        sb.run(
            "rm -rf /tests /logs/verifier && mkdir -p /tests /logs/verifier "
            "&& chmod 777 /logs /logs/verifier"
        )
        if step.tests_dir is not None:
            upload_dir(sb, step.tests_dir, "/tests")
        r = sb.run(
            f"{_exports(step.verifier_env)}bash /tests/test.sh",
            timeout=step.verifier_timeout_sec * mult,
        )
        if r.timed_out:
            span.set_status(Status(StatusCode.ERROR, "verifier timed out"))
            raise _Outcome(
                "verifier_timeout",
                f"tests/test.sh ran past {step.verifier_timeout_sec * mult:.0f} s",
            )
        got = read_reward(sb)
        if got is None:
            tail = (r.stdout_text + r.stderr_text)[-1500:]
            span.set_status(Status(StatusCode.ERROR, "no reward file"))
            raise _Outcome(
                "verifier_error",
                f"tests/test.sh (exit {r.exit_code}) wrote no "
                f"/logs/verifier/reward.txt or reward.json; its output ends:\n{tail}",
            )
        reward, rewards = got
        output = r.stdout_text + r.stderr_text
        if reward <= 0 and (m := _OFFLINE.search(output)):
            # The tests could not run: they need a download this trial has no network for.
            span.set_status(Status(StatusCode.ERROR, "verifier needs the network"))
            raise _Outcome(
                "verifier_error",
                "tests/test.sh needs network access the trial "
                f"does not have ({m.group(0).strip()}); its output ends:\n"
                f"{output[-1500:]}",
            )
        span.set_attribute("harness.reward", reward)
        for k, v in rewards.items():
            span.set_attribute(f"harness.reward.{k}", v)
        result.rewards.update(rewards)
        return reward
