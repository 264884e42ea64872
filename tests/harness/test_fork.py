"""Fork: a recorded trial's state restored before one of its steps (its earlier steps
re-executed), then another agent (or model) goes on from there on the live session; a model
is handed the conversation up to that step. The fork is a linked trial, scored like any."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

import traces
from tests.conftest import harbor_fixtures, harness_cli
from tests.harness.openai_api import Model, message, response, shell_call
from tests.harness.test_openai_agent import run_openai, six_turns
from tests.harness.test_replay import TASKS, scripted_run
from traces.vocab import Attr


def fork(db: Path, trial: str, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    res = harness_cli("fork", trial, "--db", str(db), "--json", *args)
    try:
        result = json.loads(res.stdout)
    except ValueError:
        result = None
    return res, result


def root_of(store: traces.TraceStore, trial: str) -> tuple[str, dict[str, Any]]:
    """A trial's root span: its id and attributes."""
    row = store.sql(
        "SELECT span_id, attributes FROM spans WHERE parent_span_id IS NULL AND trial_id = ?",
        [trial],
    ).iloc[0]
    return row.span_id, json.loads(row.attributes)


def agent_commands(store: traces.TraceStore, trial: str) -> list[tuple[int, str, str]]:
    """(step, command, stdout) of the agent's commands, in step order."""
    rows = store.sql(
        "SELECT step, command, stdout FROM commands WHERE trial_id = ? AND actor = 'agent' "
        "ORDER BY step",
        [trial],
    )
    return [
        (int(s), c, o or "") for s, c, o in zip(rows.step, rows.command, rows.stdout, strict=True)
    ]


