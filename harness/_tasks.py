"""Tasks in the Harbor task format: loading and validation.

A task is a folder: ``instruction.md``, ``task.toml``, ``environment/`` (a Dockerfile) or an
``[environment] docker_image``, ``solution/solve.sh`` and ``tests/test.sh`` (which writes
``/logs/verifier/reward.txt`` or ``reward.json``); or ``[[steps]]`` with ``steps/<name>/``
holding those per step. Every problem is reported with its file, field and a fix, and loading
never raises for a task's content: a value of the wrong type or out of range is a problem
naming its field, so ``harness tasks check`` reports every task. Fields this loader does not
know are warnings, never failures, so newer task files still load.

Network: Harbor's ``[environment] network_mode`` is ``public`` (full network access),
``no-network`` or ``allowlist`` (only ``allowed_hosts``; none listed denies all egress); the
older ``allow_internet`` (default true) means ``public`` when true and ``no-network`` when
false (https://harborframework.com/docs/tasks/network-policy and the task.toml reference).
Here ``public`` runs in a network of the trial's own with internet access (``isolated``);
``no-network`` and ``allowlist`` run with no network (``none``): an allowlist cannot be
enforced here, so it fails closed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._task_archive import task_archive

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_MB = {"": 1 / (1 << 20), "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}

# Harbor's network modes -> the sandbox's network policy.
NETWORK_MODES: dict[str, str] = {"public": "isolated", "no-network": "none", "allowlist": "none"}
# Docker's names, which Harbor does not accept: what to write instead.
_DOCKER_NETWORKS = {
    "none": 'use network_mode = "no-network"',
    "bridge": 'use network_mode = "public"',
    "default": 'use network_mode = "public"',
    "host": 'use network_mode = "public" (a trial never shares the host\'s network)',
}

DEFAULT_MEMORY_MB = 2048  # Harbor's default
_NETWORK = {"network_mode", "allowed_hosts"}

# Known fields per table; anything else is reported as a warning.
_KNOWN: dict[str, set[str]] = {
    "": {
        "schema_version",
        "version",
        "source",
        "task",
        "metadata",
        "verifier",
        "agent",
        "environment",
        "solution",
        "steps",
        "multi_step_reward_strategy",
    },
    "task": {"name", "description", "authors", "keywords"},
    "agent": {"timeout_sec", "user", *_NETWORK},
    "verifier": {"timeout_sec", "env", "user", *_NETWORK},
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
        "gpu_types",
        "allow_internet",
        *_NETWORK,
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
    "steps.agent": {"timeout_sec", *_NETWORK},
    "steps.verifier": {"timeout_sec", "env", *_NETWORK},
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
    memory_mb: int = DEFAULT_MEMORY_MB
    storage_mb: int | None = None
    network: str = "none"  # the sandbox's policy: none | isolated (own network, internet)
    network_source: str = ""  # what in task.toml decided it, for `harness tasks check`
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    healthcheck: Healthcheck | None = None


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
    def archive(self) -> bytes | None:
        """The task folder as a deterministic archive (None when too large to record): a
        trial's record carries it, so the trial can be replayed from the record alone."""
        return task_archive(self.path)

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
            elif stat.S_ISREG(st.st_mode):  # never open a FIFO or a device: it could block
                h.update(p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


class TaskError(Exception):
    """A task could not be loaded; ``problems`` says why."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(str(p) for p in problems if p.severity == "error"))


def _show(v: Any) -> str:
    """A value as task.toml spells it, with its TOML type: for messages."""
    if isinstance(v, bool):
        return f"{str(v).lower()} (a boolean)"
    if isinstance(v, str):
        return f"{json.dumps(v)} (a string)"
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (int, float)):
        return repr(v)
    return f"{v} (a {type(v).__name__})"


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _size_mb(value: Any) -> int | None:
    if isinstance(value, (bool, dict, list)):
        return None
    if isinstance(value, (int, float)):
        return int(value) if math.isfinite(value) else None
    m = _SIZE.match(str(value))
    if not m:
        return None
    return int(float(m.group(1)) * _MB[m.group(2).lower()])


def _memory_problem(mb: int) -> str:
    """Why the sandbox would refuse ``mb`` of memory ('' if it accepts it): the sandbox's own
    rule, so a task that passes check never fails on it at run time."""
    from pydantic import ValidationError

    from sandbox import Limits

    try:
        Limits(memory=mb << 20)
    except ValidationError as exc:
        return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
    return ""


class _Reader:
    """Typed reads of task.toml's values. A value of the wrong type or out of range becomes a
    problem naming its field, and the default stands in so that checking goes on."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems

    def error(self, where: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.file, where, message, fix))

    def warn(self, where: str, message: str, fix: str = "") -> None:
        self.problems.append(Problem(self.file, where, message, fix, severity="warning"))

    def unknown(self, table: dict[str, Any], section: str, where: str) -> None:
        for key in table:
            if key not in _KNOWN[section]:
                self.warn(f"{where}.{key}" if where else key, "unknown field, ignored")

    def table(self, parent: dict[str, Any], key: str, where: str, fix: str = "") -> dict[str, Any]:
        v = parent.get(key)
        if v is None:
            return {}
        if isinstance(v, dict):
            return v
        self.error(where, f"must be a table, got {_show(v)}", fix or f"write [{where}]")
        return {}

    def number(
        self,
        t: dict[str, Any],
        key: str,
        where: str,
        default: float,
        *,
        zero_ok: bool = False,
        whole: bool = False,
    ) -> float:
        if key not in t:
            return default
        v = t[key]
        ok = (
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(v)
            and (v >= 0 if zero_ok else v > 0)
            and (not whole or float(v).is_integer())
        )
        if ok:
            return float(v)
        kind = "whole number" if whole else "number"
        what = f"a {kind} >= 0" if zero_ok else f"a positive {kind}"
        self.error(where, f"must be {what}, got {_show(v)}", f"set {key} = {_fmt(default)}")
        return default

    def string(self, t: dict[str, Any], key: str, where: str, fix: str) -> str | None:
        if key not in t:
            return None
        v = t[key]
        if isinstance(v, str) and v.strip():
            return v
        self.error(where, f"must be a non-empty string, got {_show(v)}", fix)
        return None

    def boolean(self, t: dict[str, Any], key: str, where: str) -> bool | None:
        if key not in t:
            return None
        v = t[key]
        if isinstance(v, bool):
            return v
        self.error(where, f"must be true or false, got {_show(v)}", f"set {key} = true or false")
        return None

    def strings(self, t: dict[str, Any], key: str, where: str, fix: str) -> list[str]:
        v = t.get(key)
        if v is None:
            return []
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
        self.error(where, f"must be an array of strings, got {_show(v)}", fix)
        return []

    def env(self, t: dict[str, Any], key: str, where: str) -> dict[str, str]:
        fix = f'write [{where}] with one NAME = "value" per line'
        v = t.get(key)
        if v is None:
            return {}
        if not isinstance(v, dict):
            self.error(where, f'must be a table of NAME = "value", got {_show(v)}', fix)
            return {}
        out: dict[str, str] = {}
        for name, value in v.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                self.error(
                    f"{where}.{name}", f"must be a string, got {_show(value)}", f'{name} = "..."'
                )
                continue
            out[str(name)] = str(value)
        return out


