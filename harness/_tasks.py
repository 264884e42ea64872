"""Tasks in the Harbor task format: loading and validation.

A task is a folder: ``instruction.md``, ``task.toml``, ``environment/`` (a Dockerfile) or an
``[environment] docker_image``, ``solution/solve.sh`` and ``tests/test.sh`` (which writes
``/logs/verifier/reward.txt`` or ``reward.json``); or ``[[steps]]`` with ``steps/<name>/``
holding those per step. Every problem is reported with its file, field and a fix; fields this
loader does not know are warnings, never failures, so newer task files still load.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_MB = {"": 1 / (1 << 20), "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}

# Known fields per table; anything else is reported as a warning.
_KNOWN: dict[str, set[str]] = {
    "": {
        "schema_version",
        "version",
        "task",
        "metadata",
        "verifier",
        "agent",
        "environment",
        "solution",
        "steps",
    },
    "task": {"name", "description", "authors", "keywords"},
    "agent": {"timeout_sec", "user"},
    "verifier": {"timeout_sec", "env", "user"},
    "solution": {"env"},
    "environment": {
        "docker_image",
        "build_timeout_sec",
        "cpus",
        "memory_mb",
        "memory",
        "storage_mb",
        "storage",
        "gpus",
        "allow_internet",
        "network_mode",
        "workdir",
        "env",
        "healthcheck",
        "mcp_servers",
    },
    "environment.healthcheck": {
        "command",
        "interval_sec",
        "timeout_sec",
        "start_period_sec",
        "start_interval_sec",
        "retries",
    },
    "steps": {"name", "agent", "verifier", "solution"},
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or odd) with a task: where, what, and how to fix it."""

    file: str
    field: str
    message: str
    fix: str = ""
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{self.severity}: {where}: {self.message}{fix}"


@dataclass(frozen=True)
class Healthcheck:
    command: str
    interval_sec: float = 5.0
    timeout_sec: float = 30.0
    start_period_sec: float = 0.0
    start_interval_sec: float = 5.0
    retries: int = 3


@dataclass(frozen=True)
class Environment:
    docker_image: str | None
    dockerfile_dir: Path | None  # environment/ when it has a Dockerfile
    build_timeout_sec: float = 600.0
    cpus: float = 1.0
    memory_mb: int = 2048
    storage_mb: int | None = None
    allow_internet: bool = False
    network_mode: str | None = None
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    healthcheck: Healthcheck | None = None

    @property
    def network(self) -> str:
        """Docker network mode: none unless the task allows the internet."""
        if self.network_mode:
            return self.network_mode
        return "bridge" if self.allow_internet else "none"


