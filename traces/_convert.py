"""Finished OpenTelemetry spans -> Arrow tables, column at a time.

Ingest must outrun span creation by a wide margin, and in CPython the cost is per Python
operation. So nothing here loops over a span more than a few times: fixed fields are read with
one list comprehension per column, and attribute dicts become JSON in bulk: spans with the same
attribute keys are pivoted into typed Arrow columns and DuckDB's ``to_json`` writes the text.
Where values do not fit one Arrow type, that group falls back to ``json.dumps``; either way
JSON keeps the value types (bool, int, float, str and arrays of them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any, NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import ReadableSpan

from ._schema import PROMOTED

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_SCALARS = (str, bool, int, float)
# Rows that share their keys become one typed struct group from this many rows on; fewer go
# to the batch's one JSON-text group. Each group costs an INSERT (a few ms, whatever its
# size), and dumping a row to JSON in Python costs microseconds: typed groups pay off only
# for the large batches of bulk ingest, not for the small ones of live recording.
STRUCT_MIN_ROWS = 1024


class AttrGroup(NamedTuple):
    """Attribute values of some rows of a batch.

    ``rows`` are the rows' positions in the batch (``None``: all rows, in order). ``values``
    is a struct array with one typed field per attribute key (rows that share their keys and
    value types), or JSON text where values do not fit one Arrow type.
    """

    rows: pa.Array | None
    values: pa.Array


class JsonEncoder:
    """Turns many attribute dicts into typed Arrow groups or JSON; owns a private DuckDB."""

    def __init__(self) -> None:
        self._conn: duckdb.DuckDBPyConnection | None = None

    @property
    def _db(self) -> duckdb.DuckDBPyConnection:
        # Opened on first use, on the exporter's thread: a recorder starts without it.
        if self._conn is None:
            self._conn = duckdb.connect(":memory:")
        return self._conn

    def groups(self, dicts: Sequence[Mapping[str, Any]]) -> list[AttrGroup]:
        by_keys: dict[tuple[str, ...], list[int]] = {}
        for i, d in enumerate(dicts):
            by_keys.setdefault(tuple(d), []).append(i)
        out: list[AttrGroup] = []
        # Rows whose values become JSON text here all go in one group: each group costs an
        # INSERT, and a batch has many small groups (file changes of a dozen key sets).
        text_rows: list[int] = []
        text: list[str] = []
        for keys, idx in by_keys.items():
            values: pa.Array | None = None
            if keys and len(idx) >= STRUCT_MIN_ROWS:
                values = _struct(keys, [dicts[i] for i in idx])
            if values is None:
                text_rows += idx
                text += [_dumps(dict(dicts[i])) if keys else "{}" for i in idx]
                continue
            out.append(AttrGroup(pa.array(idx, type=pa.int64()), values))
        if text_rows:
            out.append(AttrGroup(pa.array(text_rows, type=pa.int64()), pa.array(text, pa.string())))
        if len(by_keys) == 1:
            out[0] = AttrGroup(None, out[0].values)  # one key set: every row, in order
        return out

    def to_json(self, values: pa.Array) -> pa.Array | pa.ChunkedArray:
        """JSON text for a group's values."""
        if not pa.types.is_struct(values.type):
            return values
        self._db.register("__h_attrs", pa.table({"s": values}))
        try:
            rel = self._db.sql("SELECT to_json(s)::VARCHAR AS j FROM __h_attrs")
            return rel.to_arrow_table().column("j")
        finally:
            self._db.unregister("__h_attrs")

    def encode(self, dicts: Sequence[Mapping[str, Any]]) -> pa.Array | pa.ChunkedArray:
        """JSON text for each dict, in the callers' order."""
        groups = self.groups(dicts)
        if not groups:
            return pa.array([], type=pa.string())
        if groups[0].rows is None:
            return self.to_json(groups[0].values)
        chunks: list[pa.Array] = []
        for g in groups:
            text = self.to_json(g.values)
            chunks.extend(text.chunks if isinstance(text, pa.ChunkedArray) else [text])
        # Back to the callers' order: position of row i in the concatenation.
        order = np.concatenate([g.rows.to_numpy() for g in groups if g.rows is not None])
        inverse = np.empty(len(order), dtype=np.int64)
        inverse[order] = np.arange(len(order), dtype=np.int64)
        return pa.chunked_array(chunks, type=pa.string()).take(pa.array(inverse))


