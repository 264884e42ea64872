"""The trace store: one DuckDB file, opened briefly for each write or query.

DuckDB lets one process write a file, or many read it, never both at once. A suite run writes
for hours while users query, so no one keeps the file open: a writer opens it for one
transaction (a batch of spans, about once a second) and closes it; a reader opens it for one
query. Whoever finds it locked retries until the holder is done, which takes milliseconds.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd
import pyarrow as pa

from ._schema import MIGRATIONS, SCHEMA_VERSION, VIEW_DOCS, ddl
from .vocab import blob_sha

if TYPE_CHECKING:
    from ._model import FileChange, ResourceSample, Run, Step, Trial

DEFAULT_DB = ".harness/traces.duckdb"


class StoreError(Exception):
    """A problem with the trace store; the message says what and how to fix it."""


class StoreBusy(StoreError):
    """Another process held the store for longer than the wait allows."""


class QueryError(StoreError):
    """DuckDB rejected a query. ``views`` lists what the user can query."""

    def __init__(self, message: str, views: list[str]) -> None:
        super().__init__(message)
        self.views = views


def default_path() -> Path:
    return Path(os.environ.get("HARNESS_DB") or DEFAULT_DB)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Within one process DuckDB shares a database instance per file; opening the same file with
# another configuration (read_only) fails. Track what this process has open to stay consistent.
_open_lock = threading.Lock()
_open_writers: dict[str, int] = {}


class TraceStore:
    """A trace store at ``path``.

    Every call opens the file for just that call, so other processes can write meanwhile. To
    run many queries against one snapshot, use ``with store.session() as con:``.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, wait_s: float = 60.0) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.wait_s = wait_s
        self._migrated = False

    # -- connections ---------------------------------------------------------------------

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """One short-lived connection; creates and migrates the store when writing."""
        key = str(self.path.resolve())
        if not write and not self.path.exists():
            raise StoreError(
                f"no trace store at {self.path}: nothing has been recorded there yet "
                "(pass --db or set HARNESS_DB to point at one)"
            )
        with _open_lock:
            read_only = not write and _open_writers.get(key, 0) == 0
            if not read_only:
                _open_writers[key] = _open_writers.get(key, 0) + 1
        try:
            con = self._open(read_only)
            try:
                if write and not self._migrated:
                    self._migrate(con)
                elif not self._migrated:
                    self._check_version(con)
                yield con
            finally:
                con.close()
        finally:
            if not read_only:
                with _open_lock:
                    _open_writers[key] -= 1

    @property
    def _wait_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".wait")

    def readers_waiting(self) -> bool:
        """Whether another process is waiting for the file (a writer then lets go of it)."""
        try:
            names = os.listdir(self._wait_dir)
        except FileNotFoundError:
            return False
        for name in names:
            pid = int(name.split("-")[0]) if name.split("-")[0].isdigit() else 0
            try:
                os.kill(pid, 0)
                return True
            except (ProcessLookupError, ValueError):
                with suppress(OSError):
                    os.unlink(self._wait_dir / name)  # left by a process that died
            except PermissionError:
                return True
        return False

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait_s
        delay = 0.002
        marker: Path | None = None
        try:
            while True:
                try:
                    return duckdb.connect(str(self.path), read_only=read_only)
                except (duckdb.IOException, duckdb.ConnectionException) as exc:
                    # Locked by another process, or open in this one with the other read_only
                    # setting: both clear when the holder lets go.
                    msg = str(exc)
                    if "lock" not in msg.lower() and "different configuration" not in msg:
                        raise StoreError(f"cannot open trace store {self.path}: {msg}") from None
                    if time.monotonic() > deadline:
                        raise StoreBusy(
                            f"trace store {self.path} stayed locked for {self.wait_s:.0f}s: {msg}"
                        ) from None
                    if marker is None and "lock" in msg.lower():
                        # Ask the writing process to let go of the file (it checks often).
                        self._wait_dir.mkdir(exist_ok=True)
                        marker = self._wait_dir / f"{os.getpid()}-{threading.get_ident()}"
                        marker.touch()
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.03)
                except duckdb.Error as exc:
                    raise StoreError(f"cannot open trace store {self.path}: {exc}") from None
        finally:
            if marker is not None:
                with suppress(OSError):
                    marker.unlink()

    def _version(self, con: duckdb.DuckDBPyConnection) -> int | None:
        try:
            row = con.execute(
                "SELECT value FROM harness_meta WHERE key = 'schema_version'"
            ).fetchall()
        except duckdb.CatalogException:
            return None
        return int(row[0][0]) if row else None

    def _check_version(self, con: duckdb.DuckDBPyConnection) -> None:
        version = self._version(con)
        if version is None:
            raise StoreError(f"{self.path} is a DuckDB file but not a harness trace store")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer harness (schema {version}; this one "
                f"reads up to {SCHEMA_VERSION}). Upgrade harness to read it."
            )
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema {version}; it is upgraded to {SCHEMA_VERSION} the next "
                "time harness writes to it (for example `harness import` of an empty file)"
            )
        self._migrated = True

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        version = self._version(con)
        if version is not None and version > SCHEMA_VERSION:
            self._check_version(con)
        with transaction(con):
            for v in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
                for stmt in MIGRATIONS[v]:
                    con.execute(stmt)
            # Tables are created if missing; views are always redefined, so a fix to a view
            # reaches existing stores without a schema version of its own.
            for stmt in ddl():
                con.execute(stmt)
            if version is None:
                con.execute(
                    "INSERT INTO harness_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
                )
            elif version < SCHEMA_VERSION:
                con.execute(
                    "UPDATE harness_meta SET value = ? WHERE key = 'schema_version'",
                    [str(SCHEMA_VERSION)],
                )
        self._migrated = True

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside one transaction: committed if the block ends normally,
        rolled back on any exception (the store never holds half a batch)."""
        with self.connect(write=True) as con, transaction(con):
            yield con

    @contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read connection held for several queries (writers wait while it is open)."""
        with self.connect() as con:
            yield con

    def init(self) -> None:
        """Create (or migrate) the store file."""
        with self.connect(write=True):
            pass

    # -- queries -------------------------------------------------------------------------

    def views(self) -> list[str]:
        return list(VIEW_DOCS)

    def _query(self, query: str, params: list[Any] | None, fmt: str) -> Any:
        with self.connect() as con:
            try:
                rel = con.sql(query, params=params or None)
                if rel is None:  # a statement that returns nothing
                    return pd.DataFrame() if fmt == "df" else pa.table({})
                return rel.df() if fmt == "df" else rel.to_arrow_table()
            except duckdb.Error as exc:
                raise QueryError(str(exc), self.views()) from None

    def sql(self, query: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run a query; the result as a pandas DataFrame."""
        return self._query(query, params, "df")

    def arrow(self, query: str, params: list[Any] | None = None) -> pa.Table:
        """Run a query; the result as an Arrow table."""
        return self._query(query, params, "arrow")

    # -- the read model: typed runs, trials, steps (see traces._model) -------------------
    # Imported when called: _model builds on this module.

    def runs(self) -> list[Run]:
        """Every run in the store, oldest first."""
        from . import _model

        return _model.runs(self)

    def run(self, run_id: str) -> Run:
        """One run by its exact id; StoreError (pointing at `harness runs`) if absent."""
        from . import _model

        return _model.run(self, run_id)

    def trials(self, run_id: str | None = None) -> list[Trial]:
        """The trials of one run, or of every run, in the order they started."""
        from . import _model

        return _model.trials(self, run_id)

    def trial(self, trial_id: str) -> Trial:
        """One trial by its id or a unique prefix of it; StoreError if none or several."""
        from . import _model

        return _model.trial(self, trial_id)

    def steps(self, trial_id: str) -> list[Step]:
        """A trial's sandbox commands, numbered from 1, with their phase and stage."""
        from . import _model

        return _model.steps(self, trial_id)

    def file_changes(self, trial_id: str, step_span_id: str | None = None) -> list[FileChange]:
        """The paths a trial's steps changed (or one step's, by its span id), in order."""
        from . import _model

        return _model.file_changes(self, trial_id, step_span_id)

    def resource_samples(self, trial_id: str) -> list[ResourceSample]:
        """A trial's container resource samples, oldest first."""
        from . import _model

        return _model.resource_samples(self, trial_id)

    # -- blobs ---------------------------------------------------------------------------

    def blob(self, ref: str) -> bytes:
        """The bytes of a blob, by sha256 hex or ``sha256:<hex>`` ref."""
        sha = blob_sha(ref)
        with self.connect() as con:
            row = con.execute(
                "SELECT encoding, data FROM blobs WHERE sha256 = ? LIMIT 1", [sha]
            ).fetchall()
        if not row:
            raise KeyError(f"no blob {sha} in {self.path}")
        return decode_blob(row[0][0], row[0][1])

    def blob_text(self, ref: str | None, errors: str = "replace") -> str:
        """A blob ref turned into text (UTF-8, undecodable bytes replaced); '' for None."""
        if not ref:
            return ""
        return self.blob(ref).decode("utf-8", errors=errors)

    def put_blobs(self, blobs: Iterable[bytes]) -> list[str]:
        """Store blobs (deduplicated); returns their sha256 hex digests."""
        rows = {sha256_hex(b): b for b in blobs}
        with self.transaction() as con:
            write_blobs(con, rows)
        return list(rows)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit when the block ends normally, roll back on any exception."""
    con.execute("BEGIN")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def encode_blob(data: bytes) -> tuple[str, bytes]:
    """zlib when it saves at least a tenth, else raw (already-compressed data stays as is)."""
    if len(data) < 64:
        return "raw", data
    packed = zlib.compress(data, 1)
    return ("zlib", packed) if len(packed) < len(data) * 0.9 else ("raw", data)


def decode_blob(encoding: str, data: bytes) -> bytes:
    if encoding == "zlib":
        return zlib.decompress(data)
    if encoding == "raw":
        return bytes(data)
    raise StoreError(f"unknown blob encoding {encoding!r}")


def write_blobs(con: duckdb.DuckDBPyConnection, blobs: dict[str, bytes]) -> int:
    """Insert the blobs that the store lacks, inside the caller's transaction."""
    if not blobs:
        return 0
    shas = list(blobs)
    have = {
        r[0]
        for r in con.execute(
            "SELECT sha256 FROM blobs WHERE sha256 IN (SELECT unnest(?::VARCHAR[]))", [shas]
        ).fetchall()
    }
    new = [s for s in shas if s not in have]
    if not new:
        return 0
    enc = [encode_blob(blobs[s]) for s in new]
    tbl = pa.table(
        {
            "sha256": pa.array(new, type=pa.string()),
            "size": pa.array([len(blobs[s]) for s in new], type=pa.int64()),
            "encoding": pa.array([e[0] for e in enc], type=pa.string()),
            "data": pa.array([e[1] for e in enc], type=pa.binary()),
        }
    )
    con.register("__h_blobs", tbl)
    try:
        con.execute("INSERT INTO blobs SELECT * FROM __h_blobs")
    finally:
        con.unregister("__h_blobs")
    return len(new)


def open(path: str | os.PathLike[str] | None = None) -> TraceStore:  # noqa: A001
    """The trace store at ``path`` (default ``$HARNESS_DB`` or ``.harness/traces.duckdb``)."""
    return TraceStore(path)
