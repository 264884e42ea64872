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
import zlib
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from opentelemetry.sdk.resources import SERVICE_NAME

from ._convert import Batch, JsonEncoder, insert_tables
from ._schema import EVENT_COLUMNS, LINK_COLUMNS, SCHEMA_VERSION, SPAN_COLUMNS, TABLES, table_ddl
from ._store import (
    StoreError,
    TraceStore,
    blob_rows,
    decode_blob,
    insert_blob_rows,
    sha256_hex,
)
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
        # Blobs as content only: ref and text are derived from it again on import.
        "blobs": f"SELECT sha256, size, encoding, data FROM blobs WHERE sha256 IN ({refs})",
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
# An import is read and checked in full (into a private in-memory database with the store's
# tables) before the store is opened: a malformed file is reported with its position and
# leaves the store untouched, and no store file is created for it.

_TABLE_NAMES = ("spans", "span_events", "span_links", "blobs")
# What a blobs.parquet must have; ref and text are derived again on import.
_BLOB_BASE = ("sha256", "size", "encoding", "data")


def import_path(store: TraceStore, path: str | os.PathLike[str]) -> ImportResult:
    """Import a Parquet export folder or an OTLP JSON(-lines) file. All or nothing.

    Raises:
        ImportError_: the input is malformed (the message names the file and the position:
            line and JSON path, or the parquet file); the store is unchanged, and not
            created if it did not exist.
    """
    p = Path(path)
    if not p.exists():
        raise ImportError_(f"{p}: no such file or folder")
    staged = _stage_parquet(p) if p.is_dir() else _stage_otlp(p)
    existed = store.path.exists()
    try:
        with store.transaction() as con:
            return _merge(con, staged)
    except BaseException as exc:
        if not existed:
            _remove_store(store)
        if isinstance(exc, duckdb.Error):
            raise ImportError_(f"{p}: cannot import into {store.path}: {exc}") from None
        raise


def _remove_store(store: TraceStore) -> None:
    """Remove a store file this import created and could not fill (nothing else was in it:
    it did not exist before, and the import held it for writing since)."""
    for f in (store.path, store.path.with_name(store.path.name + ".wal")):
        with suppress(OSError):
            f.unlink()


def _staging() -> duckdb.DuckDBPyConnection:
    """An in-memory database with empty copies of the store's tables, ``imp_<table>``."""
    mem = duckdb.connect(":memory:")
    for table, cols in TABLES.items():
        mem.execute(table_ddl(f"imp_{table}", cols))
    return mem


def _staged_tables(mem: duckdb.DuckDBPyConnection) -> dict[str, pa.Table]:
    """The staged rows, typed exactly as the store's tables (so merging cannot fail on a
    value)."""
    return {t: mem.sql(f"SELECT * FROM imp_{t}").to_arrow_table() for t in _TABLE_NAMES}