def _struct(keys: tuple[str, ...], rows: list[Mapping[str, Any]]) -> pa.StructArray | None:
    """Rows sharing ``keys`` as one struct array with a typed field per key; None if some
    key's values do not share one scalar type (or one element type, for arrays)."""
    arrays = []
    # Rows of one group share their key order, so transposing the values gives columns.
    columns = list(zip(*[r.values() for r in rows]))  # noqa: B905 - same keys by grouping
    for vals in columns:
        types = set(map(type, vals))
        if len(types) != 1:
            return None
        t = types.pop()
        if t is tuple or t is list:
            et = set(map(type, (x for v in vals for x in v)))
            if len(et) > 1 or (et and next(iter(et)) not in _SCALARS):
                return None
        elif t not in _SCALARS:
            return None
        try:
            arrays.append(pa.array(vals))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return None
    return pa.StructArray.from_arrays(arrays, names=list(keys))


def attrs_of(obj: Any) -> Mapping[str, Any]:
    """The attributes of a span, event or link as a plain mapping, without copying.

    The SDK's public ``.attributes`` wraps a locked BoundedAttributes in a proxy, which costs
    microseconds per span; the finished span's underlying dict is read directly when present.
    """
    raw = getattr(obj, "_attributes", None)
    d = getattr(raw, "_dict", None)
    if isinstance(d, dict):
        return d
    return obj.attributes or {}


def _events_of(span: ReadableSpan) -> Sequence[Any]:
    ev = getattr(span, "_events", None)
    return ev if ev is not None else span.events


_FIELDS = (
    "name",
    "context",
    "kind",
    "parent",
    "start_time",
    "end_time",
    "attributes",
    "status",
    "resource",
    "instrumentation_scope",
    "events",
    "links",
)
# The SDK's properties copy or wrap on every access; its finished spans keep plain fields.
_PRIVATE_FIELDS = attrgetter(*("_" + f for f in _FIELDS))
_PUBLIC_FIELDS = attrgetter(*_FIELDS)
_EVENT_FIELDS = attrgetter("_name", "_timestamp", "_attributes")


_JSON_PROMOTED = ", ".join(f"'$.\"{k}\"'" for k in PROMOTED)
_ARROW_TYPES = {"VARCHAR": pa.types.is_string, "BIGINT": pa.types.is_integer}


class Batch(NamedTuple):
    """Rows for the store's tables. ``spans`` and ``events`` lack their attributes (and spans
    their promoted columns): those come from ``attrs``/``event_attrs`` at insert time."""

    spans: pa.Table
    attrs: list[AttrGroup]
    events: pa.Table
    event_attrs: list[AttrGroup]
    links: pa.Table


def _promoted_sql(values: pa.Array) -> str:
    """Select-list for the promoted columns of a group whose attributes are column ``__a``."""
    exprs = []
    if pa.types.is_struct(values.type):
        t = values.type
        for key, (col, typ) in PROMOTED.items():
            i = t.get_field_index(key)
            ok = i >= 0 and _ARROW_TYPES[typ](t.field(i).type)
            exprs.append(f'__a."{key}" AS {col}' if ok else f"NULL::{typ} AS {col}")
        return ", ".join(exprs)
    for i, (col, typ) in enumerate(PROMOTED.values(), start=1):
        v = f"json_extract_string(__a, [{_JSON_PROMOTED}])[{i}]"
        exprs.append(f"TRY_CAST({v} AS {typ}) AS {col}" if typ != "VARCHAR" else f"{v} AS {col}")
    return ", ".join(exprs)


