"""What this engine can do for us: the facts behind `harness doctor`."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import docker.errors

from traces.vocab import Label

from ._engine import client, engine_errors, is_local_engine
from ._errors import SandboxError
from ._images import recipe_hash
from ._network import firewall_problem
from ._owner import owner_labels
from ._session import DEFAULT_IMAGE, Sandbox


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report. ``status`` is ``ok``, ``warn`` or ``fail``."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@engine_errors("checking the engine")
def run_checks(image: str = DEFAULT_IMAGE, try_session: bool = True) -> list[Check]:
    """Inspect the engine and the base image; never raises for an expected problem."""
    checks: list[Check] = []
    try:
        with engine_errors("asking the engine for its version"):
            c = client()
            info: dict[str, Any] = c.info()
            version: dict[str, Any] = c.version()
    except SandboxError as exc:
        return [Check("engine", "fail", str(exc), "run `harness setup` (root) or start Docker")]
    where = "local" if is_local_engine() else os.environ.get("DOCKER_HOST", "remote")
    checks.append(
        Check(
            "engine",
            "ok",
            f"Docker {version.get('Version')} (API {version.get('ApiVersion')}),"
            f" {where}, {info.get('NCPU')} CPUs, {info.get('MemTotal', 0) / 2**30:.1f} GiB",
        )
    )
    driver = str(info.get("Driver", ""))
    status = dict((k, v) for k, v in info.get("DriverStatus") or [])
    backing = status.get("Backing Filesystem", "?")
    checks.append(
        Check(
            "storage driver",
            "ok" if driver == "overlay2" else "warn",
            f"{driver} (backing filesystem {backing})",
            ""
            if driver == "overlay2"
            else "file diffs use the slower Docker API path; configure overlay2 for the fast path",
        )
    )
    cg_version = str(info.get("CgroupVersion", "1"))
    cg_driver = str(info.get("CgroupDriver", "?"))
    checks.append(Check("cgroups", "ok", f"v{cg_version}, driver {cg_driver}"))
    checks.append(_image_check(image))
    checks.extend(_fast_paths(info, driver, cg_version, cg_driver))
    quota = disk_limit_mode(image, driver, backing) == "quota"
    checks.append(
        Check(
            "disk limits",
            "ok" if quota else "warn",
            "quota: the storage driver enforces Limits(disk=...) (writes past it fail)"
            if quota
            else f"measured: {driver} on {backing} has no quotas, so a sandbox's writable "
            "layer is measured and its processes are stopped when it outgrows "
            "Limits(disk=...) (Sandbox.disk_exceeded); Limits(disk_mode='quota') is refused",
            "" if quota else "for hard quotas put /var/lib/docker on xfs mounted with pquota",
        )
    )
    sec = ", ".join(
        str(s).split(",")[0].removeprefix("name=") for s in info.get("SecurityOptions") or []
    )
    checks.append(Check("security", "ok", sec or "none reported"))
    checks.append(host_isolation_check())
    if try_session and checks[3].status != "fail":
        checks.append(_session_check(image))
    return checks


@engine_errors("checking how disk limits are held")
def disk_limit_mode(image: str = DEFAULT_IMAGE, driver: str = "", backing: str = "") -> str:
    """How a sandbox on this engine holds ``Limits(disk=...)``: ``quota`` if the engine
    accepts a per-container size (asked by creating, never starting, a container of
    ``image`` with one), else ``measured``. Without the image, judged from the storage
    driver and its backing filesystem."""
    api = client().api
    try:
        cid = api.create_container(
            image,
            command=["true"],
            labels=owner_labels(),
            host_config=api.create_host_config(storage_opt={"size": "1G"}),
        )["Id"]
    except docker.errors.ImageNotFound:
        return "quota" if (driver, backing) == ("overlay2", "xfs") else "measured"
    except docker.errors.APIError as exc:
        if "storage-opt" in str(exc.explanation or exc).lower():
            return "measured"
        raise
    api.remove_container(cid, force=True)
    return "quota"


def _image_check(image: str) -> Check:
    try:
        im = client().images.get(image)
    except docker.errors.ImageNotFound:
        return Check(
            "base image",
            "fail",
            f"{image} is not built",
            "run `harness images build` (about a minute)",
        )
    size = (im.attrs.get("Size") or 0) / 2**20
    recipe = (im.labels or {}).get(Label.RECIPE)
    if recipe is not None and recipe != recipe_hash():
        return Check(
            "base image",
            "warn",
            f"{image} ({im.short_id}, {size:.0f} MiB) is from an older recipe",
            "run `harness images build --force` to rebuild it",
        )
    return Check("base image", "ok", f"{image} ({im.short_id}, {size:.0f} MiB)")


def _fast_paths(info: dict[str, Any], driver: str, cg_version: str, cg_driver: str) -> list[Check]:
    out: list[Check] = []
    if not is_local_engine():
        msg = "remote engine: recording uses the Docker API (diff, stats), about 1 s per command"
        return [Check("fast paths", "warn", msg, "run the harness on the engine's host")]
    root = Path(str(info.get("DockerRootDir", "/var/lib/docker")))
    upper_ok = driver == "overlay2" and os.access(root / "overlay2", os.R_OK | os.X_OK)
    out.append(
        Check(
            "fast path: file diffs",
            "ok" if upper_ok else "warn",
            f"container upper layers readable under {root / 'overlay2'}"
            if upper_ok
            else f"cannot read {root / 'overlay2'} (needs overlay2 and root)",
            "" if upper_ok else "run as root on the engine's host",
        )
    )
    if cg_version == "2":
        base = Path(
            "/sys/fs/cgroup/system.slice" if cg_driver == "systemd" else "/sys/fs/cgroup/docker"
        )
    else:
        base = Path("/sys/fs/cgroup/memory") / (
            "system.slice" if cg_driver == "systemd" else "docker"
        )
    shells_ok = os.geteuid() == 0 and hasattr(os, "pidfd_open")
    out.append(
        Check(
            "fast path: session shells",
            "ok" if shells_ok else "warn",
            "PID 1 starts session shells on FIFOs (no docker exec)"
            if shells_ok
            else "each session shell is a docker exec (~60 ms of the engine's CPU)",
            "" if shells_ok else "run as root on the engine's host (Linux 5.3 or later)",
        )
    )
    cg_ok = base.is_dir() and os.access(base, os.R_OK)
    out.append(
        Check(
            "fast path: resource samples",
            "ok" if cg_ok else "warn",
            f"container cgroups readable under {base}" if cg_ok else f"{base} not readable",
            "" if cg_ok else "resource samples fall back to the Docker stats API (~1 s each)",
        )
    )
    return out


def host_isolation_check() -> Check:
    """Whether `network="isolated"` sandboxes are kept from the host's own services."""
    problem = firewall_problem()
    if problem is None:
        return Check("network isolation", "ok", "isolated sandboxes cannot reach host services")
    return Check(
        "network isolation",
        "warn",
        f"isolated sandboxes can reach services on this host ({problem}); they are still "
        "kept from each other",
        "run as root on the engine's host with iptables installed",
    )


def _session_check(image: str) -> Check:
    try:
        t0 = time.perf_counter()
        with Sandbox(image) as sb:
            start_ms = (time.perf_counter() - t0) * 1000
            times = []
            for _ in range(20):
                r = sb.run("true")
                times.append(r.duration * 1000)
            times.sort()
    except SandboxError as exc:
        return Check("session", "fail", str(exc), "see the engine log, then `harness doctor`")
    return Check(
        "session",
        "ok",
        f"sandbox started in {start_ms:.0f} ms; `true` round trip {times[10]:.2f} ms",
    )
