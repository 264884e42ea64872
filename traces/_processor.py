"""A span processor that never drops a span silently.

The SDK's BatchSpanProcessor drops the oldest span when its queue is full. A record with holes
is worse than a slow one, so this processor blocks the producer instead (back-pressure), exports
in large batches from one worker thread, commits a trial's spans as soon as its root span ends
(an ended trial is durable even if the process is then SIGKILLed), and counts anything it could
not deliver.

Producers that end spans on a thread of their own, after the work they record (a sandbox's
record thread), register with :meth:`BackpressureSpanProcessor.add_producer`: a flush waits
for what they were handed first, so it covers everything done before it was called.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .vocab import Attr
from .vocab import Span as SpanName

logger = logging.getLogger(__name__)


def is_trial(span: ReadableSpan) -> bool:
    """A trial's root span: once it ends, the trial's record must be durable."""
    attrs = span.attributes or {}
    return span.name.startswith(SpanName.TRIAL) or Attr.RUN_ID in attrs


class BackpressureSpanProcessor(SpanProcessor):
    """Batches ended spans to one or more exporters.

    Args:
        exporters: each batch goes to every exporter in order.
        max_queue: spans held at most; a producer that finds the queue full waits.
        max_batch: spans per export call.
        schedule_delay: seconds between exports when the queue is not full.
        transform: applied to each span before it is exported (e.g. moving large
            attributes to blobs), on the export thread, so it costs the producers nothing.
    """

    def __init__(
        self,
        exporters: Sequence[SpanExporter],
        *,
        max_queue: int = 400_000,
        max_batch: int = 100_000,
        schedule_delay: float = 1.0,
        transform: Callable[[ReadableSpan], ReadableSpan] | None = None,
    ) -> None:
        self.exporters = list(exporters)
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.schedule_delay = schedule_delay
        self.transform = transform
        self.dropped = 0
        self.failed = 0
        self.exported = 0
        self._queue: deque[ReadableSpan] = deque()
        self._cond = threading.Condition()
        self._enqueued = 0
        self._done = 0  # spans taken from the queue and exported (or failed)
        self._urgent = 0  # callers waiting for a flush
        self._stopping = False
        self._producers: dict[int, Callable[[float], bool]] = {}
        self._producer_ids = 0
        self._worker = threading.Thread(target=self._run, name="harness-span-export", daemon=True)
        self._worker.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def add_producer(self, wait: Callable[[float], bool]) -> Callable[[], None]:
        """Register work that ends spans later, on a thread of its own: ``wait(timeout_s)``
        returns once everything handed to it so far has ended. :meth:`force_flush` calls it
        first. Returns the function that unregisters it."""
        with self._cond:
            self._producer_ids += 1
            key = self._producer_ids
            self._producers[key] = wait

        def remove() -> None:
            with self._cond:
                self._producers.pop(key, None)

        return remove

    def on_end(self, span: ReadableSpan) -> None:
        with self._cond:
            if self._stopping:
                self.dropped += 1
                logger.warning("span %r ended after shutdown; not recorded", span.name)
                return
            while len(self._queue) >= self.max_queue and not self._stopping:
                self._cond.wait()
            self._queue.append(span)
            self._enqueued += 1
            target = self._enqueued
            if len(self._queue) >= self.max_batch:
                self._cond.notify_all()
        if span.parent is None and is_trial(span):
            self._wait_done(target, timeout=60.0)

    def _wait_done(self, target: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._urgent += 1
            self._cond.notify_all()
            try:
                while self._done < target:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._worker.is_alive():
                        return False
                    self._cond.wait(left)
                return True
            finally:
                self._urgent -= 1

    def _run(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self.schedule_delay
                while not self._stopping and not self._urgent and len(self._queue) < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if not self._queue:
                    if self._stopping:
                        return
                    continue
                n = min(len(self._queue), self.max_batch)
                batch = [self._queue.popleft() for _ in range(n)]
                self._cond.notify_all()  # room in the queue again
            if self.transform is not None:
                batch = [self._transformed(s) for s in batch]
            self._export(batch)
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()

    def _transformed(self, span: ReadableSpan) -> ReadableSpan:
        assert self.transform is not None
        try:
            return self.transform(span)
        except Exception as exc:  # noqa: BLE001 - the span as it is, rather than none
            logger.warning("could not transform span %r: %s", span.name, exc)
            return span

    def _export(self, batch: list[ReadableSpan]) -> None:
        for exporter in self.exporters:
            try:
                result = exporter.export(batch)
            except Exception as exc:  # noqa: BLE001
                logger.warning(
                    "%s failed to export %d spans: %s", type(exporter).__name__, len(batch), exc
                )
                result = SpanExportResult.FAILURE
            if result is SpanExportResult.FAILURE:
                self.failed += len(batch)
            elif exporter is self.exporters[0]:
                self.exported += len(batch)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        with self._cond:
            producers = list(self._producers.values())
        ok = True
        for wait in producers:  # spans of work done before this call, still being made
            ok = wait(max(0.0, deadline - time.monotonic())) and ok
        with self._cond:
            target = self._enqueued
        ok = self._wait_done(target, max(0.0, deadline - time.monotonic())) and ok
        for exporter in self.exporters:
            ok = exporter.force_flush(timeout_millis) and ok
        return ok

    def shutdown(self) -> None:
        self.force_flush()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._worker.join(timeout=30)
        for exporter in self.exporters:
            exporter.shutdown()
