"""The trace store: one DuckDB file, opened briefly for each write or query.

DuckDB lets one process write a file, or many read it, never both at once. A suite run writes
for hours while users query, so no one keeps the file open: a writer opens it for one
transaction (a batch of spans, about once a second) and closes it; a reader opens it for one
query. Whoever finds it locked retries until the holder is done, which takes milliseconds.
A span exporter that cannot wait (a user holds a long read) spools its batches next to the
store instead (:mod:`traces._spool`); every write connection appends what is spooled first.

Queries are read-only unless asked (``write=True``): a query API that deletes the record by
accident would break the promise that recorded data is never lost.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd
import pyarrow as pa

from ._schema import (
    BLOB_COLUMNS,
    BLOB_TEXT_CAP,
    MIGRATIONS,
    SCHEMA_VERSION,
    VIEW_DOCS,
    ddl,
    views_hash,
)
from .vocab import blob_ref, blob_sha

if TYPE_CHECKING:
    from ._model import Action, Command, FileChange, ModelTurn, ResourceSample, Run, Trial

DEFAULT_DB = ".harness/traces.duckdb"


class StoreError(Exception):
    """A problem with the trace store; the message says what and how to fix it."""


class StoreBusy(StoreError):
    """Another process held the store for longer than the wait allows."""


class QueryError(StoreError):
    """DuckDB rejected a query, or a read refused a statement that writes.

    ``views`` lists what the user can query; ``refused`` is the type of the statement a
    read-only query refused (``"DELETE"``, ``"CREATE"``...), None when DuckDB rejected it.
    """

    def __init__(self, message: str, views: list[str], refused: str | None = None) -> None:
        super().__init__(message)
        self.views = views
        self.refused = refused


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
        # Looked at every few milliseconds by a writer (readers_waiting): made once.
        self._wait_dir = self.path.with_name(self.path.name + ".wait")
        self._wait_dir_s = str(self._wait_dir)
        self._migrated = False

    # -- connections ---------------------------------------------------------------------

    @contextmanager
    def connect(
        self, write: bool = False, wait_s: float | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """One short-lived connection; creates and migrates the store when writing.

        A write connection first appends any batches a writer spooled while the file was held
        (so a crashed writer's spool is never left behind). ``wait_s`` bounds the wait for a
        file another process holds (default: the store's ``wait_s``); then StoreBusy.
        """
        key = str(self.path.resolve())
        if not write and not self.path.exists():
            raise StoreError(
                f"no trace store at {self.path}: nothing has been recorded there yet "
                "(pass --db or set HARNESS_DB to point at one)"
            )
        if not write:
            from . import _spool

            if _spool.pending(self.spool_dir):
                # Spans a writer had to spool (the file was held) belong in what is read now:
                # append them first if the file is free; otherwise read what is there.
                with suppress(StoreError), self.connect(write=True, wait_s=1.0):
                    pass
        con, counted = self._open(key, write, self.wait_s if wait_s is None else wait_s)
        if not write and not self._migrated and self._views_stale(con):
            # Views an older harness defined lack today's columns: redefine them (a short
            # write, as a writer would at its start) before the first read. If the file is
            # held, read what is there.
            self._release(con, key, counted)
            with suppress(StoreError), self.connect(write=True, wait_s=1.0):
                pass
            con, counted = self._open(key, write, self.wait_s if wait_s is None else wait_s)
        try:
            if write and not self._migrated:
                self._migrate(con)
            elif not self._migrated:
                self._check_version(con)
            if write:
                from . import _spool

                _spool.apply_pending(con, self.spool_dir)
            yield con
        finally:
            self._release(con, key, counted)

    @staticmethod
    def _release(con: duckdb.DuckDBPyConnection, key: str, counted: bool) -> None:
        con.close()
        if counted:
            with _open_lock:
                _open_writers[key] -= 1

    def _views_stale(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Whether the file's views were defined by another harness than this one, at this
        schema version (an older schema is upgraded only by a write: _check_version says so)."""
        if self._version(con) != SCHEMA_VERSION:
            return False
        try:
            row = con.execute("SELECT value FROM harness_meta WHERE key = 'views'").fetchall()
        except duckdb.Error:
            return False
        return not row or row[0][0] != views_hash()

    def append_spooled(self, wait_s: float) -> int:
        """Append what writers spooled while the file was held, waiting up to ``wait_s`` for
        it to be free; returns the spans still spooled (0: the store is complete)."""
        from . import _spool

        deadline = time.monotonic() + wait_s
        while _spool.pending(self.spool_dir) and time.monotonic() < deadline:
            with suppress(StoreBusy), self.connect(write=True, wait_s=1.0):
                pass
        return _spool.pending_spans(self.spool_dir)

    @property
    def spool_dir(self) -> Path:
        """Where writers spool batches while the file is held: ``<store>.spool/``."""
        return self.path.with_name(self.path.name + ".spool")

    def readers_waiting(self) -> bool:
        """Whether another process is waiting for the file (a writer then lets go of it)."""
        try:
            names = os.listdir(self._wait_dir_s)
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

    def _open(self, key: str, write: bool, wait_s: float) -> tuple[duckdb.DuckDBPyConnection, bool]:
        """A connection, and whether it counts in ``_open_writers`` (opened read-write).

        A read opens read-only unless this process has the file open for writing (DuckDB
        shares one instance per file and process); that is decided again at every attempt,
        so a reader is not stuck with the mode of a write attempt that has since failed.
        """
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_s
        delay = 0.002
        marker: Path | None = None
        try:
            while True:
                with _open_lock:
                    read_only = not write and _open_writers.get(key, 0) == 0
                    if not read_only:
                        _open_writers[key] = _open_writers.get(key, 0) + 1
                try:
                    return duckdb.connect(str(self.path), read_only=read_only), not read_only
                except BaseException as exc:
                    if not read_only:
                        with _open_lock:
                            _open_writers[key] -= 1
                    if not isinstance(exc, duckdb.Error):
                        raise
                    msg = str(exc)
                    retry = isinstance(exc, duckdb.IOException | duckdb.ConnectionException)
                    if not retry:
                        raise StoreError(f"cannot open trace store {self.path}: {msg}") from None
                    # Locked by another process, or open in this one with the other read_only
                    # setting: both clear when the holder lets go.
                    if "lock" not in msg.lower() and "different configuration" not in msg:
                        raise StoreError(f"cannot open trace store {self.path}: {msg}") from None
                    if time.monotonic() >= deadline:
                        raise StoreBusy(
                            f"trace store {self.path} stayed locked for {wait_s:.1f}s: {msg}"
                        ) from None
                    if marker is None and "lock" in msg.lower():
                        # Ask the writing process to let go of the file (it checks often).
                        self._wait_dir.mkdir(exist_ok=True)
                        marker = self._wait_dir / f"{os.getpid()}-{threading.get_ident()}"
                        marker.touch()
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.03)
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
                if v in _BACKFILLS:
                    _BACKFILLS[v](con)
            # Tables are created if missing; views are always redefined, so a fix to a view
            # reaches existing stores without a schema version of its own.
            for stmt in ddl():
                con.execute(stmt)
            con.execute("DELETE FROM harness_meta WHERE key = 'views'")
            con.execute("INSERT INTO harness_meta VALUES ('views', ?)", [views_hash()])
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

    def init(self, wait_s: float | None = None) -> None:
        """Create (or migrate) the store file, and append what writers spooled.

        Raises:
            StoreBusy: another process held the file for longer than ``wait_s``.
        """
        with self.connect(write=True, wait_s=wait_s):
            pass

    # -- queries -------------------------------------------------------------------------

    def views(self) -> list[str]:
        return list(VIEW_DOCS)

    def _query(self, query: str, params: list[Any] | None, fmt: str, write: bool) -> Any:
        if not write:
            check_read_only(query, self.views())
        elif _statement_types(query, self.views()) & {"TRANSACTION"}:
            raise QueryError(
                "BEGIN/COMMIT/ROLLBACK are not needed: a query with write=True runs in one "
                "transaction of its own (committed when it succeeds, rolled back otherwise)",
                self.views(),
            )

        def run(con: duckdb.DuckDBPyConnection) -> Any:
            rel = con.sql(query, params=params or None)
            if rel is None:  # a statement that returns nothing
                return pd.DataFrame() if fmt == "df" else pa.table({})
            return rel.df() if fmt == "df" else rel.to_arrow_table()

        with self.connect(write=write) as con:
            try:
                if not write:
                    return interruptible(con, lambda: run(con))
                with transaction(con):
                    return interruptible(con, lambda: run(con))
            except duckdb.Error as exc:
                raise QueryError(str(exc), self.views()) from None

    def sql(
        self, query: str, params: list[Any] | None = None, *, write: bool = False
    ) -> pd.DataFrame:
        """Run a query; the result as a pandas DataFrame.

        Read-only unless ``write=True`` (then the query runs in one transaction); a statement
        that is not a read raises QueryError. Ctrl-C interrupts a long query
        (KeyboardInterrupt).
        """
        return self._query(query, params, "df", write)

    def arrow(
        self, query: str, params: list[Any] | None = None, *, write: bool = False
    ) -> pa.Table:
        """Run a query; the result as an Arrow table (read-only unless ``write=True``, as
        :meth:`sql`)."""
        return self._query(query, params, "arrow", write)

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

    def commands(self, trial_id: str) -> list[Command]:
        """A trial's sandbox commands, numbered from 1, with their phase, stage and actor."""
        from . import _model

        return _model.commands(self, trial_id)

    def actions(self, trial_id: str) -> list[Action]:
        """The agent's steps in a trial (commands and file writes), in the order issued."""
        from . import _model

        return _model.actions(self, trial_id)

    def file_changes(self, trial_id: str, step_span_id: str | None = None) -> list[FileChange]:
        """The paths a trial's steps changed (or one step's, by its span id), in order."""
        from . import _model

        return _model.file_changes(self, trial_id, step_span_id)

    def resource_samples(self, trial_id: str) -> list[ResourceSample]:
        """A trial's container resource samples, oldest first."""
        from . import _model

        return _model.resource_samples(self, trial_id)

    def model_turns(self, trial_id: str) -> list[ModelTurn]:
        """A trial's model calls in order, with their answers' text and the steps they
        caused."""
        from . import _model

        return _model.model_turns(self, trial_id)

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

    def blobs(self, refs: Iterable[str]) -> dict[str, bytes]:
        """The bytes of several blobs in one read, keyed by the refs as given (sha256 hex or
        ``sha256:<hex>``); a ref the store lacks is left out. One connection for all, where
        :meth:`blob` opens one each (which a caller showing a whole trial would feel)."""
        wanted = [r for r in refs if r]
        if not wanted:
            return {}
        with self.connect() as con:
            found = read_blobs(con, wanted)
        return {r: found[blob_sha(r)] for r in wanted if blob_sha(r) in found}

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


# Statement types a read may run. EXPLAIN is checked on what it explains (EXPLAIN ANALYZE runs
# the statement). PRAGMA, CALL and SET are refused: some of them change the file
# (CHECKPOINT is a CALL) and every read they offer has a SELECT form (DESCRIBE, SHOW, FROM
# duckdb_tables()).
_READ_TYPES = frozenset({"SELECT"})
_EXPLAIN = re.compile(r"\s*EXPLAIN\s+(?:ANALYZE\s+)?(?:\([^)]*\)\s*)?(.*)", re.I | re.S)


_parsers = threading.local()


def _parse(query: str, views: list[str]) -> list[Any]:
    """DuckDB's statements of ``query``, parsed on a private in-memory connection of this
    thread (a DuckDB connection must not be shared between threads)."""
    parser = getattr(_parsers, "con", None)
    if parser is None:
        parser = _parsers.con = duckdb.connect(":memory:")
    try:
        return list(parser.extract_statements(query))
    except duckdb.Error as exc:
        raise QueryError(str(exc), views) from None


def _statement_types(query: str, views: list[str]) -> set[str]:
    return {st.type.name for st in _parse(query, views)}


def check_read_only(query: str, views: list[str]) -> None:
    """Raise QueryError unless every statement of ``query`` only reads.

    Decided on DuckDB's own parse (statement types), not on the text, so comments, case and
    ``WITH ... DELETE`` tricks cannot slip a write through.
    """
    for st in _parse(query, views):
        kind = st.type.name
        if kind == "EXPLAIN":
            m = _EXPLAIN.match(st.query)
            try:
                inner = _parse(m.group(1), views) if m else []
            except QueryError:
                inner = []
            if inner and all(i.type.name in _READ_TYPES for i in inner):
                continue
        elif kind in _READ_TYPES:
            continue
        raise QueryError(
            f"{kind} statement refused: queries are read-only by default and this one would "
            f"change the store ({st.query.strip()[:80]!r}). From Python, pass write=True "
            "(store.sql(query, write=True)) to write, in one transaction.",
            views,
            refused=kind,
        )


def interruptible(con: duckdb.DuckDBPyConnection, fn: Callable[[], Any]) -> Any:
    """``fn()`` (a query on ``con``), stoppable with Ctrl-C.

    DuckDB does not look at Python's signals while a query runs, so in the main thread the
    query runs in a worker while this thread waits in short steps; a KeyboardInterrupt there
    interrupts the connection, waits for the worker to stop, and is raised again. In other
    threads (which never see KeyboardInterrupt) ``fn`` runs directly.
    """
    if threading.current_thread() is not threading.main_thread():
        return fn()
    result: list[Any] = []
    error: list[BaseException] = []
    done = threading.Event()

    def work() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            error.append(exc)
        finally:
            done.set()

    # An Event, not Thread.join: a join that a KeyboardInterrupt broke can later return
    # before the thread has ended (CPython 3.11).
    worker = threading.Thread(target=work, name="harness-query", daemon=True)
    worker.start()
    try:
        while not done.wait(0.05):
            pass
    except KeyboardInterrupt:
        con.interrupt()
        done.wait(30)
        raise
    if error:
        raise error[0]
    return result[0]


def blob_text(data: bytes) -> str | None:
    """What ``blobs.text`` holds for a payload: its text if it is valid UTF-8 without NUL
    bytes and at most BLOB_TEXT_CAP bytes long, else None (binary or too big to inline)."""
    if len(data) > BLOB_TEXT_CAP or b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_blobs(con: duckdb.DuckDBPyConnection, refs: Iterable[str]) -> dict[str, bytes]:
    """sha256 hex -> bytes of those of ``refs`` (hex or ``sha256:<hex>``) the store holds,
    read on the caller's connection (one snapshot with the caller's other queries)."""
    shas = sorted({blob_sha(r) for r in refs if r})
    if not shas:
        return {}
    rows = con.execute(
        "SELECT sha256, encoding, data FROM blobs WHERE sha256 IN (SELECT unnest(?::VARCHAR[]))",
        [shas],
    ).fetchall()
    return {sha: decode_blob(enc, data) for sha, enc, data in rows}


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


_ARROW_OF_SQL = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "BLOB": pa.binary()}
# The blobs table's columns as Arrow types (blob_rows builds them in this order).
BLOB_SCHEMA = pa.schema([(c, _ARROW_OF_SQL[t.split()[0]]) for c, t in BLOB_COLUMNS])


