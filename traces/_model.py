"""A typed read model of the record: runs, trials, commands, the agent's actions, file changes
and resource samples.

``show``, ``replay``, ``compare`` and the reports all need the same few things from a trial.
Each writing its own SQL would spread the span model over every command, and a change to it
would have to find them all; so they read these dataclasses instead, and the SQL lives here,
over the public views (what a user can query is what the tools read).

Every function takes the store and runs its queries in one ``store.session()``, so a result is
one consistent snapshot even while a run is being written. A trial can be named by a unique
prefix of its id, as a user types it. Timestamps are timezone-aware ``datetime`` in UTC (the
views hold naive UTC timestamps); blob refs are ``sha256:<hex>`` strings for
:meth:`TraceStore.blob`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ._schema import _EXEC, a
from ._store import StoreError, decode_blob, read_blobs
from .vocab import Actor, Attr, Span, blob_sha

if TYPE_CHECKING:
    import duckdb

    from ._store import TraceStore

__all__ = ["Action", "Command", "FileChange", "ModelTurn", "ResourceSample", "Run", "Trial"]


@dataclass(frozen=True)
class Run:
    """One suite run, summed over its trials (a row of the ``runs`` view).

    ``agents`` and ``models`` are the distinct names, sorted; token counts are None when no
    trial recorded any.
    """

    run_id: str
    started_at: datetime
    ended_at: datetime
    trials: int
    passed: int
    pass_rate: float
    mean_reward: float | None
    errors: int
    agents: tuple[str, ...]
    models: tuple[str, ...]
    tasks: int
    input_tokens: int | None
    output_tokens: int | None


@dataclass(frozen=True)
class Trial:
    """One trial: one trace, one task attempt (a row of the ``trials`` view).

    ``error`` is the root span's ``harness.error`` (why a trial that did not get scored
    ended), None if it has none. ``passed`` is False when the trial recorded neither a
    pass flag nor an outcome. ``peak_memory_bytes`` is the highest memory the trial's
    container or commands reached (resource samples' usage and peak, commands' peak);
    ``cpu_s`` the container's CPU seconds at its last resource sample, or the sum over its
    commands when it has no samples; each None when nothing was measured.
    """

    run_id: str
    trial_id: str
    trace_id: str
    task: str | None
    trial_index: int | None
    agent: str | None
    model: str | None
    outcome: str | None
    passed: bool
    reward: float | None
    steps: int | None
    input_tokens: int | None
    output_tokens: int | None
    started_at: datetime
    duration_s: float
    image: str | None
    error: str | None
    peak_memory_bytes: int | None
    cpu_s: float | None
    superseded: bool = False  # interrupted, or run again by a resume: counts in no summary
    cached_tokens: int | None = None  # of input_tokens, read from the provider's cache
    reasoning_tokens: int | None = None  # of output_tokens, spent reasoning
    # The task folder's hash when the trial ran: a comparison of runs pairs only trials of
    # the same task content (None in records that lack it).
    content_hash: str | None = None


@dataclass(frozen=True)
class Command:
    """One command the sandbox ran in a trial (a ``sandbox.exec`` span), in the order run.

    ``index`` counts from 1 within the trial, over every phase and actor. ``phase`` is the
    name of the nearest enclosing phase span (``setup``, ``agent`` or ``verify``) and
    ``stage`` that span's stage name (Harbor's multi-step tasks), each None when there is
    none. ``actor`` says who issued it (``agent``, ``verifier``, ``harness``) and ``step``
    is its number among the agent's actions (None for other actors, and in records made
    before steps were numbered). A command too long to keep inline is read back from its
    blob, so ``command`` is always complete. Absent timeout and OOM flags read as False.
    """

    index: int
    span_id: str
    command: str | None
    exit_code: int | None
    cwd: str | None
    started_at: datetime
    duration_ms: float
    timed_out: bool
    oom_killed: bool
    stdout_ref: str | None
    stderr_ref: str | None
    stdout_bytes: int | None
    stderr_bytes: int | None
    cpu_s: float | None
    peak_memory_bytes: int | None
    phase: str | None
    stage: str | None
    actor: str | None = None
    step: int | None = None
    user: str | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class Action:
    """One of the agent's steps: a command it ran or a file it wrote, in the order issued.

    ``kind`` is ``command`` or ``write``. A command's ``command`` is its exact bytes (a line
    that is not UTF-8 is kept as it was), with the user, directory and timeout it was issued
    with and what it gave (exit code, output refs). A write's ``path``, ``mode`` and
    ``content_ref`` (None when the content was too large to record, or came from a stream).
    """

    step: int
    kind: str
    span_id: str
    stage: str | None
    started_at: datetime
    duration_ms: float
    command: bytes | None = None
    user: str | None = None
    cwd: str | None = None
    timeout_s: float | None = None
    exit_code: int | None = None
    timed_out: bool = False
    cwd_after: str | None = None  # where the command left the shell
    stdout_ref: str | None = None
    stderr_ref: str | None = None
    path: str | None = None
    mode: int | None = None
    content_ref: str | None = None

    @property
    def text(self) -> str:
        """The action as one line for people: the command, or ``write_file PATH``."""
        if self.kind == "write":
            return f"write_file {self.path}"
        return (self.command or b"").decode("utf-8", errors="backslashreplace")


@dataclass(frozen=True)
class FileChange:
    """One path a step changed (a ``fs.change`` span; a row of the ``file_changes`` view).

    ``step_span_id`` is the span of the command (or file write) that made the change;
    ``before_ref``/``after_ref``/``diff_ref`` are blob refs of the contents and the diff.
    """

    step_span_id: str | None
    path: str | None
    op: str | None
    file_type: str | None
    size: int | None
    mode: str | None
    before_ref: str | None
    after_ref: str | None
    diff_ref: str | None
    link_target: str | None
    old_path: str | None
    content_omitted: bool
    changed_at: datetime


@dataclass(frozen=True)
class ResourceSample:
    """One sample of the container's resources (a row of the ``resource_samples`` view).

    Counters (``cpu_s``, block and network bytes) are cumulative since the container
    started; a probe that could not read a value leaves it None.
    """

    sampled_at: datetime
    cpu_s: float | None
    memory_bytes: int | None
    memory_peak_bytes: int | None
    pids: int | None
    block_read_bytes: int | None
    block_write_bytes: int | None
    net_rx_bytes: int | None
    net_tx_bytes: int | None


# -- queries ---------------------------------------------------------------------------------
# Select lists alias each column to its field name, so rows become dataclasses by keyword.

_RUN_SQL = """
SELECT r.run_id, r.started_at, r.ended_at, r.trials, r.passed,
       CAST(r.pass_rate AS DOUBLE) AS pass_rate, CAST(r.mean_reward AS DOUBLE) AS mean_reward,
       r.errors, n.agents, n.models, r.tasks,
       CAST(r.input_tokens AS BIGINT) AS input_tokens,
       CAST(r.output_tokens AS BIGINT) AS output_tokens
