"""A trial's story from the store alone: excerpts safe to print, the model's words at the steps
they caused, the verifier's output, a run's trials failures first. Built on recorded spans
(no sandbox), so every expectation is exact."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import Span as OtelSpan

import reports
import traces
from reports import NoSuchStep, excerpt, printable
from traces import Recorder, TraceStore
from traces.vocab import Actor, Attr, Outcome, Span

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


# -- excerpts --------------------------------------------------------------------------------


def test_an_excerpt_keeps_head_and_tail_and_counts_what_it_left_out() -> None:
    data = b"".join(f"line {i}\n".encode() for i in range(1, 21))
    ex = excerpt(data, head=3, tail=2, width=100)
    assert ex.head == ("line 1", "line 2", "line 3")
    assert ex.tail == ("line 19", "line 20")
    assert (ex.lines, ex.bytes, ex.omitted_lines) == (20, len(data), 15)
    assert ex.omitted_bytes == sum(len(f"line {i}\n") for i in range(4, 19))
    assert not ex.complete
    big = excerpt(b"x\r\n" * 1_000_000 + b"end", head=1, tail=2, width=100)
    assert (big.head, big.tail, big.lines) == (("x",), ("x", "end"), 1_000_001)
    assert (big.omitted_lines, big.omitted_bytes) == (999_998, 3 * 999_998)
    whole = excerpt(b"a\nb", head=3, tail=2, width=100)  # no final newline: still 2 lines
    assert (whole.head, whole.tail, whole.lines, whole.complete) == (("a", "b"), (), 2, True)


def test_an_excerpt_escapes_what_a_terminal_would_act_on_and_cuts_long_lines() -> None:
    data = b"caf\xe9\n\x1b[31mred\r\n[bold]x[/]\tok\n" + b"y" * 300 + b"\n"
    ex = excerpt(data, head=10, tail=0, width=100, total_bytes=len(data) + 50)
    assert ex.head[:3] == ("caf\\xe9", "\\x1b[31mred", "[bold]x[/]\tok")
    assert ex.head[3] == "y" * 100 + " … (a line of 300 bytes)"
    assert (ex.cut_lines, ex.unrecorded_bytes) == (1, 50)


def test_printable_spells_out_control_characters_and_stray_bytes() -> None:
    assert printable("a\udce9b") == "a\\xe9b"  # a byte kept by surrogateescape
    assert printable("\ud800") == "\\xed\\xa0\\x80"  # a surrogate that stands for no byte
    assert printable("x\ny\x9b") == "x\\x0ay\\x9b"
    assert printable("x\ny", newlines=True) == "x\ny"


# -- a recorded trial ------------------------------------------------------------------------


class Builder:
    """Records trials span by span, at explicit times."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.tracer = rec.tracer("tests")
        self.t = 0

    @contextmanager
    def span(self, name: str, parent: OtelSpan | None = None, **attrs: Any) -> Iterator[OtelSpan]:
        self.t += 10
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            name, context=ctx, attributes=attrs or None, start_time=T0 + self.t * MS
        )
        yield span
        self.t += 10
        span.end(end_time=T0 + self.t * MS)

    def chat(self, parent: OtelSpan, body: bytes, steps: list[int] | None = None) -> None:
        attrs: dict[str, Any] = {
            Attr.GEN_AI_REQUEST_MODEL: "m",
            Attr.RESPONSE_BLOB: self.rec.put_blob(body),
        }
        if steps:
            attrs[Attr.CAUSED_STEPS] = steps
        with self.span(Span.chat("m"), parent, **attrs):
            pass

    def command(self, parent: OtelSpan, line: str, **attrs: Any) -> None:
        out = attrs.pop("stdout", None)
        if out is not None:
            attrs[Attr.STDOUT_BLOB] = self.rec.put_blob(out)
            attrs[Attr.STDOUT_BYTES] = len(out)
        with self.span(Span.exec(line), parent, **{Attr.COMMAND_LINE: line, **attrs}):
            pass

    def trial(self, run_id: str, trial_id: str, outcome: str, **attrs: Any) -> OtelSpan:
        return self.tracer.start_span(
            Span.trial("a"),
            attributes={
                Attr.RUN_ID: run_id,
                Attr.TRIAL_ID: trial_id,
                Attr.TASK_ID: trial_id,
                Attr.TRIAL_INDEX: 0,
                Attr.OUTCOME: outcome,
                Attr.REWARD: 1.0 if outcome == Outcome.PASSED else 0.0,
                **attrs,
            },
            start_time=T0 + self.t * MS,
        )


RESPONSES_ANSWER = {
    "output": [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "look first"}]},
        {
            "type": "message",
            "content": [
                {"type": "output_text", "text": "First I look.\nThen I act.\nThird.\nFourth."}
            ],
        },
        {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{}"},
    ]
}
CHAT_ANSWER = {"choices": [{"message": {"role": "assistant", "content": "All [b]done[/b]."}}]}


