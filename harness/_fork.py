"""Fork: restore a recorded trial's state before one of its steps, then let another agent
(or model) go on from there.

The state is restored by re-executing the recorded steps before STEP in a fresh sandbox from
the recorded image, through the agent's session, so they are recorded again as steps
1..STEP-1; then the new agent gets the live session, and its steps continue at STEP. A
model-driven agent is also handed the conversation up to STEP (``AgentContext.history``), so
the new model continues the same dialogue. The fork is a trial of its own, linked to the
original (a span link, ``harness.fork.of``, ``harness.fork.at``) and scored like any trial.

When the trial was run with ``harness run --snapshot`` and a snapshot of its sandbox after
step STEP-1 is on the engine, the fork starts from that image instead (no step is re-run; the
agent's shell gets the recorded working directory back, but not what earlier steps exported
into it). ``restore="reexecute"`` insists on re-execution, ``"snapshot"`` on the snapshot.

Multi-stage tasks: the steps of stages before STEP's are re-issued in their own stages (and
each is verified as it was); the new agent takes over within STEP's stage and runs every
later stage in full. STEP N+1 (N recorded steps) forks after the last step, in its stage.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import traces
from sandbox import Snapshot, find_snapshots
from traces.vocab import Actor, Attr, Span

from ._build import TaskImage
from ._record import new_run_id, new_trial_id
from ._replay import (
    ReplayAgent,
    ReplayError,
    _image,
    _int,
    _run_config,
    _span_context,
    _task,
    blob_reader,
    write_contents,
)
from ._replay_compare import StepVerdict, compare_step
from ._trial import TrialResult, TrialSettings, run_trial
from .agents import Agent, AgentContext, AgentError, AgentSession, load_agent, validate_options
from .agents._agent import SESSION

__all__ = ["ForkError", "ForkResult", "fork_trial"]

RESPONSES, CHAT = "responses", "chat"  # the APIs a conversation can be handed over in
_API_NAMES = {RESPONSES: "the Responses API", CHAT: "Chat Completions"}
_TOOL_NAMES = {"native": "the native shell tool", "function": "a shell function tool"}
# What a model said that belongs to that model alone: another model rejects it.
_OWN_REASONING = ("reasoning_content", "reasoning", "reasoning_details")


class ForkError(Exception):
    """The fork cannot be made (a step out of range, a conversation that cannot be cut
    there, an agent that cannot continue it, the record is incomplete); the message says
    why and what to do."""


@dataclass
class ForkResult:
    """How a fork went: what was restored, what was handed over, the rewards side by side."""

    original: str  # trial id
    fork: str  # the fork's own trial id
    run_id: str  # the fork's run id
    at: int  # the step the new agent took over at
    agent: str  # the new agent's name
    model: str | None
    outcome: str
    reward: float | None
    recorded_outcome: str | None
    recorded_reward: float | None
    restored: list[StepVerdict] = field(default_factory=list)  # steps 1..at-1, re-executed
    history_items: int | None = None  # the conversation handed over; None: none was
    error: str = ""  # the fork trial's own error, if it had one
    notes: list[str] = field(default_factory=list)
    snapshot: str | None = None  # the snapshot image restored from, when not re-executed

    @property
    def restored_as_recorded(self) -> bool:
        """Every re-executed step gave what the record says it gave."""
        return all(v.same for v in self.restored)

    def to_dict(self) -> dict[str, Any]:
        return {
            "original": self.original,
            "fork": self.fork,
            "run_id": self.run_id,
            "at": self.at,
            "agent": self.agent,
            "model": self.model,
            "outcome": self.outcome,
            "reward": self.reward,
            "recorded_outcome": self.recorded_outcome,
            "recorded_reward": self.recorded_reward,
            "restored_steps": len(self.restored),
            "restored_from_snapshot": self.snapshot,
            "restored_as_recorded": self.restored_as_recorded,
            "restored": [
                {
                    "step": v.step,
                    "action": v.action,
                    "verdict": v.verdict,
                    "differences": v.differences,
                }
                for v in self.restored
            ],
            "history_items": self.history_items,
            "error": self.error,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class RecordedConversation:
    """A recorded conversation cut before a model turn, as the next request would carry it."""

    api: str  # responses | chat
    shell_tool: str  # native | function: how the shell was offered
    items: list[dict[str, Any]]  # input items (responses) or messages without the system one
    call: int  # the recorded model call (1-based) it was cut before


class ForkAgent:
    """Restores, then hands over: in each stage up to STEP's it re-issues the recorded steps
    before STEP (through the session: recorded and numbered again); in STEP's stage it then
    runs the new agent on the live session, with the conversation so far; later stages are
    the new agent's alone. Named (and modelled) as the new agent."""

    def __init__(
        self,
        inner: Agent,
        restore: ReplayAgent,
        stages: list[str],
        fork_stage: str,
        history: list[dict[str, Any]] | None,
    ) -> None:
        self.inner, self.restore = inner, restore
        self.name = inner.name
        self.model = getattr(inner, "model", None)
        self.provider = getattr(inner, "provider", None)
        self.stages, self.fork_stage, self.history = stages, fork_stage, history
        self.handed_over_at: int | None = None  # the session's next step at the hand-over
        # Restored from a snapshot: no step is re-run; the steps go on from here, in this
        # directory.
        self.from_snapshot: tuple[int, str | None] | None = None

    def run(self, instruction: str, session: AgentSession, ctx: AgentContext) -> None:
        here = self.stages.index(ctx.step.name)
        fork = self.stages.index(self.fork_stage)
        if self.from_snapshot is not None and here == fork:
            session.step, cwd = self.from_snapshot
            if cwd:
                # harness's own command, in the agent's shell: not one of the agent's steps
                session.sandbox.run(
                    f"cd {shlex.quote(cwd)}",
                    user=session.user,
                    session=SESSION,
                    attributes={Attr.ACTOR: Actor.HARNESS, Attr.PHASE: Span.AGENT},
                )
        elif here <= fork:
            self.restore.run(instruction, session, ctx)
            if here < fork or session.remaining() <= 0:
                return  # an earlier stage, or time ran out while restoring
            ctx.history = self.history
            self.handed_over_at = session.step + 1
        self.inner.run(instruction, session, ctx)


