"""The `harness` CLI as a user runs it: a real process, a real engine."""

from __future__ import annotations

import json
from pathlib import Path

from harness import __version__
from tests.conftest import harness_cli

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_every_command_with_a_summary() -> None:
    res = harness_cli("--help")
    assert res.returncode == 0
    for command in ("setup", "doctor", "gc", "exec", "images"):
        line = next(x for x in res.stdout.splitlines() if x.strip().startswith(command + " "))
        assert len(line.split(None, 1)[1]) > 15 and "..." not in line
    assert "build" in harness_cli("images", "--help").stdout


def test_version() -> None:
    res = harness_cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"harness {__version__}"


def test_exec_json_lines_show_persistent_session(base_image: str) -> None:
    res = harness_cli(
        "exec", "--json", "--no-record", "cd /tmp && export X=7", "echo $X $PWD", "exit 5", "pwd"
    )
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["exit_code"] for r in rows] == [0, 0, 5, 0]
    assert rows[1]["stdout"] == "7 /tmp\n"
    assert rows[2]["session_restarted"] is True
    assert rows[3]["stdout"] == "/tmp\n"
    assert res.returncode == 5  # the first failing command's code


def test_exec_timeout_exit_code(base_image: str) -> None:
    res = harness_cli("exec", "--no-record", "--timeout", "1", "sleep 30")
    assert res.returncode == 124
    assert "timed out" in res.stdout


def test_exec_bad_input_is_a_clear_error(base_image: str) -> None:
    res = harness_cli("exec", "--no-record", "--env", "NOEQUALS", "true")
    assert res.returncode != 0 and "KEY=VALUE" in res.stderr
    res = harness_cli("exec", "--no-record", "--memory", "lots", "true")
    assert res.returncode != 0 and "invalid size 'lots'" in res.stderr
    res = harness_cli("exec", "--no-record", "--image", "nope:missing", "true")
    assert res.returncode != 0 and "harness images build" in res.stderr


def test_exec_records_into_the_store(base_image: str, tmp_path: Path) -> None:
    res = harness_cli(
        "exec", "--run-id", "r-cli", "echo hi > /tmp/f", "cat /tmp/f", "false", cwd=tmp_path
    )
    assert res.returncode == 1
    assert "recorded run r-cli in .harness/traces.duckdb" in res.stderr
    q = harness_cli(
        "sql",
        "--format",
        "json",
        "SELECT command, exit_code, task FROM commands WHERE run_id = 'r-cli' ORDER BY started_at",
        cwd=tmp_path,
    )
    assert json.loads(q.stdout) == [
        {"command": "echo hi > /tmp/f", "exit_code": 0, "task": "exec"},
        {"command": "cat /tmp/f", "exit_code": 0, "task": "exec"},
        {"command": "false", "exit_code": 1, "task": "exec"},
    ]
    q = harness_cli(
        "sql",
        "--format",
        "json",
        "SELECT path, op, outcome FROM file_changes JOIN trials USING (trial_id)",
        cwd=tmp_path,
    )
    assert json.loads(q.stdout) == [{"path": "/tmp/f", "op": "added", "outcome": "failed"}]


def test_doctor_json_reports_the_engine(base_image: str) -> None:
    res = harness_cli("doctor", "--json")
    report = json.loads(res.stdout)
    names = {c["name"]: c for c in report["checks"]}
    assert res.returncode == 0 and report["ok"] is True
    assert names["engine"]["status"] == "ok"
    assert names["base image"]["status"] == "ok"
    assert names["session"]["status"] == "ok"
    assert {"storage driver", "cgroups", "fast path: file diffs"} <= names.keys()


def test_doctor_names_a_missing_image_and_the_fix(base_image: str) -> None:
    res = harness_cli("doctor", "--json", "--image", "nope:missing")
    report = json.loads(res.stdout)
    image = next(c for c in report["checks"] if c["name"] == "base image")
    assert res.returncode == 1 and image["status"] == "fail"
    assert "harness images build" in image["fix"]


def test_images_build_is_a_noop_when_present(base_image: str) -> None:
    res = harness_cli("images", "build")
    assert res.returncode == 0 and "already exists" in res.stdout
