"""An OpenTelemetry span exporter that writes into the DuckDB trace store."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import duckdb
import pyarrow as pa
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import _spool
from ._convert import Batch, JsonEncoder, insert_tables, spans_to_batch
from ._schema import TABLES, table_ddl
from ._store import (
    StoreBusy,
    StoreError,
    TraceStore,
    blob_rows,
    sha256_hex,
    transaction,
    write_blobs,
)

logger = logging.getLogger(__name__)

_SPAN_TABLES = ("spans", "span_events", "span_links")


class DuckDBSpanExporter(SpanExporter):
    """Writes each batch of spans, with the blobs they reference, in one transaction.

    One bulk append per table per batch (Arrow, no row-by-row inserts, no indexes on the hot
    path). Blobs handed to :meth:`put_blob` are written in the same transaction as the next
    batch, before the spans that reference them can be seen.

    When another process holds the file (a long read), a batch is never lost and the code
    being recorded never waits long: after ``busy_wait_s`` the batch and its blobs go to the
    store's spool (:mod:`traces._spool`), durable on disk; while spooling, later batches are
    spooled after one quick try, in order. A background thread appends the spool as soon as
    the file is free; :meth:`shutdown` waits up to ``drain_wait_s`` for that, then leaves the
    rest for the store's next writer.

    Args:
        store: the trace store.
        linger: seconds a connection is kept between batches when no one else wants it.
        busy_wait_s: how long a batch waits for a held file before it is spooled.
        drain_wait_s: how long :meth:`shutdown` waits for the spool to be appended.
    """

    def __init__(
        self,
        store: TraceStore,
        linger: float = 1.0,
        busy_wait_s: float = 1.0,
        drain_wait_s: float = 10.0,
    ) -> None:
        self.store = store
        self.spans_written = 0
        self.blobs_written = 0
        self.failed_batches = 0
        self.late_spans = 0  # spans that went through the spool
        self.busy_wait_s = busy_wait_s
        self.drain_wait_s = drain_wait_s
        self._encoder = JsonEncoder()
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()  # one write at a time
        # Separate, and held only for a dict operation: put_blob() is called on the command
        # path and must never wait for a write to the store.
        self._blob_lock = threading.Lock()
        self._shutdown = False
        # Opening DuckDB costs ~12 ms, so a busy writer keeps its connection between batches.
        # It lets go after `linger` idle seconds, or at once when another process asks for
        # the file (TraceStore.readers_waiting), so queries never wait for long.
        self.linger = linger
        self._held: tuple[ExitStack, duckdb.DuckDBPyConnection] | None = None
        self._last_use = 0.0
        # Our batches in the spool, until they are appended (by us or another writer).
        self._spooled: list[_spool.SpooledBatch] = []
        self._spooling = False  # the file was held at the last try
        self._next_drain = 0.0
        self._rows: duckdb.DuckDBPyConnection | None = None  # turns batches into rows
        try:
            # Creates or migrates the store now, so mistakes (a newer schema, not a store)
            # show at once; a held file only defers this to the first write.
            store.init(wait_s=busy_wait_s)
        except StoreBusy as exc:
            self._spooling = True
            logger.info("%s; recording goes to %s until it is free", exc, store.spool_dir)
        self._closer = threading.Thread(
            target=self._release_when_wanted, daemon=True, name="harness-store-release"
        )
        self._closer.start()

    # -- the connection ------------------------------------------------------------------

    def _connection(self, wait_s: float) -> duckdb.DuckDBPyConnection:
        """The held write connection, or a new one within ``wait_s`` (StoreBusy if not).

        Opening one appends whatever is spooled first (TraceStore.connect), so batches keep
        their order: spooled ones before the batch that is about to be written.
        """
        if self._held is None:
            # Readers waiting go first (within reason: a stuck reader cannot stall us).
            deadline = time.monotonic() + wait_s
            while self.store.readers_waiting() and time.monotonic() < deadline:
                time.sleep(0.01)
            # Whatever the hand-over left of the budget, but a moment at least for the lock
            # (none when only one quick try was asked for).
            lock_wait = max(deadline - time.monotonic(), min(wait_s, 0.25))
            stack = ExitStack()
            con = stack.enter_context(self.store.connect(write=True, wait_s=lock_wait))
            self._held = (stack, con)
            self._spooling = False
            self._forget_applied()
        self._last_use = time.monotonic()
        return self._held[1]

    def _release(self) -> None:
        if self._held is not None:
            stack, self._held = self._held[0], None
            stack.close()

    def _release_when_wanted(self) -> None:
        while not self._shutdown:
            time.sleep(0.02)
            if self._held is None:
                if self._spooled and time.monotonic() >= self._next_drain:
                    self._drain_in_background()
                continue
            idle = time.monotonic() - self._last_use > self.linger
            if idle or self.store.readers_waiting():
                with self._lock:
                    self._release()

    def _drain_in_background(self) -> None:
        """Try to append our spooled batches (a short try: the file may still be held)."""
        self._next_drain = time.monotonic() + 0.25
        if not self._lock.acquire(blocking=False):
            return  # a write is under way; it appends the spool itself
        try:
            self._forget_applied()
            if self._spooled and self._held is None and not self._shutdown:
                self._connection(0.2)
        except StoreError:
            pass
        finally:
            self._lock.release()

    # -- blobs ---------------------------------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        """Queue ``data`` for the blob table; returns its sha256 hex digest at once."""
        sha = sha256_hex(data)
        with self._blob_lock:
            self._blobs.setdefault(sha, bytes(data))
        return sha

    def _take_blobs(self) -> dict[str, bytes]:
        with self._blob_lock:
            blobs, self._blobs = self._blobs, {}
        return blobs

    def _return_blobs(self, blobs: dict[str, bytes]) -> None:
        with self._blob_lock:
            self._blobs.update(blobs)

    # -- writing -------------------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        with self._lock:
            # Blobs are put before the spans that reference them end, so every blob a span
            # in this batch references is already in the dict taken here.
            blobs = self._take_blobs()
            try:
                self._write(spans, blobs)
            except Exception as exc:  # noqa: BLE001 - the SDK wants a result, not a raise
                self.failed_batches += 1
                self._return_blobs(blobs)  # keep them for the next attempt
                logger.warning(
                    "could not write %d spans to %s: %s", len(spans), self.store.path, exc
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _write(self, spans: Sequence[ReadableSpan], blobs: dict[str, bytes]) -> None:
        batch: Batch | None = None
        if spans:
            # The conversion allocates many short-lived objects and no cycles; pausing the
            # cyclic GC spares it full scans of the heap of queued spans (~10% of ingest).
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                batch = spans_to_batch(spans, self._encoder)
            finally:
                if gc_was_enabled:
                    gc.enable()
        try:
            # Once the file was found held, one quick try per batch: the spool keeps order.
            con = self._connection(0.0 if self._spooling else self.busy_wait_s)
        except StoreError as exc:
            self._spool(batch, blobs, exc)
            return
        try:
            with transaction(con):
                self.blobs_written += write_blobs(con, blobs)
                if batch is not None:
                    insert_tables(con, batch)
        except BaseException:
            self._release()
            raise
        self.spans_written += len(spans)

    def _spool(self, batch: Batch | None, blobs: dict[str, bytes], why: StoreError) -> None:
        """Write a batch to the spool (durably) because the store could not be opened."""
        if not self._spooling:
            level = logging.INFO if isinstance(why, StoreBusy) else logging.WARNING
            logger.log(level, "%s; spooling spans to %s until it is free", why, self._spool_dir)
        self._spooling = True
        tables = self._rows_of(batch)
        tables["blobs"] = blob_rows(blobs)
        spooled = _spool.write_batch(self._spool_dir, tables)
        self._spooled.append(spooled)
        self.late_spans += spooled.spans

    def _rows_of(self, batch: Batch | None) -> dict[str, pa.Table]:
        """A batch as the rows it appends to each span table (built by the same code that
        appends them to the store, in a private in-memory database)."""
        if self._rows is None:
            self._rows = duckdb.connect(":memory:")
            for table in _SPAN_TABLES:
                self._rows.execute(table_ddl(table, TABLES[table]))
        out: dict[str, pa.Table] = {}
        if batch is not None:
            insert_tables(self._rows, batch)
        for table in _SPAN_TABLES:
            out[table] = self._rows.sql(f"SELECT * FROM {table}").to_arrow_table()
            self._rows.execute(f"DELETE FROM {table}")
        return out

    @property
    def _spool_dir(self) -> Path:
        return self.store.spool_dir

    def _forget_applied(self) -> None:
        self._spooled = [b for b in self._spooled if b.path.exists()]

    @property
    def pending_spans(self) -> int:
        """Spans this exporter spooled that are not in the store yet."""
        return sum(b.spans for b in list(self._spooled) if b.path.exists())

    # -- flush and shutdown --------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write pending blobs; spans are written synchronously by :meth:`export`."""
        with self._lock:
            blobs = self._take_blobs()
            if blobs:
                try:
                    self._write([], blobs)
                except (StoreError, OSError, duckdb.Error):
                    self._return_blobs(blobs)
                    return False
        return True

    def _drain(self, wait_s: float) -> bool:
        """Append our spooled batches within ``wait_s``; True when none is left."""
        deadline = time.monotonic() + wait_s
        with self._lock:
            self._forget_applied()
            while self._spooled and not self._shutdown:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    self._connection(min(left, 0.5))  # opening it appends the spool
                except StoreBusy:
                    continue
                except StoreError as exc:
                    logger.warning("cannot append the spool %s: %s", self._spool_dir, exc)
                    break
                self._forget_applied()
                break
            return not self._spooled

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self.force_flush()
        if not self._drain(self.drain_wait_s):
            logger.warning(
                "%s stayed busy: %d spans wait in %s; the next writer of the store appends "
                "them (any `harness` command that writes, or this program run again)",
                self.store.path,
                self.pending_spans,
                self._spool_dir,
            )
        with self._lock:
            self._shutdown = True
            self._release()
            if self._rows is not None:
                self._rows.close()
                self._rows = None
