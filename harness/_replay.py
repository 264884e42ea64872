"""Replay: run a recorded trial again and prove, step by step, where it diverged.

*Environment replay* (any agent) re-issues the agent's recorded steps in a fresh sandbox from
the recorded image, each with its recorded user and timeout, then runs the verifier; *model
replay* runs the agent's own code again with its model calls answered from the record
(:mod:`._replay_model`); *re-grading* is an environment replay scored by the task's current
tests. Either way the replay is a trial of its own, linked to the original (a span link and
``harness.replay.of``), and each step is compared with the record (:mod:`._replay_compare`).

It needs nothing but the store: the task comes from the archive the trial recorded, and an
image the engine no longer has is rebuilt from it (and the report says so).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanContext, TraceFlags

import traces
from sandbox import SandboxError, image_exists
from traces.vocab import Attr

from ._build import BuildError, TaskImage, task_image
from ._exec import AGENT as EXEC_AGENT
from ._record import new_run_id, new_trial_id
from ._replay_compare import Normalizer, StepVerdict, compare_step
from ._replay_model import ModelDivergence, RecordedModel, RecordedTurn
from ._runner import RunConfig
from ._task_archive import unpack_task
from ._tasks import Task, find_tasks, load_task
from ._trial import TrialResult, TrialSettings, run_trial
from .agents import (
    AgentContext,
    AgentError,
    AgentSession,
    TimeUp,
    agent_class,
    load_agent,
    options_model,
)

__all__ = [
    "ENVIRONMENT",
    "MODEL",
    "REGRADE",
    "Regraded",
    "ReplayError",
    "ReplayReport",
    "regrade_run",
    "replay_trial",
]

ENVIRONMENT = "environment"
MODEL = "model"
REGRADE = "regrade"

# The variable the replayed agent reads its API key from: the recorded model needs none, and
# the real key is never handed to it.
_REPLAY_KEY_ENV = "HARNESS_REPLAY_API_KEY"


class ReplayError(Exception):
    """The trial cannot be replayed (the record is incomplete, the image cannot be had, the
    task is not at hand); the message says why and what to do."""


@dataclass
class ReplayReport:
    """How a replay went: per step verdicts, the fidelity, the rewards side by side."""

    original: str  # trial id
    replay: str  # the replay's own trial id
    run_id: str  # the replay's run id
    mode: str
    steps: list[StepVerdict]
    recorded_reward: float | None
    reward: float | None
    recorded_outcome: str | None
    outcome: str
    model_divergence: ModelDivergence | None = None
    notes: list[str] = field(default_factory=list)
    error: str = ""  # the replay trial's own error, if it had one
    model_normalized_by: list[str] = field(default_factory=list)  # made a request match

    @property
    def fidelity(self) -> float:
        """Matching steps / steps (1.0 for a trial with no steps)."""
        return sum(s.same for s in self.steps) / len(self.steps) if self.steps else 1.0

    @property
    def first_divergence(self) -> StepVerdict | None:
        return next((s for s in self.steps if not s.same), None)

    @property
    def reward_matches(self) -> bool:
        return self.recorded_reward == self.reward and self.recorded_outcome == self.outcome

    @property
    def identical(self) -> bool:
        return self.fidelity == 1.0 and self.reward_matches and self.model_divergence is None

    @property
    def normalized_by(self) -> list[str]:
        used = {n for s in self.steps for n in s.normalized_by}
        return sorted(used | set(self.model_normalized_by))

    def to_dict(self) -> dict[str, Any]:
        first = self.first_divergence
        return {
            "original": self.original,
            "replay": self.replay,
            "run_id": self.run_id,
            "mode": self.mode,
            "identical": self.identical,
            "fidelity": round(self.fidelity, 4),
            "diverged_at": first.step if first else None,
            "recorded_reward": self.recorded_reward,
            "reward": self.reward,
            "recorded_outcome": self.recorded_outcome,
            "outcome": self.outcome,
            "normalized_by": self.normalized_by,
            "model_divergence": (
                {
                    "call": self.model_divergence.call,
                    "reason": self.model_divergence.reason,
                    "diff": self.model_divergence.diff,
                }
                if self.model_divergence
                else None
            ),
            "notes": self.notes,
            "error": self.error,
            "steps": [
                {
                    "step": s.step,
                    "action": s.action,
                    "verdict": s.verdict,
                    "differences": s.differences,
                    "diff": s.diff,
                    "normalized_by": s.normalized_by,
                }
                for s in self.steps
            ],
        }


class ReplayAgent:
    """Re-issues recorded steps, in order, through the agent's session: each is recorded
    again with its step number, so the two records line up step by step."""

    def __init__(
        self,
        name: str,
        actions: Sequence[traces.Action],
        contents: Callable[[traces.Action], bytes | None],
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.actions = list(actions)
        self.contents = contents
        self.progress = progress
        self.skipped: list[str] = []

    def run(self, instruction: str, session: AgentSession, ctx: AgentContext) -> None:
        first = ctx.task.steps[0].name
        mine = [a for a in self.actions if (a.stage or first) == ctx.step.name]
        for act in mine:
            if self.progress is not None:
                self.progress(f"step {act.step}/{len(self.actions)}: {act.text[:60]}")
            try:
                if act.kind == "write":
                    data = self.contents(act)
                    if data is None or act.path is None:
                        self.skipped.append(
                            f"step {act.step} ({act.text}): its content was not recorded"
                        )
                        session.step += 1  # keep the numbers of the steps after it
                        continue
                    session.write_file(act.path, data, act.mode if act.mode is not None else 0o644)
                else:
                    session.run(act.command or b"", timeout=act.timeout_s)
            except TimeUp:
                return


def write_contents(
    store: traces.TraceStore, rec: traces.Recorded
) -> Callable[[traces.Action], bytes | None]:
    """What a recorded write wrote: its content blob, or the content it left (a stream)."""

    def contents(act: traces.Action) -> bytes | None:
        try:
            if act.content_ref:
                return rec.blob(act.content_ref) or store.blob(act.content_ref)
            obs = rec.observations.get(act.step)
            path = (act.path or "").encode("utf-8", errors="surrogateescape")
            for c in obs.changes if obs else ():
                if c.path == path and c.after_ref:
                    return store.blob(c.after_ref)
        except (KeyError, traces.StoreError):
            return None
        return None

    return contents


def blob_reader(store: traces.TraceStore) -> Callable[[str], bytes | None]:
    """Reads blobs by ref, each once; None for one the store lacks."""
    cache: dict[str, bytes | None] = {}

    def blob(ref: str) -> bytes | None:
        if ref not in cache:
            try:
                cache[ref] = store.blob(ref)
            except (KeyError, traces.StoreError):
                cache[ref] = None
        return cache[ref]

    return blob


def _span_context(trace_id: str, span_id: str) -> SpanContext:
    return SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=False, trace_flags=TraceFlags(1)
    )


def _task(
    store: traces.TraceStore, rec: traces.Recorded, task_path: Path | None, tmp: Path
) -> Task:
    """The task to replay with: the folder given, else the record's own archive."""
    if task_path is not None:
        task, problems = load_task(task_path)
        if task is None:
            raise ReplayError(
                f"--task {task_path}: not a valid task: " + "; ".join(str(p) for p in problems)
            )
        if rec.task and task.id != rec.task:
            raise ReplayError(
                f"--task {task_path} is task {task.id!r}, but trial {rec.trial_id} ran "
                f"{rec.task!r}; pass that task's folder"
            )
        return task
    ref = rec.attributes.get(Attr.TASK_ARCHIVE)
    if not ref and rec.agent == EXEC_AGENT:
        raise ReplayError(
            f"trial {rec.trial_id} is a `harness exec` session, which has no task to replay "
            "it with; replay works on the trials of `harness run`"
        )
    if not ref:
        raise ReplayError(
            f"the record of trial {rec.trial_id} holds no copy of task {rec.task!r} (recorded "
            "before tasks were archived, or the task folder was larger than 64 MB); pass the "
            "task's folder with --task PATH"
        )
    try:
        archive = rec.blob(ref) or store.blob(ref)
    except (KeyError, traces.StoreError) as exc:
        raise ReplayError(
            f"the record of trial {rec.trial_id} is incomplete: its task archive {ref} is not "
            f"in {store.path} ({exc}); pass the task's folder with --task PATH"
        ) from None
    folder = unpack_task(archive, tmp / (rec.task or "task"))
    task, problems = load_task(folder)
    if task is None:
        raise ReplayError(
            f"the task archived with trial {rec.trial_id} no longer loads: "
            + "; ".join(str(p) for p in problems)
        )
    return task