def _insert_groups(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rows: pa.Table,
    groups: list[AttrGroup],
    promoted: bool,
) -> None:
    """One INSERT per attribute group: typed groups become JSON text (and promoted columns)
    inside DuckDB, with no text round trip through Python."""
    base = ", ".join(rows.column_names)
    for g in groups:
        part = rows if g.rows is None else rows.take(g.rows)
        con.register("__h_rows", part.append_column("__a", g.values))
        try:
            attr = "to_json(__a)" if pa.types.is_struct(g.values.type) else "__a::JSON"
            extra = f", {_promoted_sql(g.values)}" if promoted else ""
            con.execute(
                f"INSERT INTO {table} SELECT {base}, {attr} AS attributes{extra} FROM __h_rows"
            )
        finally:
            con.unregister("__h_rows")


def insert_tables(con: duckdb.DuckDBPyConnection, batch: Batch, prefix: str = "") -> None:
    """Append a batch to ``{prefix}spans``, ``{prefix}span_events``, ``{prefix}span_links``."""
    _insert_groups(con, f"{prefix}spans", batch.spans, batch.attrs, promoted=True)
    if batch.events.num_rows:
        _insert_groups(con, f"{prefix}span_events", batch.events, batch.event_attrs, False)
    if batch.links.num_rows:
        con.register("__h_links", batch.links)
        try:
            con.execute(f"INSERT INTO {prefix}span_links SELECT * FROM __h_links")
        finally:
            con.unregister("__h_links")


def _hex_array(ids: Sequence[int | None], nbytes: int) -> pa.Array:
    """Fixed-width lowercase hex strings for ids (None stays null), built as one buffer."""
    n = len(ids)
    valid = [i is not None for i in ids]
    data = b"".join((i or 0).to_bytes(nbytes, "big") for i in ids).hex().encode()
    offsets = np.arange(0, (n + 1) * 2 * nbytes, 2 * nbytes, dtype=np.int32)
    bitmap = None
    if not all(valid):
        bitmap = pa.py_buffer(np.packbits(np.array(valid, dtype=bool), bitorder="little"))
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(data), bitmap, null_count=n - sum(valid)
    )


