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
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan

from ._schema import PROMOTED

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_SCALARS = (str, bool, int, float)


class JsonEncoder:
    """Encodes many attribute dicts to JSON strings; keeps a private in-memory DuckDB."""

    def __init__(self) -> None:
        self._db = duckdb.connect(":memory:")

    def encode(self, dicts: Sequence[Mapping[str, Any]]) -> pa.Array | pa.ChunkedArray:
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, d in enumerate(dicts):
            groups.setdefault(tuple(d), []).append(i)
        parts: list[pa.Array | pa.ChunkedArray] = []
        order: list[int] = []
        for keys, idx in groups.items():
            texts = None
            if not keys:
                texts = pa.array(["{}"] * len(idx), type=pa.string())
            elif len(idx) >= 32:
                texts = self._group_json(keys, [dicts[i] for i in idx])
            if texts is None:
                texts = pa.array([_dumps(dict(dicts[i])) for i in idx], type=pa.string())
            parts.append(texts)
            order.extend(idx)
        if not parts:
            return pa.array([], type=pa.string())
        if len(parts) == 1:
            return parts[0]
        # Back to the callers' order: position of row i in the concatenation.
        inverse = np.empty(len(order), dtype=np.int64)
        inverse[np.asarray(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int64)
        chunks = [c for p in parts for c in (p.chunks if isinstance(p, pa.ChunkedArray) else [p])]
        return pa.chunked_array(chunks, type=pa.string()).take(pa.array(inverse))

    def _group_json(
        self, keys: tuple[str, ...], rows: list[Mapping[str, Any]]
    ) -> pa.ChunkedArray | None:
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
        struct = pa.StructArray.from_arrays(arrays, names=list(keys))
        self._db.register("tbl", pa.table({"s": struct}))
        try:
            result = self._db.sql("SELECT to_json(s)::VARCHAR AS j FROM tbl").to_arrow_table()
        finally:
            self._db.unregister("tbl")
        return result.column("j")


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


_PROMOTED_PATHS = ", ".join(f"'$.\"{k}\"'" for k in PROMOTED)
_PROMOTED_EXPRS = ", ".join(
    f"TRY_CAST(__p[{i}] AS {typ}) AS {col}" if typ != "VARCHAR" else f"__p[{i}] AS {col}"
    for i, (col, typ) in enumerate(PROMOTED.values(), start=1)
)


def insert_tables(
    con: duckdb.DuckDBPyConnection,
    spans: pa.Table,
    events: pa.Table,
    links: pa.Table,
    prefix: str = "",
) -> None:
    """Append the tables from :func:`spans_to_tables` to ``{prefix}spans`` etc. The promoted
    columns are derived inside DuckDB, parsing each attributes document once."""
    con.register("__h_spans", spans)
    con.register("__h_events", events)
    con.register("__h_links", links)
    try:
        con.execute(
            f"INSERT INTO {prefix}spans SELECT * EXCLUDE (__p), {_PROMOTED_EXPRS} FROM "
            f"(SELECT *, json_extract_string(attributes, [{_PROMOTED_PATHS}]) AS __p "
            "FROM __h_spans)"
        )
        if events.num_rows:
            con.execute(f"INSERT INTO {prefix}span_events SELECT * FROM __h_events")
        if links.num_rows:
            con.execute(f"INSERT INTO {prefix}span_links SELECT * FROM __h_links")
    finally:
        for name in ("__h_spans", "__h_events", "__h_links"):
            con.unregister(name)


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


def spans_to_tables(
    spans: Sequence[ReadableSpan], encoder: JsonEncoder
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """The rows of ``spans``, ``span_events`` and ``span_links`` for a batch of spans.

    The promoted columns are not in the spans table returned: :func:`insert_tables` derives
    them from the JSON inside DuckDB.
    """
    # One pass over the span objects (a batch is large and scattered in memory; each pass
    # costs cache misses), then columns by transposition.
    try:
        rows = list(map(_PRIVATE_FIELDS, spans))
    except AttributeError:
        rows = list(map(_PUBLIC_FIELDS, spans))
    if not rows:
        names = ctx = kinds = parents = starts = ends = raw_attrs = statuses = ()
        resources = scopes = events_lists = links_lists = ()
    else:
        (
            names,
            ctx,
            kinds,
            parents,
            starts,
            ends,
            raw_attrs,
            statuses,
            resources,
            scopes,
            events_lists,
            links_lists,
        ) = zip(*rows, strict=True)
    attrs = [a._dict if type(a) is BoundedAttributes else (a or {}) for a in raw_attrs]
    # SpanContext is a tuple (trace_id, span_id, is_remote, flags, trace_state, ...).
    ids = [(format(c[0], "032x"), format(c[1], "016x"), c[4]) for c in ctx]
    trace_ids = [i[0] for i in ids]
    span_ids = [i[1] for i in ids]
    # Few distinct kinds, statuses, resources and scopes: convert each once.
    kind_names = {k: k.name for k in set(kinds)}
    status_cache = {id(st): st for st in statuses}
    status_cache = {k: (st.status_code.name, st.description) for k, st in status_cache.items()}
    res_cache: dict[int, tuple[str | None, str]] = {}
    for r in resources:
        if id(r) not in res_cache:
            ra = dict(r.attributes)
            res_cache[id(r)] = (str(ra.get("service.name", "")) or None, _dumps(ra))
    scope_cache = {id(sc): sc for sc in scopes}
    scope_cache = {
        k: (sc.name, sc.version) if sc else (None, None) for k, sc in scope_cache.items()
    }
    cols: dict[str, Any] = {
        "trace_id": trace_ids,
        "span_id": span_ids,
        "parent_span_id": [None if p is None else format(p.span_id, "016x") for p in parents],
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
        "trace_state": [(i[2].to_header() or None) if i[2] else None for i in ids],
        "service_name": [res_cache[id(r)][0] for r in resources],
        "scope_name": [scope_cache[id(sc)][0] for sc in scopes],
        "scope_version": [scope_cache[id(sc)][1] for sc in scopes],
        "resource_attributes": [res_cache[id(r)][1] for r in resources],
        "attributes": encoder.encode(attrs),
    }
    spans_tbl = pa.table(cols)

    # Events and links: flatten once; span index and sequence number come from the counts.
    ev_idx, ev_seq, ev = _flatten(events_lists)
    try:
        ev_fields = list(map(_EVENT_FIELDS, ev))
    except AttributeError:
        ev_fields = [(e.name, e.timestamp, e.attributes) for e in ev]
    ev_attrs = [a._dict if type(a) is BoundedAttributes else (a or {}) for _, _, a in ev_fields]
    trace_arr = pa.array(trace_ids, type=pa.string())
    span_arr = pa.array(span_ids, type=pa.string())
    events_tbl = pa.table(
        {
            "trace_id": trace_arr.take(ev_idx),
            "span_id": span_arr.take(ev_idx),
            "seq": ev_seq,
            "name": pa.array([f[0] for f in ev_fields], type=pa.string()),
            "time_ns": pa.array([f[1] for f in ev_fields], type=pa.int64()),
            "attributes": encoder.encode(ev_attrs),
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
    return spans_tbl, events_tbl, links_tbl