def without_reasoning(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items as a fork hands them over: no reasoning, no item ids."""
    return [
        {k: v for k, v in item.items() if k != "id"}
        for item in items
        if item.get("type") != "reasoning"
    ]


STEPS = (
    "mkdir -p /tmp/f && cd /tmp/f && echo one > 1 && export MARK=from-step-1",
    "echo two > /tmp/f/2",
    "echo three > /tmp/f/3",
)


def test_a_fork_restores_the_steps_before_STEP_and_hands_over_the_live_session(
    base_image: str, tmp_path: Path
) -> None:
    db, trial = scripted_run(tmp_path, *STEPS)
    script = tmp_path / "fork.yaml"
    script.write_text(json.dumps({"commands": ["ls /tmp/f; cat /tmp/f/*; echo mark=$MARK; pwd"]}))
    res, result = fork(db, trial, "--at", "2", "--agent", "scripted", "--script", str(script))
    assert res.returncode == 0, res.stdout + res.stderr
    assert (result["original"], result["at"], result["agent"]) == (trial, 2, "scripted")
    assert result["restored_steps"] == 1 and result["restored_as_recorded"]
    assert result["history_items"] is None  # a scripted agent takes no conversation
    assert (result["recorded_outcome"], result["outcome"]) == ("failed", "failed")
    store = traces.TraceStore(db)
    forked = result["fork"]
    # Step 1 re-executed; the new agent's first step is step 2, run where step 1 left the
    # container (its file, but not step 2's) and the shell (its directory and variable).
    assert agent_commands(store, forked) == [
        (1, STEPS[0], ""),
        (2, "ls /tmp/f; cat /tmp/f/*; echo mark=$MARK; pwd", "1\none\nmark=from-step-1\n/tmp/f\n"),
    ]
    # A linked trial of its own: the trials view says what it forked, and where.
    row = store.sql("SELECT * FROM trials WHERE trial_id = ?", [forked]).iloc[0]
    assert (row.fork_of, row.fork_at, row.agent, row.outcome) == (trial, 2, "scripted", "failed")
    assert row.run_id != store.trial(trial).run_id
    original_root, _ = root_of(store, trial)
    fork_root, attrs = root_of(store, forked)
    links = store.sql("SELECT linked_span_id FROM span_links WHERE span_id = ?", [fork_root])
    assert original_root in list(links.linked_span_id)
    assert attrs[Attr.FORK_OF] == trial and attrs[Attr.FORK_AT] == 2
    assert Attr.FORK_HISTORY not in attrs
    # N+1 forks after the last step; people read what was restored and how it went.
    text = harness_cli("fork", trial, "--at", "4", "--agent", "nop", "--db", str(db))
    assert text.returncode == 0, text.stderr
    assert f"restored: steps 1-3 of {trial} re-executed (all as recorded)" in text.stdout
    assert "nop took over at step 4: reward 0 -> 0 (failed -> failed)" in text.stdout
    after = store.sql("SELECT trial_id, fork_at FROM trials WHERE fork_at = 4")
    assert len(after) == 1
    assert [c[0] for c in agent_commands(store, after.trial_id[0])] == [1, 2, 3]


def test_what_cannot_be_forked_says_why_and_exits_2(base_image: str, tmp_path: Path) -> None:
    db, trial = scripted_run(tmp_path, "true", "true")
    for at in ("0", "4"):
        res, _ = fork(db, trial, "--at", at, "--agent", "nop")
        assert res.returncode == 2, res.stdout + res.stderr
        assert f"--at {at}: trial {trial} has 2 steps, so STEP must be 1..3" in res.stderr
    res, _ = fork(db, "no-such-trial", "--at", "1", "--agent", "nop")
    assert res.returncode == 2 and "no trial 'no-such-trial'" in res.stderr
    res, _ = fork(db, trial, "--at", "1", "--agent", "nop", "--model", "x")
    assert res.returncode == 2 and "agent nop has no option --model" in res.stderr
    assert len(traces.TraceStore(db).trials()) == 1  # nothing was run


@pytest.mark.parametrize("store", [False, True], ids=["stateless", "stateful"])
def test_a_model_fork_continues_the_recorded_conversation_with_a_new_model(
    base_image: str, tmp_path: Path, serve: Any, api_key: str, store: bool
) -> None:
    model = Model(six_turns(native=True))
    db = tmp_path / "t.duckdb"
    res = run_openai(serve(model), db, *(["--store"] if store else []))
    assert res.returncode == 0, res.stderr
    assert len(model.requests) == 6
    trial = traces.TraceStore(db).trials()[0].trial_id
    # Turn 3 took step 4 (turns took steps [1], [2, 3], [4], [5], [6, 7]).
    new = Model(
        [
            (200, response(101, shell_call(101, ["echo from-the-new-model"]))),
            (200, response(102, message(102, "Done from here."))),
        ]
    )
    # The strict server accepts outputs only for calls it issued; the conversation handed
    # over holds calls the original endpoint issued (one API, another model).
    new.calls.update(model.calls)
    url = serve(new)
    res, result = fork(
        db, trial, "--at", "4", "--agent", "openai", "--model", "new-model", "--base-url", url
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(model.requests) == 6  # not one request reached the original model's server
    assert new.errors == [] and len(new.requests) == 2
    first = new.requests[0][2]
    # The conversation up to turn 3, as the original's third request carried it (stateless),
    # or as its chain of requests and responses adds up to (stateful); no reasoning.
    third = model.requests[2][2]["input"]
    recorded = model.responses["resp_2"].context + third if store else third
    assert any(i.get("type") == "reasoning" for i in recorded)
    assert first["input"] == without_reasoning(recorded)
    assert first["model"] == "new-model" and "previous_response_id" not in first
    assert first["store"] is store  # the recorded run's options, under the ones given
    assert first["input"][0]["content"] == model.requests[0][2]["input"][0]["content"]
    assert [i.get("type") for i in first["input"]] == [
        None, "shell_call", "shell_call_output", "shell_call", "shell_call_output",
    ]  # fmt: skip
    assert result["history_items"] == 5 and result["restored_steps"] == 3
    assert (result["agent"], result["model"]) == ("openai", "new-model")
    # The old model fixed the bug at steps 4-7; the new one only echoed: scored as such.
    assert (result["recorded_outcome"], result["outcome"]) == ("passed", "failed")
    s = traces.TraceStore(db)
    forked = result["fork"]
    commands = agent_commands(s, forked)
    assert [c[0] for c in commands] == [1, 2, 3, 4]
    assert commands[3][1:] == ("echo from-the-new-model", "from-the-new-model\n")
    assert [c[1] for c in commands[:3]] == [c[1] for c in agent_commands(s, trial)[:3]]
    turns = s.sql(
        "SELECT model, CAST(caused_steps AS VARCHAR) AS caused FROM llm_calls "
        "WHERE trial_id = ? ORDER BY started_at",
        [forked],
    )
    assert list(turns.model) == ["new-model"] * 2 and turns.caused[0] == "[4]"
    _, attrs = root_of(s, forked)
    assert attrs[Attr.FORK_HISTORY] == 5 and attrs[Attr.FORK_AT] == 4
    row = s.sql("SELECT model, fork_of FROM trials WHERE trial_id = ?", [forked]).iloc[0]
    assert (row.model, row.fork_of) == ("new-model", trial)


def test_a_conversation_is_not_cut_inside_a_turn_nor_handed_to_another_api(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    model = Model(six_turns(native=True))
    db = tmp_path / "t.duckdb"
    assert run_openai(serve(model), db).returncode == 0
    trial = traces.TraceStore(db).trials()[0].trial_id
    new = Model([])
    url = serve(new)
    res, _ = fork(db, trial, "--at", "3", "--agent", "openai", "--base-url", url)
    assert res.returncode == 2
    assert "step 3 is inside model turn 2" in res.stderr and "took steps 2-3" in res.stderr
    assert "fork at step 2 (the turn's first step) or 4" in res.stderr
    res, _ = fork(db, trial, "--at", "4", "--agent", "openai", "--api", "chat", "--base-url", url)
    assert res.returncode == 2 and "give --api responses" in res.stderr
    res, _ = fork(
        db, trial, "--at", "4", "--agent", "openai", "--shell-tool", "function", "--base-url", url
    )
    assert res.returncode == 2 and "give --shell-tool native" in res.stderr
    assert new.requests == [] and len(model.requests) == 6
    assert len(traces.TraceStore(db).trials()) == 1
    # After the last step (N+1) is between turns: the conversation the final turn was sent with.
    last = Model([(200, response(201, message(201, "Nothing to add.")))])
    last.calls.update(model.calls)
    res, result = fork(db, trial, "--at", "8", "--agent", "openai", "--base-url", serve(last))
    assert res.returncode == 0, res.stdout + res.stderr
    assert last.errors == [] and len(last.requests) == 1
    assert last.requests[0][2]["input"] == without_reasoning(model.requests[5][2]["input"])
    assert result["history_items"] == 11 and result["restored_steps"] == 7
    # Inside a turn is fine for an agent that takes no conversation.
    res, result = fork(db, trial, "--at", "3", "--agent", "nop")
    assert res.returncode == 0, res.stderr
    assert result["restored_steps"] == 2 and result["history_items"] is None


def test_a_multi_stage_fork_restores_earlier_stages_and_takes_over_in_steps_stage(
    base_image: str, tmp_path: Path
) -> None:
    """The oracle writes and runs each stage's solve.sh: steps 1-2 create /app/hello.txt
    (stage create-file, its test passes), steps 3-4 append to it (stage append-content)."""
    db = tmp_path / "t.duckdb"
    res = harness_cli(
        "run", str(harbor_fixtures() / "hello-multi-step-simple"), "--agent", "oracle",
        "--image-map", "ubuntu:24.04=harness-base:bookworm", "--db", str(db),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    store = traces.TraceStore(db)
    trial = store.trials()[0].trial_id
    script = tmp_path / "cat.yaml"
    script.write_text(json.dumps({"commands": ["cat /app/hello.txt"]}))

    def staged(forked: str) -> list[tuple[int, str, str, str]]:
        rows = store.sql(
            "SELECT step, stage, command, stdout FROM commands WHERE trial_id = ? "
            "AND actor = 'agent' ORDER BY step",
            [forked],
        )
        return list(zip(rows.step, rows.stage, rows.command, rows.stdout, strict=True))

    # At 3: stage create-file re-executed (and verified: it passes), the new agent takes over
    # in stage append-content.
    res, result = fork(db, trial, "--at", "3", "--agent", "scripted", "--script", str(script))
    assert res.returncode == 0, res.stdout + res.stderr
    assert staged(result["fork"]) == [
        (2, "create-file", "bash /solution/solve.sh", "Done!\n"),
        (3, "append-content", "cat /app/hello.txt", "Hello\n"),
    ]
    assert result["restored_steps"] == 2 and result["reward"] == 0.5  # stage rewards 1, 0
    # At 2: inside stage create-file; the new agent then runs every later stage in full.
    res, result = fork(db, trial, "--at", "2", "--agent", "scripted", "--script", str(script))
    assert res.returncode == 0, res.stdout + res.stderr
    assert [(n, stage) for n, stage, _, _ in staged(result["fork"])] == [
        (2, "create-file"),
        (3, "append-content"),
    ]
    assert result["restored_steps"] == 1 and result["reward"] == 0.0


def _chat(i: int, commands: list[str] | None) -> tuple[int, dict[str, Any]]:
    """A Chat Completions answer: one shell call, or (None) a final answer."""
    msg: dict[str, Any] = {"role": "assistant", "content": "Done." if commands is None else None}
    if commands is not None:
        args = json.dumps({"commands": commands})
        msg["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": "shell", "arguments": args},
            }
        ]
    return 200, {
        "id": f"chat-{i}",
        "object": "chat.completion",
        "model": "test-chat",
        "choices": [
            {"index": 0, "finish_reason": "stop" if commands is None else "tool_calls",
             "message": msg}
        ],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
    }  # fmt: skip


def test_a_chat_completions_fork_hands_over_the_messages(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    model = Model([_chat(1, ["echo one > /tmp/one"]), _chat(2, ["echo two"]), _chat(3, None)])
    db = tmp_path / "t.duckdb"
    res = harness_cli(
        "run", str(TASKS), "--task-filter", "word-frequency", "--agent", "openai",
        "--api", "chat", "--model", "test-chat", "--base-url", serve(model), "--db", str(db),
    )  # fmt: skip
    assert res.returncode in (0, 1), res.stderr
    trial = traces.TraceStore(db).trials()[0].trial_id
    new = Model([_chat(11, ["cat /tmp/one"]), _chat(12, None)])
    res, result = fork(db, trial, "--at", "2", "--agent", "openai", "--base-url", serve(new))
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(model.requests) == 3 and len(new.requests) == 2 and new.errors == []
    first = new.requests[0][2]["messages"]
    recorded = model.requests[1][2]["messages"]  # the request of the turn that took step 2
    assert first == recorded and [m["role"] for m in first] == [
        "system", "user", "assistant", "tool",
    ]  # fmt: skip
    assert result["history_items"] == 3  # the agent's own system message is not handed over
    store = traces.TraceStore(db)
    assert agent_commands(store, result["fork"])[1] == (2, "cat /tmp/one", "one\n")
    # The new model's second request continues its own conversation.
    second = new.requests[1][2]["messages"]
    assert second[:4] == recorded and second[-1]["tool_call_id"] == "call_11"
    # Responses-API agents cannot continue a Chat Completions conversation.
    res, _ = fork(db, trial, "--at", "2", "--agent", "openai", "--api", "responses")
    assert res.returncode == 2 and "give --api chat" in res.stderr


def test_a_snapshot_fork_and_a_reexecute_fork_restore_the_same_files(
    base_image: str, tmp_path: Path
) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(
        json.dumps(
            {
                "commands": [
                    "mkdir -p /work && cd /work && echo a > a && head -c 4096 /dev/zero > z",
                    "echo b > /work/b && chmod 600 /work/b",
                    "echo c > /work/c",
                ]
            }
        )
    )
    db = tmp_path / "t.duckdb"
    res = harness_cli(
        "run", str(TASKS), "--task-filter", "word-frequency", "--agent", "scripted",
        "--script", str(script), "--db", str(db), "--snapshot",
    )  # fmt: skip
    assert res.returncode in (0, 1), res.stderr
    trial = traces.TraceStore(db).trials()[0].trial_id
    look = tmp_path / "look.yaml"
    look.write_text(
        json.dumps({"commands": ["pwd; find /work -type f | sort | xargs sha256sum; stat -c %a b"]})
    )
    try:
        states = {}
        for how in ("snapshot", "reexecute"):
            res, result = fork(
                db, trial, "--at", "3", "--agent", "scripted", "--script", str(look),
                "--restore", how,
            )  # fmt: skip
            assert res.returncode == 0, res.stdout + res.stderr
            assert (result["restored_from_snapshot"] is not None) == (how == "snapshot")
            assert result["restored_steps"] == (0 if how == "snapshot" else 2)
            ((step, _, out),) = agent_commands(traces.TraceStore(db), result["fork"])[-1:]
            assert step == 3  # the new agent's first step is STEP, however it was restored
            states[how] = out
        assert states["snapshot"] == states["reexecute"]
        lines = states["snapshot"].splitlines()
        assert lines[0] == "/work"  # the shell's directory came back with the snapshot too
        assert [line.split()[-1] for line in lines[1:3]] == ["/work/a", "/work/b"]
        assert lines[-1] == "600" and "/work/c" not in states["snapshot"]
        # Without snapshots of the trial, --restore snapshot says why and exits 2.
        (tmp_path / "bare").mkdir()
        bare, _ = scripted_run(tmp_path / "bare", "true", "true")
        other = traces.TraceStore(bare).trials()[0].trial_id
        res, _ = fork(bare, other, "--at", "2", "--agent", "nop", "--restore", "snapshot")
        assert res.returncode == 2 and "harness run --snapshot" in res.stderr
    finally:
        import docker

        from sandbox import find_snapshots

        for snap in find_snapshots(trial):
            docker.from_env().api.remove_image(snap.image_id, force=True)
