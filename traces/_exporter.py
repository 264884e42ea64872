"""An OpenTelemetry span exporter that writes into the DuckDB trace store."""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack

import duckdb
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._convert import JsonEncoder, insert_tables, spans_to_tables
from ._store import StoreError, TraceStore, sha256_hex, write_blobs


class DuckDBSpanExporter(SpanExporter):
    """Writes each batch of spans, with the blobs they reference, in one transaction.

    One bulk append per table per batch (Arrow, no row-by-row inserts, no indexes on the hot
    path). Blobs handed to :meth:`put_blob` are written in the same transaction as the next
    batch, before the spans that reference them can be seen.
    """

    def __init__(self, store: TraceStore, linger: float = 0.2) -> None:
        self.store = store
        self.linger = linger
        self.spans_written = 0
        self.blobs_written = 0
        self.failed_batches = 0
        self._encoder = JsonEncoder()
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()  # export() may be called from several threads
        self._shutdown = False
        # Back-to-back batches reuse one connection; it is closed (releasing the file to
        # readers in other processes) once no batch came for `linger` seconds.
        self._held: tuple[ExitStack, duckdb.DuckDBPyConnection] | None = None
        self._last_use = 0.0
        store.init()
        self._closer = threading.Thread(
            target=self._close_idle, daemon=True, name="harness-store-closer"
        )
        self._closer.start()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._held is None:
            stack = ExitStack()
            con = stack.enter_context(self.store.connect(write=True))
            self._held = (stack, con)
        self._last_use = time.monotonic()
        return self._held[1]

    def _release(self) -> None:
        if self._held is not None:
            stack, self._held = self._held[0], None
            stack.close()

    def _close_idle(self) -> None:
        while not self._shutdown:
            time.sleep(self.linger / 2)
            with self._lock:
                if self._held is not None and time.monotonic() - self._last_use > self.linger:
                    self._release()

    def put_blob(self, data: bytes) -> str:
        """Queue ``data`` for the blob table; returns its sha256 hex digest at once."""
        sha = sha256_hex(data)
        with self._lock:
            self._blobs.setdefault(sha, bytes(data))
        return sha

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        with self._lock:
            blobs, self._blobs = self._blobs, {}
            try:
                self._write(spans, blobs)
            except Exception as exc:  # noqa: BLE001 - the SDK wants a result, not a raise
                self.failed_batches += 1
                self._blobs.update(blobs)  # keep them for the next attempt
                print(
                    f"harness: could not write {len(spans)} spans to {self.store.path}: {exc}",
                    file=sys.stderr,
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _write(self, spans: Sequence[ReadableSpan], blobs: dict[str, bytes]) -> None:
        if spans:
            # The conversion allocates many short-lived objects and no cycles; pausing the
            # cyclic GC spares it full scans of the heap of queued spans (~10% of ingest).
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                spans_tbl, events_tbl, links_tbl = spans_to_tables(spans, self._encoder)
            finally:
                if gc_was_enabled:
                    gc.enable()
        con = self._connection()
        con.execute("BEGIN")
        try:
            self.blobs_written += write_blobs(con, blobs)
            if spans:
                insert_tables(con, spans_tbl, events_tbl, links_tbl)
            con.execute("COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            finally:
                self._release()
            raise
        self.spans_written += len(spans)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write pending blobs (spans are written synchronously by :meth:`export`) and close
        the connection, so that everything is on disk and the file is free."""
        with self._lock:
            try:
                if self._blobs:
                    blobs, self._blobs = self._blobs, {}
                    try:
                        self._write([], blobs)
                    except StoreError:
                        self._blobs.update(blobs)
                        return False
            finally:
                self._release()
        return True

    def shutdown(self) -> None:
        if not self._shutdown:
            self.force_flush()
            self._shutdown = True