def load_task(path: str | os.PathLike[str]) -> tuple[Task | None, list[Problem]]:
    """Load and validate one task folder. Returns the task (None if it has errors) and every
    problem found, warnings included. Never raises for what is in the folder."""
    try:
        root = Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        root = Path(path).absolute()
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
    except OSError as exc:
        return None, [Problem(f, "", f"cannot be read: {exc.strerror}", "make it readable")]
    r = _Reader(f, problems)
    r.unknown(data, "", "")
    tables = {}
    for section in ("task", "agent", "verifier", "solution", "environment"):
        tables[section] = r.table(data, section, section)
        r.unknown(tables[section], section, section)
    task_t, agent_t, verifier_t = tables["task"], tables["agent"], tables["verifier"]
    env_t = tables["environment"]

    environment = _environment(r, root, env_t)
    agent_timeout = r.number(agent_t, "timeout_sec", "agent.timeout_sec", 600.0)
    verifier_timeout = r.number(verifier_t, "timeout_sec", "verifier.timeout_sec", 600.0)
    verifier_env = r.env(verifier_t, "env", "verifier.env")
    r.string(verifier_t, "user", "verifier.user", 'set user = "root" or remove it')

    phases: list[tuple[str, dict[str, Any]]] = [("agent", agent_t), ("verifier", verifier_t)]
    steps: list[Step] = []
    steps_v = data.get("steps")
    if steps_v is not None and not isinstance(steps_v, list):
        r.error(
            "steps",
            f"must be an array of tables, got {_show(steps_v)}",
            'write each step as [[steps]] with name = "<folder under steps/>"',
        )
        steps_v = None
    if steps_v:
        seen: set[str] = set()
        for i, st in enumerate(steps_v):
            where = f"steps[{i}]"
            if not isinstance(st, dict):
                r.error(
                    where,
                    f"must be a table, got {_show(st)}",
                    'write each step as [[steps]] with name = "<folder under steps/>"',
                )
                continue
            r.unknown(st, "steps", where)
            st_agent = r.table(st, "agent", f"{where}.agent", f"write [steps.agent] under {where}")
            st_verifier = r.table(
                st, "verifier", f"{where}.verifier", f"write [steps.verifier] under {where}"
            )
            r.unknown(st_agent, "steps.agent", f"{where}.agent")
            r.unknown(st_verifier, "steps.verifier", f"{where}.verifier")
            phases += [(f"{where}.agent", st_agent), (f"{where}.verifier", st_verifier)]
            name = _step_name(r, st, where, seen)
            if name is None:
                continue
            steps.append(
                _step(
                    r,
                    root / "steps" / name,
                    name,
                    where,
                    st_agent,
                    st_verifier,
                    agent_timeout,
                    verifier_timeout,
                    verifier_env,
                )
            )
    else:
        steps.append(
            _step(r, root, "main", "", {}, {}, agent_timeout, verifier_timeout, verifier_env)
        )
    network, source = _network(r, env_t, phases)
    environment = dataclasses.replace(environment, network=network, network_source=source)

    strategy = "mean"
    if "multi_step_reward_strategy" in data:
        got = data["multi_step_reward_strategy"]
        if got in ("mean", "final"):
            strategy = got
        else:
            r.error(
                "multi_step_reward_strategy",
                f"unknown strategy {_show(got)}",
                'use "mean" or "final"',
            )
    name = r.string(task_t, "name", "task.name", 'set name = "org/task-name"') or root.name
    user = agent_t.get("user")
    if user is not None and (isinstance(user, bool) or not isinstance(user, (str, int))):
        r.error("agent.user", f"must be a user name or uid, got {_show(user)}", 'user = "agent"')
        user = None
    task = Task(
        id=root.name,
        path=root,
        name=name,
        environment=environment,
        steps=tuple(steps),
        agent_user=str(user) if user is not None else None,
        solution_env=r.env(tables["solution"], "env", "solution.env"),
        metadata=dict(r.table(data, "metadata", "metadata")),
        reward_strategy=strategy,
    )
    if any(p.severity == "error" for p in problems):
        return None, problems
    return task, problems


