"""A run's trials as rows: what ``harness results`` writes and ``compare``/``gate`` read.

One row per counted trial (interrupted and superseded trials are left out, as in every
summary), with the few columns a comparison needs and nothing that changes from machine to
machine (no trial ids, no paths): small and stable, so a team can commit one as its baseline
and diff it in review. The same columns in Parquet, CSV and JSON; a file read back is checked
column by column, and a bad one is reported with the file, the column or row, and the fix.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import traces

from ._cost import Price, cost_usd, load_prices
from ._summary import effective_trials

FORMATS = (".parquet", ".csv", ".json")


class ResultsError(ValueError):
    """Results that cannot be had: a file that is missing or malformed, a run id that names
    no run. The message says what, where, and how to fix it."""


@dataclass(frozen=True)
class ResultRow:
    """One trial: what it was (task, index, agent, model, the task's content hash) and what
    it gave (outcome, pass, reward, steps, tokens, cost, time)."""

    task: str
    passed: bool
    trial_index: int | None = None
    agent: str | None = None
    model: str | None = None
    outcome: str | None = None
    reward: float | None = None
    steps: int | None = None
    input_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    duration_s: float | None = None
    content_hash: str | None = None
    run_id: str | None = None


# Column order in files, and each column's type: (kind, required).
_KINDS: dict[str, str] = {
    "run_id": "str",
    "task": "str",
    "trial_index": "int",
    "agent": "str",
    "model": "str",
    "outcome": "str",
    "passed": "bool",
    "reward": "float",
    "steps": "int",
    "input_tokens": "int",
    "cached_tokens": "int",
    "output_tokens": "int",
    "reasoning_tokens": "int",
    "cost_usd": "float",
    "duration_s": "float",
    "content_hash": "str",
}
COLUMNS: tuple[str, ...] = tuple(_KINDS)
assert set(COLUMNS) == {f.name for f in fields(ResultRow)}


@dataclass(frozen=True)
class Results:
    """The rows of one side of a comparison, and where they came from.

    ``source`` says it for people (``run RUN_ID in STORE`` or the file's path); ``label`` is
    the short name tables use (the run id, or the file's name).
    """

    rows: tuple[ResultRow, ...]
    source: str
    label: str

    @property
    def run_ids(self) -> tuple[str, ...]:
        """The distinct run ids of the rows (a file may lack them)."""
        return tuple(sorted({r.run_id for r in self.rows if r.run_id}))

    def to_dicts(self) -> list[dict[str, Any]]:
        """The rows as {column: value}, in file column order."""
        return [{name: getattr(r, name) for name in COLUMNS} for r in self.rows]


def run_results(
    store: traces.TraceStore, run_id: str, prices: dict[str, Price] | None = None
) -> Results:
    """The counted trials of a run, one row each, ordered by task and trial index, priced
    at ``prices`` (default: :func:`reports.load_prices`).

    Raises:
        traces.StoreError: the store has no run with exactly that id.
    """
    store.run(run_id)  # a missing run is an error, not an empty result
    table = load_prices() if prices is None else prices
    rows = tuple(
        ResultRow(
            run_id=t.run_id,
            task=t.task or "",
            trial_index=t.trial_index,
            agent=t.agent,
            model=t.model,
            outcome=t.outcome,
            passed=bool(t.passed),
            reward=t.reward,
            steps=t.steps,
            input_tokens=t.input_tokens,
            cached_tokens=t.cached_tokens,
            output_tokens=t.output_tokens,
            reasoning_tokens=t.reasoning_tokens,
            cost_usd=cost_usd(t.model, t.input_tokens, t.output_tokens, t.cached_tokens, table),
            duration_s=round(t.duration_s, 3),
            content_hash=t.content_hash,
        )
        for t in effective_trials(store.trials(run_id))
    )
    return Results(rows, f"run {run_id} in {store.path}", run_id)


def find_run(store: traces.TraceStore, ident: str) -> str:
    """The run id ``ident`` names: exactly, or as the unique prefix of one.

    Raises:
        traces.StoreError: no run matches, or several do (the message lists them).
    """
    ids = [r.run_id for r in store.runs()]
    if ident in ids:
        return ident
    matches = [i for i in ids if ident and i.startswith(ident)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise traces.StoreError(
            f"{ident!r} is ambiguous in {store.path}: it starts the run ids "
            f"{', '.join(matches[:10])}{', ...' if len(matches) > 10 else ''}; give more of it"
        )
    raise traces.StoreError(f"no run {ident!r} in {store.path} (`harness runs` lists them)")


def load_results(
    spec: str,
    store: traces.TraceStore | None = None,
    prices: dict[str, Price] | None = None,
) -> Results:
    """One side of a comparison: a results file (``.parquet``, ``.csv``, ``.json``) or a run
    id (or a unique prefix of one) in ``store`` (default: :func:`traces.open`).

    Costs are priced again at ``prices`` (default: :func:`reports.load_prices`) wherever
    a price is known, so both sides of a comparison are priced alike; a row whose model has
    no price keeps the cost its file recorded.

    Raises:
        ResultsError: the file is missing, unreadable or malformed, or no run has that id.
    """
    table = load_prices() if prices is None else prices
    path = Path(spec)
    if path.is_dir():
        raise ResultsError(
            f"{spec} is a folder; give a results file ({', '.join(FORMATS)}, written by "
            "`harness results RUN_ID -o FILE`) or a run id"
        )
    if path.is_file():
        return _repriced(read_results(path), table)
    if path.suffix.lower() in FORMATS or os.sep in spec:
        raise ResultsError(
            f"no results file {spec} (write one with `harness results RUN_ID -o {spec}`)"
        )
    db = store if store is not None else traces.open()
    try:
        run_id = find_run(db, spec)
        return run_results(db, run_id, table)
    except traces.StoreError as exc:
        raise ResultsError(
            f"{spec!r} is neither a results file nor a run in the store: {exc}"
        ) from None


def _repriced(results: Results, prices: dict[str, Price]) -> Results:
    rows = []
    for r in results.rows:
        cost = cost_usd(r.model, r.input_tokens, r.output_tokens, r.cached_tokens, prices)
        rows.append(replace(r, cost_usd=r.cost_usd if cost is None else cost))
    return replace(results, rows=tuple(rows))


# -- files -----------------------------------------------------------------------------------


def _arrow_schema() -> Any:
    import pyarrow as pa

    types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    return pa.schema([(name, types[kind]) for name, kind in _KINDS.items()])


def write_results(results: Results, path: str | os.PathLike[str]) -> Path:
    """Write the rows to ``path``, in the format its suffix names (``.parquet``, ``.csv``,
    ``.json``: a list of row objects, one per line, so a committed baseline diffs well).

    Raises:
        ResultsError: an unknown suffix, or the file cannot be written.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ResultsError(
            f"{out}: unknown results format {suffix or '(no suffix)'!r}; name the file "
            f"*.parquet, *.csv or *.json"
        )
    rows = results.to_dicts()
    try:
        if suffix == ".json":
            lines = [json.dumps(r, ensure_ascii=False, allow_nan=False) for r in rows]
            out.write_text("[\n" + ",\n".join(lines) + ("\n" if lines else "") + "]\n")
        else:
            table = pa.Table.from_pylist(rows, schema=_arrow_schema())
            if suffix == ".parquet":
                pq.write_table(table, out)
            else:
                pacsv.write_csv(table, out)
    except OSError as exc:
        raise ResultsError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def read_results(path: str | os.PathLike[str]) -> Results:
    """The rows of a results file. Columns beyond the known ones are ignored; of the known
    ones only ``task`` and ``passed`` (or ``outcome``) are required.

    Raises:
        ResultsError: the file cannot be read, or a column or row is not what it must be.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in FORMATS:
        raise ResultsError(
            f"{p}: unknown results format {suffix or '(no suffix)'!r}; a results file is "
            "*.parquet, *.csv or *.json (`harness results RUN_ID -o FILE` writes one)"
        )
    try:
        records = _read_records(p, suffix)
    except OSError as exc:
        raise ResultsError(f"cannot read {p}: {exc.strerror or exc}") from None
    rows = tuple(_row(rec, f"{p}: row {i}") for i, rec in enumerate(records, start=1))
    return Results(rows, str(p), p.name)


def _read_records(p: Path, suffix: str) -> list[dict[str, Any]]:
    import pyarrow as pa

    if suffix == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ResultsError(f"{p}: not valid JSON ({exc})") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ResultsError(
                f"{p}: expected a JSON list of row objects "
                '([{"task": ..., "passed": ...}, ...], as `harness results -o FILE.json` writes)'
            )
        return data
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(p)
        else:
            import pyarrow.csv as pacsv

            schema = _arrow_schema()
            table = pacsv.read_csv(
                p,
                convert_options=pacsv.ConvertOptions(
                    column_types={f.name: f.type for f in schema},
                    strings_can_be_null=True,
                ),
            )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        kind = "Parquet" if suffix == ".parquet" else "CSV"
        raise ResultsError(f"{p}: not a readable {kind} results file ({exc})") from None
    return [dict(r) for r in table.to_pylist()]


def _row(rec: dict[str, Any], where: str) -> ResultRow:
    values: dict[str, Any] = {}
    for name, kind in _KINDS.items():
        values[name] = _value(rec.get(name), kind, f"{where}, column {name}")
    if not values["task"]:
        raise ResultsError(f"{where}: no task (every row needs a `task` column with its id)")
    if values["passed"] is None:
        if values["outcome"] is None:
            raise ResultsError(
                f"{where}: neither `passed` (true/false) nor `outcome` says whether the "
                f"trial of {values['task']!r} passed; add a `passed` column"
            )
        values["passed"] = values["outcome"] == "passed"
    return ResultRow(**values)


def _value(v: Any, kind: str, where: str) -> Any:
    """``v`` as the column's kind, or None; a value of another kind is an error."""
    if v is None or (isinstance(v, float) and math.isnan(v) and kind != "float"):
        return None
    if kind == "str":
        if isinstance(v, str):
            return v
    elif kind == "bool":
        if isinstance(v, bool):
            return v
    elif kind == "int":
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
    elif isinstance(v, int | float) and not isinstance(v, bool):
        if math.isnan(v):
            return None
        return float(v)
    expected = {"str": "text", "bool": "true or false", "int": "a whole number"}.get(
        kind, "a number"
    )
    raise ResultsError(f"{where}: {v!r} is not {expected}")


def results_from_rows(rows: Iterable[ResultRow], label: str = "rows") -> Results:
    """Results made in code (tests, notebooks), ordered like a run's."""
    ordered = sorted(rows, key=lambda r: (r.task, r.trial_index or 0))
    return Results(tuple(ordered), label, label)
