"""An OpenTelemetry span exporter that writes into the DuckDB trace store."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack

import duckdb
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._convert import JsonEncoder, insert_tables, spans_to_batch
from ._store import StoreError, TraceStore, sha256_hex, transaction, write_blobs

logger = logging.getLogger(__name__)


class DuckDBSpanExporter(SpanExporter):
    """Writes each batch of spans, with the blobs they reference, in one transaction.

    One bulk append per table per batch (Arrow, no row-by-row inserts, no indexes on the hot
    path). Blobs handed to :meth:`put_blob` are written in the same transaction as the next
    batch, before the spans that reference them can be seen.
    """

    def __init__(self, store: TraceStore, linger: float = 1.0) -> None:
        self.store = store
        self.spans_written = 0
        self.blobs_written = 0
        self.failed_batches = 0
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
        store.init()
        self._closer = threading.Thread(
            target=self._release_when_wanted, daemon=True, name="harness-store-release"
        )
        self._closer.start()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._held is None:
            # Readers waiting go first (within reason: a stuck reader cannot stall us).
            deadline = time.monotonic() + 2.0
            while self.store.readers_waiting() and time.monotonic() < deadline:
                time.sleep(0.01)
            stack = ExitStack()
            con = stack.enter_context(self.store.connect(write=True))
            self._held = (stack, con)
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
                continue
            idle = time.monotonic() - self._last_use > self.linger
            if idle or self.store.readers_waiting():
                with self._lock:
                    self._release()

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
        con = self._connection()
        try:
            with transaction(con):
                self.blobs_written += write_blobs(con, blobs)
                if spans:
                    insert_tables(con, batch)
        except BaseException:
            self._release()
            raise
        self.spans_written += len(spans)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write pending blobs; spans are written synchronously by :meth:`export`."""
        with self._lock:
            blobs = self._take_blobs()
            if blobs:
                try:
                    self._write([], blobs)
                except StoreError:
                    self._return_blobs(blobs)
                    return False
        return True

    def shutdown(self) -> None:
        if not self._shutdown:
            self.force_flush()
            self._shutdown = True
            with self._lock:
                self._release()