def blob_rows(blobs: dict[str, bytes]) -> pa.Table:
    """Rows of the ``blobs`` table for payloads keyed by their sha256 hex digest."""
    shas = list(blobs)
    enc = [encode_blob(blobs[s]) for s in shas]
    return pa.table(
        [
            pa.array(shas, type=pa.string()),
            pa.array([len(blobs[s]) for s in shas], type=pa.int64()),
            pa.array([e[0] for e in enc], type=pa.string()),
            pa.array([e[1] for e in enc], type=pa.binary()),
            pa.array([blob_ref(s) for s in shas], type=pa.string()),
            pa.array([blob_text(blobs[s]) for s in shas], type=pa.string()),
        ],
        schema=BLOB_SCHEMA,
    )


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
    append(con, "blobs", blob_rows({s: blobs[s] for s in new}))
    return len(new)


def insert_blob_rows(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> int:
    """Insert rows of the blobs table (from a spool or an import) that the store lacks."""
    if not rows.num_rows:
        return 0
    con.register("__h_blob_rows", rows)
    try:
        n = con.execute(
            "INSERT INTO blobs BY NAME SELECT i.* FROM "
            "(SELECT DISTINCT ON (sha256) * FROM __h_blob_rows) i "
            "ANTI JOIN blobs b ON b.sha256 = i.sha256"
        ).fetchall()[0][0]
    finally:
        con.unregister("__h_blob_rows")
    return int(n)


def append(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    """One bulk append of Arrow rows, matched to the table's columns by name."""
    con.register("__h_append", rows)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM __h_append")
    finally:
        con.unregister("__h_append")


def _backfill_blob_text(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 1 -> 2: fill ``blobs.text`` for existing blobs (zlib cannot be undone in SQL).

    Pages through the candidates (small enough) by sha256, so memory stays bounded by a page.
    """
    last = ""
    while True:
        rows = con.execute(
            "SELECT sha256, encoding, data FROM blobs WHERE size <= ? AND sha256 > ? "
            "ORDER BY sha256 LIMIT 256",
            [BLOB_TEXT_CAP, last],
        ).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        texts = [(sha, blob_text(decode_blob(enc, data))) for sha, enc, data in rows]
        texts = [(sha, t) for sha, t in texts if t is not None]
        if texts:
            con.register(
                "__h_texts",
                pa.table({"sha256": [t[0] for t in texts], "text": [t[1] for t in texts]}),
            )
            try:
                con.execute(
                    "UPDATE blobs SET text = t.text FROM __h_texts t WHERE blobs.sha256 = t.sha256"
                )
            finally:
                con.unregister("__h_texts")


# Work after a version's SQL migration (MIGRATIONS[v]) that SQL cannot do.
_BACKFILLS: dict[int, Callable[[duckdb.DuckDBPyConnection], None]] = {1: _backfill_blob_text}


def open(path: str | os.PathLike[str] | None = None) -> TraceStore:  # noqa: A001
    """The trace store at ``path`` (default ``$HARNESS_DB`` or ``.harness/traces.duckdb``)."""
    return TraceStore(path)