FROM runs r
JOIN (
    SELECT run_id, list_sort(list_distinct(list(agent))) AS agents,
           list_sort(list_distinct(list(model))) AS models
    FROM trials GROUP BY run_id
) n ON n.run_id = r.run_id
"""

_TRIAL_SQL = """
SELECT t.run_id, t.trial_id, t.trace_id, t.task, t.trial_index, t.agent, t.model, t.outcome,
       coalesce(t.passed, false) AS passed, t.reward, t.steps,
       CAST(t.input_tokens AS BIGINT) AS input_tokens,
       CAST(t.output_tokens AS BIGINT) AS output_tokens,
       CAST(t.cached_tokens AS BIGINT) AS cached_tokens,
       CAST(t.reasoning_tokens AS BIGINT) AS reasoning_tokens,
       t.started_at, t.duration_s, t.image, t.error,
       CAST(t.peak_memory_bytes AS BIGINT) AS peak_memory_bytes, CAST(t.cpu_s AS DOUBLE) AS cpu_s,
       t.superseded, t.content_hash
FROM trials t
"""
_TRIAL_ORDER = "ORDER BY t.started_at, t.run_id, t.task, t.trial_index, t.trial_id"

_COMMAND_SQL = f"""
SELECT c.span_id, c.command, c.exit_code, c.cwd, c.started_at, c.duration_ms,
       c.actor, c.step, c.user, c.timeout_s,
       coalesce(c.timed_out, false) AS timed_out, coalesce(c.oom_killed, false) AS oom_killed,
       c.stdout_sha256 AS stdout_ref, c.stderr_sha256 AS stderr_ref,
       c.stdout_bytes, c.stderr_bytes, c.cpu_s, c.peak_memory_bytes,
       {a(Attr.COMMAND_LINE + Attr.BLOB_SUFFIX)} AS command_ref
