"""A whole run's trials read at once: each trial with its commands, actions, file changes,
resource samples, model turns and phases.

The per-trial read model (:mod:`traces._model`) names a trial by id, so every call finds the
trial again through the ``trials`` view, which costs about a tenth of a second on a store of
a few hundred trials: fine for ``harness show``, minutes for a report on 500 trials. This
reads the same dataclasses for every trial of a run in one session, with one query per kind
over all the run's traces (the read model's own queries, widened from one trace to a list),
so a 500-trial run reads in seconds. The phases and the sandbox's limits, which only the
report's timeline needs, are read here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ._model import (
    _ACTION_SQL,
    _COMMAND_SQL,
    _FILE_CHANGE_SQL,
    _RESOURCE_SQL,
    _TRIAL_ORDER,
    _TURN_SQL,
    Action,
    Command,
    FileChange,
    ModelTurn,
    ResourceSample,
    Trial,
    _actions,
    _blob_texts,
    _phases,
    _rows,
    _trial_rows,
    model_turns_of,
)
from ._schema import a
from ._store import read_blobs
from .vocab import Attr, Span, blob_sha

if TYPE_CHECKING:
    import duckdb

    from ._store import TraceStore

__all__ = ["Phase", "TrialRecord", "trial_records"]


@dataclass(frozen=True)
class Phase:
    """One phase of a trial (``setup``, ``agent``, ``verify``, per stage) or the sandbox's
    start and stop (``sandbox.start``, ``sandbox.stop``): when it ran, and whether its span
    ended in an error."""

    name: str
    stage: str | None
    started_at: datetime
    duration_ms: float
    failed: bool


@dataclass(frozen=True)
class TrialRecord:
    """Everything the read model knows of one trial, as :meth:`TraceStore.commands`,
    ``actions``, ``file_changes``, ``resource_samples`` and ``model_turns`` give it, plus its
    phases in the order they started and the limits its sandbox started with (memory in
    bytes, CPUs; None when not recorded)."""

    trial: Trial
    commands: tuple[Command, ...]
    actions: tuple[Action, ...]
    file_changes: tuple[FileChange, ...]
    resource_samples: tuple[ResourceSample, ...]
    model_turns: tuple[ModelTurn, ...]
    phases: tuple[Phase, ...]
    memory_limit_bytes: int | None = None
    cpu_limit: float | None = None


_IN = "IN (SELECT unnest(?::VARCHAR[]))"


def _over_traces(sql: str, alias: str) -> str:
    """One of the read model's per-trace queries (``{alias}.trace_id = ?``) widened to the
    traces in a list parameter, each row led by its trace id as ``_trace``."""
    one = f"{alias}.trace_id = ?"
    if sql.count(one) != 1 or not sql.lstrip().startswith("SELECT "):
        raise AssertionError(f"the read model's query no longer filters on {one!r} once")
    return sql.replace(one, f"{alias}.trace_id {_IN}").replace(
        "SELECT ", f"SELECT {alias}.trace_id AS _trace, ", 1
    )


_COMMANDS = _over_traces(_COMMAND_SQL, "c")
_FILE_CHANGES = _over_traces(_FILE_CHANGE_SQL, "f")
_RESOURCES = _over_traces(_RESOURCE_SQL, "r")
_TURNS = _over_traces(_TURN_SQL, "l")
assert "s.trace_id = ?" in _ACTION_SQL  # actions are read per trace, with their conversion

_PHASE_NAMES = (*Span.PHASES, Span.SANDBOX_START, Span.SANDBOX_STOP)
_PHASES = f"""
SELECT s.trace_id AS _trace, s.name, s.start_ns, s.duration_ns,
       coalesce(s.status_code = 'ERROR', false) AS failed,
       coalesce({a(Attr.STAGE)}, {a(Attr.STAGE_LEGACY)}) AS stage,
       {a(Attr.LIMITS_MEMORY, "BIGINT")} AS memory_limit,
       {a(Attr.LIMITS_CPUS, "DOUBLE")} AS cpu_limit
