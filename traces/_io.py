"""Moving records between machines: export a run, import it elsewhere.

Two formats. Our own Parquet export (a folder: one file per table plus a manifest) carries
everything, blobs included, so a run can be queried and replayed on another machine. OTLP JSON
(JSON lines of ExportTraceServiceRequest, as the OpenTelemetry collector's file exporter writes
them) is for interoperability: spans only, with blobs referenced by hash.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from opentelemetry.sdk.resources import SERVICE_NAME

from ._convert import Batch, JsonEncoder, insert_tables
from ._schema import EVENT_COLUMNS, LINK_COLUMNS, SCHEMA_VERSION, SPAN_COLUMNS
from ._store import StoreError, TraceStore
from .vocab import BLOB_PREFIX

MANIFEST = "manifest.json"
FORMAT_NAME = "harness-trace-export"
_KINDS = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
_STATUS = ["UNSET", "OK", "ERROR"]
# Every blob ref in a JSON column: the hex digests after BLOB_PREFIX.
_REFS = (
    "regexp_extract_all(CAST({} AS VARCHAR), '" + re.escape(BLOB_PREFIX) + "([0-9a-f]{{64}})', 1)"
)


class ImportError_(StoreError):  # noqa: N801 - "ImportError" is a builtin
    """A file to import is malformed; the message names the file and the position."""


@dataclass(frozen=True)
class ImportResult:
    spans: int
    events: int
    links: int
    blobs: int
    skipped_spans: int  # already in the store


def _run_filter(run_id: str) -> str:
    # A literal, not a parameter: COPY statements take no parameters.
    lit = "'" + run_id.replace("'", "''") + "'"
    return f"trace_id IN (SELECT DISTINCT trace_id FROM spans WHERE run_id = {lit})"


def export_run(
    store: TraceStore, run_id: str, fmt: str, out: str | os.PathLike[str]
) -> dict[str, int]:
    """Write the run's spans (and, for parquet, its blobs) to ``out``; returns row counts."""
    out = Path(out)
    with store.connect() as con:
        n = con.execute(
            "SELECT count(DISTINCT trace_id) FROM spans WHERE run_id = ?", [run_id]
        ).fetchall()[0][0]
        if not n:
            runs = [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT run_id FROM spans WHERE run_id IS NOT NULL ORDER BY 1 LIMIT 20"
                ).fetchall()
            ]
            raise StoreError(
                f"no run {run_id!r} in {store.path}; runs there: {', '.join(runs) or 'none'}"
            )
        where = _run_filter(run_id)
        if fmt == "parquet":
            return _export_parquet(con, where, run_id, out)
        if fmt == "otlp-json":
            return _export_otlp(con, where, run_id, out)
    raise StoreError(f"unknown export format {fmt!r}: use parquet or otlp-json")


