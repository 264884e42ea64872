"""Finding, and if need be installing and starting, the Docker engine.

A fresh Debian machine has no engine running. Rather than documenting five manual steps, the
harness brings one up itself when it can (root on Debian: ``apt-get install docker.io`` and
``dockerd`` in the background) and otherwise says exactly what to do.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ContextDecorator
from pathlib import Path
from types import TracebackType

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions

from ._errors import EngineError, EngineUnavailable, ImageNotFound, SandboxError

logger = logging.getLogger(__name__)

DOCKERD_LOG = Path(os.environ.get("HARNESS_DOCKERD_LOG", "/var/log/harness-dockerd.log"))

_client: docker.DockerClient | None = None
_client_lock = threading.Lock()


def client() -> docker.DockerClient:
    """The process-wide Docker client (thread-safe; one connection pool for all sessions)."""
    global _client
    with _client_lock:
        if _client is None:
            try:
                c = docker.from_env(timeout=120)
                if c.api.base_url.startswith("http+docker://"):
                    # A unix socket: no proxy applies, and looking the proxy variables up
                    # again on every request costs more than the request itself.
                    c.api.trust_env = False
                c.ping()
            except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
                raise EngineUnavailable(
                    f"no Docker engine answers ({_why(exc)}). Start one with "
                    "`harness setup` (as root on Debian it installs and starts dockerd), "
                    "or point DOCKER_HOST at a running engine."
                ) from exc
            _client = c
        return _client


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:200] if text else type(exc).__name__


class engine_errors(ContextDecorator):  # noqa: N801 - used like a function
    """Translate the engine client's exceptions into :class:`SandboxError` s (``from`` them).

    A context manager or a decorator; ``what`` completes "... while <what>". Errors that are
    already ``SandboxError`` s, and everything that is not the engine client's (Ctrl-C,
    ``FileNotFoundError`` for a missing file), pass through unchanged.
    """

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, SandboxError):
            return
        translated = translate(exc, self.what)
        if translated is not None:
            raise translated from exc


def translate(exc: BaseException, what: str) -> SandboxError | None:
    """The ``SandboxError`` an engine client exception stands for, or None if it is not one."""
    if isinstance(
        exc,
        (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            urllib3.exceptions.HTTPError,
        ),
    ):
        return EngineUnavailable(
            f"the Docker engine stopped answering while {what} ({_why(exc)}); check that it "
            "still runs (`harness doctor`), or restart it with `harness setup`."
        )
    if isinstance(exc, docker.errors.ImageNotFound):
        return ImageNotFound(f"image not found while {what}: {exc.explanation or exc}")
    if isinstance(exc, docker.errors.APIError):
        return EngineError(f"the Docker engine failed while {what}: {exc.explanation or exc}")
    if isinstance(exc, (docker.errors.DockerException, requests.exceptions.RequestException)):
        return EngineError(f"the Docker engine failed while {what}: {_why(exc)}")
    return None


def engine_answers(timeout: float = 3.0) -> bool:
    try:
        c = docker.from_env(timeout=timeout)
        try:
            return bool(c.ping())
        finally:
            c.close()
    except Exception:  # noqa: BLE001
        return False


def is_local_engine() -> bool:
    """True when the engine runs on this host (unix socket), so its files are readable here."""
    host = os.environ.get("DOCKER_HOST", "")
    return host == "" or host.startswith("unix://")


def ensure_engine(say: Callable[[str], None] = logger.info, wait_s: float = 90.0) -> None:
    """Make sure a Docker engine answers, installing and starting one if needed and possible."""
    if engine_answers():
        return
    if os.environ.get("DOCKER_HOST") and not is_local_engine():
        raise EngineUnavailable(
            f"the engine at DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer; "
            "check that it is running and reachable, or unset DOCKER_HOST to use a local one."
        )
    if not sys.platform.startswith("linux"):
        raise EngineUnavailable(
            "no Docker engine answers. Start Docker Desktop (or another engine) and retry."
        )
    if os.geteuid() != 0:
        raise EngineUnavailable(
            "no Docker engine answers and starting one needs root. Run `sudo harness setup`, "
            "or start dockerd yourself and add your user to the docker group."
        )
    if shutil.which("dockerd") is None:
        if shutil.which("apt-get") is None:
            raise EngineUnavailable(
                "no Docker engine answers and dockerd is not installed; this is not a Debian "
                "system, so install Docker with your package manager and start it."
            )
        say("Installing the Docker engine (apt-get install docker.io)...")
        apt_install(["docker.io"], say)
    say(f"Starting dockerd in the background (log: {DOCKERD_LOG})...")
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(DOCKERD_LOG, "ab") as log:
        subprocess.Popen(
            ["dockerd"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if engine_answers(timeout=2.0):
            return
        time.sleep(0.3)
    tail = ""
    try:
        tail = "\n".join(DOCKERD_LOG.read_text(errors="replace").splitlines()[-15:])
    except OSError:
        pass
    raise EngineUnavailable(
        f"dockerd did not answer within {wait_s:.0f}s. Last lines of {DOCKERD_LOG}:\n{tail}"
    )


def apt_install(packages: list[str], say: Callable[[str], None] = logger.info) -> None:
    """Install Debian packages non-interactively, refreshing the package lists if needed."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", *packages]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if first.returncode == 0:
        return
    say("Refreshing package lists (apt-get update)...")
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if second.returncode != 0:
        raise EngineUnavailable(
            f"`{' '.join(cmd)}` failed (exit {second.returncode}):\n"
            + "\n".join(second.stderr.splitlines()[-10:])
        )