FROM spans s
WHERE s.trace_id {_IN} AND s.name IN ({", ".join(f"'{n}'" for n in _PHASE_NAMES)})
ORDER BY s.start_ns, s.span_id
"""


def _grouped(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by their ``_trace``, in the order read (the key taken out of each row)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row.pop("_trace"), []).append(row)
    return out


def trial_records(
    store: TraceStore, run_id: str, trial_ids: Sequence[str] | None = None
) -> list[TrialRecord]:
    """Every trial of a run (or those of ``trial_ids``, exact ids) with all the read model
    holds of it, in the order the trials started, from one consistent snapshot.

    Raises:
        StoreError: no run has that id (through :func:`traces.TraceStore.run`).
    """
    store.run(run_id)
    with store.session() as con:
        trials = [
            Trial(**row) for row in _trial_rows(con, f"WHERE t.run_id = ? {_TRIAL_ORDER}", [run_id])
        ]
        if trial_ids is not None:
            wanted = set(trial_ids)
            trials = [t for t in trials if t.trial_id in wanted]
        ids = [t.trace_id for t in trials]
        commands = _commands(con, ids)
        changes = _grouped(_rows(con, _FILE_CHANGES, [ids, None, None]))
        samples = _grouped(_rows(con, _RESOURCES, [ids]))
        turns = _turns(con, ids)
        phases = _grouped(_rows(con, _PHASES, [ids]))
        actions = {trace_id: _actions(con, trace_id) for trace_id in ids}
    records = []
    for t in trials:
        spans = phases.get(t.trace_id, [])
        start = next((p for p in spans if p["name"] == Span.SANDBOX_START), None)
        records.append(
            TrialRecord(
                trial=t,
                commands=tuple(commands.get(t.trace_id, [])),
                actions=tuple(actions.get(t.trace_id, [])),
                file_changes=tuple(FileChange(**r) for r in changes.get(t.trace_id, [])),
                resource_samples=tuple(ResourceSample(**r) for r in samples.get(t.trace_id, [])),
                model_turns=tuple(turns.get(t.trace_id, [])),
                phases=tuple(
                    Phase(
                        name=p["name"],
                        stage=p["stage"],
                        started_at=datetime.fromtimestamp(p["start_ns"] / 1e9, UTC),
                        duration_ms=(p["duration_ns"] or 0) / 1e6,
                        failed=p["failed"],
                    )
                    for p in spans
                ),
                memory_limit_bytes=start["memory_limit"] if start else None,
                cpu_limit=start["cpu_limit"] if start else None,
            )
        )
    return records


def _commands(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, list[Command]]:
    """Each trace's commands, numbered and placed in their phase as ``commands()`` does."""
    by_trace = _grouped(_rows(con, _COMMANDS, [ids]))
    refs = [
        r["command_ref"]
        for rows in by_trace.values()
        for r in rows
        if r["command"] is None and r["command_ref"]
    ]
    offloaded = _blob_texts(con, refs)
    out: dict[str, list[Command]] = {}
    for trace_id, rows in by_trace.items():
        phases = _phases(con, trace_id)
        cmds = out.setdefault(trace_id, [])
        for index, row in enumerate(rows, start=1):
            ref = row.pop("command_ref")
            if row["command"] is None and ref:
                row["command"] = offloaded.get(blob_sha(ref))
            phase, stage = phases.get(row["span_id"], (None, None))
            cmds.append(Command(index=index, phase=phase, stage=stage, **row))
    return out


def _turns(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, list[ModelTurn]]:
    """Each trace's model turns with their answers' text, as ``model_turns()`` reads them."""

    by_trace = _grouped(_rows(con, _TURNS, [ids]))
    bodies = read_blobs(
        con, [r["response_ref"] for rows in by_trace.values() for r in rows if r["response_ref"]]
    )
    return {trace_id: model_turns_of(rows, bodies) for trace_id, rows in by_trace.items()}