def _environment(r: _Reader, root: Path, env_t: dict[str, Any]) -> Environment:
    """The ``[environment]`` table, every value checked; the network is decided later."""
    w = "environment"
    cpus = r.number(env_t, "cpus", f"{w}.cpus", 1.0)
    memory_mb = _memory(r, env_t)
    storage_mb: int | None = None
    if "storage_mb" in env_t:
        storage_mb = int(r.number(env_t, "storage_mb", f"{w}.storage_mb", 10240, whole=True))
    elif "storage" in env_t:
        storage_mb = _size_mb(env_t["storage"])
        if not storage_mb or storage_mb <= 0:
            r.error(
                f"{w}.storage",
                f"bad size {_show(env_t['storage'])}",
                'use storage_mb = 10240 (or storage = "10G")',
            )
            storage_mb = None
    gpus = r.number(env_t, "gpus", f"{w}.gpus", 0, zero_ok=True, whole=True)
    if gpus > 0:
        r.warn(f"{w}.gpus", f"asks for {_fmt(gpus)} GPUs; trials here get none", "set gpus = 0")
    workdir = r.string(env_t, "workdir", f"{w}.workdir", 'set workdir = "/app"')
    if workdir is not None and not workdir.startswith("/"):
        r.error(f"{w}.workdir", f"must be an absolute path, got {workdir!r}", f'"/{workdir}"')
        workdir = None
    healthcheck = None
    if "healthcheck" in env_t:
        hc_t = r.table(env_t, "healthcheck", f"{w}.healthcheck")
        healthcheck = _healthcheck(r, hc_t) if isinstance(env_t["healthcheck"], dict) else None
    env_dir = root / "environment"
    dockerfile_dir = env_dir if (env_dir / "Dockerfile").is_file() else None
    image = r.string(
        env_t, "docker_image", f"{w}.docker_image", 'set docker_image = "ubuntu:24.04"'
    )
    if "docker_image" not in env_t and dockerfile_dir is None:
        r.problems.append(
            Problem(
                str(env_dir / "Dockerfile"),
                "",
                "no Dockerfile and no [environment] docker_image",
                'add environment/Dockerfile or set docker_image = "..."',
            )
        )
    return Environment(
        docker_image=image,
        dockerfile_dir=dockerfile_dir,
        build_timeout_sec=r.number(env_t, "build_timeout_sec", f"{w}.build_timeout_sec", 600.0),
        cpus=cpus,
        memory_mb=memory_mb,
        storage_mb=storage_mb,
        workdir=workdir,
        env=r.env(env_t, "env", f"{w}.env"),
        healthcheck=healthcheck,
    )


