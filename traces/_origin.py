"""What replay and fork read of a recorded trial: its root, the agent's steps, its model
calls, and what each step gave.

A replay compares two traces step by step, and one of them (the replay's own) is still being
written when it is compared: its root has not ended, so it is not a row of ``trials`` yet.
So everything here reads by trace id, and only :func:`recorded_trial` resolves a trial id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._model import Action, _actions, _rows, _trial
from ._schema import a
from ._store import read_blobs
from .vocab import Attr, Span, blob_sha

if TYPE_CHECKING:
    import duckdb

    from ._store import TraceStore

__all__ = [
    "ModelCall",
    "Observation",
    "PathChange",
    "Recorded",
    "observations",
    "recorded_trial",
    "trace_actions",
]


@dataclass(frozen=True)
class ModelCall:
    """One model call of the agent, in the order made: the request it sent and the response
    it got (blob refs; None when the call failed before an answer)."""

    span_id: str
    request_ref: str | None
    response_ref: str | None
    failed: bool
    caused_steps: tuple[int, ...]


@dataclass(frozen=True)
class PathChange:
    """One path a step changed: its op and the content after (a blob ref; None when the
    path is gone, is not a regular file, or its content was not kept)."""

    path: bytes
    op: str
    after_ref: str | None
    link_target: str | None


@dataclass(frozen=True)
class Observation:
    """What one of the agent's steps gave, as recorded."""

    step: int
    action: str  # the command, or write_file PATH, as one line for people
    exit_code: int | None
    timed_out: bool
    stdout_ref: str | None
    stderr_ref: str | None
    changes: tuple[PathChange, ...]


@dataclass(frozen=True)
class Recorded:
    """A recorded trial as replay needs it."""

    trial_id: str
    run_id: str
    trace_id: str
    span_id: str  # the root's: what a replay or fork links to
    task: str | None
    agent: str | None
    reward: float | None
    outcome: str | None
    attributes: dict[str, Any]  # the root span's
    actions: list[Action]
    calls: list[ModelCall]
    observations: dict[int, Observation]  # what each step gave, by step number
    run_config: str | None = None  # the run's configuration (JSON), when it was recorded
    # What a replay needs first, read in the same snapshot: the task archive and what the
    # agent's writes wrote (sha256 hex -> bytes; those the store holds).
    blobs: dict[str, bytes] = field(default_factory=dict)

    def blob(self, ref: str | None) -> bytes | None:
        """One of :attr:`blobs`, by ref; None when it was not read (or is not stored)."""
        return self.blobs.get(blob_sha(ref)) if ref else None


def recorded_trial(store: TraceStore, trial_id: str) -> Recorded:
    """A trial's root, steps, what they gave and its model calls, read in one snapshot.

    Raises:
        StoreError: no trial matches ``trial_id`` (or a prefix matches several).
    """
    with store.session() as con:
        t = _trial(con, store, trial_id)
        root = con.execute(
            "SELECT span_id, attributes FROM spans WHERE trace_id = ? AND parent_span_id IS NULL",
            [t.trace_id],
        ).fetchone()
        assert root is not None  # _trial found it
        calls = _rows(con, _CALL_SQL, [t.trace_id])
        attributes = json.loads(root[1]) if root[1] else {}
        actions = _actions(con, t.trace_id)
        config = con.execute(
            f"SELECT {a(Attr.RUN_CONFIG)} FROM spans s WHERE s.name = ? AND s.run_id = ? LIMIT 1",
            [Span.RUN, t.run_id],
        ).fetchone()
        wanted = [attributes.get(Attr.TASK_ARCHIVE), *(x.content_ref for x in actions)]
        return Recorded(
            trial_id=t.trial_id,
            run_id=t.run_id,
            trace_id=t.trace_id,
            span_id=root[0],
            task=t.task,
            agent=t.agent,
            reward=t.reward,
            outcome=t.outcome,
            attributes=attributes,
            actions=actions,
            observations=_observations(con, t.trace_id),
            run_config=config[0] if config else None,
            blobs=read_blobs(con, [str(w) for w in wanted if w]),
            calls=[
                ModelCall(
                    c["span_id"],
                    c["request_sha256"],
                    c["response_sha256"],
                    c["status_code"] == "ERROR",
                    tuple(json.loads(c["caused_steps"]) if c["caused_steps"] else ()),
                )
                for c in calls
            ],
        )


_CALL_SQL = """
SELECT l.span_id, l.request_sha256, l.response_sha256, l.status_code,
       CAST(l.caused_steps AS VARCHAR) AS caused_steps
FROM llm_calls l JOIN spans s ON s.trace_id = l.trace_id AND s.span_id = l.span_id
WHERE l.trace_id = ? ORDER BY s.start_ns, l.span_id
"""

_CHANGE_SQL = f"""
SELECT parent_span_id, {a(Attr.FS_PATH)} AS path, {a(Attr.FS_PATH_HEX)} AS path_hex,
       {a(Attr.FS_OP)} AS op, {a(Attr.FS_AFTER_BLOB)} AS after_ref,
       {a(Attr.FS_LINK_TARGET)} AS link_target
FROM spans s WHERE s.trace_id = ? AND s.name = '{Span.FS_CHANGE}'
ORDER BY path
"""


def trace_actions(store: TraceStore, trace_id: str) -> list[Action]:
    """The agent's steps in one trace, by its id (its root may still be open)."""
    with store.session() as con:
        return _actions(con, trace_id)


def observations(store: TraceStore, trace_id: str) -> dict[int, Observation]:
    """What each of the agent's steps in a trace gave, by step number."""
    with store.session() as con:
        return _observations(con, trace_id)


def _observations(con: duckdb.DuckDBPyConnection, trace_id: str) -> dict[int, Observation]:
    changes: dict[str, list[PathChange]] = {}
    for r in _rows(con, _CHANGE_SQL, [trace_id]):
        path = (
            bytes.fromhex(r["path_hex"])
            if r["path_hex"]
            else (r["path"] or "").encode("utf-8", errors="surrogateescape")
        )
        changes.setdefault(r["parent_span_id"], []).append(
            PathChange(path, r["op"] or "", r["after_ref"], r["link_target"])
        )
    return {
        act.step: Observation(
            act.step,
            act.text,
            act.exit_code,
            act.timed_out,
            act.stdout_ref,
            act.stderr_ref,
            tuple(changes.get(act.span_id, ())),
        )
        for act in _actions(con, trace_id)
    }
