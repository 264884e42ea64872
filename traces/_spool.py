"""The spool: where a writer puts batches while another process holds the store.

DuckDB lets one process write a file, or many read it. A user who keeps a read open for
minutes (a notebook, a ``duckdb`` shell on the file) would otherwise stall a suite run's span
exporter until it gives up, and spans would be lost. So an exporter that cannot get the file
within a moment writes the batch, as the rows it would have appended, to ``<store>.spool/``,
and every write connection of the store appends what is spooled, oldest first, before it does
anything else (:meth:`TraceStore.connect`). A writer that crashes with batches spooled loses
nothing: the next writer appends them.

Layout: one folder per batch, named so that names sort in the order they were written
(``<time_ns>-<pid>-<seq>``), with one Arrow IPC file per table and ``batch.json``. A batch is
written into a hidden ``.tmp-`` folder, fsynced and renamed into place, so a batch is either
whole or absent. It is applied in one transaction that also records its name in
``harness_spool_applied``; the folder is removed after the commit, and a batch whose name is
already recorded (the writer died between the commit and the removal) is only removed. So
every batch is applied exactly once.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from ._schema import SCHEMA_VERSION, SPOOL_LOG, TABLES
from ._store import StoreError, append, insert_blob_rows, transaction

logger = logging.getLogger(__name__)

FORMAT_NAME = "harness-spool"
MANIFEST = "batch.json"
# Applied in this order: blobs before the spans that reference them.
TABLE_ORDER = ("blobs", "spans", "span_events", "span_links")
_TMP = ".tmp-"
_CORRUPT = ".corrupt"
_seq = itertools.count()

# One drain at a time per spool folder in this process (other processes are kept out by
# DuckDB's file lock, which the draining connection holds).
_locks_guard = threading.Lock()
_locks: dict[str, threading.Lock] = {}


@dataclass(frozen=True)
class SpooledBatch:
    """A batch written to the spool: its folder and what it holds."""

    path: Path
    spans: int
    blobs: int


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` survive a power loss, not just a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_ipc(path: Path, table: pa.Table) -> None:
    """One table as an Arrow IPC file, on disk before this returns."""
    with path.open("wb") as f:
        with pa.ipc.new_file(f, table.schema) as writer:
            writer.write_table(table)
        f.flush()
        os.fsync(f.fileno())


def write_batch(folder: Path, tables: dict[str, pa.Table]) -> SpooledBatch:
    """Write one batch (rows per table name) durably and atomically; returns where it is.

    Raises:
        OSError: the spool folder cannot be written (a full disk, permissions).
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}-{next(_seq):08d}"
    tmp = folder / f"{_TMP}{name}"
    tmp.mkdir()
    try:
        for table, rows in tables.items():
            _write_ipc(tmp / f"{table}.arrow", rows)
        spans = tables["spans"].num_rows if "spans" in tables else 0
        blobs = tables["blobs"].num_rows if "blobs" in tables else 0
        manifest = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "tables": sorted(tables),
            "spans": spans,
            "blobs": blobs,
        }
        with (tmp / MANIFEST).open("w") as f:
            f.write(json.dumps(manifest) + "\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        final = folder / name
        tmp.rename(final)
        _fsync_dir(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SpooledBatch(final, spans, blobs)


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal exists too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pending(folder: Path) -> list[Path]:
    """Batches waiting to be applied, oldest first. Removes half-written batches of writers
    that died while writing them (they never reported those spans as recorded)."""
    try:
        entries = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    out: list[Path] = []
    for name in entries:
        if name.startswith(_TMP):
            parts = name[len(_TMP) :].split("-")
            if len(parts) == 3 and parts[1].isdigit() and not _pid_alive(int(parts[1])):
                shutil.rmtree(folder / name, ignore_errors=True)
            continue
        if name.startswith(".") or name.endswith(_CORRUPT):
            continue
        out.append(folder / name)
    return out


def pending_spans(folder: Path) -> int:
    """How many spans are spooled in ``folder`` and not yet in the store."""
    total = 0
    for path in pending(folder):
        try:
            total += int(json.loads((path / MANIFEST).read_text())["spans"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return total


def _lock_for(folder: Path) -> threading.Lock:
    """This process's lock for draining ``folder``: two write connections of one process
    (DuckDB lets those coexist) must not append the same batch."""
    key = str(folder.resolve())
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def apply_pending(con: duckdb.DuckDBPyConnection, folder: Path) -> int:
    """Append every spooled batch in ``folder`` to the store ``con`` writes, oldest first,
    each exactly once; returns the number of spans appended.

    A batch that cannot be read (damaged on disk) is renamed ``<name>.corrupt`` and left for
    a person to look at, so it never blocks the store.

    Raises:
        StoreError: a readable batch could not be written (the store's disk); it stays
            spooled and is tried again by the next write connection.
    """
    if not folder.is_dir():
        return 0
    appended = 0
    with _lock_for(folder):
        for path in pending(folder):
            appended += _apply(con, path)
    return appended


def _read(path: Path) -> tuple[dict[str, object], dict[str, pa.Table]]:
    """A batch's manifest and rows, checked against the store's tables.

    Raises:
        OSError, ValueError, KeyError, TypeError, pyarrow.ArrowException: the batch is
            damaged (its writer wrote it whole, so nothing else makes it unreadable).
    """
    manifest = json.loads((path / MANIFEST).read_text())
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ValueError(f"{MANIFEST} is not a {FORMAT_NAME} manifest")
    columns = {t: [c for c, _ in cols] for t, cols in TABLES.items()}
    tables: dict[str, pa.Table] = {}
    for table in manifest["tables"]:
        if table not in columns:
            raise ValueError(f"unknown table {table!r}")
        with pa.OSFile(str(path / f"{table}.arrow")) as f:
            rows = pa.ipc.open_file(f).read_all()
        unknown = set(rows.column_names) - set(columns[table])
        if unknown:
            raise ValueError(f"{table}: unknown columns {sorted(unknown)}")
        tables[table] = rows
    if tables.get("spans") is not None and tables["spans"].num_rows != manifest["spans"]:
        raise ValueError("span count differs from the manifest")
    return manifest, tables


def _apply(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Append one batch in one transaction that also logs its name; returns its spans."""
    name = path.name
    done = con.execute(f"SELECT count(*) FROM {SPOOL_LOG} WHERE batch = ?", [name]).fetchall()
    if done[0][0]:
        shutil.rmtree(path, ignore_errors=True)  # applied; its writer died before removing it
        return 0
    try:
        manifest, tables = _read(path)
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        bad = path.with_name(name + _CORRUPT)
        logger.warning("spooled batch %s cannot be read (%s); moved to %s", path, exc, bad)
        path.rename(bad)
        return 0
    if int(str(manifest.get("schema_version", 0))) > SCHEMA_VERSION:
        logger.warning("spooled batch %s was written by a newer harness; left in place", path)
        return 0
    spans = tables["spans"].num_rows if "spans" in tables else 0
    try:
        with transaction(con):
            for table in TABLE_ORDER:
                rows = tables.get(table)
                if rows is None or not rows.num_rows:
                    continue
                if table == "blobs":
                    insert_blob_rows(con, rows)
                else:
                    append(con, table, rows)
            con.execute(f"INSERT INTO {SPOOL_LOG} VALUES (?, ?, now()::TIMESTAMP)", [name, spans])
    except duckdb.Error as exc:
        raise StoreError(
            f"cannot append spooled batch {path} to the trace store: {exc}. It stays spooled "
            "and is tried again by the next write; if it keeps failing, move it out of "
            f"{path.parent} (its spans are then missing from the store)"
        ) from None
    shutil.rmtree(path, ignore_errors=True)
    return spans
