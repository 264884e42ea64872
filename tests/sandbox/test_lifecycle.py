"""Containers are removed however the owning process ends, and `gc` cleans only leftovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from sandbox._owner import owner_labels
from tests.conftest import harness_cli
from traces.vocab import Label

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys, time
from sandbox import Sandbox
sb = Sandbox(sys.argv[1]).start()
sb.run("sleep 1000 &")
print(sb.container_id, flush=True)
if sys.argv[2] == "interrupt":
    with sb:
        time.sleep(600)
time.sleep(600)
"""


def _gone(cid: str, timeout: float = 20.0) -> bool:
    """Poll the engine until the container no longer exists (the engine removes it async)."""
    api = docker.from_env().api
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            api.inspect_container(cid)
        except docker.errors.NotFound:
            return True
        time.sleep(0.05)
    return False


def _spawn(base_image: str, mode: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, base_image, mode],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    cid = proc.stdout.readline().strip()
    assert cid, "child did not start a sandbox"
    docker.from_env().api.inspect_container(cid)  # exists now
    return proc, cid


@pytest.mark.parametrize(
    ("mode", "sig"),
    [("plain", signal.SIGTERM), ("interrupt", signal.SIGINT), ("plain", signal.SIGKILL)],
)
def test_container_removed_when_owner_ends(base_image: str, mode: str, sig: int) -> None:
    proc, cid = _spawn(base_image, mode)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert _gone(cid), f"container {cid[:12]} survived {signal.Signals(sig).name}"


@pytest.fixture
def planted(base_image: str) -> Iterator[dict[str, str]]:
    """Containers as a crashed harness, a live harness and a stranger would leave them."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    dead_labels = {**owner_labels("run-dead"), Label.OWNER_PID: str(dead.pid)}
    live_labels = owner_labels("run-live")
    api = docker.from_env().api
    ids: dict[str, str] = {}
    for name, labels in (("dead", dead_labels), ("live", live_labels), ("stranger", {})):
        ids[name] = api.create_container(
            base_image,
            ["sleep", "infinity"],
            labels=labels,
            host_config=api.create_host_config(network_mode="none"),
        )["Id"]
        api.start(ids[name])
    # A temporary image (as replay snapshots will be) of the dead owner, and one of the live.
    for name, labels in (("dead-image", dead_labels), ("live-image", live_labels)):
        ids[name] = api.commit(
            ids["stranger"],
            repository=f"harness-test-{name}",
            tag="x",
            conf={"Labels": {**labels, Label.TEMP: "1"}},
        )["Id"]
    yield ids
    for name in ("dead-image", "live-image"):
        try:
            api.remove_image(ids.pop(name), force=True)
        except docker.errors.NotFound:
            pass
    for cid in ids.values():
        try:
            api.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass


def _exists(cid: str) -> bool:
    api = docker.from_env().api
    try:
        if cid.startswith("sha256:"):
            api.inspect_image(cid)
        else:
            api.inspect_container(cid)
        return True
    except docker.errors.NotFound:
        return False


def test_gc_removes_dead_owners_containers_only(planted: dict[str, str]) -> None:
    dry = harness_cli("gc", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    listed = {item["id"] for item in json.loads(dry.stdout)["would_remove"]}
    assert {planted["dead"], planted["dead-image"]} <= listed
    assert not {planted["live"], planted["stranger"], planted["live-image"]} & listed
    assert _exists(planted["dead"])

    res = harness_cli("gc")
    assert res.returncode == 0, res.stderr
    assert "removed container" in res.stdout
    assert not _exists(planted["dead"]) and not _exists(planted["dead-image"])
    assert _exists(planted["live"]) and _exists(planted["stranger"])
    assert _exists(planted["live-image"])


def test_gc_spares_a_live_sandbox_in_another_process(base_image: str) -> None:
    proc, cid = _spawn(base_image, "plain")
    try:
        res = harness_cli("gc")
        assert res.returncode == 0, res.stderr
        assert _exists(cid)
    finally:
        proc.kill()
        proc.wait()
    assert _gone(cid)


def test_missing_engine_fails_the_suite_under_ci() -> None:
    env = dict(os.environ, CI="true", DOCKER_HOST="unix:///nonexistent/docker.sock")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/sandbox/test_session.py::test_exit_codes_and_separate_streams",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert res.returncode != 0
    assert "no Docker engine answers" in res.stdout
    assert "1 error" in res.stdout and "skipped" not in res.stdout