def fork_trial(
    store: traces.TraceStore,
    trial_id: str,
    at: int,
    agent: str,
    options: dict[str, Any] | None = None,
    *,
    history: bool = True,
    task: Path | None = None,
    restore: str = "auto",
    recorder: traces.Recorder | None = None,
    progress: Callable[[str], None] | None = None,
) -> ForkResult:
    """Restore a recorded trial's state before step ``at`` and run ``agent`` from there, as
    a new trial in the same store.

    Args:
        at: the first step that is the new agent's (1..N+1 for N recorded steps; N+1: after
            the last step).
        agent: the new agent (a name, a plug-in or ``module:Class``).
        options: the new agent's options. When it is the recorded agent, they are applied
            over the recorded run's options (so ``{"model": "gpt-5"}`` keeps the endpoint,
            the API and the shell tool the conversation was had with).
        history: hand a model-driven agent the conversation up to ``at`` (default); False
            starts it from the instruction, in the restored state.
        task: the task's folder, for a record that holds no copy of it.
        restore: ``auto`` (a snapshot when there is one, else re-execution), ``snapshot``
            (fail without one) or ``reexecute``.
        recorder: where the fork is recorded (default: a new one on ``store``).
        progress: called with a line per restored step, for people watching.

    Raises:
        ForkError: the fork cannot be made, and why.
        traces.StoreError: no such trial.
    """
    say = progress or (lambda _m: None)
    if restore not in RESTORE:
        raise ForkError(f"restore {restore!r}: use one of {', '.join(RESTORE)}")
    rec = traces.recorded_trial(store, trial_id)
    if not rec.actions and any(c.phase == "agent" for c in store.commands(rec.trial_id)):
        raise ForkError(
            f"the record of trial {rec.trial_id} is incomplete for a fork: it was made before "
            "the agent's steps were numbered, so they cannot be told from harness's own "
            "commands. Record the trial again to fork it."
        )
    steps = max((a.step for a in rec.actions), default=0)
    if not 1 <= at <= steps + 1:
        raise ForkError(
            f"--at {at}: trial {rec.trial_id} has {steps} step{'' if steps == 1 else 's'}, so "
            f"STEP must be 1..{steps + 1} (the first step that is the new agent's; "
            f"{steps + 1}: after the last step)"
        )
    before = [a for a in rec.actions if a.step < at]
    contents = write_contents(store, rec)
    for act in before:
        if act.kind == "write" and contents(act) is None:
            raise ForkError(
                f"step {act.step} of trial {rec.trial_id} wrote {act.path}, but the record "
                f"holds no copy of what it wrote, so the state before step {at} cannot be "
                f"restored; fork at step {act.step} or earlier"
            )
    cfg = _run_config(store, rec)
    notes: list[str] = []
    inner = _new_agent(rec, cfg, agent, options or {}, notes)
    conversation = _hand_over(store, rec, at, inner, history, notes)
    attributes: dict[str, Any] = {Attr.FORK_OF: rec.trial_id, Attr.FORK_AT: at}
    if conversation is not None:
        attributes[Attr.FORK_HISTORY] = len(conversation.items)
    own_recorder = recorder is None
    recorder = recorder or traces.Recorder(store)
    restored: list[StepVerdict] = []
    try:
        with tempfile.TemporaryDirectory(prefix="harness-fork-") as tmp:
            try:
                the_task = _task(store, rec, task, Path(tmp))
                image = _image(the_task, rec, cfg, notes, say)
            except ReplayError as exc:
                raise ForkError(str(exc)) from None
            stages = [s.name for s in the_task.steps]
            fork_stage = _stage_of(rec, at, stages)
            snap = _snapshot_before(rec, at, restore, len(stages), notes)
            if snap is not None:
                image = _snapshot_image(snap, image)
                before = []  # nothing re-executed, nothing to compare

            def restore_say(message: str) -> None:
                say(f"restoring {message}")

            restorer = ReplayAgent(rec.agent or "replay", before, contents, restore_say)
            forker = ForkAgent(
                inner,
                restorer,
                stages,
                fork_stage,
                conversation.items if conversation is not None else None,
            )
            if snap is not None:
                forker.from_snapshot = (at - 1, _cwd_before(rec, at))

            def compare(root: Any, result: TrialResult) -> None:
                recorder.flush()
                trace_id = format(root.get_span_context().trace_id, "032x")
                again = traces.observations(store, trace_id)
                blob = blob_reader(store)
                for act in before:
                    restored.append(
                        compare_step(
                            act.step,
                            act.text,
                            rec.observations.get(act.step),
                            again.get(act.step),
                            blob,
                        )
                    )

            settings = TrialSettings(
                timeout_multiplier=cfg.timeout_multiplier,
                footer=cfg.footer,
                infra_retries=0,  # one attempt: its steps are compared with the record
                network=rec.attributes.get(Attr.EFFECTIVE_NETWORK) or cfg.network,
                source_date_epoch=_int(rec.attributes.get(Attr.SOURCE_DATE_EPOCH)),
                root_attributes=attributes,
                links=(_span_context(rec.trace_id, rec.span_id),),
                before_end=compare,
            )
            run_id = new_run_id()
            result = run_trial(
                the_task,
                forker,
                image,
                recorder,
                run_id,
                trial_id=new_trial_id(),
                settings=settings,
            )
    finally:
        if own_recorder:
            recorder.shutdown()
    differing = [v.step for v in restored if v.verdict == "differs"]
    if differing:
        notes.append(
            "re-executed step(s) "
            + ", ".join(map(str, differing))
            + " gave other results than recorded: the restored state may differ from the "
            "original's (`harness replay` shows how)"
        )
    if forker.handed_over_at is None:
        notes.append(
            f"the new agent never took over: the trial ended ({result.outcome}) before step {at}"
        )
    elif forker.handed_over_at is not None and forker.handed_over_at != at:
        notes.append(
            f"only {forker.handed_over_at - 1} of {at - 1} steps were restored before the new "
            "agent took over"
        )
    return ForkResult(
        original=rec.trial_id,
        fork=result.trial_id,
        run_id=run_id,
        at=at,
        agent=inner.name,
        model=str(forker.model) if forker.model else None,
        outcome=result.outcome,
        reward=result.reward,
        recorded_outcome=rec.outcome,
        recorded_reward=rec.reward,
        restored=restored,
        history_items=len(conversation.items) if conversation is not None else None,
        error=result.error,
        notes=notes,
        snapshot=snap.image_id if snap is not None else None,
    )


