"""A trial told as a story, and a run as the list of its trials: what `harness show` prints.

The story is plain data built from the store alone (the :mod:`traces` read model): the
terminal view, the JSON document and the tests all read the same dataclasses, and nothing
here needs a Docker engine, so an imported record tells its story like a local one.

Everything that came from a container or a model (output, paths, commands, messages) is made
safe to print here, once: bytes that are not UTF-8 become backslash escapes and control
characters (an ANSI escape in a command's output, a newline in a file name) are spelled
``\\x1b``, so a viewer can print every string literally and a terminal never interprets any.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from typing import Any

import traces
from traces.vocab import Actor, Outcome, Span

__all__ = [
    "BRIEF",
    "DETAIL",
    "Excerpt",
    "Limits",
    "NoSuchStep",
    "RunStory",
    "StoryChange",
    "StoryStep",
    "TrialStory",
    "VerifierRun",
    "excerpt",
    "find",
    "printable",
    "run_story",
    "trial_story",
]


class NoSuchStep(LookupError):
    """The trial has no step by that number; the message gives the range it has."""


@dataclass(frozen=True)
class Limits:
    """How much of each text a story keeps.

    A story is read top down in a terminal: a few lines of each output (its first ``head``
    and last ``tail``, where errors usually are), each cut to ``width`` characters, the
    first ``diff_lines`` of each diff, ``message_lines`` of each model message and
    ``command_lines`` of each command line (a heredoc can be long); None: all of them.
    """

    head: int = 5
    tail: int = 5
    width: int = 160
    diff_lines: int | None = 12
    message_lines: int | None = 3
    command_lines: int | None = 3


BRIEF = Limits()  # the whole trial: a screen per few steps
DETAIL = Limits(  # one step (--step N): most of its output, the whole diff and message
    head=100, tail=100, width=2000, diff_lines=None, message_lines=None, command_lines=None
)


@dataclass(frozen=True)
class Excerpt:
    """The head and tail of a text, as lines safe to print.

    ``lines`` and ``bytes`` count the whole text as recorded; ``omitted_lines`` and
    ``omitted_bytes`` what lies between head and tail; ``cut_lines`` how many shown lines were
    shortened to the width. ``unrecorded_bytes`` is output the command wrote beyond what the
    record kept (the recording's output cap).
    """

    head: tuple[str, ...]
    tail: tuple[str, ...]
    lines: int
    bytes: int
    omitted_lines: int
    omitted_bytes: int
    cut_lines: int = 0
    unrecorded_bytes: int = 0

    @property
    def complete(self) -> bool:
        """Whether every line is shown, uncut."""
        return not (self.omitted_lines or self.cut_lines or self.unrecorded_bytes)


@dataclass(frozen=True)
class StoryChange:
    """One path a step changed. ``diff`` is the head of its unified diff (for an added text
    file, its content as added lines); None for binary files, directories, links and
    contents too large to keep."""

    op: str
    path: str
    file_type: str | None
    size: int | None
    old_path: str | None
    link_target: str | None
    content_omitted: bool
    diff: Excerpt | None


@dataclass(frozen=True)
class StoryStep:
    """One of the agent's steps: what it did, what it gave, what it changed, and what the
    model said before it (``message``, on the first step of a model turn; ``turn`` is that
    turn's number)."""

    step: int
    kind: str  # command | write
    action: str  # the command line (its newlines kept), or "write_file PATH"
    stage: str | None
    started_at: datetime
    duration_ms: float
    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    cpu_s: float | None
    peak_memory_bytes: int | None
    stdout: Excerpt | None
    stderr: Excerpt | None
    changes: tuple[StoryChange, ...]
    turn: int | None = None
    message: Excerpt | None = None


@dataclass(frozen=True)
class VerifierRun:
    """One run of the task's tests (a command the verifier issued), with its output."""

    stage: str | None
    command: str
    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    duration_ms: float
    stdout: Excerpt | None
    stderr: Excerpt | None


@dataclass(frozen=True)
class TrialStory:
    """A trial from start to score.

    ``steps`` are all of the trial's steps, or only the one asked for (``only_step``);
    ``step_count`` is how many the trial has either way. ``verifier`` and ``final_message``
    (the model's last word, a turn that ran no step) are left empty when one step was asked
    for. ``turns`` counts the model calls.
    """

    trial: traces.Trial
    steps: tuple[StoryStep, ...]
    step_count: int
    only_step: int | None
    verifier: tuple[VerifierRun, ...]
    final_message: Excerpt | None
    turns: int
    limits: Limits

    def to_json(self) -> dict[str, Any]:
        """The story as JSON-ready values (datetimes as ISO 8601 strings)."""
        data = _jsonable(self)
        data.pop("limits", None)
        return {"kind": "trial", **data}


@dataclass(frozen=True)
class RunStory:
    """A run and its trials, the ones to look at first: failed, then errors (interrupted
    ones among them), then passed; trials a resume ran again come last. Within each, in the
    order they started."""

    run: traces.Run
    trials: tuple[traces.Trial, ...]

    def to_json(self) -> dict[str, Any]:
        """The run and its trials as JSON-ready values."""
        return {"kind": "run", **_jsonable(self)}


# -- finding what an id names ----------------------------------------------------------------


def find(store: traces.TraceStore, ident: str) -> traces.Run | traces.Trial:
    """The run or trial an id names, as a user types it: a run by its exact id or a unique
    prefix of the run ids, else a trial by its id or a unique prefix.

    Raises:
        traces.StoreError: nothing matches, or a prefix matches several (the message lists
            them and says where to find ids).
    """
    if not ident.strip():
        raise traces.StoreError(
            "give a trial id or a run id (or a prefix of one): `harness runs` lists the runs, "
            "`harness show RUN_ID` a run's trials"
        )
    runs = [r for r in store.runs() if r.run_id.startswith(ident)]
    exact = [r for r in runs if r.run_id == ident]
    if exact or len(runs) == 1:
        return (exact or runs)[0]
    try:
        return store.trial(ident)
    except traces.StoreError as exc:
        if runs:
            ids = ", ".join(r.run_id for r in runs[:20])
            raise traces.StoreError(
                f"{ident!r} is ambiguous in {store.path}: it starts the run ids {ids}"
                f"{', ...' if len(runs) > 20 else ''}; give more of the id"
            ) from None
        raise traces.StoreError(
            f"{exc}; nor does any run id start with it (`harness runs` lists the runs, "
            "`harness show RUN_ID` a run's trials)"
        ) from None


# -- a run -----------------------------------------------------------------------------------


def _rank(t: traces.Trial) -> int:
    """Failed 0, error (or interrupted) 1, passed 2, run again by a resume 3."""
    if t.superseded and t.outcome is not None:
        return 3
    if t.passed:
        return 2
    return 1 if Outcome.is_error(t.outcome) else 0


def run_story(store: traces.TraceStore, run_id: str) -> RunStory:
    """A run and its trials, failures first.

    Raises:
        traces.StoreError: no run has that id.
    """
    run = store.run(run_id)
    trials = sorted(store.trials(run_id), key=lambda t: (_rank(t), t.started_at, t.trial_id))
    return RunStory(run, tuple(trials))


# -- a trial ---------------------------------------------------------------------------------

# C0 controls but tab, DEL, and the C1 controls (U+0080-U+009F; a terminal may read U+009B as
# the start of an escape sequence).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def duration_text(ms: float) -> str:
    """A duration as people read it: ``0.4 ms``, ``12 ms``, ``3.1 s``."""
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


def printable(text: str, newlines: bool = False) -> str:
    """``text`` with what a terminal would act on spelled out: control characters as
    ``\\xNN`` (newlines too, unless ``newlines``: a command line may span lines), lone
    surrogates (undecodable bytes kept by ``surrogateescape``) as the backslash escape of the
    byte they stand for."""
    if not text.isascii():
        try:
            data = text.encode("utf-8", errors="surrogateescape")
        except UnicodeEncodeError:  # a surrogate that stands for no byte (from JSON's \\ud800)
            data = text.encode("utf-8", errors="surrogatepass")
        text = data.decode("utf-8", errors="backslashreplace")
    pattern = _CONTROL_BUT_NEWLINE if newlines else _CONTROL
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def excerpt(
    data: bytes,
    head: int,
    tail: int,
    width: int,
    total_bytes: int | None = None,
    prefix: str = "",
) -> Excerpt:
    """The first ``head`` and last ``tail`` lines of ``data``, each made printable and cut to
    ``width`` characters; ``total_bytes`` is what was written when the record kept less.
    ``prefix`` is put before every line (``+`` for a file's content shown as a diff).

    Output can be tens of MiB: only the lines shown are split off and decoded, the rest is
    counted where it lies.
    """
    ends_open = bool(data) and not data.endswith(b"\n")
    n = data.count(b"\n") + ends_open  # a final newline ends the last line; it starts none
    shown_tail: list[bytes] = []
    if head + tail >= n:
        shown_head = data.split(b"\n")[:n]
        omitted_bytes = 0
    else:
        shown_head, pos = [], 0
        for _ in range(head):
            nl = data.index(b"\n", pos)
            shown_head.append(data[pos:nl])
            pos = nl + 1
        stop = len(data) - (not ends_open)  # where the last line ends
        for _ in range(tail):
            nl = data.rindex(b"\n", 0, stop)
            shown_tail.insert(0, data[nl + 1 : stop])
            stop = nl
        omitted_bytes = (stop + 1 if tail else len(data)) - pos
    cut = 0

    def line(b: bytes) -> str:
        nonlocal cut
        b = b.removesuffix(b"\r")  # a CRLF line ends like any other
        # Enough bytes for ``width`` characters, however they decode.
        text = printable(prefix + b[: 4 * width + 4].decode("utf-8", "backslashreplace"))
        if len(text) > width or len(b) > 4 * width + 4:
            cut += 1
            return f"{text[:width]} … (a line of {len(b):,} bytes)"
        return text

    return Excerpt(
        head=tuple(line(b) for b in shown_head),
        tail=tuple(line(b) for b in shown_tail),
        lines=n,
        bytes=len(data),
        omitted_lines=n - len(shown_head) - len(shown_tail),
        omitted_bytes=omitted_bytes,
        cut_lines=cut,
        unrecorded_bytes=max(0, (total_bytes or 0) - len(data)),
    )


_ADDED_TEXT_CAP = 64 * 1024  # an added file up to this size is shown as its content


def trial_story(
    store: traces.TraceStore,
    trial_id: str,
    step: int | None = None,
    limits: Limits | None = None,
) -> TrialStory:
    """A trial as a story: its steps with what each gave and changed, what the model said
    before each, then the verifier's output and the score.

    Args:
        store: the trace store holding the trial.
        trial_id: the trial's id or a unique prefix of it.
        step: only this step (then the verifier is left out, and ``limits`` defaults to
            :data:`DETAIL`); None for the whole trial (default limits :data:`BRIEF`).
        limits: how much of each output, diff and message to keep.

    Raises:
        traces.StoreError: no trial matches ``trial_id`` (or a prefix matches several).
        NoSuchStep: the trial has no step ``step``.
    """
    trial = store.trial(trial_id)
    lim = limits or (BRIEF if step is None else DETAIL)
    tid = trial.trial_id
    commands = store.commands(tid)
    steps = _steps(store.actions(tid), commands)
    numbers = [s.number for s in steps]
    if step is not None:
        if step not in numbers:
            have = f"its steps are {min(numbers)}-{max(numbers)}" if numbers else "it has none"
            raise NoSuchStep(f"trial {tid} has no step {step}: {have}")
        steps = [s for s in steps if s.number == step]
    verifier = [] if step is not None else _verifier_commands(commands)
    turns = store.model_turns(tid)
    wanted = {s.span_id for s in steps}
    changes: dict[str | None, list[traces.FileChange]] = {}
    for ch in store.file_changes(tid):
        if ch.step_span_id in wanted:
            changes.setdefault(ch.step_span_id, []).append(ch)
    # Every text the story shows, in one read of the store.
    refs = [r for s in steps for r in (s.stdout_ref, s.stderr_ref) if r]
    refs += [r for c in verifier for r in (c.stdout_ref, c.stderr_ref) if r]
    refs += [_text_ref(ch) or "" for chs in changes.values() for ch in chs]
    blobs = store.blobs(refs)

    def output(ref: str | None, total: int | None, head: int, tail: int) -> Excerpt | None:
        """An output's excerpt; None when the command wrote nothing there."""
        data = blobs.get(ref, b"") if ref else b""
        if not data and not total:
            return None
        return excerpt(data, head, tail, lim.width, total)

    def said(turn: traces.ModelTurn | None) -> Excerpt | None:
        if turn is None or not turn.message:
            return None
        n = _ALL if lim.message_lines is None else lim.message_lines
        return excerpt(turn.message.encode("utf-8", "surrogatepass"), n, 0, lim.width)

    # A turn's message is told once, before the first of its steps shown.
    turn_of = {n: t for t in turns for n in t.caused_steps}
    told: set[int] = set()
    story_steps = []
    for s in steps:
        c = s.command
        turn = turn_of.get(s.number)
        first = turn is not None and turn.index not in told
        if turn is not None:
            told.add(turn.index)
        story_steps.append(
            StoryStep(
                step=s.number,
                kind=s.kind,
                action=printable(s.text, newlines=True),
                stage=s.stage,
                started_at=s.started_at,
                duration_ms=s.duration_ms,
                exit_code=s.exit_code,
                timed_out=s.timed_out,
                oom_killed=bool(c and c.oom_killed),
                cpu_s=c.cpu_s if c else None,
                peak_memory_bytes=c.peak_memory_bytes if c else None,
                stdout=output(s.stdout_ref, c.stdout_bytes if c else None, lim.head, lim.tail),
                stderr=output(s.stderr_ref, c.stderr_bytes if c else None, lim.head, lim.tail),
                changes=tuple(_change(ch, blobs, lim) for ch in changes.get(s.span_id, [])),
                turn=turn.index if turn is not None else None,
                message=said(turn) if first else None,
            )
        )
    # The end of the tests' output is where they say what failed.
    n_tail = lim.head + lim.tail
    runs = tuple(
        VerifierRun(
            stage=c.stage,
            command=printable(c.command or "", newlines=True),
            exit_code=c.exit_code,
            timed_out=c.timed_out,
            oom_killed=c.oom_killed,
            duration_ms=c.duration_ms,
            stdout=output(c.stdout_ref, c.stdout_bytes, 0, n_tail),
            stderr=output(c.stderr_ref, c.stderr_bytes, 0, n_tail),
        )
        for c in verifier
    )
    last = turns[-1] if turns else None
    final = last if step is None and last is not None and not last.caused_steps else None
    return TrialStory(
        trial=trial,
        steps=tuple(story_steps),
        step_count=len(numbers),
        only_step=step,
        verifier=runs,
        final_message=said(final),
        turns=len(turns),
        limits=lim,
    )


def _steps(actions: list[traces.Action], commands: list[traces.Command]) -> list[_Step]:
    """The trial's steps: its agent's actions, each with the command it ran; for a record
    made before steps were numbered, the agent phase's commands in order."""
    if actions:
        by_span = {c.span_id: c for c in commands}
        return [_from_action(a, by_span.get(a.span_id)) for a in actions]
    agent = [c for c in commands if c.phase == Span.AGENT and c.actor in (None, Actor.AGENT)]
    return [_from_command(i, c) for i, c in enumerate(agent, start=1)]


def _verifier_commands(commands: list[traces.Command]) -> list[traces.Command]:
    """The tests' commands (an older record, without actors: the verify phase's)."""
    return [
        c
        for c in commands
        if c.actor == Actor.VERIFIER or (c.actor is None and c.phase == Span.VERIFY)
    ]


def _text_ref(ch: traces.FileChange) -> str | None:
    """The blob a change is shown by: its diff, or the content of a small added file."""
    if ch.diff_ref:
        return ch.diff_ref
    return ch.after_ref if _added_text(ch) else None


_ALL = 1 << 62  # "every line" for excerpt()


@dataclass(frozen=True)
class _Step:
    """A step as the story reads it: from the agent's action and the command it ran (None
    for a file write), or from a bare command of an older record."""

    number: int
    kind: str
    text: str
    span_id: str
    stage: str | None
    started_at: datetime
    duration_ms: float
    exit_code: int | None
    timed_out: bool
    stdout_ref: str | None
    stderr_ref: str | None
    command: traces.Command | None


def _from_action(a: traces.Action, c: traces.Command | None) -> _Step:
    return _Step(
        a.step, a.kind, a.text, a.span_id, a.stage, a.started_at, a.duration_ms,
        a.exit_code, a.timed_out, a.stdout_ref, a.stderr_ref, c,
    )  # fmt: skip


def _from_command(number: int, c: traces.Command) -> _Step:
    return _Step(
        number, "command", c.command or "", c.span_id, c.stage, c.started_at, c.duration_ms,
        c.exit_code, c.timed_out, c.stdout_ref, c.stderr_ref, c,
    )  # fmt: skip


def _added_text(ch: traces.FileChange) -> bool:
    return (
        ch.op == "added"
        and ch.file_type == "file"
        and ch.size is not None
        and 0 < ch.size <= _ADDED_TEXT_CAP
    )


def _change(ch: traces.FileChange, blobs: dict[str, bytes], lim: Limits) -> StoryChange:
    n = lim.diff_lines if lim.diff_lines is not None else _ALL
    diff = None
    if ch.diff_ref and ch.diff_ref in blobs:
        diff = excerpt(blobs[ch.diff_ref], n, 0, lim.width)
    elif _added_text(ch) and ch.after_ref in blobs:
        content = blobs[ch.after_ref or ""]
        if b"\x00" not in content and _utf8(content):
            diff = excerpt(content, n, 0, lim.width, prefix="+")
    return StoryChange(
        op=ch.op or "?",
        path=printable(ch.path or ""),
        file_type=ch.file_type,
        size=ch.size,
        old_path=printable(ch.old_path) if ch.old_path else None,
        link_target=printable(ch.link_target) if ch.link_target else None,
        content_omitted=ch.content_omitted,
        diff=diff,
    )


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _jsonable(value: Any) -> Any:
    """Dataclasses as dicts, datetimes as ISO 8601, tuples as lists, all the way down."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