def _stage_parquet(folder: Path) -> dict[str, pa.Table]:
    """A parquet export folder as staged rows; a missing, unreadable or ill-shaped file
    raises ImportError_ naming it."""
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ImportError_(f"{manifest_path}: not a harness export ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        found = manifest.get("format") if isinstance(manifest, dict) else manifest
        raise ImportError_(f"{manifest_path}: format is {found!r}, expected {FORMAT_NAME!r}")
    version = manifest.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ImportError_(
            f"{manifest_path}: schema_version is {version!r}, expected an integer; "
            "re-export the run"
        )
    if version > SCHEMA_VERSION:
        raise ImportError_(
            f"{folder} was exported by a newer harness (schema {version}); upgrade harness "
            "to import it"
        )
    files = {t: folder / f"{t}.parquet" for t in _TABLE_NAMES}
    for f in files.values():
        if not f.exists():
            raise ImportError_(f"{folder}: missing {f.name}")
    mem = _staging()
    try:
        for table, f in files.items():
            rows = _read_parquet(f)
            if table == "blobs":
                rows = _blob_rows_of(f, rows)
            known = {c for c, _ in TABLES[table]}
            required = set(_BLOB_BASE) if table == "blobs" else {c for c, _ in TABLES[table]}
            missing = sorted(required - set(rows.column_names))
            unknown = sorted(set(rows.column_names) - known)
            if missing or unknown:
                what = "; ".join(
                    s
                    for s in (
                        f"missing columns {', '.join(missing)}" if missing else "",
                        f"unknown columns {', '.join(unknown)}" if unknown else "",
                    )
                    if s
                )
                raise ImportError_(f"{f}: not a harness {table} export ({what})")
            mem.register("__h_rows", rows)
            try:
                mem.execute(f"INSERT INTO imp_{table} BY NAME SELECT * FROM __h_rows")
            except duckdb.Error as exc:
                raise ImportError_(f"{f}: values do not fit the {table} table: {exc}") from None
            finally:
                mem.unregister("__h_rows")
        return _staged_tables(mem)
    finally:
        mem.close()


def _read_parquet(f: Path) -> pa.Table:
    """All of one parquet file (reading it whole finds damage anywhere in it)."""
    try:
        return pq.read_table(f)
    except (OSError, pa.ArrowException) as exc:
        raise ImportError_(
            f"{f}: not a readable parquet file ({exc}); export the run again"
        ) from None


def _blob_rows_of(f: Path, rows: pa.Table) -> pa.Table:
    """The blobs of an export as store rows: each checked against its sha256 (a damaged
    blob is refused, not imported), with ``ref`` and ``text`` derived again."""
    missing = [c for c in _BLOB_BASE if c not in rows.column_names]
    if missing:
        raise ImportError_(f"{f}: not a harness blobs export (missing columns {missing})")
    payloads: dict[str, bytes] = {}
    for i, (sha, encoding, data) in enumerate(
        zip(
            rows.column("sha256").to_pylist(),
            rows.column("encoding").to_pylist(),
            rows.column("data").to_pylist(),
            strict=True,
        )
    ):
        try:
            raw = decode_blob(str(encoding), bytes(data or b""))
        except (StoreError, zlib.error, TypeError) as exc:
            raise ImportError_(f"{f}: row {i} (blob {sha}): cannot decode it: {exc}") from None
        if sha256_hex(raw) != sha:
            raise ImportError_(
                f"{f}: row {i}: the content does not match its sha256 {sha!r}; the export is "
                "damaged, export the run again"
            )
        payloads[str(sha)] = raw
    return blob_rows(payloads)


def _merge(con: duckdb.DuckDBPyConnection, staged: dict[str, pa.Table]) -> ImportResult:
    """Move staged rows into the store, skipping what it already has."""
    for table, rows in staged.items():
        con.register(f"imp_{table}", rows)
    try:
        new_spans = (
            "SELECT i.* FROM imp_spans i ANTI JOIN spans s "
            "ON s.trace_id = i.trace_id AND s.span_id = i.span_id"
        )
        total = staged["spans"].num_rows
        con.execute(f"CREATE TEMP TABLE imp_new AS {new_spans}")
        try:
            n_spans = con.execute("SELECT count(*) FROM imp_new").fetchall()[0][0]
            con.execute("INSERT INTO spans BY NAME SELECT * FROM imp_new")
            keys = "SEMI JOIN imp_new n ON n.trace_id = i.trace_id AND n.span_id = i.span_id"
            n_events = con.execute(
                f"INSERT INTO span_events BY NAME SELECT i.* FROM imp_span_events i {keys}"
            ).fetchall()[0][0]
            n_links = con.execute(
                f"INSERT INTO span_links BY NAME SELECT i.* FROM imp_span_links i {keys}"
            ).fetchall()[0][0]
        finally:
            con.execute("DROP TABLE IF EXISTS imp_new")
        n_blobs = insert_blob_rows(con, staged["blobs"])
    finally:
        for table in staged:
            con.unregister(f"imp_{table}")
    return ImportResult(n_spans, n_events, n_links, n_blobs, total - n_spans)


class _Cursor:
    """Where we are in an OTLP JSON file, for error messages."""

    def __init__(self, path: Path, line: int) -> None:
        self.path, self.line = path, line

    def fail(self, where: str, what: str) -> ImportError_:
        return ImportError_(f"{self.path}:{self.line}: {where}: {what}")


def _json_kind(v: Any) -> str:
    """A JSON value's type as a person names it, for "expected X, got Y"."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"a boolean ({json.dumps(v)})"
    if isinstance(v, int | float):
        return f"a number ({v!r})"
    if isinstance(v, str):
        shown = v if len(v) <= 40 else v[:40] + "..."
        return f"a string ({shown!r})"
    if isinstance(v, list):
        return "a list"
    return "an object"


def _obj(v: Any, cur: _Cursor, where: str, *, optional: bool = False) -> dict[str, Any]:
    """``v`` as a JSON object; absent (None) is an empty one when ``optional``."""
    if v is None and optional:
        return {}
    if not isinstance(v, dict):
        raise cur.fail(where, f"expected an object, got {_json_kind(v)}")
    return v


def _list(v: Any, cur: _Cursor, where: str) -> list[Any]:
    """``v`` as a JSON list; absent (None) is an empty one, as in OTLP's JSON mapping."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise cur.fail(where, f"expected a list, got {_json_kind(v)}")
    return v


def _opt_str(v: Any, cur: _Cursor, where: str) -> str | None:
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise cur.fail(where, f"expected a string, got {_json_kind(v)}")
    return v


def _enum(v: Any, names: list[str], prefix: str, cur: _Cursor, where: str) -> str:
    """An OTLP enum given as its number or its name (with or without ``prefix``)."""
    if isinstance(v, str):
        name = v.removeprefix(prefix)
        if name in names:
            return name
        if not v.isdigit():
            raise cur.fail(where, f"unknown value {v!r}; expected one of {', '.join(names)}")
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise cur.fail(where, f"expected a number or a name, got {_json_kind(v)}")
    return names[v] if 0 <= v < len(names) else names[0]


def _from_any(v: Any, cur: _Cursor, where: str) -> Any:
    if not isinstance(v, dict) or len(v) != 1:
        raise cur.fail(where, "expected an AnyValue object with exactly one key")
    ((kind, val),) = v.items()
    here = f"{where}.{kind}"
    if kind == "stringValue":
        if not isinstance(val, str):
            raise cur.fail(here, f"expected a string, got {_json_kind(val)}")
        return val
    if kind == "boolValue":
        if not isinstance(val, bool):
            raise cur.fail(here, f"expected true or false, got {_json_kind(val)}")
        return val
    if kind == "intValue":
        if isinstance(val, bool) or not isinstance(val, int | str):
            raise cur.fail(here, f"expected an integer, got {_json_kind(val)}")
        try:
            return int(val)
        except ValueError:
            raise cur.fail(here, f"intValue {val!r} is not an integer") from None
    if kind == "doubleValue":
        if isinstance(val, bool) or not isinstance(val, int | float | str):
            raise cur.fail(here, f"expected a number, got {_json_kind(val)}")
        try:
            return float(val)
        except ValueError:
            raise cur.fail(here, f"doubleValue {val!r} is not a number") from None
    if kind == "arrayValue":
        values = _list(_obj(val, cur, here, optional=True).get("values"), cur, f"{here}.values")
        return [_from_any(x, cur, f"{here}.values[{i}]") for i, x in enumerate(values)]
    if kind == "kvlistValue":
        return _attrs(_obj(val, cur, here, optional=True).get("values"), cur, f"{here}.values")
    if kind == "bytesValue":
        if not isinstance(val, str):
            raise cur.fail(here, f"expected a base64 string, got {_json_kind(val)}")
        return val
    raise cur.fail(where, f"unknown value type {kind!r}")


def _attrs(kvs: Any, cur: _Cursor, where: str) -> dict[str, Any]:
    if kvs is None:
        return {}
    if not isinstance(kvs, list):
        raise cur.fail(where, f"attributes must be a list of {{key, value}}, got {_json_kind(kvs)}")
    out: dict[str, Any] = {}
    for i, kv in enumerate(kvs):
        if not isinstance(kv, dict) or "key" not in kv:
            raise cur.fail(f"{where}[{i}]", "attribute without a key")
        if not isinstance(kv["key"], str):
            raise cur.fail(f"{where}[{i}].key", f"expected a string, got {_json_kind(kv['key'])}")
        out[kv["key"]] = _from_any(kv.get("value", {"stringValue": ""}), cur, f"{where}[{i}].value")
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
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise cur.fail(where, f"expected nanoseconds (an integer), got {_json_kind(v)}")
    try:
        return int(v)
    except ValueError:
        raise cur.fail(where, f"expected nanoseconds, got {v!r}") from None


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, object); a whole-file JSON document counts as line 1."""
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except OSError as exc:
        raise ImportError_(f"{path}: cannot read it: {exc.strerror or exc}") from None
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


class _OtlpRows:
    """Columns of the staged tables, filled span by span from OTLP JSON."""

    def __init__(self) -> None:
        self.spans: dict[str, list[Any]] = {c: [] for c, _ in SPAN_COLUMNS[:16]}
        del self.spans["attributes"]
        self.events: dict[str, list[Any]] = {c: [] for c, _ in EVENT_COLUMNS if c != "attributes"}
        self.links: dict[str, list[Any]] = {c: [] for c, _ in LINK_COLUMNS if c != "attributes"}
        self.span_attrs: list[dict[str, Any]] = []
        self.event_attrs: list[dict[str, Any]] = []
        self.link_attrs: list[dict[str, Any]] = []

    def add_request(self, doc: Any, cur: _Cursor) -> None:
        """One ExportTraceServiceRequest (one line of the file)."""
        if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
            raise cur.fail(
                "$",
                "expected an object with a resourceSpans list "
                "(OTLP ExportTraceServiceRequest as JSON)",
            )
        for ri, rs in enumerate(doc["resourceSpans"]):
            rw = f"resourceSpans[{ri}]"
            rs = _obj(rs, cur, rw)
            resource = _obj(rs.get("resource"), cur, f"{rw}.resource", optional=True)
            res = _attrs(resource.get("attributes"), cur, f"{rw}.resource.attributes")
            res_json = json.dumps(res, separators=(",", ":"))
            service = res.get(SERVICE_NAME)
            key = "scopeSpans" if "scopeSpans" in rs else "instrumentationLibrarySpans"
            for si, ss in enumerate(_list(rs.get(key), cur, f"{rw}.{key}")):
                sw = f"{rw}.{key}[{si}]"
                ss = _obj(ss, cur, sw)
                skey = "scope" if "scope" in ss else "instrumentationLibrary"
                scope = _obj(ss.get(skey), cur, f"{sw}.{skey}", optional=True)
                scope_name = _opt_str(scope.get("name"), cur, f"{sw}.{skey}.name")
                scope_version = _opt_str(scope.get("version"), cur, f"{sw}.{skey}.version")
                for pi, sp in enumerate(_list(ss.get("spans"), cur, f"{sw}.spans")):
                    self._add_span(
                        _obj(sp, cur, f"{sw}.spans[{pi}]"),
                        cur,
                        f"{sw}.spans[{pi}]",
                        {
                            "service_name": str(service) if service is not None else None,
                            "scope_name": scope_name,
                            "scope_version": scope_version,
                            "resource_attributes": res_json,
                        },
                    )

    def _add_span(self, sp: dict[str, Any], cur: _Cursor, w: str, common: dict[str, Any]) -> None:
        for req in ("traceId", "spanId", "name", "startTimeUnixNano"):
            if req not in sp:
                raise cur.fail(w, f"missing {req}")
        tid = _hex_id(sp["traceId"], 32, cur, f"{w}.traceId")
        sid = _hex_id(sp["spanId"], 16, cur, f"{w}.spanId")
        parent = sp.get("parentSpanId") or None
        if parent is not None:
            parent = _hex_id(parent, 16, cur, f"{w}.parentSpanId")
        if not isinstance(sp["name"], str):
            raise cur.fail(f"{w}.name", f"expected a string, got {_json_kind(sp['name'])}")
        start = _nanos(sp["startTimeUnixNano"], cur, f"{w}.startTimeUnixNano")
        end = _nanos(sp.get("endTimeUnixNano", start), cur, f"{w}.endTimeUnixNano")
        status = _obj(sp.get("status"), cur, f"{w}.status", optional=True)
        row = {
            "trace_id": tid,
            "span_id": sid,
            "parent_span_id": parent,
            "name": sp["name"],
            "kind": _enum(sp.get("kind", 0), _KINDS, "SPAN_KIND_", cur, f"{w}.kind"),
            "start_ns": start,
            "end_ns": end,
            "duration_ns": end - start,
            "status_code": _enum(
                status.get("code", 0), _STATUS, "STATUS_CODE_", cur, f"{w}.status.code"
            ),
            "status_message": _opt_str(status.get("message"), cur, f"{w}.status.message"),
            "trace_state": _opt_str(sp.get("traceState"), cur, f"{w}.traceState"),
            **common,
        }
        for c, values in self.spans.items():
            values.append(row[c])
        self.span_attrs.append(_attrs(sp.get("attributes"), cur, f"{w}.attributes"))
        for ei, ev in enumerate(_list(sp.get("events"), cur, f"{w}.events")):
            ew = f"{w}.events[{ei}]"
            ev = _obj(ev, cur, ew)
            event = {
                "trace_id": tid,
                "span_id": sid,
                "seq": ei,
                "name": _opt_str(ev.get("name"), cur, f"{ew}.name"),
                "time_ns": _nanos(ev.get("timeUnixNano", start), cur, f"{ew}.timeUnixNano"),
            }
            for c, values in self.events.items():
                values.append(event[c])
            self.event_attrs.append(_attrs(ev.get("attributes"), cur, f"{ew}.attributes"))
        for li, lk in enumerate(_list(sp.get("links"), cur, f"{w}.links")):
            lw = f"{w}.links[{li}]"
            lk = _obj(lk, cur, lw)
            link = {
                "trace_id": tid,
                "span_id": sid,
                "seq": li,
                "linked_trace_id": _hex_id(lk.get("traceId"), 32, cur, f"{lw}.traceId"),
                "linked_span_id": _hex_id(lk.get("spanId"), 16, cur, f"{lw}.spanId"),
                "trace_state": _opt_str(lk.get("traceState"), cur, f"{lw}.traceState"),
            }
            for c, values in self.links.items():
                values.append(link[c])
            self.link_attrs.append(_attrs(lk.get("attributes"), cur, f"{lw}.attributes"))

    def batch(self) -> Batch:
        enc = JsonEncoder()
        seq = {"seq": pa.int32()}
        links = {c: pa.array(v, type=seq.get(c)) for c, v in self.links.items()}
        links["attributes"] = enc.encode(self.link_attrs)
        return Batch(
            pa.table(self.spans),
            enc.groups(self.span_attrs),
            pa.table({c: pa.array(v, type=seq.get(c)) for c, v in self.events.items()}),
            enc.groups(self.event_attrs),
            pa.table(links),
        )


def _stage_otlp(path: Path) -> dict[str, pa.Table]:
    """An OTLP JSON file as staged rows; the first malformed value raises ImportError_."""
    try:
        lines = list(_lines(path))
    except UnicodeDecodeError as exc:
        raise ImportError_(f"{path}: byte {exc.start}: not UTF-8") from None
    if not lines:
        raise ImportError_(f"{path}: empty file, nothing to import")
    rows = _OtlpRows()
    for line_no, doc in lines:
        rows.add_request(doc, _Cursor(path, line_no))
    mem = _staging()
    try:
        insert_tables(mem, rows.batch(), prefix="imp_")
        return _staged_tables(mem)
    finally:
        mem.close()