# -- pieces ---------------------------------------------------------------------------------


RESTORE = ("auto", "snapshot", "reexecute")


def _snapshot_before(
    rec: traces.Recorded, at: int, restore: str, stages: int, notes: list[str]
) -> Snapshot | None:
    """The snapshot after step ``at - 1``, when it is to be used and is on the engine."""
    if restore == "reexecute" or at == 1:
        return None  # step 1 starts from the task's image anyway
    found = [s for s in find_snapshots(rec.trial_id) if s.step == at - 1]
    why = ""
    if stages > 1:
        why = "a multi-stage task is restored stage by stage, by re-execution"
    elif not found:
        why = (
            f"no snapshot of trial {rec.trial_id[:8]} after step {at - 1} is on this engine "
            "(run with `harness run --snapshot` to have them)"
        )
    if why:
        if restore == "snapshot":
            raise ForkError(f"cannot restore from a snapshot: {why}")
        return None
    notes.append(
        f"restored from the snapshot after step {at - 1} ({found[-1].image_id[7:19]}): "
        "no step re-run; variables earlier steps exported are not restored"
    )
    return found[-1]


def _snapshot_image(snap: Snapshot, task_image: TaskImage) -> TaskImage:
    """The snapshot as the trial's image; its services are the task image's (a snapshot's
    own entrypoint is the sandbox's shell)."""
    image = TaskImage(snap.image_id, snap.image_id, True, "")
    image.__dict__["entrypoint"] = task_image.entrypoint  # (a cached property)
    return image


