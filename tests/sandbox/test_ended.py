"""Spans made after the fact are the spans the SDK would have made."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from sandbox._ended import EndedSpans


def _provider(**kw: object) -> tuple[TracerProvider, InMemorySpanExporter]:
    out = InMemorySpanExporter()
    p = TracerProvider(**kw)  # type: ignore[arg-type]
    p.add_span_processor(SimpleSpanProcessor(out))
    return p, out


def _view(s: ReadableSpan) -> tuple[object, ...]:
    return (
        s.name,
        s.parent.span_id if s.parent else None,
        dict(s.attributes or {}),
        [(e.name, dict(e.attributes or {}), e.timestamp) for e in s.events],
        (s.status.status_code, s.status.description),
        s.start_time,
        s.end_time,
        s.kind,
        s.resource.attributes,
        s.instrumentation_scope,
        s.context.trace_flags,
    )


def test_an_ended_span_is_what_start_span_would_record() -> None:
    provider, out = _provider()
    tracer = provider.get_tracer("harness", "1")
    ended = EndedSpans.of(tracer)
    assert ended is not None
    with tracer.start_as_current_span("parent") as parent:
        ctx = trace.set_span_in_context(parent)
        attrs = {"a": 1, "b": "x", "c": [1, 2], "d": None, "e": True}
        sdk = tracer.start_span("cmd", context=ctx, attributes=attrs, start_time=10)
        sdk.add_event("ev", {"n": 3}, timestamp=20)
        sdk.set_status(Status(StatusCode.ERROR, "exit code 1"))
        sdk.end(end_time=20)
        child_of = ended.emit(
            "cmd",
            ctx,
            attrs,
            10,
            20,
            (Event("ev", {"n": 3}, 20),),
            Status(StatusCode.ERROR, "exit code 1"),
        )
        assert child_of is not None
        ended.emit("change", child_of, {"k": "v"}, 15, 15)
    spans = out.get_finished_spans()
    a, b, child = (s for s in spans if s.name != "parent")
    assert _view(a) == _view(b)
    assert a.context.trace_id == b.context.trace_id == child.context.trace_id
    assert child.parent is not None and child.parent.span_id == b.context.span_id
    assert b.context.span_id not in (a.context.span_id, parent.get_span_context().span_id)


def test_an_unsampled_parent_leaves_out_the_span_and_its_children() -> None:
    provider, out = _provider()
    ended = EndedSpans.of(provider.get_tracer("harness"))
    assert ended is not None
    unsampled = SpanContext(1, 2, False, TraceFlags(0))
    ctx = trace.set_span_in_context(NonRecordingSpan(unsampled))
    assert ended.emit("cmd", ctx, {}, 1, 2) is None
    assert ended.emit("root", None, {}, 1, 2) is not None
    assert [s.name for s in out.get_finished_spans()] == ["root"]


def test_another_sampler_goes_through_the_sdk() -> None:
    provider, _ = _provider(sampler=sampling.TraceIdRatioBased(0.5))
    assert EndedSpans.of(provider.get_tracer("harness")) is None
    assert EndedSpans.of(trace.NoOpTracer()) is None