def _flatten(lists: Sequence[Sequence[Any] | None]) -> tuple[pa.Array, pa.Array, list[Any]]:
    """Flatten per-span lists: (span index, position within its span, item) as columns."""
    # The SDK keeps events and links in a locked BoundedList; read its deque directly.
    seqs = [getattr(x, "_dq", x) or () for x in lists]
    counts = np.array(list(map(len, seqs)), dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return pa.array([], pa.int64()), pa.array([], pa.int32()), []
    items = list(chain.from_iterable(seqs))
    idx = np.repeat(np.arange(len(lists), dtype=np.int64), counts)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    seq = (np.arange(total, dtype=np.int64) - offsets).astype(np.int32)
    return pa.array(idx), pa.array(seq), items


def _links_of(span: ReadableSpan) -> Sequence[Any]:
    lk = getattr(span, "_links", None)
    return lk if lk is not None else span.links


def _hex(n: int | None, width: int) -> str | None:
    return None if n is None else format(n, f"0{width}x")


def spans_to_batch(spans: Sequence[ReadableSpan], encoder: JsonEncoder) -> Batch:
    """The rows of ``spans``, ``span_events`` and ``span_links`` for a batch of spans."""
    # One pass over the span objects (a batch is large and scattered in memory; each pass
    # costs cache misses), then columns by transposition.
    try:
        rows = list(map(_PRIVATE_FIELDS, spans))
    except AttributeError:
        rows = list(map(_PUBLIC_FIELDS, spans))
    fields: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * len(_FIELDS)
    (names, ctx, kinds, parents, starts, ends, raw_attrs, statuses, resources, scopes,
     events_lists, links_lists) = fields  # fmt: skip
    attrs = [a._dict if type(a) is BoundedAttributes else (a or {}) for a in raw_attrs]
    # SpanContext is a tuple (trace_id, span_id, is_remote, flags, trace_state, ...).
    trace_arr = _hex_array([c[0] for c in ctx], 16)
    span_arr = _hex_array([c[1] for c in ctx], 8)
    parent_arr = _hex_array([None if p is None else p.span_id for p in parents], 8)
    trace_states = [c[4] for c in ctx]
    # Few distinct kinds, statuses, resources and scopes: convert each once.
    kind_names = {k: k.name for k in set(kinds)}
    status_cache = {id(st): st for st in statuses}
    status_cache = {k: (st.status_code.name, st.description) for k, st in status_cache.items()}
    res_cache: dict[int, tuple[str | None, str]] = {}
    for r in resources:
        if id(r) not in res_cache:
            ra = dict(r.attributes)
            res_cache[id(r)] = (str(ra.get(SERVICE_NAME, "")) or None, _dumps(ra))
    scope_cache = {id(sc): sc for sc in scopes}
    scope_cache = {
        k: (sc.name, sc.version) if sc else (None, None) for k, sc in scope_cache.items()
    }
    cols: dict[str, Any] = {
        "trace_id": trace_arr,
        "span_id": span_arr,
        "parent_span_id": parent_arr,
        "name": names,
        "kind": [kind_names[k] for k in kinds],
        "start_ns": starts,
        "end_ns": ends,
        "duration_ns": [
            (e - b) if (e is not None and b is not None) else None
            for b, e in zip(starts, ends, strict=True)
        ],
        "status_code": [status_cache[id(st)][0] for st in statuses],
        "status_message": [status_cache[id(st)][1] for st in statuses],
        "trace_state": [(ts.to_header() or None) if ts else None for ts in trace_states],
        "service_name": [res_cache[id(r)][0] for r in resources],
        "scope_name": [scope_cache[id(sc)][0] for sc in scopes],
        "scope_version": [scope_cache[id(sc)][1] for sc in scopes],
        "resource_attributes": [res_cache[id(r)][1] for r in resources],
    }
    spans_tbl = pa.table(cols)

    # Events and links: flatten once; span index and sequence number come from the counts.
    ev_idx, ev_seq, ev = _flatten(events_lists)
    try:
        ev_fields = list(map(_EVENT_FIELDS, ev))
    except AttributeError:
        ev_fields = [(e.name, e.timestamp, e.attributes) for e in ev]
    ev_attrs = [a._dict if type(a) is BoundedAttributes else (a or {}) for _, _, a in ev_fields]
    events_tbl = pa.table(
        {
            "trace_id": trace_arr.take(ev_idx),
            "span_id": span_arr.take(ev_idx),
            "seq": ev_seq,
            "name": pa.array([f[0] for f in ev_fields], type=pa.string()),
            "time_ns": pa.array([f[1] for f in ev_fields], type=pa.int64()),
        }
    )
    lk_idx, lk_seq, lk = _flatten(links_lists)
    lctx = [link.context for link in lk]
    links_tbl = pa.table(
        {
            "trace_id": trace_arr.take(lk_idx),
            "span_id": span_arr.take(lk_idx),
            "seq": lk_seq,
            "linked_trace_id": pa.array([format(c.trace_id, "032x") for c in lctx], pa.string()),
            "linked_span_id": pa.array([format(c.span_id, "016x") for c in lctx], pa.string()),
            "trace_state": pa.array(
                [(c.trace_state.to_header() or None) if c.trace_state else None for c in lctx],
                type=pa.string(),
            ),
            "attributes": encoder.encode([attrs_of(link) for link in lk]),
        }
    )
    return Batch(spans_tbl, encoder.groups(attrs), events_tbl, encoder.groups(ev_attrs), links_tbl)