def _cwd_before(rec: traces.Recorded, at: int) -> str | None:
    """The agent's directory before step ``at``: where its last command before it left it."""
    for act in sorted(rec.actions, key=lambda a: a.step, reverse=True):
        if act.step < at and act.kind == "command":
            return act.cwd_after
    return None


def _stage_of(rec: traces.Recorded, at: int, stages: list[str]) -> str:
    """The stage the new agent takes over in: STEP's, or the last step's for N+1."""
    acts = {a.step: a for a in rec.actions}
    act = acts.get(at) or acts.get(at - 1)
    stage = (act.stage if act is not None else None) or stages[0]
    if stage not in stages:
        raise ForkError(
            f"step {act.step if act else at} of trial {rec.trial_id} was taken in stage "
            f"{stage!r}, which task {rec.task} does not have (its stages: {', '.join(stages)})"
        )
    return stage


def _new_agent(
    rec: traces.Recorded, cfg: Any, agent: str, options: dict[str, Any], notes: list[str]
) -> Agent:
    """The new agent, with the recorded run's options under the given ones when it is the
    recorded agent."""
    recorded_agent = cfg.agent or rec.agent or ""
    merged = dict(options)
    if agent == recorded_agent and cfg.agent_options:
        merged = {**cfg.agent_options, **options}
        kept = sorted(set(cfg.agent_options) - set(options))
        if kept:
            notes.append(
                "options from the recorded run: "
                + ", ".join("--" + k.replace("_", "-") for k in kept)
            )
    try:
        return load_agent(agent, validate_options(agent, merged))
    except AgentError as exc:
        raise ForkError(str(exc)) from None


def _hand_over(
    store: traces.TraceStore,
    rec: traces.Recorded,
    at: int,
    inner: Agent,
    history: bool,
    notes: list[str],
) -> RecordedConversation | None:
    """The conversation to hand the new agent, checked against what it speaks; None when
    there is none to hand over (or it takes none)."""
    api = getattr(inner, "api", None)
    if api not in (RESPONSES, CHAT):
        notes.append(
            f"agent {inner.name} takes no conversation: it gets the live session in the state "
            f"before step {at}, and the instruction"
        )
        return None
    if not history:
        notes.append(
            f"no conversation handed over (--no-history): {inner.name} starts from the "
            f"instruction, in the state before step {at}"
        )
        return None
    if not rec.calls:
        notes.append(
            f"trial {rec.trial_id}'s agent made no model calls: {inner.name} starts from the "
            f"instruction, in the state before step {at}"
        )
        return None
    conv = recorded_conversation(store, rec, at)
    if conv.api != api:
        raise ForkError(
            f"trial {rec.trial_id}'s conversation was had with {_API_NAMES[conv.api]}, but "
            f"agent {inner.name} speaks {_API_NAMES[api]}: give --api {conv.api} to continue "
            "it (or --no-history to start from the instruction)"
        )
    tool = getattr(inner, "shell_tool", conv.shell_tool)
    if tool != conv.shell_tool:
        raise ForkError(
            f"trial {rec.trial_id}'s conversation offered the shell as "
            f"{_TOOL_NAMES.get(conv.shell_tool, conv.shell_tool)}, but agent {inner.name} "
            f"offers {_TOOL_NAMES.get(str(tool), str(tool))}: give --shell-tool "
            f"{conv.shell_tool} to continue it (or --no-history)"
        )
    notes.append(
        f"conversation handed over: the {len(conv.items)} items model call {conv.call} of "
        f"{len(rec.calls)} was sent with (reasoning left out)"
    )
    return conv