FROM commands c JOIN spans s ON s.trace_id = c.trace_id AND s.span_id = c.span_id
WHERE c.trace_id = ?
ORDER BY s.start_ns, s.end_ns, c.span_id
"""

_FILE_CHANGE_SQL = """
SELECT f.command_span_id AS step_span_id, f.path, f.op, f.file_type, f.size, f.mode,
       f.before_sha256 AS before_ref, f.after_sha256 AS after_ref, f.diff_sha256 AS diff_ref,
       f.link_target, f.old_path, f.content_omitted, f.changed_at
FROM file_changes f JOIN spans s ON s.trace_id = f.trace_id AND s.span_id = f.span_id
WHERE f.trace_id = ? AND (CAST(? AS VARCHAR) IS NULL OR f.command_span_id = ?)
ORDER BY s.start_ns, f.path, f.span_id
"""

_RESOURCE_SQL = """
SELECT sampled_at, cpu_s, memory_bytes, memory_peak_bytes, pids, block_read_bytes,
       block_write_bytes, net_rx_bytes, net_tx_bytes
FROM resource_samples r WHERE r.trace_id = ?
ORDER BY sampled_at, r.span_id
"""


def _trial_rows(
    con: duckdb.DuckDBPyConnection, suffix: str, params: Sequence[Any] = ()
) -> list[dict[str, Any]]:
    """Rows of the ``trials`` view (``suffix``: the WHERE/ORDER BY), as :func:`_rows`."""
    return _rows(con, f"{_TRIAL_SQL} {suffix}", params)


def _rows(
    con: duckdb.DuckDBPyConnection, query: str, params: Sequence[Any] = ()
) -> list[dict[str, Any]]:
    """Rows as {column: value}; timestamps become aware UTC datetimes, lists tuples."""
    cur = con.execute(query, list(params))
    names = [d[0] for d in cur.description or []]
    return [{name: _value(v) for name, v in zip(names, row, strict=True)} for row in cur.fetchall()]


def _value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    if isinstance(v, list):
        return tuple(v)
    return v


# -- runs and trials -------------------------------------------------------------------------


def runs(store: TraceStore) -> list[Run]:
    """Every run in the store, oldest first."""
    with store.session() as con:
        rows = _rows(con, _RUN_SQL + "ORDER BY r.started_at, r.run_id")
    return [Run(**row) for row in rows]


def run(store: TraceStore, run_id: str) -> Run:
    """One run by its exact id.

    Raises:
        StoreError: no run has that id.
    """
    with store.session() as con:
        rows = _rows(con, _RUN_SQL + "WHERE r.run_id = ?", [run_id])
    if not rows:
        raise StoreError(f"no run {run_id!r} in {store.path}; `harness runs` lists the runs there")
    return Run(**rows[0])


def trials(store: TraceStore, run_id: str | None = None) -> list[Trial]:
    """The trials of one run (or of every run), in the order they started."""
    with store.session() as con:
        if run_id is None:
            rows = _trial_rows(con, _TRIAL_ORDER)
        else:
            rows = _trial_rows(con, f"WHERE t.run_id = ? {_TRIAL_ORDER}", [run_id])
    return [Trial(**row) for row in rows]


def trial(store: TraceStore, trial_id: str) -> Trial:
    """One trial by its id or a unique prefix of it (an exact match wins).

    Raises:
        StoreError: no trial matches, or the prefix matches more than one.
    """
    with store.session() as con:
        return _trial(con, store, trial_id)


def _trial(con: duckdb.DuckDBPyConnection, store: TraceStore, trial_id: str) -> Trial:
    # An exact match sorts first, so it is never cut off by the limit.
    rows = _trial_rows(
        con,
        "WHERE starts_with(t.trial_id, ?) ORDER BY t.trial_id = ? DESC, t.trial_id LIMIT 21",
        [trial_id, trial_id],
    )
    exact = [r for r in rows if r["trial_id"] == trial_id]
    if exact:
        rows = exact
    if not rows:
        raise StoreError(
            f"no trial {trial_id!r} in {store.path}; "
            '`harness sql "SELECT trial_id, task FROM trials"` lists them'
        )
    ids = sorted({r["trial_id"] for r in rows})
    if len(ids) > 1:
        more = ", ..." if len(rows) > 20 else ""
        raise StoreError(
            f"trial id prefix {trial_id!r} is ambiguous in {store.path}: it matches "
            f"{', '.join(ids[:20])}{more}; give more of the id"
        )
    return Trial(**rows[0])


# -- inside a trial --------------------------------------------------------------------------


def commands(store: TraceStore, trial_id: str) -> list[Command]:
    """The commands the sandbox ran in a trial, numbered from 1 in the order they started,
    each with the phase and stage it ran in and who issued it.

    Raises:
        StoreError: no trial matches ``trial_id`` (or a prefix matches several).
    """
    with store.session() as con:
        trace_id = _trial(con, store, trial_id).trace_id
        rows = _rows(con, _COMMAND_SQL, [trace_id])
        phases = _phases(con, trace_id)
        refs = [r["command_ref"] for r in rows if r["command"] is None and r["command_ref"]]
        offloaded = _blob_texts(con, refs)
    out: list[Command] = []
    for index, row in enumerate(rows, start=1):
        ref = row.pop("command_ref")
        if row["command"] is None and ref:
            row["command"] = offloaded.get(blob_sha(ref))
        phase, stage = phases.get(row["span_id"], (None, None))
        out.append(Command(index=index, phase=phase, stage=stage, **row))
    return out


_ACTION_SQL = f"""
SELECT s.span_id, s.name, s.start_ns, s.duration_ns, s.exit_code,
       {a(Attr.STEP, "INTEGER")} AS step, {a(Attr.STAGE)} AS stage,
       {a(Attr.COMMAND_LINE)} AS line, {a(Attr.COMMAND_LINE_HEX)} AS line_hex,
       {a(Attr.COMMAND_LINE + Attr.BLOB_SUFFIX)} AS line_ref,
       {a(Attr.USER)} AS user, {a(Attr.CWD)} AS cwd, {a(Attr.TIMEOUT, "DOUBLE")} AS timeout_s,
       {a(Attr.CWD_AFTER)} AS cwd_after,
       coalesce({a(Attr.TIMED_OUT, "BOOLEAN")}, false) AS timed_out,
       {a(Attr.STDOUT_BLOB)} AS stdout_ref, {a(Attr.STDERR_BLOB)} AS stderr_ref,
       {a(Attr.FS_PATH)} AS path, {a(Attr.FS_MODE)} AS mode, {a(Attr.WRITE_BLOB)} AS content_ref
