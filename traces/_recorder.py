"""Wiring at the edge: a TracerProvider whose spans land in the store (and an OTLP collector).

Instrumented code (the sandbox, agents) only ever uses the OpenTelemetry API; whoever runs it
creates a :class:`Recorder` and decides where spans go.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Tracer

from ._content import CONTENT, MESSAGES, WithoutAttributes, content_enabled, with_attributes
from ._exporter import DuckDBSpanExporter
from ._processor import BackpressureSpanProcessor
from ._store import TraceStore
from .vocab import Attr, blob_ref

# Attribute strings longer than this move to the blob table; the span keeps the blob ref under
# "<key>" + Attr.BLOB_SUFFIX and the size under "<key>" + Attr.BYTES_SUFFIX. Well-behaved
# instrumentation puts payloads in blobs itself.
INLINE_LIMIT = 16 * 1024


def otlp_endpoint_from_env() -> str | None:
    """The collector's traces URL from the environment, or None.

    ``HARNESS_OTLP_ENDPOINT`` (what ``harness --otlp-endpoint`` sets) and
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` are base URLs; ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is
    the full traces URL, as the OpenTelemetry specification defines them.
    """
    full = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if full:
        return full
    base = os.environ.get("HARNESS_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return _traces_url(base) if base else None


def _traces_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def _otlp_exporter(url: str) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=url)  # headers, timeout etc. from OTEL_EXPORTER_OTLP_*


class Recorder:
    """Records spans into a trace store; optionally also to any OTLP/HTTP collector.

    Args:
        store: the trace store (or a path to one).
        otlp_endpoint: also send every span to this OTLP/HTTP collector base URL (Jaeger,
            Phoenix, Langfuse...). Defaults to the environment, see
            :func:`otlp_endpoint_from_env`.
        service_name: the ``service.name`` resource attribute.
        resource_attributes: more resource attributes.
        schedule_delay: seconds between exports while no trial has ended.
        busy_wait_s: how long a batch waits for a store another process holds (a long
            read) before it goes to the spool next to the store instead; nothing is dropped
            and the recorded code never waits much longer than this.
        drain_wait_s: how long :meth:`shutdown` waits for the spool to be appended to the
            store; what is left stays on disk and the store's next writer appends it.

    A Recorder starts even while another process holds the store. After the run,
    ``late_spans`` says how many spans went through the spool and ``pending_spans`` how
    many still wait there (in ``spool_path``), for the run summary.
    """

    def __init__(
        self,
        store: TraceStore | str | os.PathLike[str] | None = None,
        *,
        otlp_endpoint: str | None = None,
        service_name: str = "harness",
        resource_attributes: dict[str, Any] | None = None,
        schedule_delay: float = 1.0,
        busy_wait_s: float = 1.0,
        drain_wait_s: float = 10.0,
    ) -> None:
        self.store = store if isinstance(store, TraceStore) else TraceStore(store)
        self.exporter = DuckDBSpanExporter(
            self.store,
            # Kept open from one batch to the next and across short pauses (opening costs
            # 10-40 ms of CPU); a process that asks for the file still gets it at once.
            linger=min(max(5.0, schedule_delay * 1.5), 30.0),
            busy_wait_s=busy_wait_s,
            drain_wait_s=drain_wait_s,
        )
        # The store keeps model calls' content as request/response blobs, not as the
        # conventions' message attributes; a collector gets those unless content is off.
        exporters: list[SpanExporter] = [WithoutAttributes(self.exporter, MESSAGES)]
        url = _traces_url(otlp_endpoint) if otlp_endpoint else otlp_endpoint_from_env()
        if url:
            otlp = _otlp_exporter(url)
            exporters.append(otlp if content_enabled() else WithoutAttributes(otlp, CONTENT))
        self.processor = BackpressureSpanProcessor(
            exporters, schedule_delay=schedule_delay, transform=self._offload
        )
        resource = Resource.create({SERVICE_NAME: service_name, **(resource_attributes or {})})
        # The record must be complete: no attribute, event or link limits.
        limits = SpanLimits(
            max_span_attributes=SpanLimits.UNSET,
            max_events=SpanLimits.UNSET,
            max_links=SpanLimits.UNSET,
            max_event_attributes=SpanLimits.UNSET,
            max_link_attributes=SpanLimits.UNSET,
            max_attribute_length=SpanLimits.UNSET,
            max_span_attribute_length=SpanLimits.UNSET,
        )
        self.provider = TracerProvider(resource=resource, span_limits=limits)
        self.provider.add_span_processor(self.processor)
        self._closed = False
        # Spans still queued at interpreter exit are written. Turning SIGTERM into an orderly
        # exit (so `with` blocks and this hook run) is the application's decision, not ours.
        atexit.register(self.shutdown)

    def tracer(self, name: str = "harness", version: str | None = None) -> Tracer:
        return self.provider.get_tracer(name, version)

    def add_producer(self, wait: Callable[[float], bool]) -> Callable[[], None]:
        """Register instrumentation that ends its spans on a thread of its own (a sandbox's
        record thread): :meth:`flush` first waits, through ``wait(timeout_s)``, for what it
        was handed. Returns the function that unregisters it."""
        return self.processor.add_producer(wait)

    def put_blob(self, data: bytes) -> str:
        """Store a payload; returns the ``sha256:<hex>`` ref for a span attribute."""
        return blob_ref(self.exporter.put_blob(data))

    def _offload(self, span: ReadableSpan) -> ReadableSpan:
        attrs = span.attributes
        # Message attributes stay inline (capped by their producer): a collector renders
        # them, and the store drops them anyway.
        if not attrs or not any(
            isinstance(v, str) and len(v) > INLINE_LIMIT and k not in MESSAGES
            for k, v in attrs.items()
        ):
            return span
        new: dict[str, Any] = {}
        for k, v in attrs.items():
            if isinstance(v, str) and len(v) > INLINE_LIMIT and k not in MESSAGES:
                data = v.encode("utf-8", errors="surrogateescape")
                new[k + Attr.BLOB_SUFFIX] = self.put_blob(data)
                new[k + Attr.BYTES_SUFFIX] = len(data)
            else:
                new[k] = v
        return with_attributes(span, new)

    @property
    def late_spans(self) -> int:
        """Spans that reached the store through the spool (or still wait there) because
        another process held the file when they were written."""
        return self.exporter.late_spans

    @property
    def pending_spans(self) -> int:
        """Spans of this recorder still in the spool (``spool_path``), not yet in the store;
        after :meth:`shutdown`, what the store's next writer will append."""
        return self.exporter.pending_spans

    @property
    def spool_path(self) -> Path:
        """The folder next to the store where batches wait while the store is held."""
        return self.store.spool_dir

    def flush(self, timeout_s: float = 60.0) -> bool:
        """Commit everything recorded so far (to the store, or durably to its spool)."""
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self, drain_wait_s: float | None = None) -> None:
        """Write everything queued, wait up to ``drain_wait_s`` (default: the constructor's)
        for the spool to reach the store, and stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if drain_wait_s is not None:
            self.exporter.drain_wait_s = drain_wait_s
        self.provider.shutdown()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()