def _image(
    task: Task, rec: traces.Recorded, cfg: RunConfig, notes: list[str], say: Callable[[str], None]
) -> TaskImage:
    """The recorded image, by id; rebuilt from the task when the engine no longer has it."""
    image_id = str(rec.attributes.get(Attr.IMAGE_ID) or "")
    name = str(rec.attributes.get(Attr.IMAGE_NAME) or image_id)
    if image_id and image_exists(image_id):
        return TaskImage(name, image_id, True, "")
    say(f"image {image_id[:19] or name} is not on this engine: rebuilding it from the task")
    try:
        built = task_image(task, cfg.image_map)
    except (BuildError, SandboxError) as exc:
        raise ReplayError(
            f"the recorded image {image_id or name!r} is not on this engine, and rebuilding it "
            f"from task {task.id} failed: {exc}"
        ) from None
    notes.append(
        f"image {image_id[:19] or '?'} was not on this engine; rebuilt from the task as "
        f"{built.tag} ({built.image_id[:19]}){'' if built.image_id == image_id else ', a new id'}"
    )
    return built


def _run_config(store: traces.TraceStore, rec: traces.Recorded) -> RunConfig:
    if rec.run_config:
        return RunConfig.from_json(rec.run_config)
    return RunConfig(tasks=[], agent=rec.agent or "")


