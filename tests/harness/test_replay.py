"""Replay: a recorded trial re-run in a fresh sandbox, compared step by step with its record;
model replay answered from the record; re-grading with a task's current tests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import docker
import pytest

import traces
from tests.conftest import harness_cli
from tests.harness.openai_api import Model
from tests.harness.test_openai_agent import run_openai, six_turns
from traces.vocab import Attr

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "tasks"
WORDS = (TASKS / "word-frequency" / "solution" / "solve.sh").read_text()


def scripted_run(tmp_path: Path, *commands: str, task: str = "word-frequency") -> tuple[Path, str]:
    """A recorded `scripted` trial of a bundled task: (store, trial id)."""
    script = tmp_path / "script.yaml"
    script.write_text(json.dumps({"commands": list(commands)}))
    db = tmp_path / "t.duckdb"
    res = harness_cli(
        "run", str(TASKS), "--task-filter", task, "--agent", "scripted", "--script", str(script),
        "--db", str(db),
    )  # fmt: skip
    assert res.returncode in (0, 1), res.stderr
    trial = traces.TraceStore(db).trials()[-1]
    return db, trial.trial_id


def replay(db: Path, trial: str, *options: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    res = harness_cli("replay", trial, "--db", str(db), "--json", *options)
    try:
        report = json.loads(res.stdout)
    except ValueError:
        report = None
    return res, report


def test_a_scripted_trial_replays_with_full_fidelity_and_the_same_reward(
    base_image: str, tmp_path: Path
) -> None:
    db, trial = scripted_run(
        tmp_path,
        WORDS,
        "cd /app && ls && cat top5.txt",
        "printf 'caf\\xe9\\n' > /tmp/latin1 && wc -c /tmp/latin1",
    )
    store = traces.TraceStore(db)
    assert store.trial(trial).outcome == "passed"
    res, report = replay(db, trial)
    assert res.returncode == 0, res.stdout + res.stderr
    assert report["identical"] and report["fidelity"] == 1.0
    assert [s["verdict"] for s in report["steps"]] == ["same"] * 3
    assert (report["recorded_reward"], report["reward"]) == (1.0, 1.0)
    # The replay is a trial of its own, linked to the original: SQL puts them side by side.
    pair = store.sql(
        "SELECT o.trial_id AS original, r.trial_id AS replay, r.replay_fidelity, "
        "r.reward AS replayed, o.reward FROM trials r JOIN trials o ON r.replay_of = o.trial_id"
    )
    assert list(pair.original) == [trial] and list(pair.replay) == [report["replay"]]
    assert pair.replay_fidelity[0] == 1.0
    links = store.sql(
        "SELECT l.linked_span_id FROM span_links l JOIN spans r ON r.span_id = l.span_id "
        "WHERE r.parent_span_id IS NULL AND r.trial_id = ?",
        [report["replay"]],
    )
    original_root = store.sql(
        "SELECT span_id FROM spans WHERE parent_span_id IS NULL AND trial_id = ?", [trial]
    ).span_id[0]
    assert original_root in list(links.linked_span_id)
    # Its steps carry the same numbers and commands as the original's.
    assert [a.text for a in store.actions(report["replay"])] == [
        a.text for a in store.actions(trial)
    ]


def test_what_differs_by_nature_diverges_at_its_step_unless_normalized(
    base_image: str, tmp_path: Path
) -> None:
    db, trial = scripted_run(
        tmp_path,
        "echo start",
        "date +%s%N",
        "echo $RANDOM",
        # Determinism controls: the same in every trial, so the same in a replay.
        "hostname; date +%Z; echo $LANG $PYTHONHASHSEED; python3 -c 'print(hash(\"x\"))'",
    )
    out = (
        traces.TraceStore(db)
        .sql("SELECT stdout FROM commands WHERE trial_id = ? AND step = 4", [trial])
        .stdout[0]
    )
    assert out.splitlines()[:3] == ["sandbox", "UTC", "C.UTF-8 0"]
    res, report = replay(db, trial)
    assert res.returncode == 1, res.stderr
    verdicts = {s["step"]: s for s in report["steps"]}
    assert [verdicts[n]["verdict"] for n in (1, 2, 3, 4)] == ["same", "differs", "differs", "same"]
    assert report["diverged_at"] == 2 and report["fidelity"] == 0.5
    assert verdicts[2]["differences"] == ["stdout"]
    assert (
        "--- recorded stdout" in verdicts[2]["diff"]
        and "+++ replayed stdout" in verdicts[2]["diff"]
    )
    # People see the first divergence as a diff, and the fidelity.
    text = harness_cli("replay", trial, "--db", str(db))
    assert text.returncode == 1
    assert "first divergence, step 2" in text.stdout and "fidelity 50%" in text.stdout
    # With normalizers, the same trial replays as identical, and they are named.
    res, report = replay(db, trial, "-n", "timestamps", "-n", r"(?m)^\d{1,5}$")
    assert res.returncode == 0, res.stdout
    assert report["fidelity"] == 1.0
    assert report["normalized_by"] == [r"re:(?m)^\d{1,5}$", "timestamps"]
    bad = harness_cli("replay", trial, "--db", str(db), "-n", "(")
    assert bad.returncode == 2 and "neither a preset" in bad.stderr


def test_a_write_replayed_with_other_content_diverges_at_the_step_that_wrote_it(
    base_image: str, tmp_path: Path
) -> None:
    """The oracle writes its solve.sh (step 1) and runs it (step 2); here the record's copy of
    what step 1 wrote is swapped before the replay."""
    db = tmp_path / "t.duckdb"
    res = harness_cli(
        "run", str(TASKS), "--task-filter", "word-frequency", "--agent", "oracle", "--db", str(db)
    )
    assert res.returncode == 0, res.stderr
    store = traces.TraceStore(db)
    trial = store.trials()[0].trial_id
    acts = store.actions(trial)
    assert [(a.step, a.kind) for a in acts] == [(1, "write"), (2, "command")]
    # Point the write at another blob the store holds: the verifier's reward file's text.
    swap = store.sql(
        "SELECT stdout_sha256 FROM commands WHERE trial_id = ? AND actor = 'verifier'", [trial]
    ).stdout_sha256[0]
    store.sql(
        "UPDATE spans SET attributes = json_merge_patch(attributes, json_object(?, ?)) "
        "WHERE span_id = ?",
        [Attr.WRITE_BLOB, swap, acts[0].span_id],
        write=True,
    )
    res, report = replay(db, trial)
    assert res.returncode == 1
    first = report["steps"][0]
    assert (report["diverged_at"], first["verdict"]) == (1, "differs")
    assert first["differences"] == ["/solution/solve.sh: content"]
    assert "recorded /solution/solve.sh" in first["diff"]


def test_a_record_exported_and_imported_replays_on_a_fresh_store(
    base_image: str, tmp_path: Path
) -> None:
    db, trial = scripted_run(tmp_path, WORDS)
    run_id = traces.TraceStore(db).trial(trial).run_id
    export = tmp_path / "export"
    assert (
        harness_cli("export", "--run", run_id, "-o", str(export), "--db", str(db)).returncode == 0
    )
    fresh = tmp_path / "fresh.duckdb"
    assert harness_cli("import", str(export), "--db", str(fresh)).returncode == 0
    res, report = replay(fresh, trial[:8])
    assert res.returncode == 0, res.stdout + res.stderr
    assert report["identical"] and "task from the record's archive" in report["notes"]


def test_model_replay_answers_from_the_record_and_calls_no_model(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    model = Model(six_turns(native=True))
    db = tmp_path / "t.duckdb"
    res = run_openai(serve(model), db)
    assert res.returncode == 0, res.stderr
    assert len(model.requests) == 6
    trial = traces.TraceStore(db).trials()[0].trial_id
    # unittest prints how long it ran ("Ran 3 tests in 0.001s"), which the agent sends back
    # to the model: durations are normalized, in outputs and in requests alike.
    res, report = replay(db, trial, "--agent", "-n", "durations")
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(model.requests) == 6  # not one request reached the model's server
    assert report["mode"] == "model" and report["identical"], report
    assert report["fidelity"] == 1.0 and len(report["steps"]) == 7  # 7 commands in 5 calls
    # The model turns of the replay name the same steps as the original's.
    store = traces.TraceStore(db)
    caused = store.sql(
        "SELECT trial_id, CAST(list(caused_steps ORDER BY started_at) AS VARCHAR) AS c "
        "FROM llm_calls GROUP BY 1"
    )
    assert len(caused) == 2 and caused.c[0] == caused.c[1]
    assert caused.c[0].replace(" ", "") == "[[1],[2,3],[4],[5],[6,7],NULL]"
    # Environment replay of the same trial needs no model at all.
    res, report = replay(db, trial, "-n", "durations")
    assert res.returncode == 0 and report["mode"] == "environment"


def test_model_replay_shows_a_request_that_differs_from_the_record(
    base_image: str, tmp_path: Path, serve: Any, api_key: str
) -> None:
    model = Model(six_turns(native=True))
    db = tmp_path / "t.duckdb"
    assert run_openai(serve(model), db).returncode == 0
    store = traces.TraceStore(db)
    trial = store.trials()[0].trial_id
    # The record says the agent's third request carried other instructions than the agent
    # (run again) sends: the replay stops there, with the two requests' diff.
    third = store.sql(
        "SELECT span_id, request_sha256 FROM llm_calls WHERE trial_id = ? ORDER BY started_at",
        [trial],
    ).iloc[2]
    request = json.loads(store.blob(third.request_sha256))
    request["instructions"] = "Something else entirely."
    with traces.Recorder(store) as rec:
        ref = rec.put_blob(json.dumps(request, sort_keys=True).encode())
    store.sql(
        "UPDATE spans SET attributes = json_merge_patch(attributes, json_object(?, ?)) "
        "WHERE span_id = ?",
        [Attr.REQUEST_BLOB, ref, third.span_id],
        write=True,
    )
    res, report = replay(db, trial, "--agent", "-n", "durations")
    assert res.returncode == 1 and len(model.requests) == 6
    d = report["model_divergence"]
    assert d is not None and d["call"] == 3 and "asked something else" in d["reason"]
    assert "--- recorded request 3" in d["diff"]
    removed = [line for line in d["diff"].splitlines() if line.startswith("-")]
    assert any("Something else entirely." in line for line in removed)
    # It stopped at the divergence: the steps after call 3 were never taken.
    assert [s["verdict"] for s in report["steps"]][3:] == ["missing"] * 4


def test_regrade_scores_the_recorded_steps_with_the_tasks_current_tests(
    base_image: str, tmp_path: Path
) -> None:
    db, trial = scripted_run(tmp_path, "echo nothing useful")
    assert traces.TraceStore(db).trial(trial).outcome == "failed"
    fixed = tmp_path / "word-frequency"
    shutil.copytree(TASKS / "word-frequency", fixed)
    (fixed / "tests" / "test.sh").write_text(
        "#!/bin/bash\nmkdir -p /logs/verifier && echo 1 > /logs/verifier/reward.txt\n"
    )
    res, report = replay(db, trial, "--task", str(fixed))
    assert res.returncode == 1  # the reward changed: not identical
    assert report["mode"] == "regrade" and report["fidelity"] == 1.0
    assert (report["recorded_reward"], report["reward"]) == (0.0, 1.0)
    other = tmp_path / "other"
    shutil.copytree(TASKS / "log-report", other)
    res, _ = replay(db, trial, "--task", str(other))
    assert res.returncode == 2 and "ran 'word-frequency'" in res.stderr
    # A whole run, re-graded against a folder of tasks as they are now.
    run_id = traces.TraceStore(db).trial(trial).run_id
    res = harness_cli("regrade", run_id, "--tasks", str(tmp_path), "--db", str(db), "--json")
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(res.stdout)
    assert (row["trial"], row["recorded_reward"], row["reward"]) == (trial, 0.0, 1.0)
    assert row["outcome"] == "passed" and row["fidelity"] == 1.0
    res = harness_cli("regrade", run_id, "--tasks", str(other), "--db", str(db))
    assert res.returncode == 2 and "no task 'word-frequency'" in res.stdout


def test_what_cannot_be_replayed_says_why_and_exits_2(base_image: str, tmp_path: Path) -> None:
    db, trial = scripted_run(tmp_path, "true")
    res = harness_cli("replay", "no-such-trial", "--db", str(db))
    assert res.returncode == 2 and "no trial 'no-such-trial'" in res.stderr
    # A record without its task archive (as before tasks were archived) needs --task.
    traces.TraceStore(db).sql(
        "UPDATE spans SET attributes = json_remove(attributes, ?) WHERE parent_span_id IS NULL",
        [f'$."{Attr.TASK_ARCHIVE}"'],
        write=True,
    )
    res = harness_cli("replay", trial, "--db", str(db))
    assert res.returncode == 2 and "--task PATH" in res.stderr
    assert harness_cli(
        "replay", trial, "--db", str(db), "--task", str(TASKS / "word-frequency")
    ).returncode in (0, 1)


@pytest.mark.parametrize(
    "preset", ["timestamps", "durations", "pids", "temp-names", "hex-addresses"]
)
def test_each_preset_normalizes_what_it_names(preset: str) -> None:
    from harness import normalizers

    samples = {
        "timestamps": (
            "at 2026-11-27T20:42:12Z (1795813005)",
            "at 2026-11-28T01:02:03Z (1795813999)",
        ),
        "durations": ("took 0.52s, real 0m0.004s", "took 1.7s, real 0m0.120s"),
        "pids": ("started pid 4242 [17]", "started pid 99 [3]"),
        "temp-names": (
            "/tmp/tmp.Ab3dE9fG1h /tmp/tmpa1b2c3d4",
            "/tmp/tmp.Zz9yY8xX7w /tmp/tmpz9y8x7w6",
        ),
        "hex-addresses": ("object at 0x7f3a2b1c9d00", "object at 0x55d0c0ffee11"),
    }
    a, b = samples[preset]
    (n,) = normalizers([preset])
    assert a != b and n.apply(a) == n.apply(b)


def test_an_image_gone_from_the_engine_is_rebuilt_from_the_record(
    base_image: str, tmp_path: Path
) -> None:
    """The trial's image is removed after the run: replay rebuilds it from the task the record
    holds, and says so."""
    suite = tmp_path / "suite"
    task = suite / "word-frequency"
    shutil.copytree(TASKS / "word-frequency", task)
    dockerfile = task / "environment" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + f"LABEL test.marker={tmp_path.name}\n")
    script = tmp_path / "script.yaml"
    script.write_text(json.dumps({"commands": [WORDS]}))
    db = tmp_path / "t.duckdb"
    res = harness_cli(
        "run", str(suite), "--agent", "scripted", "--script", str(script), "--db", str(db)
    )
    assert res.returncode == 0, res.stderr
    store = traces.TraceStore(db)
    trial = store.trials()[0]
    image_id = store.sql(
        f"SELECT attributes->>'$.\"{Attr.IMAGE_ID}\"' AS id FROM spans "
        "WHERE parent_span_id IS NULL AND trial_id = ?",
        [trial.trial_id],
    ).id[0]
    shutil.rmtree(suite)  # the task folder is gone too: only the record has it
    docker.from_env().api.remove_image(image_id, force=True)
    res, report = replay(db, trial.trial_id)
    assert res.returncode == 0, res.stdout + res.stderr
    assert report["identical"]
    assert any(
        f"image {image_id[:19]} was not on this engine; rebuilt" in n for n in report["notes"]
    )