FROM spans s
WHERE s.trace_id = ? AND {a(Attr.ACTOR)} = '{Actor.AGENT}'
  AND ({_EXEC.format("s.name")} OR s.name = '{Span.WRITE_FILE}')
ORDER BY step NULLS LAST, s.start_ns, s.span_id
"""


def actions(store: TraceStore, trial_id: str) -> list[Action]:
    """The agent's steps in a trial, in the order issued: what replay re-issues and fork
    restores. A record made before steps were numbered has none.

    Raises:
        StoreError: no trial matches ``trial_id`` (or a prefix matches several).
    """
    with store.session() as con:
        return _actions(con, _trial(con, store, trial_id).trace_id)


def _actions(con: duckdb.DuckDBPyConnection, trace_id: str) -> list[Action]:
    """The agent's steps in one trace (its root need not be in the store yet)."""
    rows = _rows(con, _ACTION_SQL, [trace_id])
    offloaded = _blob_texts(con, [r["line_ref"] for r in rows if r["line_ref"]])
    out: list[Action] = []
    for r in rows:
        common = {
            "step": r["step"],
            "span_id": r["span_id"],
            "stage": r["stage"],
            "started_at": datetime.fromtimestamp(r["start_ns"] / 1e9, UTC),
            "duration_ms": (r["duration_ns"] or 0) / 1e6,
        }
        if r["name"] == Span.WRITE_FILE:
            mode = int(r["mode"], 8) if r["mode"] else None
            out.append(
                Action(
                    kind="write", path=r["path"], mode=mode, content_ref=r["content_ref"], **common
                )
            )
            continue
        if r["line_hex"]:
            line = bytes.fromhex(r["line_hex"])
        elif r["line"] is None and r["line_ref"]:
            text = offloaded.get(blob_sha(r["line_ref"]), "")
            line = text.encode("utf-8", errors="surrogateescape")
        else:
            line = (r["line"] or "").encode("utf-8", errors="surrogateescape")
        out.append(
            Action(
                kind="command",
                command=line,
                user=r["user"],
                cwd=r["cwd"],
                timeout_s=r["timeout_s"],
                exit_code=r["exit_code"],
                timed_out=r["timed_out"],
                cwd_after=r["cwd_after"],
                stdout_ref=r["stdout_ref"],
                stderr_ref=r["stderr_ref"],
                **common,
            )
        )
    return out


