"""Wiring at the edge: a TracerProvider whose spans land in the store (and an OTLP collector).

Instrumented code (the sandbox, agents) only ever uses the OpenTelemetry API; whoever runs it
creates a :class:`Recorder` and decides where spans go.
"""

from __future__ import annotations

import atexit
import os
from types import TracebackType
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Tracer

from ._exporter import DuckDBSpanExporter
from ._processor import BackpressureSpanProcessor
from ._store import BLOB_PREFIX, TraceStore

# Attribute strings longer than this move to the blob table; the span keeps "<key>.sha256"
# and "<key>.bytes". Well-behaved instrumentation puts payloads in blobs itself.
INLINE_LIMIT = 16 * 1024


def otlp_endpoint_from_env() -> str | None:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )


def _otlp_exporter(endpoint: str) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=endpoint)  # headers etc. from OTEL_EXPORTER_OTLP_*


class Recorder:
    """Records spans into a trace store; optionally also to any OTLP/HTTP collector.

    Args:
        store: the trace store (or a path to one).
        otlp_endpoint: also send every span there (Jaeger, Phoenix, Langfuse...). Defaults to
            ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` if set.
        service_name: the ``service.name`` resource attribute.
        resource_attributes: more resource attributes.
    """

    def __init__(
        self,
        store: TraceStore | str | os.PathLike[str] | None = None,
        *,
        otlp_endpoint: str | None = None,
        service_name: str = "harness",
        resource_attributes: dict[str, Any] | None = None,
        schedule_delay: float = 1.0,
    ) -> None:
        self.store = store if isinstance(store, TraceStore) else TraceStore(store)
        self.exporter = DuckDBSpanExporter(self.store)
        exporters: list[SpanExporter] = [self.exporter]
        endpoint = otlp_endpoint or otlp_endpoint_from_env()
        if endpoint:
            exporters.append(_otlp_exporter(endpoint))
        self.processor = BackpressureSpanProcessor(
            exporters, schedule_delay=schedule_delay, transform=self._offload
        )
        resource = Resource.create({"service.name": service_name, **(resource_attributes or {})})
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
        atexit.register(self.shutdown)

    def tracer(self, name: str = "harness", version: str | None = None) -> Tracer:
        return self.provider.get_tracer(name, version)

    def put_blob(self, data: bytes) -> str:
        """Store a payload; returns the ``sha256:<hex>`` ref for a span attribute."""
        return BLOB_PREFIX + self.exporter.put_blob(data)

    def _offload(self, span: ReadableSpan) -> ReadableSpan:
        attrs = span.attributes
        if not attrs or not any(
            isinstance(v, str) and len(v) > INLINE_LIMIT for v in attrs.values()
        ):
            return span
        new: dict[str, Any] = {}
        for k, v in attrs.items():
            if isinstance(v, str) and len(v) > INLINE_LIMIT:
                data = v.encode("utf-8", errors="surrogateescape")
                new[f"{k}.sha256"] = self.put_blob(data)
                new[f"{k}.bytes"] = len(data)
            else:
                new[k] = v
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=new,
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def flush(self, timeout_s: float = 60.0) -> bool:
        """Commit everything recorded so far."""
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
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