def _export_parquet(con: Any, where: str, run_id: str, out: Path) -> dict[str, int]:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StoreError(f"{out} exists and is not an empty folder; choose a new path")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    refs = (
        f"SELECT DISTINCT unnest({_REFS.format('attributes')}) AS sha FROM spans WHERE {where} "
        f"UNION SELECT DISTINCT unnest({_REFS.format('attributes')}) FROM span_events "
        f"WHERE {where}"
    )
    queries = {
        "spans": f"SELECT * FROM spans WHERE {where}",
        "span_events": f"SELECT * FROM span_events WHERE {where}",
        "span_links": f"SELECT * FROM span_links WHERE {where}",
        "blobs": f"SELECT * FROM blobs WHERE sha256 IN ({refs})",
    }
    counts: dict[str, int] = {}
    for table, query in queries.items():
        path = tmp / f"{table}.parquet"
        con.execute(f"COPY ({query}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
        counts[table] = con.execute(f"SELECT count(*) FROM ({query})").fetchall()[0][0]
    manifest = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "counts": counts,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return counts


def _any_value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_any_value(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": _kv(v)}}
    return {"stringValue": "" if v is None else str(v)}


def _kv(attrs: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any_value(v)} for k, v in (attrs or {}).items()]


def _export_otlp(con: Any, where: str, run_id: str, out: Path) -> dict[str, int]:
    cur = con.execute(f"SELECT * FROM spans WHERE {where} ORDER BY trace_id, start_ns")
    cols = [d[0] for d in cur.description]
    spans = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    events: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in con.execute(f"SELECT * FROM span_events WHERE {where} ORDER BY seq").fetchall():
        events.setdefault((r[0], r[1]), []).append(
            {"timeUnixNano": str(r[4]), "name": r[3], "attributes": _kv(json.loads(r[5]))}
        )
    links: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in con.execute(f"SELECT * FROM span_links WHERE {where} ORDER BY seq").fetchall():
        link = {"traceId": r[3], "spanId": r[4], "attributes": _kv(json.loads(r[6]))}
        if r[5]:
            link["traceState"] = r[5]
        links.setdefault((r[0], r[1]), []).append(link)
    tmp = out.with_name(out.name + ".partial")
    lines = 0
    with open(tmp, "w") as f:
        traces: dict[str, list[dict[str, Any]]] = {}
        for row in spans:
            traces.setdefault(row["trace_id"], []).append(row)
        for group in traces.values():
            by_resource: dict[tuple[str, str | None, str | None], list[dict[str, Any]]] = {}
            for row in group:
                span: dict[str, Any] = {
                    "traceId": row["trace_id"],
                    "spanId": row["span_id"],
                    "name": row["name"],
                    "kind": _KINDS.index(row["kind"]) if row["kind"] in _KINDS else 0,
                    "startTimeUnixNano": str(int(row["start_ns"])),
                    "endTimeUnixNano": str(int(row["end_ns"])),
                    "attributes": _kv(json.loads(row["attributes"])),
                    "events": events.get((row["trace_id"], row["span_id"]), []),
                    "links": links.get((row["trace_id"], row["span_id"]), []),
                    "status": {
                        "code": _STATUS.index(row["status_code"])
                        if row["status_code"] in _STATUS
                        else 0
                    },
                }
                if row["parent_span_id"]:
                    span["parentSpanId"] = row["parent_span_id"]
                if row["status_message"]:
                    span["status"]["message"] = row["status_message"]
                if row["trace_state"]:
                    span["traceState"] = row["trace_state"]
                key = (row["resource_attributes"], row["scope_name"], row["scope_version"])
                by_resource.setdefault(key, []).append(span)
            resource_spans = [
                {
                    "resource": {"attributes": _kv(json.loads(res or "{}"))},
                    "scopeSpans": [
                        {
                            "scope": {
                                k: v for k, v in (("name", sn), ("version", sv)) if v is not None
                            },
                            "spans": sp,
                        }
                    ],
                }
                for (res, sn, sv), sp in by_resource.items()
            ]
            f.write(json.dumps({"resourceSpans": resource_spans}, separators=(",", ":")) + "\n")
            lines += 1
    tmp.rename(out)
    return {"spans": len(spans), "lines": lines}


# -- import ----------------------------------------------------------------------------------


def import_path(store: TraceStore, path: str | os.PathLike[str]) -> ImportResult:
    """Import a Parquet export folder or an OTLP JSON(-lines) file. All or nothing."""
    p = Path(path)
    if not p.exists():
        raise ImportError_(f"{p}: no such file or folder")
    if p.is_dir():
        return _import_parquet(store, p)
    return _import_otlp(store, p)


def _import_parquet(store: TraceStore, folder: Path) -> ImportResult:
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ImportError_(f"{manifest_path}: not a harness export ({exc})") from None
    if manifest.get("format") != FORMAT_NAME:
        raise ImportError_(
            f"{manifest_path}: format is {manifest.get('format')!r}, expected {FORMAT_NAME!r}"
        )
    if int(manifest.get("schema_version", 0)) > SCHEMA_VERSION:
        raise ImportError_(
            f"{folder} was exported by a newer harness (schema "
            f"{manifest['schema_version']}); upgrade harness to import it"
        )
    files = {t: folder / f"{t}.parquet" for t in ("spans", "span_events", "span_links", "blobs")}
    for f in files.values():
        if not f.exists():
            raise ImportError_(f"{folder}: missing {f.name}")
    with store.transaction() as con:
        for t, f in files.items():
            con.execute(f"CREATE TEMP TABLE imp_{t} AS SELECT * FROM read_parquet('{f}')")
        return _merge(con)


def _merge(con: Any) -> ImportResult:
    """Move rows from the imp_* temp tables into the store, skipping what it already has."""
    new_spans = (
        "SELECT i.* FROM imp_spans i ANTI JOIN spans s "
        "ON s.trace_id = i.trace_id AND s.span_id = i.span_id"
    )
    total = con.execute("SELECT count(*) FROM imp_spans").fetchall()[0][0]
    con.execute(f"CREATE TEMP TABLE imp_new AS {new_spans}")
    n_spans = con.execute("SELECT count(*) FROM imp_new").fetchall()[0][0]
    con.execute("INSERT INTO spans SELECT * FROM imp_new")
    keys = "SEMI JOIN imp_new n ON n.trace_id = i.trace_id AND n.span_id = i.span_id"
    n_events = con.execute(
        f"INSERT INTO span_events SELECT i.* FROM imp_span_events i {keys}"
    ).fetchall()[0][0]
    n_links = con.execute(
        f"INSERT INTO span_links SELECT i.* FROM imp_span_links i {keys}"
    ).fetchall()[0][0]
    n_blobs = con.execute(
        "INSERT INTO blobs SELECT * FROM (SELECT DISTINCT ON (sha256) * FROM imp_blobs) i "
        "ANTI JOIN blobs b ON b.sha256 = i.sha256"
    ).fetchall()[0][0]
    for t in ("imp_spans", "imp_span_events", "imp_span_links", "imp_blobs", "imp_new"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return ImportResult(n_spans, n_events, n_links, n_blobs, total - n_spans)


class _Cursor:
    """Where we are in an OTLP JSON file, for error messages."""

    def __init__(self, path: Path, line: int) -> None:
        self.path, self.line = path, line

    def fail(self, where: str, what: str) -> ImportError_:
        return ImportError_(f"{self.path}:{self.line}: {where}: {what}")


def _from_any(v: Any, cur: _Cursor, where: str) -> Any:
    if not isinstance(v, dict) or len(v) != 1:
        raise cur.fail(where, "expected an AnyValue object with exactly one key")
    ((kind, val),) = v.items()
    if kind == "stringValue":
        return str(val)
    if kind == "boolValue":
        return bool(val)
    if kind == "intValue":
        try:
            return int(val)
        except (TypeError, ValueError):
            raise cur.fail(where, f"intValue {val!r} is not an integer") from None
    if kind == "doubleValue":
        return float(val)
    if kind == "arrayValue":
        return [
            _from_any(x, cur, f"{where}[{i}]") for i, x in enumerate((val or {}).get("values", []))
        ]
    if kind == "kvlistValue":
        return _attrs((val or {}).get("values", []), cur, where)
    if kind == "bytesValue":
        return str(val)
    raise cur.fail(where, f"unknown value type {kind!r}")


def _attrs(kvs: Any, cur: _Cursor, where: str) -> dict[str, Any]:
    if not isinstance(kvs, list):
        raise cur.fail(where, "attributes must be a list of {key, value}")
    out: dict[str, Any] = {}
    for i, kv in enumerate(kvs):
        if not isinstance(kv, dict) or "key" not in kv:
            raise cur.fail(f"{where}[{i}]", "attribute without a key")
        out[str(kv["key"])] = _from_any(
            kv.get("value", {"stringValue": ""}), cur, f"{where}[{i}].value"
        )
    return out


def _hex_id(v: Any, width: int, cur: _Cursor, where: str) -> str:
    if (
        not isinstance(v, str)
        or len(v) != width
        or any(c not in "0123456789abcdefABCDEF" for c in v)
    ):
        raise cur.fail(where, f"expected {width} hex digits, got {v!r}")
    return v.lower()


def _nanos(v: Any, cur: _Cursor, where: str) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        raise cur.fail(where, f"expected nanoseconds, got {v!r}") from None


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object); a whole-file JSON document counts as line 1."""
    text = path.read_text(encoding="utf-8", errors="strict")
    stripped = text.strip()
    if not stripped:
        return
    if "\n" in stripped and not stripped.startswith("["):
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ImportError_(f"{path}:{n}:{exc.colno}: invalid JSON: {exc.msg}") from None
        return
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportError_(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    for item in doc if isinstance(doc, list) else [doc]:
        yield 1, item


def _import_otlp(store: TraceStore, path: Path) -> ImportResult:
    span_cols: dict[str, list[Any]] = {c: [] for c, _ in SPAN_COLUMNS[:16]}
    ev_cols: dict[str, list[Any]] = {c: [] for c, _ in EVENT_COLUMNS}
    lk_cols: dict[str, list[Any]] = {c: [] for c, _ in LINK_COLUMNS}
    span_attrs: list[dict[str, Any]] = []
    ev_attrs: list[dict[str, Any]] = []
    lk_attrs: list[dict[str, Any]] = []
    try:
        lines = list(_lines(path))
    except UnicodeDecodeError as exc:
        raise ImportError_(f"{path}: byte {exc.start}: not UTF-8") from None
    if not lines:
        raise ImportError_(f"{path}: empty file, nothing to import")
    for line_no, doc in lines:
        cur = _Cursor(path, line_no)
        if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
            raise cur.fail(
                "$",
                "expected an object with a resourceSpans list "
                "(OTLP ExportTraceServiceRequest as JSON)",
            )
        for ri, rs in enumerate(doc["resourceSpans"]):
            rw = f"resourceSpans[{ri}]"
            if not isinstance(rs, dict):
                raise cur.fail(rw, "expected an object")
            res = _attrs(
                (rs.get("resource") or {}).get("attributes", []), cur, f"{rw}.resource.attributes"
            )
            res_json = json.dumps(res, separators=(",", ":"))
            service = res.get(SERVICE_NAME)
            for si, ss in enumerate(
                rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []
            ):
                sw = f"{rw}.scopeSpans[{si}]"
                scope = ss.get("scope") or ss.get("instrumentationLibrary") or {}
                for pi, sp in enumerate(ss.get("spans", [])):
                    w = f"{sw}.spans[{pi}]"
                    if not isinstance(sp, dict):
                        raise cur.fail(w, "expected an object")
                    for req in ("traceId", "spanId", "name", "startTimeUnixNano"):
                        if req not in sp:
                            raise cur.fail(w, f"missing {req}")
                    tid = _hex_id(sp["traceId"], 32, cur, f"{w}.traceId")
                    sid = _hex_id(sp["spanId"], 16, cur, f"{w}.spanId")
                    parent = sp.get("parentSpanId") or None
                    if parent is not None:
                        parent = _hex_id(parent, 16, cur, f"{w}.parentSpanId")
                    start = _nanos(sp["startTimeUnixNano"], cur, f"{w}.startTimeUnixNano")
                    end = _nanos(sp.get("endTimeUnixNano", start), cur, f"{w}.endTimeUnixNano")
                    kind = sp.get("kind", 0)
                    if isinstance(kind, str):
                        kind = kind.removeprefix("SPAN_KIND_")
                        kind = _KINDS.index(kind) if kind in _KINDS else 0
                    status = sp.get("status") or {}
                    code = status.get("code", 0)
                    if isinstance(code, str):
                        code = code.removeprefix("STATUS_CODE_")
                        code = _STATUS.index(code) if code in _STATUS else 0
                    row = {
                        "trace_id": tid,
                        "span_id": sid,
                        "parent_span_id": parent,
                        "name": str(sp["name"]),
                        "kind": _KINDS[kind] if 0 <= int(kind) < len(_KINDS) else "UNSPECIFIED",
                        "start_ns": start,
                        "end_ns": end,
                        "duration_ns": end - start,
                        "status_code": _STATUS[int(code)] if 0 <= int(code) < 3 else "UNSET",
                        "status_message": status.get("message") or None,
                        "trace_state": sp.get("traceState") or None,
                        "service_name": str(service) if service is not None else None,
                        "scope_name": scope.get("name"),
                        "scope_version": scope.get("version"),
                        "resource_attributes": res_json,
                    }
                    for c in span_cols:
                        if c != "attributes":
                            span_cols[c].append(row.get(c))
                    span_attrs.append(_attrs(sp.get("attributes", []), cur, f"{w}.attributes"))
                    for ei, ev in enumerate(sp.get("events", [])):
                        ew = f"{w}.events[{ei}]"
                        for c, v in zip(
                            ("trace_id", "span_id", "seq", "name", "time_ns"),
                            (
                                tid,
                                sid,
                                ei,
                                ev.get("name"),
                                _nanos(ev.get("timeUnixNano", start), cur, f"{ew}.timeUnixNano"),
                            ),
                            strict=True,
                        ):
                            ev_cols[c].append(v)
                        ev_attrs.append(_attrs(ev.get("attributes", []), cur, f"{ew}.attributes"))
                    for li, lk in enumerate(sp.get("links", [])):
                        lw = f"{w}.links[{li}]"
                        vals = (
                            tid,
                            sid,
                            li,
                            _hex_id(lk.get("traceId"), 32, cur, f"{lw}.traceId"),
                            _hex_id(lk.get("spanId"), 16, cur, f"{lw}.spanId"),
                            lk.get("traceState") or None,
                        )
                        for c, v in zip(
                            (
                                "trace_id",
                                "span_id",
                                "seq",
                                "linked_trace_id",
                                "linked_span_id",
                                "trace_state",
                            ),
                            vals,
                            strict=True,
                        ):
                            lk_cols[c].append(v)
                        lk_attrs.append(_attrs(lk.get("attributes", []), cur, f"{lw}.attributes"))
    enc = JsonEncoder()
    del span_cols["attributes"]
    del ev_cols["attributes"]
    lk_cols["attributes"] = enc.encode(lk_attrs)
    spans_tbl = pa.table(span_cols)
    events_tbl = pa.table(
        {c: pa.array(v, type=pa.int32()) if c == "seq" else v for c, v in ev_cols.items()}
    )
    links_tbl = pa.table(
        {c: pa.array(v, type=pa.int32()) if c == "seq" else v for c, v in lk_cols.items()}
    )
    batch = Batch(spans_tbl, enc.groups(span_attrs), events_tbl, enc.groups(ev_attrs), links_tbl)
    with store.transaction() as con:
        for t in ("spans", "span_events", "span_links", "blobs"):
            con.execute(f"CREATE TEMP TABLE imp_{t} AS SELECT * FROM {t} LIMIT 0")
        insert_tables(con, batch, prefix="imp_")
        return _merge(con)