def _phases(
    con: duckdb.DuckDBPyConnection, trace_id: str
) -> dict[str, tuple[str | None, str | None]]:
    """(phase, stage) of each command span of a trace, from the nearest phase ancestor.

    Walks parent links in Python over one query of the trace's spans: a trace holds at most
    some thousands of spans, and each span is visited once (results are memoized per span).
    """
    rows = con.execute(
        f"SELECT span_id, parent_span_id, name, "
        f"coalesce({a(Attr.STAGE, src='s')}, {a(Attr.STAGE_LEGACY, src='s')}) "
        "FROM spans s WHERE s.trace_id = ?",
        [trace_id],
    ).fetchall()
    spans: dict[str, tuple[str | None, str, str | None]] = {
        sid: (parent, name, stage) for sid, parent, name, stage in rows
    }
    found: dict[str, tuple[str | None, str | None]] = {}

    def resolve(span_id: str) -> tuple[str | None, str | None]:
        path: list[str] = []
        result: tuple[str | None, str | None] = (None, None)
        current: str | None = span_id
        while current is not None and current in spans:
            if current in found:
                result = found[current]
                break
            if current in path:  # a cycle (only a malformed import can make one)
                break
            path.append(current)
            parent, name, stage = spans[current]
            if name in Span.PHASES:
                result = (name, stage)
                break
            current = parent
        for sid in path:
            found[sid] = result
        return result

    return {sid: resolve(sid) for sid, (_, name, _) in spans.items() if Span.is_exec(name)}


def _blob_texts(con: duckdb.DuckDBPyConnection, refs: Sequence[str]) -> dict[str, str]:
    """sha256 hex -> text of those blobs the store holds."""
    if not refs:
        return {}
    shas = sorted({blob_sha(r) for r in refs})
    rows = con.execute(
        "SELECT sha256, encoding, data FROM blobs WHERE sha256 IN (SELECT unnest(?::VARCHAR[]))",
        [shas],
    ).fetchall()
    return {
        sha: decode_blob(enc, data).decode("utf-8", errors="surrogateescape")
        for sha, enc, data in rows
    }


def file_changes(
    store: TraceStore, trial_id: str, step_span_id: str | None = None
) -> list[FileChange]:
    """The paths a trial's steps changed, in the order recorded; or those of one step.

    Raises:
        StoreError: no trial matches ``trial_id`` (or a prefix matches several).
    """
    with store.session() as con:
        trace_id = _trial(con, store, trial_id).trace_id
        rows = _rows(con, _FILE_CHANGE_SQL, [trace_id, step_span_id, step_span_id])
    return [FileChange(**row) for row in rows]


def resource_samples(store: TraceStore, trial_id: str) -> list[ResourceSample]:
    """A trial's container resource samples, oldest first.

    Raises:
        StoreError: no trial matches ``trial_id`` (or a prefix matches several).
    """
    with store.session() as con:
        trace_id = _trial(con, store, trial_id).trace_id
        rows = _rows(con, _RESOURCE_SQL, [trace_id])
    return [ResourceSample(**row) for row in rows]