def _memory(r: _Reader, env_t: dict[str, Any]) -> int:
    if "memory_mb" in env_t:
        where = "environment.memory_mb"
        mb = int(r.number(env_t, "memory_mb", where, DEFAULT_MEMORY_MB, whole=True))
    elif "memory" in env_t:
        where = "environment.memory"
        size = _size_mb(env_t["memory"])
        if size is None:
            r.error(
                where,
                f"bad size {_show(env_t['memory'])}",
                'use memory_mb = 2048 (or memory = "2G")',
            )
            return DEFAULT_MEMORY_MB
        mb = size
    else:
        return DEFAULT_MEMORY_MB
    problem = _memory_problem(mb)
    if problem:
        r.error(where, f"{mb} MB is refused by the sandbox: {problem}", "set memory_mb = 2048")
        return DEFAULT_MEMORY_MB
    return mb


def _healthcheck(r: _Reader, hc_t: dict[str, Any]) -> Healthcheck | None:
    w = "environment.healthcheck"
    r.unknown(hc_t, w, w)
    if "command" not in hc_t:
        r.error(f"{w}.command", "missing", 'add command = "curl -sf http://localhost:8080/"')
    command = r.string(
        hc_t, "command", f"{w}.command", 'set command = "curl -sf http://localhost:8080/"'
    )
    hc = Healthcheck(
        command=command or "",
        interval_sec=r.number(hc_t, "interval_sec", f"{w}.interval_sec", 5.0),
        timeout_sec=r.number(hc_t, "timeout_sec", f"{w}.timeout_sec", 30.0),
        start_period_sec=r.number(
            hc_t, "start_period_sec", f"{w}.start_period_sec", 0.0, zero_ok=True
        ),
        start_interval_sec=r.number(hc_t, "start_interval_sec", f"{w}.start_interval_sec", 5.0),
        retries=int(r.number(hc_t, "retries", f"{w}.retries", 3, zero_ok=True, whole=True)),
    )
    return hc if command else None


