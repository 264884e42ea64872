"""Trials and suite runs end to end: real tasks, real images, outcomes in the store."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import traces
from harness import BuildError, load_agent, load_task, run_trial, task_image
from reports import pass_at_k, wilson
from tests.conftest import harbor_fixtures, harness_cli

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = harbor_fixtures()
MAP = {"ubuntu:24.04": "harness-base:bookworm", "python:3.13-slim": "harness-base:bookworm"}


def trial(task_dir: Path, agent: str, store: traces.TraceStore, mult: float = 1.0):  # type: ignore[no-untyped-def]
    task, problems = load_task(task_dir)
    assert task is not None, problems
    try:
        image = task_image(task, MAP)
    except BuildError as exc:
        image = exc  # type: ignore[assignment]
    with traces.Recorder(store) as rec:
        return run_trial(task, load_agent(agent), image, rec, "run-test", timeout_multiplier=mult)


@pytest.mark.parametrize("name", ["hello-user", "hello-workdir", "hello-healthcheck"])
def test_harbor_fixtures_pass_with_oracle_and_fail_with_nop(
    name: str, base_image: str, tmp_path: Path
) -> None:
    store = traces.TraceStore(tmp_path / "t.duckdb")
    oracle = trial(FIXTURES / name, "oracle", store)
    assert (oracle.outcome, oracle.reward) == ("passed", 1.0), oracle.error
    nop = trial(FIXTURES / name, "nop", store)
    assert nop.outcome in ("failed", "infra_error") and not nop.passed
    rows = store.sql("SELECT outcome, passed, agent FROM trials ORDER BY started_at")
    assert list(rows.outcome)[0] == "passed" and list(rows.agent) == ["oracle", "nop"]
    # The agent's own commands and file changes are part of the trial's record.
    cmds = store.sql("SELECT command FROM commands WHERE trial_id = ?", [oracle.trial_id])
    assert any("/solution/solve.sh" in c for c in cmds.command)


def test_multi_step_runs_every_step_in_one_container(base_image: str, tmp_path: Path) -> None:
    store = traces.TraceStore(tmp_path / "t.duckdb")
    r = trial(FIXTURES / "hello-multi-step-simple", "oracle", store)
    # Step 1's solution writes "Hello\n", step 2's appends ", world!": step 2's own test wants
    # "Hello, world!", so this fixture's reference solution scores 1 then 0 (mean 0.5).
    assert r.rewards == {"step.create-file": 1.0, "step.append-content": 0.0}
    # Each stage's oracle writes its solve.sh and runs it: two steps per stage, numbered on
    # across the stages.
    assert r.reward == 0.5 and r.outcome == "failed" and r.steps == 4
    changes = store.sql(
        "SELECT path, op FROM file_changes WHERE trial_id = ? ORDER BY 1", [r.trial_id]
    )
    assert ("/app/hello.txt", "added") in list(zip(changes.path, changes.op, strict=True))
    verifies = store.sql("SELECT count(*) AS n FROM spans WHERE name = 'verify'").n[0]
    assert verifies == 2
    # The agent's actions are its steps, numbered on across stages; the stages keep their
    # own name.
    acts = store.actions(r.trial_id)
    assert [(a.step, a.kind, a.stage) for a in acts] == [
        (1, "write", "create-file"),
        (2, "command", "create-file"),
        (3, "write", "append-content"),
        (4, "command", "append-content"),
    ]
    assert acts[0].path == "/solution/solve.sh" and acts[0].content_ref
    assert acts[1].command is not None and acts[1].command.endswith(b"bash /solution/solve.sh")
    # Every command says who issued it, in which phase: "the agent's commands" is one WHERE.
    who = store.sql(
        "SELECT actor, phase, stage, step, timeout_s FROM commands WHERE trial_id = ? "
        "ORDER BY started_at",
        [r.trial_id],
    )
    assert set(zip(who.actor, who.phase, strict=True)) == {
        ("harness", "verify"),
        ("verifier", "verify"),
        ("agent", "agent"),
    }
    agent = who[who.actor == "agent"]
    assert list(agent.step) == [2, 4] and (agent.timeout_s > 0).all()
    assert set(who[who.actor == "verifier"].stage) == {"create-file", "append-content"}
    assert who[who.actor != "agent"].step.isna().all()


def test_offline_verifier_keeps_its_score_with_the_download_recorded_and_hinted(
    base_image: str, tmp_path: Path
) -> None:
    """hello-world's tests download uv, which cannot be reached from here: the tests still
    write reward 0, so the trial fails with that score, and a hint says why."""
    store = traces.TraceStore(tmp_path / "t.duckdb")
    r = trial(FIXTURES / "hello-world", "oracle", store)
    assert (r.outcome, r.reward) == ("failed", 0.0)
    assert "network access" in r.hint and "Could not resolve host" in r.hint
    cmd = store.sql(
        "SELECT stdout_sha256, stderr_sha256 FROM commands WHERE command LIKE '%/tests/test.sh'"
    ).iloc[0]
    output = store.blob_text(cmd.stdout_sha256) + store.blob_text(cmd.stderr_sha256)
    assert "Could not resolve host" in output


def _task(
    tmp_path: Path,
    name: str,
    *,
    solve: str = "true",
    test: str | None = None,
    dockerfile: str = "FROM harness-base:bookworm\n",
    toml: str = "",
) -> Path:
    d = tmp_path / name
    for rel, text in {
        "task.toml": toml or "[agent]\ntimeout_sec = 20\n[verifier]\ntimeout_sec = 20\n",
        "instruction.md": "Do the thing.",
        "environment/Dockerfile": dockerfile,
        "solution/solve.sh": solve + "\n",
        "tests/test.sh": test
        if test is not None
        else "test -f /tmp/done && echo 1 > /logs/verifier/reward.txt || "
        "echo 0 > /logs/verifier/reward.txt\n",
    }.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


def test_each_outcome_kind(base_image: str, tmp_path: Path) -> None:
    store = traces.TraceStore(tmp_path / "t.duckdb")
    cases = {
        "passed": _task(tmp_path, "ok", solve="touch /tmp/done"),
        "failed": _task(tmp_path, "no", solve="true"),
        "agent_timeout": _task(
            tmp_path,
            "slow-agent",
            solve="sleep 60; touch /tmp/done",
            toml="[agent]\ntimeout_sec = 1\n",
        ),
        "verifier_timeout": _task(
            tmp_path, "slow-tests", test="sleep 60", toml="[verifier]\ntimeout_sec = 1\n"
        ),
        "verifier_error": _task(tmp_path, "no-reward", test="echo tests ran but wrote nothing"),
        "build_error": _task(
            tmp_path,
            "bad-build",
            dockerfile="FROM harness-base:bookworm\nRUN echo failing-on-purpose && exit 3\n",
        ),
        "infra_error": _task(
            tmp_path,
            "no-bash",
            dockerfile="FROM harness-base:bookworm\nRUN rm -f /usr/bin/bash /bin/bash\n",
        ),
    }
    for expected, path in cases.items():
        r = trial(path, "oracle", store)
        assert r.outcome == expected, (expected, r.outcome, r.error)
    df = store.sql("SELECT task, outcome, reward FROM trials")
    assert dict(zip(df.task, df.outcome, strict=True)) == {p.name: o for o, p in cases.items()}
    build_log = store.sql(
        "SELECT json_extract_string(attributes, '$.\"harness.build_log.sha256\"')"
        " AS ref FROM spans WHERE name LIKE 'invoke_agent%' AND "
        "task_id = 'bad-build'"
    ).ref[0]
    assert "failing-on-purpose" in store.blob_text(ref=build_log)


def test_pass_at_k_and_interval() -> None:
    assert pass_at_k(5, 0, 1) == 0.0 and pass_at_k(5, 5, 3) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    lo, hi = wilson(8, 10)
    assert 0.49 < lo < 0.5 and 0.94 < hi < 0.95


def test_cli_run_and_resume_after_sigkill(base_image: str, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    _task(suite, "steady", solve="sleep 1.5; touch /tmp/done")
    db = tmp_path / "t.duckdb"
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "run",
        str(suite),
        "--agent",
        "oracle",
        "--trials",
        "4",
        "--concurrency",
        "1",
        "--db",
        str(db),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    store = traces.TraceStore(db)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if store.sql("SELECT count(*) AS n FROM trials WHERE run_id = ?", [run_id]).n[0]:
                break
        except traces.StoreError:
            pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = store.sql("SELECT trial_index FROM trials WHERE run_id = ?", [run_id])
    assert 1 <= len(done) < 4
    res = harness_cli("run", "--resume", run_id, "--db", str(db), "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["trials"] == 4 and summary["passed"] == 4 and summary["pass@4"] == 1.0
    idx = store.sql("SELECT trial_index FROM trials WHERE run_id = ? ORDER BY 1", [run_id])
    assert list(idx.trial_index) == [0, 1, 2, 3]
    # Trials of both processes link to the one span that recorded the run.
    links = store.sql(
        "SELECT t.trial_index, l.linked_span_id FROM trials t LEFT JOIN span_links l "
        "ON l.trace_id = t.trace_id WHERE t.run_id = ? AND NOT t.superseded ORDER BY 1",
        [run_id],
    )
    run_span = store.sql(
        "SELECT span_id FROM spans WHERE name = 'harness.run' AND run_id = ?", [run_id]
    ).span_id
    assert len(run_span) == 1 and list(links.linked_span_id) == [run_span[0]] * 4
    runs = harness_cli("runs", "--db", str(db), "--json")
    assert json.loads(runs.stdout)[0]["run_id"] == run_id


def test_scripted_agent_from_yaml_through_the_cli(base_image: str, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    _task(suite, "needs-done")
    _task(suite, "other")
    script = tmp_path / "script.yaml"
    script.write_text(
        "commands: ['echo common >> /tmp/log']\ntasks:\n  needs-done: ['touch /tmp/done']\n"
    )
    db = tmp_path / "t.duckdb"
    res = harness_cli(
        "run", str(suite), "--agent", "scripted", "--script", str(script), "--db", str(db), "--json"
    )
    assert res.returncode == 0, res.stderr
    by_task = {t["task"]: t for t in json.loads(res.stdout.splitlines()[-1])["tasks"]}
    assert by_task["needs-done"]["pass_rate"] == 1.0 and by_task["other"]["pass_rate"] == 0.0
    cmds = traces.TraceStore(db).sql(
        "SELECT task, command FROM commands "
        "WHERE command NOT LIKE '%/logs/verifier%' "
        "AND command NOT LIKE 'bash /tests%' ORDER BY started_at"
    )
    assert sorted(zip(cmds.task, cmds.command, strict=True)) == [
        ("needs-done", "echo common >> /tmp/log"),
        ("needs-done", "touch /tmp/done"),
        ("other", "echo common >> /tmp/log"),
    ]
    bad = harness_cli("run", str(suite), "--agent", "scripted", "--db", str(db))
    assert bad.returncode == 2 and "--script FILE" in bad.stderr


def test_plugin_agent_by_module_and_class(base_image: str, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    _task(suite, "needs-done")
    res = harness_cli(
        "run",
        str(suite),
        "--agent",
        "tests.harness.plugin_agent:TouchDone",
        "--db",
        str(tmp_path / "t.db"),
        "--json",
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["passed"] == 1
    trial = traces.TraceStore(tmp_path / "t.db").sql("SELECT agent FROM trials").agent[0]
    assert trial == "touch-done"
    bad = harness_cli(
        "run", str(suite), "--agent", "no.such.module:Agent", "--db", str(tmp_path / "t.db")
    )
    assert bad.returncode == 2 and "cannot load agent" in bad.stderr


def test_a_trial_is_recorded_as_phases(base_image: str, tmp_path: Path) -> None:
    """setup, then agent and verify per stage, each its own span under the trial root; the
    sandbox's own spans (samples, stop) belong to the trial, its start to setup."""
    store = traces.TraceStore(tmp_path / "t.duckdb")
    result = trial(FIXTURES / "hello-multi-step-simple", "oracle", store)
    assert result.outcome == "failed"  # the fixture's own oracle cannot pass step 2
    tree = store.sql(
        "SELECT s.name, p.name AS parent, "
        "coalesce(s.attributes->>'$.\"harness.stage\"', '') AS stage "
        "FROM spans s LEFT JOIN spans p ON p.span_id = s.parent_span_id "
        "WHERE s.name IN ('setup', 'agent', 'verify', 'sandbox.start', 'sandbox.stop') "
        "ORDER BY s.start_ns"
    )
    rows = list(zip(tree.name, tree.parent, tree.stage, strict=True))
    root = "invoke_agent oracle"
    assert rows == [
        ("setup", root, ""),
        ("sandbox.start", "setup", ""),
        ("agent", root, "create-file"),
        ("verify", root, "create-file"),
        ("agent", root, "append-content"),
        ("verify", root, "append-content"),
        ("sandbox.stop", root, ""),
    ]
    parents = store.sql(
        "SELECT DISTINCT p.name FROM spans s JOIN spans p ON p.span_id = s.parent_span_id "
        "WHERE s.name = 'sandbox.resources'"
    ).name.tolist()
    assert parents == [root]
    # The read model sees the same phases: the agent's commands first, then the tests'.
    steps = store.commands(result.trial_id)
    assert [(s.phase, s.stage) for s in steps if s.phase == "agent"] == [
        ("agent", "create-file"),
        ("agent", "append-content"),
    ]
    assert {s.phase for s in steps} == {"agent", "verify"}
