"""Loading and checking tasks in the Harbor format, against real Harbor task folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness import find_tasks, load_task
from tests.conftest import harbor_fixtures, harness_cli

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = harbor_fixtures()


def test_every_harbor_fixture_loads() -> None:
    paths = find_tasks([FIXTURES])
    assert {p.name for p in paths} >= {
        "hello-user",
        "hello-workdir",
        "hello-healthcheck",
        "hello-multi-step-simple",
        "hello-world",
    }
    for p in paths:
        task, problems = load_task(p)
        assert task is not None, problems
        assert [x for x in problems if x.severity == "error"] == []


def test_fixture_fields_are_read() -> None:
    user, _ = load_task(FIXTURES / "hello-user")
    assert user is not None and user.agent_user == "agent"
    assert user.environment.memory_mb == 2048 and user.environment.network == "bridge"
    assert user.steps[0].agent_timeout_sec == 120.0
    assert user.steps[0].solution_dir is not None and user.steps[0].tests_dir is not None
    workdir, _ = load_task(FIXTURES / "hello-workdir")
    assert workdir is not None and workdir.environment.workdir == "/custom-workdir"
    hc, _ = load_task(FIXTURES / "hello-healthcheck")
    assert hc is not None and hc.environment.healthcheck is not None
    assert hc.environment.healthcheck.command == "curl -sf http://localhost:8080/"
    assert hc.environment.healthcheck.retries == 2
    multi, _ = load_task(FIXTURES / "hello-multi-step-simple")
    assert multi is not None and [s.name for s in multi.steps] == ["create-file", "append-content"]
    assert multi.steps[1].agent_timeout_sec == 30.0
    assert "hello" in multi.steps[0].instruction.lower()


def _task(tmp_path: Path, toml: str, files: dict[str, str] | None = None) -> Path:
    d = tmp_path / "t"
    d.mkdir()
    (d / "task.toml").write_text(toml)
    for rel, text in (
        files
        if files is not None
        else {
            "instruction.md": "Do it.",
            "environment/Dockerfile": "FROM harness-base:bookworm\n",
            "tests/test.sh": "echo 1 > /logs/verifier/reward.txt\n",
            "solution/solve.sh": "true\n",
        }
    ).items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


def test_older_spellings_and_unknown_fields(tmp_path: Path) -> None:
    d = _task(
        tmp_path,
        'version = "1.0"\nfuture_thing = 1\n[environment]\nmemory = "4G"\n'
        'storage = "10G"\nnew_knob = true\n',
    )
    task, problems = load_task(d)
    assert task is not None
    assert (task.environment.memory_mb, task.environment.storage_mb) == (4096, 10240)
    assert task.environment.network == "none"  # no internet unless the task allows it
    warnings = sorted(p.field for p in problems if p.severity == "warning")
    assert warnings == ["environment.new_knob", "future_thing"]


@pytest.mark.parametrize(
    ("toml", "files", "expect"),
    [
        ("[agent]\ntimeout_sec = -1\n", None, ("task.toml", "agent.timeout_sec", "positive")),
        ('[environment]\nmemory = "lots"\n', None, ("task.toml", "environment.memory", "bad size")),
        ("this is = = not toml", None, ("task.toml", "", "not valid TOML")),
        (
            "",
            {"environment/Dockerfile": "FROM x\n", "tests/test.sh": "true\n"},
            ("instruction.md", "", "missing"),
        ),
        (
            "",
            {"instruction.md": "x", "tests/test.sh": "true\n"},
            ("Dockerfile", "", "docker_image"),
        ),
        (
            "",
            {"instruction.md": "x", "environment/Dockerfile": "FROM x\n"},
            ("test.sh", "", "missing"),
        ),
        ('[[steps]]\nname = "one"\n', None, ("instruction.md", "", "missing")),
    ],
)
def test_problems_name_file_field_and_fix(
    tmp_path: Path, toml: str, files: dict[str, str] | None, expect: tuple[str, str, str]
) -> None:
    task, problems = load_task(_task(tmp_path, toml, files))
    assert task is None
    errors = [p for p in problems if p.severity == "error"]
    file, fld, text = expect
    assert any(
        p.file.endswith(file) and p.field == fld and text in p.message and p.fix for p in errors
    ), errors


def test_cli_tasks_check(tmp_path: Path) -> None:
    good = harness_cli("tasks", "check", str(FIXTURES))
    assert good.returncode == 0 and "5 valid, 0 invalid" in good.stdout
    bad_dir = tmp_path / "suite"
    shutil.copytree(FIXTURES / "hello-user", bad_dir / "hello-user")
    (bad_dir / "broken").mkdir()
    (bad_dir / "broken" / "task.toml").write_text("[agent]\ntimeout_sec = 0\n")
    res = harness_cli("tasks", "check", str(bad_dir), "--json")
    assert res.returncode == 1
    report = {Path(r["path"]).name: r for r in json.loads(res.stdout)}
    assert report["hello-user"]["valid"] and not report["broken"]["valid"]
    fields = {p["field"] for p in report["broken"]["problems"]}
    assert "agent.timeout_sec" in fields