@dataclass(frozen=True)
class Step:
    """One instruction with its solution and tests; a plain task has exactly one."""

    name: str
    instruction: str
    solution_dir: Path | None
    tests_dir: Path | None
    agent_timeout_sec: float
    verifier_timeout_sec: float
    verifier_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    id: str
    path: Path
    name: str
    environment: Environment
    steps: tuple[Step, ...]
    agent_user: str | None = None
    solution_env: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    reward_strategy: str = "mean"  # multi-step: mean of the steps' rewards, or the final one

    @property
    def instruction(self) -> str:
        return self.steps[0].instruction

    @functools.cached_property
    def content_hash(self) -> str:
        """Hash of every file in the task folder (names, modes and bytes), as loaded; read
        once per loaded task, not once per trial."""
        return tree_hash(self.path)

    @functools.cached_property
    def environment_hash(self) -> str:
        """What the image is built from: the environment folder, or the image name."""
        env = self.environment
        if env.dockerfile_dir is not None:
            return tree_hash(env.dockerfile_dir)
        return hashlib.sha256((env.docker_image or "").encode()).hexdigest()


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            h.update(f"{rel}\0{st.st_mode & 0o777:o}\0".encode())
            if p.is_symlink():
                h.update(os.readlink(p).encode())
            else:
                h.update(p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


class TaskError(Exception):
    """A task could not be loaded; ``problems`` says why."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(str(p) for p in problems if p.severity == "error"))


def _size_mb(value: Any) -> int | None:
    if isinstance(value, (int, float)):
        return int(value)
    m = _SIZE.match(str(value))
    if not m:
        return None
    return int(float(m.group(1)) * _MB[m.group(2).lower()])


def _env_table(value: Any, file: str, name: str, problems: list[Problem]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(
            Problem(
                file,
                name,
                'must be a table of NAME = "value"',
                f'write [{name}] with one NAME = "value" per line',
            )
        )
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _number(
    table: dict[str, Any], key: str, default: float, file: str, prefix: str, problems: list[Problem]
) -> float:
    v = table.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        problems.append(
            Problem(
                file,
                f"{prefix}.{key}",
                f"must be a positive number, got {v!r}",
                f"set {key} = {default}",
            )
        )
        return default
    return float(v)


def _unknown(table: dict[str, Any], section: str, file: str, problems: list[Problem]) -> None:
    known = _KNOWN.get(section)
    if known is None:
        return
    for key in table:
        if key not in known:
            where = f"{section}.{key}" if section else key
            problems.append(Problem(file, where, "unknown field, ignored", severity="warning"))


def load_task(path: str | os.PathLike[str]) -> tuple[Task | None, list[Problem]]:
    """Load and validate one task folder. Returns the task (None if it has errors) and every
    problem found, warnings included."""
    root = Path(path).resolve()
    problems: list[Problem] = []
    toml_path = root / "task.toml"
    f = str(toml_path)
    if not root.is_dir():
        return None, [Problem(str(root), "", "not a folder", "point at a task folder")]
    if not toml_path.is_file():
        return None, [Problem(f, "", "missing", "add a task.toml (see a fixture task)")]
    try:
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return None, [Problem(f, "", f"not valid TOML: {exc}", "fix the syntax")]
    _unknown(data, "", f, problems)
    for section in ("task", "agent", "verifier", "solution", "environment"):
        t = data.get(section)
        if t is not None and not isinstance(t, dict):
            problems.append(Problem(f, section, "must be a table", f"write [{section}]"))
            data[section] = {}
        elif isinstance(t, dict):
            _unknown(t, section, f, problems)
    task_t = data.get("task") or {}
    agent_t = data.get("agent") or {}
    verifier_t = data.get("verifier") or {}
    env_t = data.get("environment") or {}

    # environment
    memory_mb = env_t.get("memory_mb")
    if memory_mb is None and "memory" in env_t:
        memory_mb = _size_mb(env_t["memory"])
        if memory_mb is None:
            problems.append(
                Problem(
                    f,
                    "environment.memory",
                    f"bad size {env_t['memory']!r}",
                    'use memory_mb = 2048 (or memory = "2G")',
                )
            )
    storage_mb = env_t.get("storage_mb")
    if storage_mb is None and "storage" in env_t:
        storage_mb = _size_mb(env_t["storage"])
    hc_t = env_t.get("healthcheck")
    healthcheck = None
    if isinstance(hc_t, dict):
        _unknown(hc_t, "environment.healthcheck", f, problems)
        if not hc_t.get("command"):
            problems.append(
                Problem(
                    f,
                    "environment.healthcheck.command",
                    "missing",
                    'add command = "curl -sf http://localhost:8080/"',
                )
            )
        else:
            healthcheck = Healthcheck(
                command=str(hc_t["command"]),
                interval_sec=float(hc_t.get("interval_sec", 5)),
                timeout_sec=float(hc_t.get("timeout_sec", 30)),
                start_period_sec=float(hc_t.get("start_period_sec", 0)),
                start_interval_sec=float(hc_t.get("start_interval_sec", 5)),
                retries=int(hc_t.get("retries", 3)),
            )
    env_dir = root / "environment"
    dockerfile_dir = env_dir if (env_dir / "Dockerfile").is_file() else None
    image = env_t.get("docker_image")
    if image is None and dockerfile_dir is None:
        problems.append(
            Problem(
                str(env_dir / "Dockerfile"),
                "",
                "no Dockerfile and no [environment] docker_image",
                'add environment/Dockerfile or set docker_image = "..."',
            )
        )
    environment = Environment(
        docker_image=str(image) if image else None,
        dockerfile_dir=dockerfile_dir,
        build_timeout_sec=_number(env_t, "build_timeout_sec", 600.0, f, "environment", problems),
        cpus=_number(env_t, "cpus", 1.0, f, "environment", problems),
        memory_mb=int(memory_mb or 2048),
        storage_mb=int(storage_mb) if storage_mb else None,
        allow_internet=bool(env_t.get("allow_internet", False)),
        network_mode=env_t.get("network_mode"),
        workdir=env_t.get("workdir"),
        env=_env_table(env_t.get("env"), f, "environment.env", problems),
        healthcheck=healthcheck,
    )

    agent_timeout = _number(agent_t, "timeout_sec", 600.0, f, "agent", problems)
    verifier_timeout = _number(verifier_t, "timeout_sec", 600.0, f, "verifier", problems)
    verifier_env = _env_table(verifier_t.get("env"), f, "verifier.env", problems)

    steps: list[Step] = []
    steps_t = data.get("steps")
    if steps_t:
        if not isinstance(steps_t, list):
            problems.append(Problem(f, "steps", "must be an array of tables", "use [[steps]]"))
            steps_t = []
        for i, st in enumerate(steps_t):
            _unknown(st, "steps", f, problems)
            name = st.get("name")
            if not name:
                problems.append(
                    Problem(f, f"steps[{i}].name", "missing", 'add name = "<folder under steps/>"')
                )
                continue
            d = root / "steps" / str(name)
            steps.append(
                _step(
                    d,
                    str(name),
                    st.get("agent") or {},
                    st.get("verifier") or {},
                    agent_timeout,
                    verifier_timeout,
                    verifier_env,
                    f,
                    problems,
                )
            )
    else:
        steps.append(
            _step(root, "main", {}, {}, agent_timeout, verifier_timeout, verifier_env, f, problems)
        )

    strategy = str(data.get("multi_step_reward_strategy", "mean"))
    if strategy not in ("mean", "final"):
        problems.append(
            Problem(
                f,
                "multi_step_reward_strategy",
                f"unknown strategy {strategy!r}",
                'use "mean" or "final"',
            )
        )
    name = str(task_t.get("name") or root.name)
    task = Task(
        id=root.name,
        path=root,
        name=name,
        environment=environment,
        steps=tuple(steps),
        agent_user=agent_t.get("user"),
        solution_env=_env_table(
            (data.get("solution") or {}).get("env"), f, "solution.env", problems
        ),
        metadata=dict(data.get("metadata") or {}),
        reward_strategy=strategy,
    )
    if any(p.severity == "error" for p in problems):
        return None, problems
    return task, problems


def _step(
    d: Path,
    name: str,
    agent_t: dict[str, Any],
    verifier_t: dict[str, Any],
    agent_timeout: float,
    verifier_timeout: float,
    verifier_env: dict[str, str],
    f: str,
    problems: list[Problem],
) -> Step:
    instruction_path = d / "instruction.md"
    instruction = ""
    if not instruction_path.is_file():
        problems.append(
            Problem(
                str(instruction_path),
                "",
                "missing",
                "write the task's instruction for the agent there",
            )
        )
    else:
        instruction = instruction_path.read_text(encoding="utf-8")
        if not instruction.strip():
            problems.append(
                Problem(
                    str(instruction_path),
                    "",
                    "empty",
                    "write the task's instruction for the agent there",
                )
            )
    tests = d / "tests"
    if not (tests / "test.sh").is_file():
        problems.append(
            Problem(
                str(tests / "test.sh"),
                "",
                "missing",
                "add a test.sh that writes a reward to /logs/verifier/reward.txt",
            )
        )
    solution = d / "solution"
    return Step(
        name=name,
        instruction=instruction,
        solution_dir=solution if (solution / "solve.sh").is_file() else None,
        tests_dir=tests if tests.is_dir() else None,
        agent_timeout_sec=float(agent_t.get("timeout_sec", agent_timeout)),
        verifier_timeout_sec=float(verifier_t.get("timeout_sec", verifier_timeout)),
        verifier_env={
            **verifier_env,
            **{str(k): str(v) for k, v in (verifier_t.get("env") or {}).items()},
        },
    )


def find_tasks(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Task folders named by ``paths``: each is a task (has task.toml) or holds tasks."""
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / "task.toml").is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(c for c in p.iterdir() if (c / "task.toml").is_file()))
        else:
            found.append(p)  # load_task reports it
    return found


def load_tasks(paths: list[str | os.PathLike[str]]) -> list[Task]:
    """Every task ``paths`` name, loaded; raises TaskError for the first invalid one."""
    tasks = []
    for path in find_tasks(paths):
        task, problems = load_task(path)
        if task is None:
            raise TaskError(Path(path), problems)
        tasks.append(task)
    return tasks