def _model_agent(
    store: traces.TraceStore, rec: traces.Recorded, cfg: RunConfig, model: RecordedModel
) -> Any:
    options = dict(cfg.agent_options)
    try:
        model_cls = options_model(agent_class(cfg.agent or rec.agent or ""))
    except AgentError as exc:
        raise ReplayError(f"cannot load trial {rec.trial_id}'s agent: {exc}") from None
    fields = set(model_cls.model_fields) if model_cls is not None else set()
    if not rec.calls or "base_url" not in fields:
        raise ReplayError(
            f"trial {rec.trial_id}'s agent {rec.agent!r} made no model calls through an "
            "OpenAI-compatible endpoint, so there is nothing to answer from the record; "
            "replay without --agent re-issues its recorded steps"
        )
    options["base_url"] = model.base_url
    if "api_key_env" in fields:
        options["api_key_env"] = _REPLAY_KEY_ENV
        os.environ.setdefault(_REPLAY_KEY_ENV, "replay")  # the recorded model checks none
    return load_agent(cfg.agent or rec.agent or "", options)


def _turns(store: traces.TraceStore, rec: traces.Recorded) -> list[RecordedTurn]:
    turns = []
    for call in rec.calls:
        request = json.loads(store.blob(call.request_ref)) if call.request_ref else None
        response = store.blob(call.response_ref) if call.response_ref else None
        turns.append(RecordedTurn(request, None if call.failed and response is None else response))
    return turns