def recorded_conversation(
    store: traces.TraceStore, rec: traces.Recorded, at: int
) -> RecordedConversation:
    """The conversation of a recorded trial up to the model turn that took step ``at`` (or,
    for a step no turn took, the turn after the last step before it), as the items the next
    request carries: a stateless request's own input, or a stateful chain of requests and
    responses walked back to its start. Reasoning is left out (it is the recorded model's
    own: another model rejects it) and items lose their ids (which name the recorded
    server's items).

    Raises:
        ForkError: the conversation cannot be cut there (inside a turn), or the record does
            not hold it.
    """
    calls = rec.calls
    target: int | None = None
    for i, call in enumerate(calls):
        if at in call.caused_steps:
            first = call.caused_steps[0]
            if first != at:
                last = call.caused_steps[-1]
                raise ForkError(
                    f"step {at} is inside model turn {i + 1} of trial {rec.trial_id}, which "
                    f"took steps {first}-{last} at once: a conversation can only be cut "
                    f"between turns; fork at step {first} (the turn's first step) or "
                    f"{last + 1}"
                )
            target = i
            break
    earlier: int | None = None  # the last turn that took a step before `at`
    if target is None:
        for i, call in enumerate(calls):
            if call.caused_steps and max(call.caused_steps) < at:
                earlier = i
        target = 0 if earlier is None else earlier + 1
        if target >= len(calls):
            raise ForkError(
                f"no model call of trial {rec.trial_id} came after step {at - 1}: the "
                "conversation after it was never sent, so it cannot be handed over; fork at "
                "an earlier step (the first step of a turn), or with --no-history"
            )
    convs = _conversations(store, rec, target)
    items = convs[target]
    assert items is not None  # _conversations raises for the target
    if earlier is not None:
        prior = convs[earlier]
        if prior is None or items[: len(prior)] != prior or len(items) <= len(prior):
            raise ForkError(
                f"no model call of trial {rec.trial_id} continued its conversation after step "
                f"{at - 1} (the next one started another), so the conversation up to step "
                f"{at} cannot be handed over; fork at the first step of a turn, or with "
                "--no-history"
            )
    request = _json(store, calls[target].request_ref) or {}
    if "messages" not in request and "input" not in request:
        raise ForkError(
            f"model call {target + 1} of trial {rec.trial_id} is in neither the Responses "
            "API's shape nor Chat Completions', so its conversation cannot be handed over; "
            "fork with --no-history"
        )
    if "messages" in request:
        api, tool = CHAT, "function"
        kept = list(items)
        while kept and kept[0].get("role") == "system":
            kept.pop(0)  # the agent's own system message comes first
        kept = [{k: v for k, v in m.items() if k not in _OWN_REASONING} for m in kept]
    else:
        api = RESPONSES
        tools = request.get("tools") or []
        tool = "native" if any(t.get("type") == "shell" for t in tools) else "function"
        kept = [
            {k: v for k, v in item.items() if k != "id"}
            for item in items
            if item.get("type") != "reasoning"
        ]
    return RecordedConversation(api, tool, kept, target + 1)


def _conversations(
    store: traces.TraceStore, rec: traces.Recorded, upto: int
) -> list[list[dict[str, Any]] | None]:
    """Each recorded call's whole conversation (what its request continued, then its own
    input), up to call ``upto``; None for a call whose request was not recorded."""
    out: list[list[dict[str, Any]] | None] = []
    by_id: dict[str, int] = {}
    outputs: dict[int, list[dict[str, Any]]] = {}
    for i, call in enumerate(rec.calls[: upto + 1]):
        req = _json(store, call.request_ref)
        if req is None:
            if i == upto:
                raise ForkError(
                    f"the record of trial {rec.trial_id} holds no request of model call "
                    f"{i + 1}, so its conversation cannot be handed over (--no-history starts "
                    "from the instruction)"
                )
            out.append(None)
            continue
        if "messages" in req:
            conv = [m for m in req["messages"] if isinstance(m, dict)]
        else:
            items = req.get("input")
            own = [{"role": "user", "content": items}] if isinstance(items, str) else items
            own = [x for x in own or [] if isinstance(x, dict)]
            previous = req.get("previous_response_id")
            if previous:
                j = by_id.get(str(previous))
                before = out[j] if j is not None else None
                if j is None or before is None:
                    if i < upto:
                        out.append(None)
                        continue
                    raise ForkError(
                        f"model call {i + 1} of trial {rec.trial_id} continued response "
                        f"{previous} (--store), which the record does not hold, so the "
                        "conversation cannot be rebuilt; fork with --no-history"
                    )
                conv = before + outputs.get(j, []) + own
            else:
                conv = own
        out.append(conv)
        response = _json(store, call.response_ref)
        if response is not None and response.get("id"):
            by_id[str(response["id"])] = i
            outputs[i] = [x for x in response.get("output") or [] if isinstance(x, dict)]
    return out


def _json(store: traces.TraceStore, ref: str | None) -> dict[str, Any] | None:
    if not ref:
        return None
    try:
        data = json.loads(store.blob(ref))
    except (KeyError, ValueError, traces.StoreError):
        return None
    return data if isinstance(data, dict) else None