def record(store: TraceStore) -> None:
    """run-1: an agent trial (t-agent, failed) with three model turns, two steps and the
    verifier; a trial that passed; one that ended in an error; and one recorded before steps
    were numbered (t-old)."""
    with Recorder(store) as rec:
        b = Builder(rec)
        root = b.trial("run-1", "t-agent", Outcome.FAILED)
        with b.span(Span.AGENT, root) as agent:
            b.chat(agent, b"<html>not json</html>")
            b.chat(agent, json.dumps(RESPONSES_ANSWER).encode(), steps=[1, 2])
            agent_attrs = {Attr.ACTOR: Actor.AGENT, Attr.EXIT_CODE: 0}
            b.command(agent, "ls", **{Attr.STEP: 1, "stdout": b"a\nb\n", **agent_attrs})
            b.command(agent, "cat a", **{Attr.STEP: 2, **agent_attrs})
            b.chat(agent, json.dumps(CHAT_ANSWER).encode())
        with b.span(Span.VERIFY, root) as verify:
            b.command(
                verify,
                "bash /tests/test.sh",
                **{
                    Attr.ACTOR: Actor.VERIFIER,
                    Attr.EXIT_CODE: 1,
                    "stdout": b"".join(b"check %d\n" % i for i in range(30)),
                },
            )
        root.end(end_time=T0 + b.t * MS)
        for trial_id, outcome in (("t-ok", Outcome.PASSED), ("t-err", Outcome.INFRA_ERROR)):
            b.trial("run-1", trial_id, outcome).end(end_time=T0 + (b.t + 5) * MS)
            b.t += 10
        old = b.trial("run-2", "t-old", Outcome.PASSED)
        with b.span(Span.AGENT, old) as agent:
            b.command(agent, "make", **{Attr.EXIT_CODE: 2})
        old.end(end_time=T0 + b.t * MS)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TraceStore:
    s = TraceStore(tmp_path_factory.mktemp("story") / "t.duckdb")
    record(s)
    return s


def test_model_turns_read_either_api_and_name_the_steps_they_caused(store: TraceStore) -> None:
    turns = store.model_turns("t-agent")
    assert all(isinstance(t, traces.ModelTurn) for t in turns)
    assert [(t.index, t.caused_steps) for t in turns] == [(1, ()), (2, (1, 2)), (3, ())]
    assert turns[0].message is None and turns[0].response_ref  # not JSON: kept, no text
    assert turns[1].message == "First I look.\nThen I act.\nThird.\nFourth."
    assert turns[1].reasoning == "look first"
    assert turns[2].message == "All [b]done[/b]."  # Chat Completions


def test_a_trial_story_tells_the_model_words_steps_and_verifier(store: TraceStore) -> None:
    story = reports.trial_story(store, "t-ag")  # a prefix, as a user types it
    assert story.trial.trial_id == "t-agent" and story.turns == 3
    assert [(s.step, s.action, s.turn) for s in story.steps] == [(1, "ls", 2), (2, "cat a", 2)]
    first, second = story.steps
    # The turn's message is told once, at its first step, cut to three lines.
    assert first.message is not None and second.message is None
    assert first.message.head == ("First I look.", "Then I act.", "Third.")
    assert first.message.omitted_lines == 1
    assert first.stdout is not None and first.stdout.head == ("a", "b")
    assert second.stdout is None  # it wrote nothing
    assert story.final_message is not None
    assert story.final_message.head == ("All [b]done[/b].",)
    # The verifier's output is told by its tail: where tests say what failed.
    (verifier,) = story.verifier
    assert (verifier.command, verifier.exit_code) == ("bash /tests/test.sh", 1)
    assert verifier.stdout is not None
    assert verifier.stdout.head == () and verifier.stdout.tail[-1] == "check 29"
    assert len(verifier.stdout.tail) == 10 and verifier.stdout.omitted_lines == 20
    doc = json.loads(json.dumps(story.to_json()))
    assert doc["kind"] == "trial" and [s["step"] for s in doc["steps"]] == [1, 2]
    assert doc["trial"]["started_at"].endswith("+00:00")


def test_one_step_in_full_with_its_turn_message(store: TraceStore) -> None:
    story = reports.trial_story(store, "t-agent", step=2)
    (step,) = story.steps
    assert (step.step, story.step_count, story.only_step) == (2, 2, 2)
    # Shown alone, a step tells the message of the turn that caused it, in full.
    assert step.message is not None and step.message.lines == 4 and step.message.complete
    assert story.verifier == () and story.final_message is None
    with pytest.raises(NoSuchStep, match="no step 3: its steps are 1-2"):
        reports.trial_story(store, "t-agent", step=3)


def test_a_record_without_numbered_steps_tells_its_agent_commands(store: TraceStore) -> None:
    story = reports.trial_story(store, "t-old")
    assert [(s.step, s.action, s.exit_code) for s in story.steps] == [(1, "make", 2)]


def test_a_run_lists_failures_then_errors_then_passes(store: TraceStore) -> None:
    story = reports.run_story(store, "run-1")
    assert [t.trial_id for t in story.trials] == ["t-agent", "t-err", "t-ok"]
    assert json.loads(json.dumps(story.to_json()))["run"]["run_id"] == "run-1"


def test_an_id_names_a_run_or_a_trial(store: TraceStore) -> None:
    assert isinstance(reports.find(store, "run-1"), traces.Run)
    assert isinstance(reports.find(store, "run-2"), traces.Run)
    trial = reports.find(store, "t-ag")
    assert isinstance(trial, traces.Trial) and trial.trial_id == "t-agent"


def test_an_unknown_or_ambiguous_id_says_how_to_find_ids(store: TraceStore) -> None:
    with pytest.raises(traces.StoreError, match="harness runs"):
        reports.find(store, "nothing-like-it")
    with pytest.raises(traces.StoreError, match="ambiguous.*run-1, run-2"):
        reports.find(store, "run-")
    with pytest.raises(traces.StoreError, match="ambiguous"):
        reports.find(store, "t-o")
    with pytest.raises(traces.StoreError, match="give a trial id"):
        reports.find(store, "")


def test_blobs_are_read_together_by_ref(store: TraceStore) -> None:
    ref = store.model_turns("t-agent")[2].response_ref
    assert ref is not None
    found = store.blobs([ref, ref.removeprefix("sha256:"), "sha256:" + "0" * 64, ""])
    assert found == {ref: store.blob(ref), ref.removeprefix("sha256:"): store.blob(ref)}
