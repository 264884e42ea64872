"""Spans that are over before they are made: a command's record, built after it ended."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Tracer, sampling
from opentelemetry.trace import SpanContext, SpanKind, Status, TraceFlags

Parent = Context | SpanContext | None

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_RANDOM = TraceFlags(TraceFlags.SAMPLED | getattr(TraceFlags, "RANDOM_TRACE_ID", 0))
_UNSET = Status()


class EndedSpans:
    """Makes spans whose start and end are already known, for a tracer of the OTel SDK.

    A sandbox records a command after it ended: a few spans a command, made on the record
    thread while the next command runs, where they compete with it for the interpreter. The
    SDK's ``start_span`` runs the sampler and every processor's ``on_start``, and validates
    and copies each attribute, for a span that is ended at once: about 25 us a span, ten
    times the :class:`ReadableSpan` itself. This makes the ReadableSpan directly and hands it
    to the tracer's processors' ``on_end``, deciding as the SDK's default sampler does
    (parent-based, always on at the root). So it is only for a tracer with that sampler
    (:meth:`of` says); attribute values must be OTel types (lists become tuples, as the SDK
    makes them).
    """

    def __init__(self, tracer: Tracer) -> None:
        self._processor = tracer.span_processor
        self._resource = tracer.resource
        self._ids = tracer.id_generator
        self._scope = tracer._instrumentation_scope

    @classmethod
    def of(cls, tracer: Any) -> EndedSpans | None:
        """An EndedSpans for ``tracer``, or None when it must go through ``start_span``: not
        the SDK's, another sampler, or switched off."""
        if not isinstance(tracer, Tracer) or tracer.sampler is not sampling.DEFAULT_ON:
            return None
        config = getattr(tracer, "_tracer_config", None)
        if not getattr(config, "is_enabled", True) or not hasattr(tracer, "_instrumentation_scope"):
            return None
        return cls(tracer)

    def emit(
        self,
        name: str,
        parent: Parent,
        attributes: Mapping[str, Any],
        start_ns: int,
        end_ns: int,
        events: Sequence[Event] = (),
        status: Status = _UNSET,
    ) -> SpanContext | None:
        """Record one span; returns its context (the parent of its children), or None when
        the sampler would not record it (its children are not recorded either)."""
        if isinstance(parent, Context):
            parent = trace.get_current_span(parent).get_span_context()
        if parent is not None and parent.is_valid:
            if not parent.trace_flags.sampled:
                return None
            trace_id, state = parent.trace_id, parent.trace_state
            random = getattr(parent.trace_flags, "random_trace_id", False)
        else:
            parent, trace_id, state = None, self._ids.generate_trace_id(), None
            random = getattr(self._ids, "is_trace_id_random", lambda: False)()
        context = SpanContext(
            trace_id, self._ids.generate_span_id(), False, _RANDOM if random else _SAMPLED, state
        )
        attrs = {k: tuple(v) if isinstance(v, list) else v for k, v in attributes.items()}
        self._processor.on_end(
            ReadableSpan(
                name=name,
                context=context,
                parent=parent,
                resource=self._resource,
                attributes=attrs,
                events=events,
                kind=SpanKind.INTERNAL,
                status=status,
                start_time=start_ns,
                end_time=end_ns,
                instrumentation_scope=self._scope,
            )
        )
        return context