# -- the model's turns -----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelTurn:
    """One model call of a trial (a ``chat`` span; a row of the ``llm_calls`` view), with
    what its answer said and which of the agent's steps it caused.

    ``index`` counts from 1 in the order the calls started. ``caused_steps`` are the steps its
    tool calls ran (empty for an answer that called no tool, and in records made before turns
    named their steps). ``message`` is the text the model wrote (a Responses API answer's
    ``message`` items, or a Chat Completions answer's ``choices[0].message.content``) and
    ``reasoning`` its reasoning summaries; each None when the answer has none, or was not
    recorded or not readable as JSON (``response_ref`` still points at what was kept).
    ``failed`` is set when the call ended in an error (its span's status).
    """

    index: int
    span_id: str
    model: str | None
    started_at: datetime
    duration_ms: float
    input_tokens: int | None
    output_tokens: int | None
    caused_steps: tuple[int, ...]
    message: str | None
    reasoning: str | None
    response_ref: str | None
    failed: bool


_TURN_SQL = """
SELECT l.span_id, l.model, l.started_at, l.duration_ms,
       CAST(l.input_tokens AS BIGINT) AS input_tokens,
       CAST(l.output_tokens AS BIGINT) AS output_tokens,
       CAST(l.caused_steps AS VARCHAR) AS caused_steps, l.response_sha256 AS response_ref,
       coalesce(l.status_code = 'ERROR', false) AS failed
FROM llm_calls l JOIN spans s ON s.trace_id = l.trace_id AND s.span_id = l.span_id
WHERE l.trace_id = ? ORDER BY s.start_ns, l.span_id
"""


def model_turns(store: TraceStore, trial_id: str) -> list[ModelTurn]:
    """A trial's model calls in the order made, each with its answer's text and the steps it
    caused: what the model said before each of its actions.

    Raises:
        StoreError: no trial matches ``trial_id`` (or a prefix matches several).
    """
    with store.session() as con:
        trace_id = _trial(con, store, trial_id).trace_id
        rows = _rows(con, _TURN_SQL, [trace_id])
        bodies = read_blobs(con, [r["response_ref"] for r in rows if r["response_ref"]])
    return model_turns_of(rows, bodies)


def model_turns_of(rows: list[dict[str, Any]], bodies: dict[str, bytes]) -> list[ModelTurn]:
    """One trace's ``_TURN_SQL`` rows as turns, numbered from 1; ``bodies`` holds the
    responses (sha256 hex -> bytes) their texts are read from."""
    out: list[ModelTurn] = []
    for index, row in enumerate(rows, start=1):
        raw = row.pop("caused_steps")
        steps = json.loads(raw) if raw else []
        ref = row["response_ref"]
        message, reasoning = _answer_texts(bodies.get(blob_sha(ref)) if ref else None)
        out.append(
            ModelTurn(
                index=index,
                caused_steps=tuple(int(s) for s in steps if isinstance(s, int)),
                message=message,
                reasoning=reasoning,
                **row,
            )
        )
    return out


def _answer_texts(body: bytes | None) -> tuple[str | None, str | None]:
    """(message text, reasoning summary) of a recorded answer, in either API's shape.

    The stored body is the provider's JSON as it came; anything else (a body that was not
    JSON, a shape neither API uses) reads as having no text rather than failing the reader.
    """
    if body is None:
        return None, None
    try:
        data = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    messages: list[str] = []
    reasoning: list[str] = []
    if isinstance(data.get("output"), list):  # Responses API
        for item in data["output"]:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "message":
                messages += _part_texts(item.get("content"), ("text", "refusal"))
            elif item.get("type") == "reasoning":
                reasoning += _part_texts(item.get("summary"), ("text",))
    elif isinstance(data.get("choices"), list) and data["choices"]:  # Chat Completions
        choice = data["choices"][0]
        msg = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(msg, dict):
            content = msg.get("content")
            if isinstance(content, str):
                messages.append(content)
            else:
                messages += _part_texts(content, ("text",))
            if isinstance(msg.get("refusal"), str):
                messages.append(msg["refusal"])
            for key in ("reasoning_content", "reasoning"):  # providers' reasoning fields
                if isinstance(msg.get(key), str):
                    reasoning.append(msg[key])
    joined = "\n".join(m for m in messages if m)
    thought = "\n".join(r for r in reasoning if r)
    return joined or None, thought or None


def _part_texts(parts: Any, keys: tuple[str, ...]) -> list[str]:
    """The text of a list of content parts (``{"type": ..., "text": ...}``)."""
    if not isinstance(parts, list):
        return []
    return [
        part[key]
        for part in parts
        if isinstance(part, dict)
        for key in keys
        if isinstance(part.get(key), str)
    ]