def _network(
    r: _Reader, env_t: dict[str, Any], phases: list[tuple[str, dict[str, Any]]]
) -> tuple[str, str]:
    """The sandbox network policy (none | isolated) and what decided it, per Harbor's
    semantics (see the module's docstring)."""
    w = "environment"
    mode = _network_mode(r, env_t, w)
    allow = r.boolean(env_t, "allow_internet", f"{w}.allow_internet")
    hosts = r.strings(env_t, "allowed_hosts", f"{w}.allowed_hosts", 'allowed_hosts = ["pypi.org"]')
    if mode is not None:
        policy, source = NETWORK_MODES[mode], f'network_mode = "{mode}"'
        if allow is not None and allow != (policy == "isolated"):
            r.error(
                f"{w}.allow_internet",
                f"allow_internet = {str(allow).lower()} contradicts network_mode = {mode!r}",
                "remove allow_internet: network_mode replaces it",
            )
        if mode == "allowlist" and hosts:
            r.warn(
                f"{w}.allowed_hosts",
                "host allowlists cannot be enforced here, so the trial has no network at all "
                f"and {', '.join(hosts)} cannot be reached",
                'use network_mode = "public" if the task needs these hosts',
            )
    elif allow is not None:
        policy = "isolated" if allow else "none"
        source = f"allow_internet = {str(allow).lower()}"
    else:
        policy, source = "isolated", "Harbor's default, allow_internet = true"
    overrides = []
    for where, t in phases:
        phase_mode = _network_mode(r, t, where)
        r.strings(t, "allowed_hosts", f"{where}.allowed_hosts", 'allowed_hosts = ["pypi.org"]')
        if phase_mode is not None and NETWORK_MODES[phase_mode] != policy:
            overrides.append((where, phase_mode))
    if overrides:
        # One container keeps one network: the most restrictive phase decides for all.
        policy = "none"
        source += " (limited by a phase's network_mode)"
    for where, phase_mode in overrides:
        r.warn(
            f"{where}.network_mode",
            f"{phase_mode!r} for one phase cannot be switched to at run time here; every "
            f"phase runs with network {policy!r}",
            "set [environment] network_mode to what every phase may have",
        )
    return policy, source


def _network_mode(r: _Reader, t: dict[str, Any], where: str) -> str | None:
    mode = r.string(t, "network_mode", f"{where}.network_mode", 'use "public" or "no-network"')
    if mode is None or mode in NETWORK_MODES:
        return mode
    fix = _DOCKER_NETWORKS.get(mode, 'use "public", "no-network" or "allowlist"')
    r.error(
        f"{where}.network_mode",
        f"unknown network mode {mode!r}: Harbor's are public, no-network and allowlist",
        fix,
    )
    return None


def _step_name(r: _Reader, st: dict[str, Any], where: str, seen: set[str]) -> str | None:
    fix = 'add name = "<folder under steps/>"'
    if "name" not in st:
        r.error(f"{where}.name", "missing", fix)
        return None
    name = r.string(st, "name", f"{where}.name", fix)
    if name is None:
        return None
    if "/" in name or "\\" in name or name in (".", ".."):
        r.error(f"{where}.name", f"must be a folder name under steps/, got {name!r}", fix)
        return None
    if name in seen:
        r.error(f"{where}.name", f"step {name!r} is named twice", "give each step its own name")
        return None
    seen.add(name)
    return name


def _step(
    r: _Reader,
    d: Path,
    name: str,
    where: str,
    agent_t: dict[str, Any],
    verifier_t: dict[str, Any],
    agent_timeout: float,
    verifier_timeout: float,
    verifier_env: dict[str, str],
) -> Step:
    instruction_path = d / "instruction.md"
    instruction = ""
    fix = "write the task's instruction for the agent there"
    if not instruction_path.is_file():
        r.problems.append(Problem(str(instruction_path), "", "missing", fix))
    else:
        try:
            instruction = instruction_path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            r.problems.append(
                Problem(
                    str(instruction_path),
                    "",
                    f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
                    "save it as UTF-8 text",
                )
            )
        except OSError as exc:
            r.problems.append(
                Problem(str(instruction_path), "", f"cannot be read: {exc.strerror}", fix)
            )
        else:
            if not instruction.strip():
                r.problems.append(Problem(str(instruction_path), "", "empty", fix))
    tests = d / "tests"
    if not (tests / "test.sh").is_file():
        r.problems.append(
            Problem(
                str(tests / "test.sh"),
                "",
                "missing",
                "add a test.sh that writes a reward to /logs/verifier/reward.txt",
            )
        )
    solution = d / "solution"
    prefix = f"{where}." if where else ""
    return Step(
        name=name,
        instruction=instruction,
        solution_dir=solution if (solution / "solve.sh").is_file() else None,
        tests_dir=tests if tests.is_dir() else None,
        agent_timeout_sec=r.number(
            agent_t, "timeout_sec", f"{prefix}agent.timeout_sec", agent_timeout
        ),
        verifier_timeout_sec=r.number(
            verifier_t, "timeout_sec", f"{prefix}verifier.timeout_sec", verifier_timeout
        ),
        verifier_env={**verifier_env, **r.env(verifier_t, "env", f"{prefix}verifier.env")},
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
