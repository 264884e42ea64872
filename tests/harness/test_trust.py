"""A score means the agent did the work, and a record tells the truth about how a trial ended."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path

import traces
from harness import load_agent, load_task, run_trial, task_image
from tests.conftest import harness_cli

FAIL_UNLESS_SOLVED = (
    "if grep -q solved /tmp/answer 2>/dev/null; then echo 1 > /logs/verifier/reward.txt; "
    "else echo 0 > /logs/verifier/reward.txt; fi\n"
)


def _task(root: Path, name: str, *, test: str = FAIL_UNLESS_SOLVED, toml: str = "") -> Path:
    d = root / name
    files = {
        "task.toml": toml or "[agent]\ntimeout_sec = 30\n[verifier]\ntimeout_sec = 30\n",
        "instruction.md": "Solve it.",
        "environment/Dockerfile": "FROM harness-base:bookworm\n",
        "solution/solve.sh": "echo solved > /tmp/answer\n",
        "tests/test.sh": test,
    }
    for rel, text in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


def _script(tmp_path: Path, commands: list[str]) -> str:
    path = tmp_path / "script.yaml"
    path.write_text(json.dumps({"commands": commands}))
    return str(path)


def _trial(task_dir: Path, agent: str, store: traces.TraceStore, **options: str):  # type: ignore[no-untyped-def]
    task, problems = load_task(task_dir)
    assert task is not None, problems
    with traces.Recorder(store) as rec:
        return run_trial(task, load_agent(agent, dict(options)), task_image(task), rec, "run-t")


def test_an_agents_background_processes_cannot_forge_the_reward(
    base_image: str, tmp_path: Path
) -> None:
    """A daemon that keeps writing reward 1 and a fork bomb left running: both are stopped
    before the verifier runs, so an unsolved task fails and the verifier works."""
    # The verifier takes its time, as real test suites do, giving a forger every chance.
    test = "sleep 2; mkdir -p /tmp/v && " + FAIL_UNLESS_SOLVED
    task = _task(tmp_path, "forge", test=test)
    script = _script(
        tmp_path,
        [
            "setsid sh -c 'while true; do mkdir -p /logs/verifier; "
            "echo 1 > /logs/verifier/reward.txt 2>/dev/null; sleep 0.01; done' "
            ">/dev/null 2>&1 < /dev/null &",
            "(bomb() { bomb | bomb & }; bomb) >/dev/null 2>&1 &",
            "sleep 1",
        ],
    )
    store = traces.TraceStore(tmp_path / "t.duckdb")
    result = _trial(task, "scripted", store, script=script)
    assert (result.outcome, result.reward) == ("failed", 0.0), result.error


def test_an_action_after_the_deadline_is_refused_and_recorded(
    base_image: str, tmp_path: Path
) -> None:
    task = _task(tmp_path, "late", toml="[agent]\ntimeout_sec = 2\n[verifier]\ntimeout_sec = 30\n")
    script = _script(tmp_path, ["sleep 5", "echo solved > /tmp/answer"])
    store = traces.TraceStore(tmp_path / "t.duckdb")
    result = _trial(task, "scripted", store, script=script)
    assert result.outcome == "agent_timeout" and result.reward == 0.0
    refused = store.sql(
        "SELECT attributes->>'$.\"process.command_line\"' AS command, "
        "attributes->>'$.\"harness.refused.reason\"' AS reason FROM span_events "
        "WHERE name = 'harness.refused'"
    )
    assert list(zip(refused.command, refused.reason, strict=True)) == [
        ("echo solved > /tmp/answer", "deadline")
    ]
    commands = store.sql("SELECT command FROM commands").command.tolist()
    assert "echo solved > /tmp/answer" not in commands


def test_a_reward_that_is_not_a_number_is_named(base_image: str, tmp_path: Path) -> None:
    task = _task(tmp_path, "banana", test="echo banana > /logs/verifier/reward.txt\n")
    result = _trial(task, "oracle", traces.TraceStore(tmp_path / "t.duckdb"))
    assert result.outcome == "verifier_error"
    assert "reward.txt, but its content 'banana' is not a number" in result.error


def test_a_scored_verifier_keeps_its_score_and_gets_the_offline_hint(
    base_image: str, tmp_path: Path
) -> None:
    test = "curl -sS http://no-such-host.invalid/ || true\necho 0 > /logs/verifier/reward.txt\n"
    task = _task(tmp_path, "offline", test=test)
    store = traces.TraceStore(tmp_path / "t.duckdb")
    result = _trial(task, "oracle", store)
    assert (result.outcome, result.reward) == ("failed", 0.0)
    assert "network access" in result.hint and "Could not resolve host" in result.hint
    hint = store.sql(
        "SELECT attributes->>'$.\"harness.hint\"' AS h FROM spans WHERE parent_span_id IS NULL"
    ).h[0]
    assert hint == result.hint


def test_storage_limit_stops_the_trial_with_its_own_outcome(
    base_image: str, tmp_path: Path
) -> None:
    toml = (
        "[agent]\ntimeout_sec = 60\n[verifier]\ntimeout_sec = 30\n[environment]\nstorage_mb = 20\n"
    )
    task = _task(tmp_path, "disk", toml=toml)
    script = _script(
        tmp_path, ["for i in $(seq 1 40); do head -c 2M /dev/zero > /tmp/f$i; sleep 0.1; done"]
    )
    result = _trial(task, "scripted", traces.TraceStore(tmp_path / "t.duckdb"), script=script)
    assert result.outcome == "storage_exceeded", result.error
    assert "storage limit (20 MB)" in result.error


def test_every_trial_records_its_build(base_image: str, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    env = _task(suite, "built") / "environment"
    (env / "stamp").write_text(uuid.uuid4().hex)  # a fresh image: the first run builds it
    (env / "Dockerfile").write_text("FROM harness-base:bookworm\nCOPY stamp /stamp\n")
    db = tmp_path / "t.duckdb"
    for _ in range(2):  # the second run finds the image cached
        res = harness_cli("run", str(suite), "--db", str(db), "--json")
        assert res.returncode == 0, res.stderr
    rows = traces.TraceStore(db).sql(
        "SELECT attributes->>'$.\"harness.build.cached\"' AS cached, "
        "TRY_CAST(attributes->>'$.\"harness.build.seconds\"' AS DOUBLE) AS seconds, "
        "attributes->>'$.\"harness.build_log.sha256\"' AS log "
        "FROM spans WHERE parent_span_id IS NULL AND name LIKE 'invoke_agent%' ORDER BY start_ns"
    )
    assert rows.cached.tolist() == ["false", "true"]
    assert rows.seconds.notna().all() and rows.seconds[0] > 0
    log = traces.TraceStore(db).blob_text(rows.log[0])
    assert "COPY stamp" in log and "\x1b[" not in log


def test_run_lists_every_invalid_task_and_can_skip_them(base_image: str, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    _task(suite, "good", test="echo 1 > /logs/verifier/reward.txt\n")
    for name in ("bad-one", "bad-two"):
        d = _task(suite, name)
        (d / "task.toml").write_text("[agent]\ntimeout_sec = -5\n")
    (suite / "empty").mkdir()
    db = tmp_path / "t.duckdb"
    res = harness_cli("run", str(suite), "--db", str(db))
    assert res.returncode == 2
    assert "bad-one" in res.stderr and "bad-two" in res.stderr and "--skip-invalid" in res.stderr
    res = harness_cli("run", str(suite), "--db", str(db), "--skip-invalid", "--json")
    assert res.returncode == 0, res.stderr
    assert "skipped invalid task" in res.stderr and "empty" in res.stderr
    assert json.loads(res.stdout.splitlines()[-1])["trials"] == 1


def test_run_exits_non_zero_when_a_trial_errored_and_says_why(
    base_image: str, tmp_path: Path
) -> None:
    suite = tmp_path / "suite"
    _task(suite, "no-reward", test="true\n")
    _task(suite, "fine", test="echo 1 > /logs/verifier/reward.txt\n")
    res = harness_cli("run", str(suite), "--db", str(tmp_path / "t.duckdb"))
    assert res.returncode == 1
    assert "1 trial(s) ended in an error, not a score (verifier_error 1)" in res.stderr
    # The summary says per task how its trials ended.
    assert "verifier_error 1" in res.stdout and "passed 1" in res.stdout


def test_values_from_the_store_and_the_container_are_shown_literally(
    base_image: str, tmp_path: Path
) -> None:
    db = tmp_path / "t.duckdb"
    res = harness_cli("exec", "echo 'ls [/tmp]' 'arr[i]' '[bold]x[/bold]'", "--db", str(db))
    assert res.returncode == 0, res.stderr
    assert "$ echo 'ls [/tmp]' 'arr[i]' '[bold]x[/bold]'" in res.stdout
    assert "ls [/tmp] arr[i] [bold]x[/bold]" in res.stdout
    res = harness_cli("sql", "SELECT command FROM commands", "--db", str(db))
    assert res.returncode == 0, res.stderr
    assert "arr[i]" in res.stdout and "[bold]x[/bold]" in res.stdout
    res = harness_cli("exec", "grep -oE '[a-z]+' /etc/hostname", "--db", str(db))
    assert "grep -oE '[a-z]+'" in res.stdout


def test_a_task_the_sandbox_refuses_at_run_time_errors_alone(
    base_image: str, tmp_path: Path
) -> None:
    """A task whose limits the sandbox refuses ends as its own infra_error; the rest run."""
    suite = tmp_path / "suite"
    _task(suite, "fine", test="echo 1 > /logs/verifier/reward.txt\n")
    task, _ = load_task(_task(tmp_path, "tiny"))
    assert task is not None
    broken = dataclasses.replace(
        task, environment=dataclasses.replace(task.environment, memory_mb=1)
    )
    with traces.Recorder(traces.TraceStore(tmp_path / "t.duckdb")) as rec:
        t0 = time.monotonic()
        result = run_trial(broken, load_agent("oracle"), task_image(task), rec, "run-x")
    assert result.outcome == "infra_error" and "refused" in result.error
    assert time.monotonic() - t0 < 30


def test_the_effective_network_is_recorded_and_none_can_be_forced(
    base_image: str, tmp_path: Path
) -> None:
    suite = tmp_path / "suite"
    _task(suite, "online", test="echo 1 > /logs/verifier/reward.txt\n")  # Harbor's default
    db = tmp_path / "t.duckdb"
    for flags in ([], ["--network", "none"]):
        res = harness_cli("run", str(suite), "--db", str(db), *flags)
        assert res.returncode == 0, res.stderr
    rows = traces.TraceStore(db).sql(
        "SELECT r.attributes->>'$.\"harness.task.network\"' AS policy, "
        "s.attributes->>'$.\"harness.network\"' AS network "
        "FROM spans r JOIN spans s ON s.trace_id = r.trace_id AND s.name = 'sandbox.start' "
        "WHERE r.parent_span_id IS NULL AND r.name LIKE 'invoke_agent%' ORDER BY r.start_ns"
    )
    assert rows.policy.tolist() == ["isolated", "none"]
    assert rows.network[0].startswith("harness-sb-") and rows.network[1] == "none"


def test_an_agent_user_the_image_lacks_is_named_and_not_retried(
    base_image: str, tmp_path: Path
) -> None:
    toml = '[agent]\ntimeout_sec = 30\nuser = "nosuchuser"\n[verifier]\ntimeout_sec = 30\n'
    task = _task(tmp_path, "nouser", toml=toml)
    store = traces.TraceStore(tmp_path / "t.duckdb")
    result = _trial(task, "oracle", store)
    assert result.outcome == "infra_error"
    assert "user 'nosuchuser' does not exist" in result.error and "useradd" in result.error
    attempts = store.sql("SELECT count(*) AS n FROM spans WHERE name = 'setup'").n[0]
    assert attempts == 1  # another attempt would only repeat it


def test_what_an_agent_defines_in_its_shell_never_reaches_the_verifier(
    base_image: str, tmp_path: Path
) -> None:
    """Functions, aliases and PATH set in the agent's shell would run instead of the
    verifier's commands if the two shared one; they do not."""
    task = _task(tmp_path, "poison")
    evil = "mkdir -p /tmp/evil && printf '#!/bin/sh\\necho 1 > /logs/verifier/reward.txt\\n' "
    script = _script(
        tmp_path,
        [
            "bash() { mkdir -p /logs/verifier; echo 1 > /logs/verifier/reward.txt; }",
            "rm() { :; }; mkdir() { :; }; export -f bash rm mkdir",
            evil + "> /tmp/evil/grep && chmod +x /tmp/evil/grep && export PATH=/tmp/evil:$PATH",
        ],
    )
    result = _trial(task, "scripted", traces.TraceStore(tmp_path / "t.duckdb"), script=script)
    assert (result.outcome, result.reward) == ("failed", 0.0), result.error
