"""What each destination of a span sees of the conversation.

Agents put a model call's content on its span in the GenAI conventions' opt-in attributes, so
an OTel backend can render the conversation. The store does not need them: it keeps every
request and response whole as blobs, so they are dropped on the way in (no duplication). A
backend that must not see prompts, outputs or tool payloads gets none of them when content
is turned off (``harness --no-otlp-content`` or ``HARNESS_OTLP_CONTENT=0``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .vocab import Attr

# The conventions' message attributes: for OTel backends only.
MESSAGES: frozenset[str] = frozenset(
    {
        Attr.GEN_AI_INPUT_MESSAGES,
        Attr.GEN_AI_OUTPUT_MESSAGES,
        Attr.GEN_AI_SYSTEM_INSTRUCTIONS,
        Attr.GEN_AI_TOOL_DEFINITIONS,
        Attr.MESSAGES_OMITTED,
    }
)
# Everything that carries what the model or a tool said, for a backend that must see none.
CONTENT: frozenset[str] = MESSAGES | {
    Attr.GEN_AI_TOOL_CALL_ARGUMENTS,
    Attr.GEN_AI_TOOL_CALL_RESULT,
    Attr.REASONING_SUMMARY,
    Attr.TOOL_ERROR,
}


def content_enabled() -> bool:
    """Whether OTLP backends get the conversation: yes unless ``HARNESS_OTLP_CONTENT`` is
    ``0``/``false``/``no``/``off``."""
    value = os.environ.get("HARNESS_OTLP_CONTENT", "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def without(span: ReadableSpan, keys: frozenset[str]) -> ReadableSpan:
    """The span without the attributes in ``keys`` (itself when it has none of them)."""
    attrs = span.attributes
    if not attrs or keys.isdisjoint(attrs):
        return span
    return with_attributes(span, {k: v for k, v in attrs.items() if k not in keys})


def with_attributes(span: ReadableSpan, attributes: Mapping[str, Any]) -> ReadableSpan:
    """A copy of an ended span with other attributes (an ended span cannot change)."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class WithoutAttributes(SpanExporter):
    """An exporter that passes spans on to another without some attributes.

    Args:
        inner: the exporter spans go to.
        keys: the attribute keys it never sees.
    """

    def __init__(self, inner: SpanExporter, keys: frozenset[str]) -> None:
        self.inner, self.keys = inner, keys

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([without(s, self.keys) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
