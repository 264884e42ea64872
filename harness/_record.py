"""How harness names and roots what it records: run ids and the trial root span.

Every trial, whether a suite's or a one-off ``harness exec``, is one trace whose root is built
here, so every reader finds the same attributes on it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.trace import Link, SpanContext, Status, StatusCode, Tracer
from opentelemetry.trace import Span as OtelSpan

from traces.vocab import Attr, Outcome, Span

SCOPE = "harness.runner"  # the instrumentation scope of everything the runner records
PROVIDER = "harness"  # gen_ai.provider.name of an agent that calls no model


def new_run_id() -> str:
    """A run id: sortable by start time, unique without coordination."""
    return f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def new_trial_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def trial_root(
    tracer: Tracer,
    *,
    run_id: str,
    task_id: str,
    agent: str,
    trial_id: str,
    trial_index: int = 0,
    content_hash: str | None = None,
    model: str | None = None,
    image_name: str | None = None,
    image_id: str | None = None,
    provider: str | None = None,
    run_span: SpanContext | None = None,
    links: Sequence[SpanContext] = (),
) -> Iterator[OtelSpan]:
    """The root span of one trial (current inside the block): an ``invoke_agent`` span as
    the GenAI conventions define it, in the run's session so backends group a run's trials.
    ``provider`` is the agent's model provider (``gen_ai.provider.name``); an agent without
    a model is its own provider, ``harness``. A suite's trial links to ``run_span``, its run's
    ``harness.run`` span, so a backend leads from a run to its trials and back; a replay or
    fork also links to the trial it came from (``links``)."""
    attrs: dict[str, Any] = {
        Attr.GEN_AI_OPERATION: Span.TRIAL,
        Attr.GEN_AI_PROVIDER_NAME: provider or PROVIDER,
        Attr.SESSION_ID: run_id,
        Attr.RUN_ID: run_id,
        Attr.TASK_ID: task_id,
        Attr.TRIAL_ID: trial_id,
        Attr.TRIAL_INDEX: trial_index,
        Attr.GEN_AI_AGENT_NAME: agent,
    }
    optional = {
        Attr.TASK_CONTENT_HASH: content_hash,
        Attr.GEN_AI_REQUEST_MODEL: model,
        Attr.IMAGE_NAME: image_name,
        Attr.IMAGE_ID: image_id,
    }
    attrs.update({k: v for k, v in optional.items() if v})
    spans = [run_span, *links] if run_span is not None else list(links)
    with tracer.start_as_current_span(
        Span.trial(agent), attributes=attrs, links=[Link(s) for s in spans] or None
    ) as root:
        yield root


def finish_trial(
    root: OtelSpan,
    outcome: str,
    *,
    steps: int | None = None,
    reward: float | None = None,
    error: str = "",
) -> None:
    """Record how a trial ended on its root span; an error outcome marks the span Error."""
    attrs: dict[str, Any] = {Attr.OUTCOME: outcome, Attr.PASSED: outcome == Outcome.PASSED}
    if steps is not None:
        attrs[Attr.STEPS] = steps
    if reward is not None:
        attrs[Attr.REWARD] = reward
    if error:
        attrs[Attr.ERROR] = error[:4000]
    root.set_attributes(attrs)
    if Outcome.is_error(outcome):
        root.set_attribute(Attr.ERROR_TYPE, outcome)
        root.set_status(Status(StatusCode.ERROR, outcome))
