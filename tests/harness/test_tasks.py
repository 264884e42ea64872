"""Loading and checking tasks in the Harbor format, against real Harbor task folders."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path
from typing import Any

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
    assert user.environment.memory_mb == 2048 and user.environment.network == "isolated"
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
    assert multi.environment.network == "isolated"  # Harbor's default: allow_internet = true
    assert "hello" in multi.steps[0].instruction.lower()


def _task(tmp_path: Path, toml: str, files: dict[str, str] | None = None, name: str = "t") -> Path:
    d = tmp_path / name
    d.mkdir(parents=True)
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
    assert task.environment.network == "isolated"  # Harbor's default: allow_internet = true
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
        (
            '[environment]\nmemory_mb = "abc"\n',
            None,
            ("task.toml", "environment.memory_mb", '"abc"'),
        ),
        ("[environment]\nmemory_mb = 1\n", None, ("task.toml", "environment.memory_mb", "6m")),
        ('[environment]\nmemory = "1k"\n', None, ("task.toml", "environment.memory", "refused")),
        ("[environment]\ncpus = 0\n", None, ("task.toml", "environment.cpus", "positive")),
        (
            '[environment.healthcheck]\ncommand = "true"\ninterval_sec = "abc"\n',
            None,
            ("task.toml", "environment.healthcheck.interval_sec", '"abc"'),
        ),
        (
            '[environment.healthcheck]\ncommand = "true"\nretries = -1\n',
            None,
            ("task.toml", "environment.healthcheck.retries", ">= 0"),
        ),
        ("[verifier]\ntimeout_sec = nan\n", None, ("task.toml", "verifier.timeout_sec", "nan")),
        ('steps = ["a"]\n', None, ("task.toml", "steps[0]", "must be a table")),
        (
            '[[steps]]\nname = "one"\n[steps.agent]\ntimeout_sec = "1m"\n',
            None,
            ("task.toml", "steps[0].agent.timeout_sec", '"1m"'),
        ),
        (
            '[environment]\nnetwork_mode = "host"\n',
            None,
            ("task.toml", "environment.network_mode", "Harbor"),
        ),
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


def test_binary_instruction_is_a_problem(tmp_path: Path) -> None:
    d = _task(tmp_path, "")
    (d / "instruction.md").write_bytes(b"Do it.\n\xff\xfe\x00\x81")
    task, problems = load_task(d)
    assert task is None
    (p,) = [p for p in problems if p.severity == "error"]
    assert p.file.endswith("instruction.md") and "not UTF-8" in p.message and "0xff" in p.message
    assert p.fix


@pytest.mark.parametrize(
    ("environment", "network", "source", "problem"),
    [
        ("", "isolated", "Harbor's default", None),
        ("allow_internet = true", "isolated", "allow_internet = true", None),
        ("allow_internet = false", "none", "allow_internet = false", None),
        ('network_mode = "public"', "isolated", 'network_mode = "public"', None),
        ('network_mode = "no-network"', "none", 'network_mode = "no-network"', None),
        ('network_mode = "allowlist"', "none", 'network_mode = "allowlist"', None),
        (
            'network_mode = "allowlist"\nallowed_hosts = ["pypi.org"]',
            "none",
            "allowlist",
            ("warning", "environment.allowed_hosts", "pypi.org cannot be reached"),
        ),
        (
            'network_mode = "public"\nallow_internet = false',
            None,
            "",
            ("error", "environment.allow_internet", "contradicts"),
        ),
        ('network_mode = "bridge"', None, "", ("error", "environment.network_mode", "Harbor")),
        ('network_mode = "none"', None, "", ("error", "environment.network_mode", "Harbor")),
        (
            'network_mode = "public"\n[verifier]\nnetwork_mode = "no-network"',
            "none",
            "limited by a phase",
            ("warning", "verifier.network_mode", "cannot be switched"),
        ),
    ],
)
def test_network_follows_harbor_semantics(
    tmp_path: Path,
    environment: str,
    network: str | None,
    source: str,
    problem: tuple[str, str, str] | None,
) -> None:
    """Harbor: network_mode is public | no-network | allowlist; allow_internet (default true)
    is its older spelling. Here public is an isolated network with internet; the rest none."""
    task, problems = load_task(_task(tmp_path, f"[environment]\n{environment}\n"))
    if network is None:
        assert task is None
    else:
        assert task is not None, problems
        assert task.environment.network == network and source in task.environment.network_source
    if problem is None:
        assert problems == []
    else:
        severity, fld, text = problem
        assert any(
            p.severity == severity and p.field == fld and text in p.message and p.fix
            for p in problems
        ), problems
        if fld == "environment.network_mode":  # Docker's names are answered with Harbor's
            assert any('"public"' in p.fix or '"no-network"' in p.fix for p in problems)


# -- fuzz: every known field, every wrong type ---------------------------------------------

_ALL = [1, 1.5, -1, 0, math.nan, math.inf, "abc", "", True, [1], {"a": 1}, [{"a": 1}]]
POSITIVE = ["abc", "", True, [1], {"a": 1}, 0, -1, math.nan, math.inf, -math.inf]
NON_NEGATIVE = ["abc", True, [1], {"a": 1}, -1, -0.5, math.nan, math.inf]
WHOLE_NON_NEGATIVE = [*NON_NEGATIVE, 1.5]
WHOLE_POSITIVE = [*POSITIVE, 1.5]
STRING = [1, 1.5, True, [1], {"a": 1}, ""]
BOOLEAN = ["yes", "true", 1, 0, [True], {"a": 1}]
TABLE = [1, "abc", True, [1], [{"a": 1}]]
ENV = [*TABLE, {"A": [1]}, {"A": {"b": 1}}, {"A": True}]
NETWORK = [*STRING, "abc", "host", "bridge", "none"]
HOSTS = ["pypi.org", 1, [1], {"a": 1}]
SIZE = ["lots", "1k", True, [1], {"a": 1}, 0, -5, math.nan]

FIELDS: dict[str, list[Any]] = {
    "task": TABLE,
    "task.name": STRING,
    "metadata": TABLE,
    "agent": TABLE,
    "agent.timeout_sec": POSITIVE,
    "agent.user": [1.5, True, [1], {"a": 1}],
    "agent.network_mode": NETWORK,
    "agent.allowed_hosts": HOSTS,
    "verifier": TABLE,
    "verifier.timeout_sec": POSITIVE,
    "verifier.env": ENV,
    "verifier.user": STRING,
    "verifier.network_mode": NETWORK,
    "solution": TABLE,
    "solution.env": ENV,
    "environment": TABLE,
    "environment.docker_image": STRING,
    "environment.build_timeout_sec": POSITIVE,
    "environment.cpus": POSITIVE,
    "environment.memory_mb": [*WHOLE_POSITIVE, 1, 5],
    "environment.memory": [*SIZE, 1],
    "environment.storage_mb": WHOLE_POSITIVE,
    "environment.storage": SIZE,
    "environment.gpus": WHOLE_NON_NEGATIVE,
    "environment.allow_internet": BOOLEAN,
    "environment.network_mode": NETWORK,
    "environment.allowed_hosts": HOSTS,
    "environment.workdir": [*STRING, "relative/dir"],
    "environment.env": ENV,
    "environment.healthcheck": [*TABLE, {"interval_sec": 1}],
    "environment.healthcheck.command": STRING,
    "environment.healthcheck.interval_sec": POSITIVE,
    "environment.healthcheck.timeout_sec": POSITIVE,
    "environment.healthcheck.start_period_sec": NON_NEGATIVE,
    "environment.healthcheck.start_interval_sec": POSITIVE,
    "environment.healthcheck.retries": WHOLE_NON_NEGATIVE,
    "multi_step_reward_strategy": ["median", 1, [1], True],
    "steps": [1, "abc", ["a"], [1], {"name": "one"}, [[1]]],
    "steps[0]": [1, "abc", [1]],
    "steps[0].name": [1, [1], {"a": 1}, "", "..", "a/b"],
    "steps[0].agent": TABLE,
    "steps[0].verifier": TABLE,
    "steps[0].agent.timeout_sec": POSITIVE,
    "steps[0].agent.network_mode": NETWORK,
    "steps[0].verifier.timeout_sec": POSITIVE,
    "steps[0].verifier.env": ENV,
}


def _base() -> dict[str, Any]:
    """A valid task.toml (as data) that has every table the fields above live in."""
    return {
        "task": {"name": "org/fuzz"},
        "metadata": {},
        "agent": {"timeout_sec": 60},
        "verifier": {"timeout_sec": 60, "env": {}},
        "solution": {"env": {}},
        "environment": {"cpus": 1, "healthcheck": {"command": "true"}, "env": {}},
        "steps": [{"name": "one", "agent": {"timeout_sec": 5}, "verifier": {"timeout_sec": 5}}],
    }


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (int, float, str)):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(map(_toml, v)) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(x)}" for k, x in v.items()) + "}"


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    keys: list[str | int] = []
    for part in path.split("."):
        name, _, index = part.partition("[")
        keys.append(name)
        if index:
            keys.append(int(index.rstrip("]")))
    node: Any = doc
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value


def _fuzz_folder(tmp_path: Path) -> Path:
    d = _task(tmp_path, "", name="fuzz")
    for step in ("one",):
        (d / "steps" / step / "tests").mkdir(parents=True)
        (d / "steps" / step / "instruction.md").write_text("Do it.")
        (d / "steps" / step / "tests" / "test.sh").write_text("true\n")
    return d


def _write(d: Path, doc: dict[str, Any]) -> None:
    (d / "task.toml").write_text("".join(f"{k} = {_toml(v)}\n" for k, v in doc.items()))


def test_fuzz_every_field_with_every_wrong_value(tmp_path: Path) -> None:
    d = _fuzz_folder(tmp_path)
    _write(d, _base())
    task, problems = load_task(d)
    assert task is not None and problems == [], problems
    cases = 0
    for path, values in FIELDS.items():
        for value in values:
            doc = _base()
            _set(doc, path, value)
            _write(d, doc)
            task, problems = load_task(d)  # never raises
            named = [
                p
                for p in problems
                if p.severity == "error"
                and p.fix
                and (p.field == path or p.field.startswith((path + ".", path + "[")))
            ]
            assert task is None and named, (path, value, problems)
            cases += 1
    assert cases > 300


def test_fuzz_random_documents_never_raise(tmp_path: Path) -> None:
    d = _fuzz_folder(tmp_path)
    rng = random.Random(20240601)
    pool = [v for values in FIELDS.values() for v in values] + _ALL
    for _ in range(500):
        doc = _base()
        for path in rng.sample(sorted(FIELDS), rng.randint(1, 6)):
            try:
                _set(doc, path, rng.choice(pool))
            except (KeyError, IndexError, TypeError):
                pass  # an earlier change removed the table this field lives in
        _write(d, doc)
        task, problems = load_task(d)
        errors = [p for p in problems if p.severity == "error"]
        assert (task is None) == bool(errors)
        assert all(p.field or p.file != str(d / "task.toml") for p in errors), errors


def test_cli_tasks_check(tmp_path: Path) -> None:
    good = harness_cli("tasks", "check", str(FIXTURES))
    assert good.returncode == 0 and "5 valid, 0 invalid" in good.stdout
    assert "network isolated (allow_internet = true)" in good.stdout
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


def test_cli_tasks_check_reports_every_broken_task(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    shutil.copytree(FIXTURES / "hello-user", suite / "a-good")
    broken = {
        "memory-abc": '[environment]\nmemory_mb = "abc"\n',
        "memory-1": "[environment]\nmemory_mb = 1\n",
        "healthcheck-abc": '[environment.healthcheck]\ncommand = "true"\ninterval_sec = "abc"\n',
        "steps-a": 'steps = ["a"]\n',
        "binary": "",
    }
    for name, toml in broken.items():
        _task(suite, toml, name=name)
    (suite / "binary" / "instruction.md").write_bytes(b"\xff\xfe\x00\x81")
    res = harness_cli("tasks", "check", str(suite), "--json")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    report = {Path(r["path"]).name: r for r in json.loads(res.stdout)}
    assert set(report) == {"a-good", *broken}
    assert report["a-good"]["valid"] and report["a-good"]["network"] == "isolated"
    where = {
        name: {(Path(p["file"]).name, p["field"]) for p in r["problems"] if p["fix"]}
        for name, r in report.items()
        if not r["valid"]
    }
    assert where == {
        "memory-abc": {("task.toml", "environment.memory_mb")},
        "memory-1": {("task.toml", "environment.memory_mb")},
        "healthcheck-abc": {("task.toml", "environment.healthcheck.interval_sec")},
        "steps-a": {("task.toml", "steps[0]")},
        "binary": {("instruction.md", "")},
    }
    text = harness_cli("tasks", "check", str(suite))
    assert text.returncode == 1 and "Traceback" not in text.stderr
    assert "1 valid, 5 invalid" in text.stdout and "network isolated" in text.stdout