def replay_trial(
    store: traces.TraceStore,
    trial_id: str,
    *,
    normalize: Sequence[Normalizer] = (),
    task: Path | None = None,
    agent: bool = False,
    recorder: traces.Recorder | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReplayReport:
    """Replay a recorded trial into the same store and compare it with the record.

    Args:
        normalize: applied to outputs, file contents and paths before comparing.
        task: re-grade: replay the agent's steps, scored by this task folder's tests.
        agent: model replay: run the recorded agent again, answered from the record.
        recorder: where the replay is recorded (default: a new one on ``store``).
        progress: called with a line per step, for people watching.

    Raises:
        ReplayError: the trial cannot be replayed, and why.
        traces.StoreError: no such trial.
    """
    say = progress or (lambda _m: None)
    rec = traces.recorded_trial(store, trial_id)
    if rec.outcome is None and not rec.actions:
        raise ReplayError(f"trial {rec.trial_id} was interrupted before it recorded any step")
    has_steps = bool(rec.actions)
    if not has_steps and any(c.phase == "agent" for c in store.commands(rec.trial_id)):
        raise ReplayError(
            f"the record of trial {rec.trial_id} is incomplete for replay: it was made before "
            "the agent's steps were numbered, so they cannot be told from harness's own "
            "commands. Record the trial again to replay it."
        )
    mode = MODEL if agent else (REGRADE if task is not None else ENVIRONMENT)
    cfg = _run_config(store, rec)
    notes: list[str] = []
    recorded_obs = rec.observations
    own_recorder = recorder is None
    recorder = recorder or traces.Recorder(store)
    try:
        with tempfile.TemporaryDirectory(prefix="harness-replay-") as tmp:
            the_task = _task(store, rec, task, Path(tmp))
            if task is None:
                notes.append("task from the record's archive")
            image = _image(the_task, rec, cfg, notes, say)
            model: RecordedModel | None = None
            verdicts: list[StepVerdict] = []
            replay_id = new_trial_id()

            def compare(root: Any, result: TrialResult) -> None:
                recorder.flush()
                trace_id = format(root.get_span_context().trace_id, "032x")
                replayed = traces.observations(store, trace_id)
                texts = {n: o.action for n, o in recorded_obs.items()}
                texts.update({n: o.action for n, o in replayed.items()})
                blob = blob_reader(store)
                for n in sorted(set(recorded_obs) | set(replayed)):
                    verdicts.append(
                        compare_step(
                            n,
                            texts.get(n, ""),
                            recorded_obs.get(n),
                            replayed.get(n),
                            blob,
                            normalize,
                        )
                    )
                first = next((v for v in verdicts if not v.same), None)
                same = sum(v.same for v in verdicts)
                root.set_attribute(
                    Attr.REPLAY_FIDELITY, round(same / len(verdicts), 4) if verdicts else 1.0
                )
                if first is not None:
                    root.set_attribute(Attr.REPLAY_DIVERGED_AT, first.step)

            settings = TrialSettings(
                timeout_multiplier=cfg.timeout_multiplier,
                footer=cfg.footer,
                infra_retries=0,
                network=rec.attributes.get(Attr.EFFECTIVE_NETWORK) or cfg.network,
                source_date_epoch=_int(rec.attributes.get(Attr.SOURCE_DATE_EPOCH)),
                root_attributes={Attr.REPLAY_OF: rec.trial_id, Attr.REPLAY_MODE: mode},
                links=(_span_context(rec.trace_id, rec.span_id),),
                before_end=compare,
            )
            replay_run = new_run_id()
            if agent:
                with RecordedModel(_turns(store, rec), normalize) as model:
                    the_agent = _model_agent(store, rec, cfg, model)
                    result = run_trial(
                        the_task,
                        the_agent,
                        image,
                        recorder,
                        replay_run,
                        trial_id=replay_id,
                        settings=settings,
                    )
            else:
                contents = write_contents(store, rec)
                replayer = ReplayAgent(rec.agent or "replay", rec.actions, contents, progress)
                result = run_trial(
                    the_task,
                    replayer,
                    image,
                    recorder,
                    replay_run,
                    trial_id=replay_id,
                    settings=settings,
                )
                notes.extend(replayer.skipped)
    finally:
        if own_recorder:
            recorder.shutdown()
    return ReplayReport(
        original=rec.trial_id,
        replay=result.trial_id,
        run_id=replay_run,
        mode=mode,
        steps=verdicts,
        recorded_reward=rec.reward,
        reward=result.reward,
        recorded_outcome=rec.outcome,
        outcome=result.outcome,
        model_divergence=model.divergence if model is not None else None,
        model_normalized_by=sorted(model.texts.used) if model is not None else [],
        notes=notes,
        error=result.error,
    )


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclass
class Regraded:
    """One trial of a re-graded run: its re-grade, or why it could not be re-graded."""

    trial: traces.Trial
    report: ReplayReport | None = None
    problem: str = ""


def regrade_run(
    store: traces.TraceStore,
    run_id: str,
    tasks: Path,
    *,
    normalize: Sequence[Normalizer] = (),
    progress: Callable[[str], None] | None = None,
) -> list[Regraded]:
    """Re-grade every scored trial of a run with the tests of the tasks in ``tasks`` (a task
    folder, or a folder of them): each trial's recorded steps are replayed and scored as a
    new trial linked to the original. No agent runs, no model is called.

    Raises:
        traces.StoreError: no such run.
        ReplayError: ``tasks`` holds no task.
    """
    say = progress or (lambda _m: None)
    trials = [t for t in store.trials(run_id) if not t.superseded]
    if not trials:
        raise traces.StoreError(f"no trials of run {run_id!r} in {store.path} (see `harness runs`)")
    folders: dict[str, Path] = {}
    for path in find_tasks([tasks]):
        task, _ = load_task(path)
        if task is not None:
            folders[task.id] = path
    if not folders:
        raise ReplayError(
            f"{tasks} holds no valid task (a folder with task.toml, or folders of them)"
        )
    out: list[Regraded] = []
    with traces.Recorder(store) as recorder:
        for n, t in enumerate(trials, 1):
            say(f"[{n}/{len(trials)}] {t.task} {t.trial_id[:8]}")
            folder = folders.get(t.task or "")
            if folder is None:
                out.append(Regraded(t, problem=f"no task {t.task!r} in {tasks}"))
                continue
            try:
                report = replay_trial(
                    store, t.trial_id, normalize=normalize, task=folder, recorder=recorder
                )
            except ReplayError as exc:
                out.append(Regraded(t, problem=str(exc)))
                continue
            out.append(Regraded(t, report))
    return out
