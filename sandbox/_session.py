"""The sandbox session: a persistent shell in a hardened container, driven like a terminal."""

from __future__ import annotations

import errno
import io
import os
import posixpath
import secrets
import select
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import TracebackType
from typing import IO, Any, Literal

import docker.errors
from docker.types import LogConfig
from pydantic import BaseModel, ConfigDict, Field, field_validator

from traces.vocab import Attr, Span

from . import _lifecycle, _network, _shell, _snapshots
from ._archive import IterReader, tar_stream
from ._capture import HeadTail, MarkerScanner
from ._engine import client, engine_errors, is_local_engine
from ._errors import (
    EngineError,
    ImageNotFound,
    LimitNotSupported,
    SandboxError,
    SessionLost,
    UnknownUser,
)
from ._owner import owner_labels
from ._processes import ControlReplies, ProcessInfo, ProcessSnapshot, keep_args
from ._recording import Recording, SessionRecorder, current_context
from ._resources import (
    ApiLayerSize,
    DiskGuard,
    LayerSize,
    OomCounter,
    UpperDirSize,
    host_oom_counter,
)
from ._snapshots import Snapshot

DEFAULT_IMAGE = os.environ.get("HARNESS_BASE_IMAGE", "harness-base:bookworm")
DEFAULT_OUTPUT_LIMIT = 1 << 20
_NO_QUOTA: set[str] = set()  # engines (DOCKER_HOST) seen refusing disk quotas
SMALL_WRITE = 256 << 10  # write_file through the shell up to this size

# What a normal root shell in a container needs (package installs drop to _apt, chown, kill,
# bind low ports). Docker's defaults minus MKNOD and NET_RAW (raw sockets: spoofing, sniffing).
DEFAULT_CAPS = (
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "SETFCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "AUDIT_WRITE",
)

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

DiskRequest = Literal["auto", "quota", "measured"]  # what Limits(disk_mode=...) asks for
DiskMode = Literal["quota", "measured", "none"]  # what a started sandbox does


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string such as ``"512m"``, ``"2G"``, ``"1.5GiB"``."""
    if isinstance(value, int):
        return value
    text = value.strip().lower().removesuffix("ib").removesuffix("b")
    num = text.rstrip("kmgt")
    unit = text[len(num) :]
    try:
        return int(float(num) * _UNITS[unit])
    except (ValueError, KeyError):
        raise ValueError(
            f"invalid size {value!r}: use bytes or a number with k, m, g or t (e.g. '512m')"
        ) from None


class Limits(BaseModel):
    """Resource limits; always applied (there is no unlimited sandbox)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    memory: int = Field(default=2 << 30, description="bytes; swap is not allowed on top")
    cpus: float = Field(default=1.0, gt=0)
    pids: int = Field(default=1024, ge=16)
    disk: int | None = Field(default=None, description="writable layer size, bytes")
    disk_mode: DiskRequest = Field(
        default="auto",
        description="how a disk limit is held: 'quota' (the storage driver enforces it; "
        "refused with LimitNotSupported where it cannot), 'measured' (the writable layer is "
        "measured and the sandbox's processes stopped when it outgrows the limit), or "
        "'auto' (quota where supported, else measured)",
    )

    @field_validator("memory", "disk", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return parse_size(v) if isinstance(v, str) else v

    @field_validator("memory")
    @classmethod
    def _min_memory(cls, v: int) -> int:
        if v < 6 << 20:
            raise ValueError("memory limit must be at least 6m (the engine's minimum)")
        return v


@dataclass(frozen=True)
class CommandResult:
    """What one ``run()`` observed. ``stdout``/``stderr`` are bounded; the counts are not."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    duration: float
    timed_out: bool = False
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    truncated: bool = False
    oom_killed: bool = False
    session_restarted: bool = False
    cwd: str = ""
    disk_exceeded: bool = False  # the disk limit was outgrown (measured mode): stopped

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")


@dataclass
class _Inflight:
    nonce: bytes
    out: HeadTail
    err: HeadTail
    done: threading.Event = field(default_factory=threading.Event)
    last_pid: int | None = None
    exit_code: int | None = None
    oom: bool = False
    shell_pid: int | None = None
    cwd: str = ""
    out_done: bool = False
    err_done: bool = False
    eof: bool = False


_UNSET: Any = object()


@dataclass
class _Session:
    """One user's persistent shell and what is needed to restart it."""

    user: str | None
    state_file: str
    channel: _ShellChannel | None = None
    cwd: str = ""
    starting: threading.Thread | None = None  # its shell starting in the background


class Sandbox:
    """A session-scoped Linux container with a persistent shell.

    Use as a context manager; the container is removed on exit, on exceptions and Ctrl-C, at
    interpreter exit, and by the engine itself however this process dies (even SIGKILL). Safe
    to use from many threads: each sandbox serialises its own commands, different sandboxes
    run in parallel.

    Every failure of the engine is raised as a :class:`SandboxError` (``EngineUnavailable``
    when the engine stops answering, ``EngineError`` for a refused request, or a more specific
    one) with the engine client's exception as its ``__cause__``.

    Example:
        with Sandbox() as sb:
            sb.run("cd /tmp && export X=1")
            print(sb.run("echo $X in $PWD").stdout_text)
    """

    def __init__(
        self,
        image: str = DEFAULT_IMAGE,
        *,
        limits: Limits | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        network: str = "none",
        labels: Mapping[str, str] | None = None,
        user: str | None = None,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        timeout: float | None = 600.0,
        run_id: str | None = None,
        record: Recording | None = None,
        hostname: str | None = None,
    ) -> None:
        self.image = image
        self.hostname = hostname
        self.limits = limits or Limits()
        self.env = dict(env or {})
        self.workdir = workdir
        self.network = network
        self.labels = {**(labels or {}), **owner_labels(run_id)}
        self.user = user
        self.output_limit = output_limit
        self.default_timeout = timeout
        self.run_id = run_id
        self.container_id: str | None = None
        self._api = client().api
        self._lock = threading.Lock()  # one command at a time
        self._io_lock = threading.Lock()  # reader thread vs run()
        self._control: socket.socket | None = None
        self._replies: ControlReplies | None = None  # PID 1's answers (processes, kills)
        self._control_lock = threading.Lock()  # one request to PID 1 awaits its reply at a time
        self._send_lock = threading.Lock()
        # Where the container's /dev/shm is seen from the host, when PID 1 can start session
        # shells on FIFOs there (local engine, root on both sides); else shells are execs.
        self._fifo_root: tuple[str, int] | None = None
        self._net: _network.IsolatedNetwork | None = None  # network="isolated": its own
        # One persistent shell per user; "" is the sandbox's own user.
        self._sessions: dict[str, _Session] = {"": _Session(self.user, _shell.STATE_FILE)}
        self._command_id = 0
        self._closed = False
        self.record = record
        self.recorder: SessionRecorder | None = None
        # What the engine does not report itself: OOM kills (the host's cgroup counter) and,
        # without a disk quota, the writable layer's size (see _watch_limits).
        self.disk_mode: DiskMode = "none"  # once started: quota | measured | none
        self._oom: OomCounter | None = None
        self._oom_seen = 0  # the OOM count last read inside the container (no host files)
        self._disk: DiskGuard | None = None
        self._disk_stops = 0  # times an outgrown disk limit stopped the processes
        self._disk_stopping = False  # a stop was sent that the shells may not have seen yet

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        if self.container_id is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @engine_errors("starting a sandbox")
    def start(self) -> Sandbox:
        """Create and start the container and its session shell.

        With a recording, ``sandbox.start`` goes under the OpenTelemetry context current
        here; resource samples and ``sandbox.stop`` under ``Recording.parent`` (default: the
        same context).
        """
        if self.container_id is not None:
            raise SandboxError("sandbox already started")
        _lifecycle.register(self)
        parent, t0 = current_context(), time.time_ns()
        try:
            if self.network == _network.ISOLATED:
                self._net = _network.create_isolated(self.labels)
            self._create_container()
            assert self.container_id is not None
            local = is_local_engine() and not os.environ.get("HARNESS_NO_FAST_PATHS")
            # One look at the container serves the recording and the limits; taken before any
            # shell starts, as an exec being started holds the container (a look then waits).
            info: dict[str, Any] = (
                self._api.inspect_container(self.container_id)
                if self.record is not None or local
                else {}
            )
            self._fifo_root = _fifo_root(info) if local else None
            # Shells asked for before the start come up alongside the sandbox's own.
            for sess in list(self._sessions.values())[1:]:
                self._start_later(sess)
            self._start_shell(self._sessions[""], restore=False)
            if self.record is not None:
                self.recorder = SessionRecorder(
                    self.record,
                    self._api,
                    self.container_id,
                    self.image,
                    self.network_name,
                    parent,
                    info,
                )
                self.recorder.span(
                    Span.SANDBOX_START,
                    {
                        Attr.CONTAINER_ID: self.container_id,
                        Attr.IMAGE_NAME: self.image,
                        Attr.IMAGE_ID: self.recorder.image_id,
                        Attr.NETWORK: self.network_name,
                        Attr.NETWORK_HOST_ISOLATED: self.host_isolated,
                        Attr.LIMITS_MEMORY: self.limits.memory,
                        Attr.LIMITS_CPUS: self.limits.cpus,
                        Attr.LIMITS_PIDS: self.limits.pids,
                        Attr.LIMITS_DISK_MODE: self.disk_mode,
                        **({Attr.LIMITS_DISK: self.limits.disk} if self.limits.disk else {}),
                        Attr.FAST_PATH_FILES: self.recorder.fast_diff,
                        Attr.FAST_PATH_RESOURCES: self.recorder.fast_resources,
                        Attr.FAST_PATH_SHELLS: self._fifo_root is not None,
                    },
                    t0,
                    context=parent,
                )
            self._watch_limits(info if local else {})
        except BaseException:
            # The error that stopped the start is the one to report, not a failed cleanup.
            with suppress(Exception):
                self.close()
            raise
        return self

    def _create_container(self) -> None:
        lim = self.limits
        host_config: dict[str, Any] = dict(
            auto_remove=True,
            network_mode=self.network_name,
            mem_limit=lim.memory,
            memswap_limit=lim.memory,
            nano_cpus=int(lim.cpus * 1e9),
            pids_limit=lim.pids,
            cap_drop=["ALL"],
            cap_add=list(DEFAULT_CAPS),
            security_opt=["no-new-privileges"],
            log_config=LogConfig(type="none"),
        )
        quota = lim.disk is not None and (
            lim.disk_mode == "quota"
            or (lim.disk_mode == "auto" and os.environ.get("DOCKER_HOST", "") not in _NO_QUOTA)
        )
        if quota:
            host_config["storage_opt"] = {"size": str(lim.disk)}
        try:
            cid = self._api.create_container(
                self.image,
                entrypoint=["bash", "--noprofile", "--norc"],
                command=[],
                stdin_open=True,
                detach=False,  # with stdin_open: StdinOnce, so our EOF ends PID 1
                environment=self.env,
                working_dir=self.workdir,
                hostname=self.hostname,
                labels=self.labels,
                host_config=self._api.create_host_config(**host_config),
            )["Id"]
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFound(
                f"image {self.image!r} is not on the engine. Build the base image with "
                "`harness images build`, or `docker build` your own and pass its tag."
            ) from exc
        except docker.errors.APIError as exc:
            msg = str(exc.explanation or exc)
            if quota and "storage-opt" in msg.lower():
                if lim.disk_mode == "quota":
                    raise LimitNotSupported(
                        f"the disk quota cannot be enforced here ({msg}). It needs overlay2 "
                        "on xfs mounted with pquota; run `harness doctor`, or use "
                        "Limits(disk_mode='measured') to have the writable layer measured."
                    ) from exc
                # No quotas on this engine: measure the writable layer instead.
                _NO_QUOTA.add(os.environ.get("DOCKER_HOST", ""))
                return self._create_container()
            raise EngineError(f"could not create a container from {self.image!r}: {msg}") from exc
        self.container_id = cid
        self.disk_mode = "none" if lim.disk is None else "quota" if quota else "measured"
        # stdin carries commands to PID 1, stdout its replies (see ``_processes``).
        sock = self._api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
        self._control = _raw_socket(sock)
        self._replies = ControlReplies(self._control)
        try:
            self._api.start(cid)
        except docker.errors.APIError as exc:
            raise EngineError(
                f"container from {self.image!r} failed to start: {exc.explanation or exc}. "
                "The image needs bash on its PATH."
            ) from exc
        try:
            self._control.sendall(_shell.CONTROL_INIT.encode())
        except OSError as exc:
            raise SessionLost(
                f"container {cid[:12]} from {self.image!r} closed its stdin right after "
                f"starting ({exc}); the image needs bash on its PATH."
            ) from exc

    @engine_errors("removing a sandbox")
    def close(self) -> None:
        """Remove the container (idempotent). Everything inside it is gone afterwards."""
        if self._closed:
            return
        self._closed = True
        _lifecycle.unregister(self)
        if self._disk is not None:
            self._disk.close()
        if self.recorder is not None:
            t0 = time.time_ns()
            try:
                self.recorder.close()
            finally:
                stop: dict[str, Any] = {Attr.CONTAINER_ID: self.container_id or ""}
                if self.disk_mode == "measured":
                    stop[Attr.DISK_EXCEEDED] = self.disk_exceeded
                self.recorder.span(Span.SANDBOX_STOP, stop, t0)
        if self._oom is not None:
            self._oom.close()
        for sess in self._sessions.values():
            if sess.starting is not None:
                sess.starting.join(timeout=30)
            if sess.channel is not None:
                sess.channel.close()
        if self._control is not None:
            try:
                self._control.close()
            except OSError:
                pass
        if self.container_id is not None:
            try:
                self._api.remove_container(self.container_id, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code not in (404, 409):  # 409: already being removed
                    raise
        if self._net is not None:
            if self.container_id is not None:
                # The network can go once its endpoint has: wait out a removal in progress.
                with suppress(docker.errors.NotFound):
                    self._api.wait(self.container_id, timeout=30, condition="removed")
            _network.remove_isolated(self._net)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def network_name(self) -> str:
        """The network the container is on: its own one for ``network="isolated"``
        (``harness-sb-...``), else the mode or network name given."""
        return self._net.name if self._net is not None else self.network

    @property
    def host_isolated(self) -> bool:
        """Whether services on the host are out of the sandbox's reach: always with no
        network, for ``"isolated"`` where the host's firewall could be set (see
        ``harness doctor``), never on ``"bridge"`` or a named network."""
        if self._net is not None:
            return self._net.host_isolated
        return self.network == "none"

    # -- commands ------------------------------------------------------------------------

    @engine_errors("running a command in a sandbox")
    def run(
        self,
        command: str | bytes,
        timeout: float | None = _UNSET,
        cwd: str | None = None,
        user: str | None = None,
        session: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> CommandResult:
        """Run ``command`` in the session shell, like typing it into a terminal.

        Args:
            command: bash source; may span lines. Its stdin is /dev/null.
            timeout: seconds; on expiry the command's whole process tree is killed and the
                result has ``timed_out``. ``None`` waits forever. Defaults to the sandbox's.
            cwd: run in this directory; the session's directory is left as it was unless the
                command itself changes directory.
            user: run as this user, in that user's own persistent shell (started on first
                use); default: the sandbox's user.
            session: run in a persistent shell of this name (as ``user``), apart from the
                others: what one actor defines there (variables, functions, aliases, the
                directory) never reaches another's commands.
            attributes: added to the command's span when recording (who issued it, why).

        Returns:
            The exit code, bounded stdout/stderr, full byte counts and timing. A command that
            ends the shell (``exit 3``) reports that code with ``session_restarted``; the next
            command finds a fresh shell with the previous directory and environment.
        """
        if timeout is _UNSET:
            timeout = self.default_timeout
        cmd = command.encode() if isinstance(command, str) else command
        key = self._session_key(user, session)
        with self._lock:
            if self._closed or self.container_id is None:
                raise SandboxError("sandbox is not running (use `with Sandbox() as sb:`)")
            self._settle_disk_stop()
            sess = self._sessions.get(key)
            if sess is None:
                state = f"{_shell.STATE_FILE}-{len(self._sessions)}"
                sess = self._sessions[key] = _Session(user, state)
            self._settle_start(sess)
            if sess.channel is None or sess.channel.eof:
                self._start_shell(sess, restore=sess.channel is not None)
            self._command_id += 1
            return self._run_locked(
                sess, cmd, timeout, cwd, self._command_id, attributes=attributes
            )

    def _session_key(self, user: str | None, session: str | None) -> str:
        if session is not None:
            return f"session:{session}"
        return "" if user is None or user == (self.user or "") else user

    def prepare_session(self, session: str, user: str | None = None) -> None:
        """Start the shell of ``run(..., user=user, session=session)`` in the background
        now, so that its first command does not wait for it (a shell takes a few engine
        round trips to start). Nothing runs in it until that command."""
        key = self._session_key(user, session)
        with self._lock:
            if self._closed or key in self._sessions:
                return
            state = f"{_shell.STATE_FILE}-{len(self._sessions)}"
            sess = self._sessions[key] = _Session(user, state)
            if self.container_id is not None:
                self._start_later(sess)
            # else start() starts it, alongside the sandbox's own shell

    def _start_later(self, sess: _Session) -> None:
        sess.starting = threading.Thread(
            target=self._start_in_background, args=(sess,), daemon=True, name="harness-shell-start"
        )
        sess.starting.start()

    def _start_in_background(self, sess: _Session) -> None:
        # A failure shows where it matters: the session's first command starts the shell
        # again, and raises what went wrong.
        with suppress(Exception):
            self._start_shell(sess, restore=False)

    def _settle_start(self, sess: _Session) -> None:
        """With the command lock held: wait for a session's shell starting in the
        background (its pid must be known before processes are listed or killed)."""
        starting, sess.starting = sess.starting, None
        if starting is not None:
            starting.join()

    def _run_internal(self, cmd: bytes, timeout: float = 60.0) -> CommandResult:
        """A command of harness's own (file transfer), run in the sandbox user's shell and not
        recorded as a command: the caller records what it means."""
        with self._lock:
            if self._closed or self.container_id is None:
                raise SandboxError("sandbox is not running")
            self._settle_disk_stop()
            sess = self._sessions[""]
            if sess.channel is None or sess.channel.eof:
                self._start_shell(sess, restore=sess.channel is not None)
            self._command_id += 1
            return self._run_locked(sess, cmd, timeout, None, self._command_id, record=False)

    @property
    def cwd(self) -> str:
        """The working directory of the sandbox user's shell."""
        return self._sessions[""].cwd

    def _run_locked(
        self,
        sess: _Session,
        cmd: bytes,
        timeout: float | None,
        cwd: str | None,
        command_id: int,
        record: bool = True,
        attributes: Mapping[str, Any] | None = None,
    ) -> CommandResult:
        shell = sess.channel
        assert shell is not None
        line = _shell.command_line(
            cmd,
            (nonce := secrets.token_hex(10).encode()),
            command_id,
            cwd.encode() if cwd is not None else None,
            sess.state_file,
        )
        probe = None
        if self.recorder is not None and record:
            probe = self.recorder.before(cmd, sess.cwd, command_id, sess.user, timeout, attributes)
        oom0, stops0 = self._oom.count() if self._oom else None, self._disk_stops
        t0 = time.perf_counter()
        inflight = shell.submit(nonce, line)
        if self.recorder is not None:
            self.recorder.running()  # the last command's record is made while this one runs
        timed_out = False
        try:
            if not inflight.done.wait(timeout):
                # Kill the shell and everything the command started; the shell is restarted
                # below with the state it had before this command.
                timed_out = True
                killed = self._kill_command(shell, inflight, command_id, wait=True)
                if not inflight.done.wait(15.0):
                    raise SessionLost(
                        "the session shell did not stop after a timeout; container "
                        f"{(self.container_id or '')[:12]} is unresponsive. Close this "
                        "sandbox and start a new one."
                    )
                if killed:
                    self._await_reaped(killed=killed, limit_s=5.0)
        except BaseException:
            # Ctrl-C or another interruption: never leave a command running behind our back.
            if not inflight.done.is_set():
                self._kill_command(shell, inflight, command_id)
            raise
        duration = time.perf_counter() - t0
        restarted = False
        exit_code = inflight.exit_code
        if inflight.eof:
            exit_code = 124 if timed_out else shell.exit_code()
            restarted = True
            self._settle_disk_stop()
            try:
                self._start_shell(sess, restore=True)
            except SandboxError as exc:
                raise SessionLost(
                    f"the command ended the session shell (exit {exit_code}) and it could not "
                    f"be restarted: {exc}"
                ) from exc
        if inflight.cwd:
            sess.cwd = inflight.cwd
        oom = self._oom_during(sess, inflight, oom0)
        disk = self._disk_during(stops0)
        out, err = inflight.out, inflight.err
        result = CommandResult(
            exit_code=exit_code if exit_code is not None else -1,
            stdout=out.getvalue(),
            stderr=err.getvalue(),
            duration=duration,
            timed_out=timed_out,
            stdout_bytes=out.total,
            stderr_bytes=err.total,
            truncated=out.truncated or err.truncated,
            oom_killed=oom,
            session_restarted=restarted,
            cwd=sess.cwd,
            disk_exceeded=disk,
        )
        if probe is not None and self.recorder is not None:
            self.recorder.after(probe, result, out, err)
        return result

    # -- memory and disk limits ------------------------------------------------------------

    @property
    def disk_exceeded(self) -> bool:
        """True once the writable layer outgrew ``Limits.disk`` in measured mode (the
        sandbox's processes were stopped then). With a quota, writes fail with ENOSPC
        instead and this stays False."""
        return self._disk is not None and self._disk.exceeded

    def _watch_limits(self, info: dict[str, Any]) -> None:
        """Watch what the engine does not: OOM kills, counted in the container's memory
        cgroup on the host (an OOM-killed session shell cannot report its own death), and in
        measured mode the writable layer's size (the overlay upper dir on the host, else the
        engine's SizeRw). ``info`` is the container's inspection where the engine is local
        (its host files can be read), else empty."""
        assert self.container_id is not None
        local = bool(info)
        if local:
            self._oom = host_oom_counter(int((info.get("State") or {}).get("Pid") or 0))
        if self.disk_mode != "measured" or self.limits.disk is None:
            return
        layer: LayerSize | None = None
        driver = info.get("GraphDriver") or {}
        upper = (driver.get("Data") or {}).get("UpperDir")
        if local and driver.get("Name") == "overlay2" and upper and os.access(upper, os.R_OK):
            with suppress(OSError):
                layer = UpperDirSize(upper)
        if layer is None:
            layer = ApiLayerSize(self._api, self.container_id)
        self._disk = DiskGuard(
            layer, self.limits.disk, self._stop_for_disk, interval=0.5 if layer.cheap else 2.0
        )
        if self.recorder is not None:
            self.recorder.disk = self._disk

    def _stop_for_disk(self, size: int) -> None:
        """The writable layer outgrew the disk limit: stop every process but PID 1, as a
        timeout stops a command (the session shell restarts with its state on next use)."""
        self._disk_stops += 1
        self._disk_stopping = True
        self._control_send(
            "for __h_i in {1..200}; do builtin kill -9 -1 2>/dev/null || break; done"
        )

    def _settle_disk_stop(self) -> None:
        """With the command lock held: once a disk stop was sent, wait until PID 1 has
        killed the session shells, so that no command goes to a shell about to die and no
        shell started next is caught by that stop."""
        if not self._disk_stopping:
            return
        self._disk_stopping = False
        for sess in self._sessions.values():
            if sess.channel is not None and not sess.channel.wait_eof(15.0):
                raise SessionLost("a shell survived kill -9; the container is stuck")

    def _disk_during(self, stops0: int) -> bool:
        """Whether the disk limit stopped this command: a measure now where that is cheap
        (what the command wrote in its last moments), else the periodic one's verdict."""
        guard = self._disk
        if guard is not None and guard.layer.cheap:
            with suppress(Exception):
                guard.check()
        self._settle_disk_stop()
        return self._disk_stops != stops0

    _OOM_READ = (
        b"__h_f=/sys/fs/cgroup/memory/memory.oom_control; [[ -r $__h_f ]] ||"
        b" __h_f=/sys/fs/cgroup/memory.events; while builtin read -r __h_k __h_v; do"
        b' [[ $__h_k == oom_kill ]] && { builtin printf %s "$__h_v"; break; }; done'
        b' < "$__h_f"; builtin unset __h_f __h_k __h_v'
    )

    def _oom_during(self, sess: _Session, inflight: _Inflight, oom0: int | None) -> bool:
        """Whether the kernel OOM-killed anything in the container during the command."""
        if self._oom is not None:
            oom1 = self._oom.count()
            return inflight.oom or (oom0 is not None and oom1 is not None and oom1 > oom0)
        if not (inflight.eof or inflight.oom):
            return False  # the shell lived to look, and saw no kill
        # No host files: the (restarted) shell reads the container's own counter.
        r = self._run_locked(sess, self._OOM_READ, 10.0, None, self._command_id, record=False)
        try:
            count = int(r.stdout)
        except ValueError:
            return inflight.oom
        seen, self._oom_seen = self._oom_seen, count
        return inflight.oom or count > seen

    @engine_errors("listing a sandbox's processes")
    def processes(self) -> ProcessSnapshot:
        """The processes alive in the sandbox now, each named by its pid and start time.

        PID 1 and harness's own session shells are left out: they are the sandbox, not what
        runs in it. PID 1 lists them with bash builtins, so this works even while a fork bomb
        holds every pid slot. Take one after setup, when the image's services run, and pass
        it to :meth:`kill_processes` to stop everything started after it.
        """
        with self._lock:
            for sess in self._sessions.values():
                self._settle_start(sess)
            procs, _ = self._control_request("__h_ps", "listing the sandbox's processes")
            shells = self._shell_pids()
            return ProcessSnapshot(tuple(p for p in procs if p.pid not in shells))

    @engine_errors("killing a sandbox's processes")
    def kill_processes(self, keep: ProcessSnapshot | None = None) -> ProcessSnapshot:
        """Kill every process in the sandbox except those in ``keep`` (all of them when it is
        None): background jobs, ``setsid`` daemons, a fork bomb at the pids limit. Then the
        session shells start afresh with their directories and variables restored.

        A process is kept only if its pid *and* start time match, so a process that took
        over a kept pid is killed. Children a kept process started after the snapshot are
        not kept. PID 1 does the work with bash builtins: it stops every target first
        (SIGSTOP; a stopped process cannot fork) until no new one appears, then kills them.

        Returns the processes killed (harness's own shells left out). Raises
        :class:`SandboxError` if some could not be killed within 30 s.
        """
        if keep is not None and not isinstance(keep, ProcessSnapshot):
            raise TypeError(
                "keep must be a ProcessSnapshot from Sandbox.processes(), "
                f"not {type(keep).__name__}"
            )
        with self._lock:
            for sess in self._sessions.values():
                self._settle_start(sess)
            # A shell saves its state just after it reports a command done; let it finish
            # (one no-op each) before the restart below needs that state. The builtin: a
            # command may have defined a function named ":" (a fork bomb does).
            for sess in self._sessions.values():
                if sess.channel is not None and not sess.channel.eof:
                    self._command_id += 1
                    self._run_locked(sess, b"builtin :", 10.0, None, self._command_id, record=False)
            shells = self._shell_pids()
            procs, tail = self._control_request(
                "__h_killall",
                "killing the sandbox's processes",
                *keep_args(keep or (), shells),
                timeout=90.0,
            )
            for sess in self._sessions.values():
                if sess.channel is not None and not sess.channel.wait_eof(15.0):
                    raise SessionLost("a shell survived kill -9; the container is stuck")
            left = int(tail[0]) if tail else 0
            if not left:
                self._await_reaped(kept={p.id for p in keep or ()})
            self._start_shell(self._sessions[""], restore=True)
            if left:
                raise SandboxError(
                    f"{left} processes in container {(self.container_id or '')[:12]} could "
                    "not be killed within 30 s: PID 1 (the image's USER) may not signal "
                    "them, or they are stuck in the kernel. Use an image whose default user "
                    "is root (run the agent as another user with `[agent] user`), or close "
                    "this sandbox."
                )
            return ProcessSnapshot(tuple(p for p in procs if p.pid not in shells))

    def _await_reaped(
        self,
        kept: set[tuple[int, int]] | None = None,
        killed: set[tuple[int, int]] | None = None,
        limit_s: float = 15.0,
    ) -> None:
        """Wait until the killed processes are gone from the process table, zombies included:
        every one but ``kept``, or those ``killed``.

        A killed process holds its pid (and its slot under the pids limit) until it has
        exited and PID 1 has reaped it; after a fork bomb that takes a while, and a shell
        started before it ends could not fork. Bounded: whatever is still dying after
        ``limit_s`` is left to the kernel.
        """
        deadline = time.monotonic() + limit_s
        pause = 0.005
        while True:
            procs, _ = self._control_request("__h_ps", "listing the sandbox's processes")
            if killed is not None:
                done = not any(p.id in killed for p in procs)
            else:
                done = all(p.id in (kept or set()) for p in procs)
            if done or time.monotonic() > deadline:
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _shell_pids(self) -> set[int]:
        """The pids of harness's live session shells."""
        return {
            s.channel.shell_pid
            for s in self._sessions.values()
            if s.channel is not None and not s.channel.eof and s.channel.shell_pid is not None
        }

    def _control_request(
        self, func: str, what: str, *args: str, timeout: float = 60.0
    ) -> tuple[list[ProcessInfo], list[str]]:
        """Call one of PID 1's functions (``_shell.CONTROL_INIT``) and wait for its reply."""
        if self._closed or self.container_id is None or self._replies is None:
            raise SandboxError("sandbox is not running (use `with Sandbox() as sb:`)")
        nonce = secrets.token_hex(8)
        try:
            with self._control_lock:
                self._control_send(" ".join((func, nonce, *args)))
                return self._replies.reply(nonce, timeout, what)
        except TimeoutError:
            raise SessionLost(
                f"PID 1 of container {self.container_id[:12]} did not answer within "
                f"{timeout:.0f} s while {what}; the container is unresponsive. Close this "
                "sandbox and start a new one."
            ) from None

    def _control_send(self, line: str) -> None:
        if self._control is None:
            return
        try:
            with self._send_lock:
                self._control.sendall(line.encode() + b"\n")
        except OSError:
            pass

    def _kill_command(
        self, shell: _ShellChannel, inflight: _Inflight, command_id: int, wait: bool = False
    ) -> set[tuple[int, int]]:
        """Kill the session shell and every process the command started (see ``__h_kill``).
        With ``wait``, once PID 1 has done it: the processes killed (they may be dying)."""
        shell_pid = inflight.shell_pid or shell.shell_pid
        if shell_pid is None:
            shell.close()
            return set()
        last_pid = inflight.last_pid if inflight.last_pid is not None else shell_pid
        args = (str(shell_pid), str(last_pid), str(command_id))
        if not wait:  # an interruption: no waiting for anything
            self._control_send(" ".join(("__h_kill", "-", *args)))
            return set()
        _, tail = self._control_request("__h_kill", "killing a command", *args)
        killed = set()
        for word in tail:
            pid, _, start = word.partition(":")
            if pid.isdigit() and start.isdigit():
                killed.add((int(pid), int(start)))
        return killed

    def _start_shell(self, sess: _Session, restore: bool) -> None:
        """Start (or restart) a session's shell; on restart its directory and state return."""
        assert self.container_id is not None
        record_cap = self.record.output_cap if self.record is not None else 0
        channel: _ShellChannel
        if self._fifo_root is not None and not (sess.user or self.user):
            channel = self._spawn_shell(self._fifo_root, record_cap)
        else:
            channel = self._exec_shell(sess, record_cap)
        self._init_shell(sess, channel, restore)

    def _exec_shell(self, sess: _Session, record_cap: int) -> _ShellChannel:
        """A session shell started with a docker exec (any engine, any user)."""
        assert self.container_id is not None
        try:
            exec_id = self._api.exec_create(
                self.container_id,
                ["bash", "--noprofile", "--norc"],
                stdin=True,
                stdout=True,
                stderr=True,
                user=sess.user or self.user or "",
                workdir=self.workdir,
            )["Id"]
            sock = self._api.exec_start(exec_id, socket=True)
        except docker.errors.APIError as exc:
            raise SessionLost(
                f"could not start a shell in container {self.container_id[:12]}: "
                f"{exc.explanation or exc}"
            ) from exc
        return _ShellChannel(self._api, exec_id, _raw_socket(sock), self.output_limit, record_cap)

    def _spawn_shell(self, where: tuple[str, int], record_cap: int) -> _ShellChannel:
        """A session shell that PID 1 starts on FIFOs in /dev/shm (see ``__h_spawn``)."""
        assert self.container_id is not None
        root, pid1 = where
        name = f".harness-sh-{secrets.token_hex(8)}"
        inside = [f"/dev/shm/{name}.{k}" for k in ("in", "out", "err")]
        host = [f"{root}/{name}.{k}" for k in ("in", "out", "err")]
        fds: list[int] = []
        try:
            for path in host:
                os.mkfifo(path, 0o600)
            # Read ends first: the shell's opens for writing then succeed at once.
            flags = os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
            fds += [os.open(p, os.O_RDONLY | flags) for p in host[1:]]
            _, tail = self._control_request(
                "__h_spawn", "starting a session shell", *inside, self.workdir or ""
            )
            pid = int(tail[0])
            # Its end is the shell's own exit, watched from the host: the FIFOs stay open
            # while anything it started holds them.
            host_pid = _host_child(pid1, pid)
            if host_pid is None:
                raise OSError(f"the shell PID 1 started (pid {pid}) is not its child")
            fds.append(os.pidfd_open(host_pid))
            # The shell opens its input first; until then a writer cannot open it.
            deadline = time.monotonic() + 30.0
            while True:
                try:
                    fds.append(os.open(host[0], os.O_WRONLY | flags))
                    break
                except OSError as exc:
                    if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                        raise
                    time.sleep(0.0005)
            os.set_blocking(fds[3], True)
        except (OSError, ValueError, IndexError) as exc:
            for fd in fds:
                with suppress(OSError):
                    os.close(fd)
            _unlink(host)
            try:  # most often the container is gone: say so, with the engine's word for it
                self._api.inspect_container(self.container_id)
            except docker.errors.APIError as gone:
                raise SessionLost(
                    f"container {self.container_id[:12]} is gone ({gone.explanation or gone}); "
                    "close this sandbox and start a new one"
                ) from gone
            raise SessionLost(
                f"could not start a shell in container {self.container_id[:12]}: {exc}"
            ) from exc

        def status() -> int | None:
            _, tail = self._control_request("__h_status", "reading a shell's exit status", str(pid))
            return None if not tail or tail[0] == "running" else int(tail[0])

        return _FifoChannel(
            fds[3], fds[0], fds[1], fds[2], status, host, self.output_limit, record_cap
        )

    def _init_shell(self, sess: _Session, channel: _ShellChannel, restore: bool) -> None:
        """Bring a new shell up: the session's functions, its state on a restart, and the
        first marker (which says its pid and directory)."""
        assert self.container_id is not None
        init = _shell.SESSION_INIT.encode()
        if restore and sess.cwd:
            init += (
                _shell.RESTORE
                % {
                    "cwd": _shell.quote(sess.cwd.encode()).decode("latin-1"),
                    "state": sess.state_file,
                }
            ).encode("latin-1")
        try:
            channel.send(init)
        except OSError as exc:
            channel.close()
            raise SessionLost(
                f"the shell in container {self.container_id[:12]} closed its input at once ({exc})"
            ) from exc
        ready = channel.submit(
            nonce := secrets.token_hex(10).encode(),
            _shell.command_line(b"builtin :", nonce, 0, None, sess.state_file),
        )
        if not ready.done.wait(30.0) or ready.eof:
            channel.close()
            channel.started()
            self._check_user(sess.user or self.user)
            raise SessionLost(
                f"the shell in container {self.container_id[:12]} did not start "
                "(does the image have bash?)"
            )
        channel.shell_pid = ready.shell_pid
        channel.started()
        sess.channel, sess.cwd = channel, ready.cwd

    def _check_user(self, user: str | None) -> None:
        """Raise :class:`UnknownUser` if the image has no such user (or group): the engine
        then fails to start a shell without saying why."""
        if not user:
            return
        name, _, group = user.partition(":")
        for kind, value, table, add in (
            ("user", name, "/etc/passwd", f"useradd -m {name}"),
            ("group", group, "/etc/group", f"groupadd {group}"),
        ):
            if not value or value.isdigit():
                continue  # a bare uid or gid needs no entry
            try:
                entries = self.read_file(table).decode("utf-8", errors="replace")
            except (FileNotFoundError, IsADirectoryError):
                entries = ""
            if any(line.split(":", 1)[0] == value for line in entries.splitlines()):
                continue
            raise UnknownUser(
                f"{kind} {value!r} does not exist in image {self.image!r} (no entry in its "
                f"{table}), so no shell can start as {user!r}. Create it in the image's "
                f"Dockerfile (e.g. `RUN {add}`), or run as a user the image has (a task's "
                "`[agent] user` in task.toml, or the `user=` given to the sandbox).",
                user=user,
                image=self.image,
            )

    # -- files ---------------------------------------------------------------------------

    def _abspath(self, path: str) -> str:
        p = PurePosixPath(path)
        if not p.is_absolute():
            p = PurePosixPath(self.cwd or "/") / p
        return str(p)

    @engine_errors("writing a file into a sandbox")
    def write_file(
        self,
        path: str,
        data: bytes | str | IO[bytes],
        mode: int = 0o644,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """Write a file (parents are created), streaming it to the engine.

        ``data`` may be bytes, text (written as UTF-8) or a binary file object of any size.
        Relative paths are relative to the session's current directory. ``attributes`` are
        added to the write's span when recording. Bytes and text are recorded (so the write
        can be replayed); a file object's content only as the file change it makes.
        """
        if self.container_id is None:
            raise SandboxError("sandbox is not running")
        target = self._abspath(path)
        if isinstance(data, str):
            data = data.encode()
        if isinstance(data, (bytes, bytearray, memoryview)):
            fobj: IO[bytes] = io.BytesIO(bytes(data))
            size = len(data)
        else:
            fobj = data
            try:
                size = os.fstat(fobj.fileno()).st_size - fobj.tell()
            except (OSError, AttributeError, io.UnsupportedOperation):
                start = fobj.tell()
                size = fobj.seek(0, io.SEEK_END) - start
                fobj.seek(start)
        probe = None
        if self.recorder is not None:
            content = fobj.getvalue() if isinstance(fobj, io.BytesIO) else None
            probe = self.recorder.before_write(target, size, mode, content, attributes)
        try:
            # Small files go through the shell (milliseconds); large ones, or where the shell
            # cannot write, through the engine's archive API (tens of milliseconds, any size).
            if (
                isinstance(fobj, io.BytesIO)
                and size <= SMALL_WRITE
                and self._write_small(target, fobj.getvalue(), mode)
            ):
                return
            info = tarfile.TarInfo(target.lstrip("/"))
            info.size, info.mode, info.mtime = size, mode, int(time.time())
            try:
                ok = self._api.put_archive(self.container_id, "/", tar_stream(info, fobj))
            except docker.errors.APIError as exc:
                raise EngineError(f"could not write {target}: {exc.explanation or exc}") from exc
            if not ok:
                raise SandboxError(f"could not write {target}")
        finally:
            if probe is not None and self.recorder is not None:
                self.recorder.after_write(probe)

    def _write_small(self, target: str, data: bytes, mode: int) -> bool:
        q = _shell.quote
        path = target.encode()
        parent = os.fsencode(posixpath.dirname(target) or "/")
        cmd = (
            b"{ [[ -d " + q(parent) + b" ]] || mkdir -p -- " + q(parent) + b"; } && "
            b"builtin printf " + _shell.printf_format(data) + b" > " + q(path) + b" && "
            b"chmod %o -- " % mode + q(path)
        )
        return self._run_internal(cmd).exit_code == 0

    @engine_errors("snapshotting a sandbox")
    def snapshot(
        self, labels: Mapping[str, str], attributes: Mapping[str, Any] | None = None
    ) -> Snapshot:
        """Commit the container's files as an image (see :mod:`._snapshots`), between
        commands; recorded as a ``sandbox.snapshot`` span with ``attributes``."""
        with self._lock:
            if self._closed or self.container_id is None:
                raise SandboxError("sandbox is not running")
            t0 = time.time_ns()
            snap = _snapshots.commit(self._api, self.container_id, labels)
        if self.recorder is not None:
            self.recorder.span(
                Span.SNAPSHOT,
                {
                    **(attributes or {}),
                    Attr.SNAPSHOT_IMAGE: snap.image_id,
                    Attr.SNAPSHOT_BYTES: snap.size,
                    Attr.CONTAINER_ID: self.container_id,
                },
                t0,
                context=current_context(),
            )
        return snap

    @engine_errors("reading a file from a sandbox")
    def read_file(self, path: str) -> bytes:
        """Read a whole file from the container (streamed from the engine); symlinks are
        followed. Relative paths are relative to the session's current directory."""
        if self.container_id is None:
            raise SandboxError("sandbox is not running")
        target = self._abspath(path)
        for _ in range(40):  # the kernel's own limit on symlink hops
            try:
                chunks, _stat = self._api.get_archive(self.container_id, target)
            except docker.errors.NotFound as exc:
                if "no such container" in str(exc.explanation or exc).lower():
                    raise SessionLost(
                        f"container {self.container_id[:12]} is gone (removed or died); "
                        "close this sandbox and start a new one"
                    ) from exc
                raise FileNotFoundError(f"no such file in the sandbox: {target}") from None
            except docker.errors.APIError as exc:
                raise EngineError(f"could not read {target}: {exc.explanation or exc}") from exc
            with tarfile.open(fileobj=IterReader(chunks), mode="r|") as tar:
                member = tar.next()
                if member is None:
                    raise FileNotFoundError(f"no such file in the sandbox: {target}")
                if member.isdir():
                    raise IsADirectoryError(f"is a directory in the sandbox: {target}")
                if member.issym():
                    target = str(PurePosixPath(target).parent / member.linkname)
                    continue
                f = tar.extractfile(member)
                if f is None:
                    raise SandboxError(f"not a regular file in the sandbox: {target}")
                return f.read()
        raise SandboxError(f"too many levels of symbolic links: {path}")

    def __repr__(self) -> str:
        cid = self.container_id[:12] if self.container_id else "not started"
        return f"Sandbox(image={self.image!r}, container={cid})"


class _ShellChannel:
    """The attached stdin/stdout/stderr of the session shell, demultiplexed by a thread."""

    def __init__(
        self, api: Any, exec_id: str, sock: socket.socket, limit: int, record_cap: int = 0
    ) -> None:
        self.api = api
        self.exec_id = exec_id
        self.sock = sock
        self.limit = limit
        self.record_cap = record_cap
        self.shell_pid: int | None = None
        self.eof = False
        self._lock = threading.Lock()
        self._out = MarkerScanner(HeadTail(limit, record_cap))
        self._err = MarkerScanner(HeadTail(limit, record_cap))
        self._inflight: _Inflight | None = None
        self._reader = threading.Thread(target=self._read_loop, name="harness-shell", daemon=True)
        self._reader.start()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def started(self) -> None:
        """The shell is up (or will never be)."""

    def submit(self, nonce: bytes, line: bytes) -> _Inflight:
        """Register the markers of a command, then send it. Output already buffered (from
        background jobs since the last command) counts as this command's output."""
        with self._lock:
            inf = _Inflight(nonce=nonce, out=self._out.sink, err=self._err.sink)
            self._inflight = inf
            if self.eof:
                inf.eof = True
                inf.done.set()
                return inf
            self._out.expect(nonce + b"S", lambda t: self._on_start(inf, t))
            self._out.expect(nonce + b"E", lambda t: self._on_end(inf, t, stdout=True))
            self._err.expect(nonce + b"E", lambda t: self._on_end(inf, t, stdout=False))
        try:
            self.send(line)
        except OSError:
            pass  # the reader sees EOF and completes the command as "shell exited"
        return inf

    def _on_start(self, inf: _Inflight, trailer: bytes) -> None:
        try:
            inf.last_pid = int(trailer)
        except ValueError:
            inf.last_pid = None
        inf.shell_pid = self.shell_pid

    def _on_end(self, inf: _Inflight, trailer: bytes, stdout: bool) -> None:
        if stdout:
            rc, oom, pid, cwd = trailer.split(b" ", 3)
            inf.exit_code, inf.oom, inf.cwd = int(rc), oom == b"1", os.fsdecode(cwd)
            inf.shell_pid = int(pid)
            inf.out = self._out.sink
            self._out.sink = HeadTail(self.limit, self.record_cap)
            inf.out_done = True
        else:
            inf.err = self._err.sink
            self._err.sink = HeadTail(self.limit, self.record_cap)
            inf.err_done = True
        if inf.out_done and inf.err_done:
            inf.done.set()

    def _read_loop(self) -> None:
        buf = bytearray()
        scanners = {1: self._out, 2: self._err}
        try:
            while True:
                try:
                    chunk = self.sock.recv(1 << 17)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                pos = 0
                with self._lock:
                    while len(buf) - pos >= 8:
                        size = int.from_bytes(buf[pos + 4 : pos + 8], "big")
                        end = pos + 8 + size
                        if end > len(buf):
                            break
                        scanner = scanners.get(buf[pos])
                        if scanner is not None:
                            scanner.feed(bytes(buf[pos + 8 : end]))
                        pos = end
                del buf[:pos]
        finally:
            self._ended()

    def _ended(self) -> None:
        """The shell is gone: a command still running ends as "shell exited"."""
        with self._lock:
            self.eof = True
            inf = self._inflight
            if inf is not None and not inf.done.is_set():
                self._out.clear()
                self._err.clear()
                inf.out, inf.err = self._out.sink, self._err.sink
                inf.eof = True
                inf.done.set()

    def wait_eof(self, timeout: float) -> bool:
        self._reader.join(timeout)
        return self.eof

    def exit_code(self) -> int | None:
        """The shell's exit status after EOF (the engine records it a moment later)."""
        for _ in range(50):
            try:
                info = self.api.exec_inspect(self.exec_id)
            except docker.errors.NotFound:
                return None  # gone with its container
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            time.sleep(0.02)
        return None

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class _FifoChannel(_ShellChannel):
    """A session shell that PID 1 started on three FIFOs in the container's /dev/shm, read
    and written from the host through ``/proc/<pid>/root``: no engine round trip to start
    it (a docker exec costs ~60 ms of the engine's CPU), the same markers and scanners."""

    def __init__(
        self,
        stdin: int,
        stdout: int,
        stderr: int,
        pidfd: int,
        status: Callable[[], int | None],
        names: list[str],
        limit: int,
        record_cap: int = 0,
    ) -> None:
        self._in, self._fds, self._pidfd = stdin, (stdout, stderr), pidfd
        self._status = status
        self._names = names
        self._wake_r, self._wake_w = os.pipe()
        self._closed_in = False
        super().__init__(None, "", None, limit, record_cap)  # type: ignore[arg-type]

    def send(self, data: bytes) -> None:
        if self._closed_in:  # its descriptor number may belong to another file by now
            raise OSError("the session shell's input is closed")
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._in, view)
            except OSError as exc:  # the shell is gone (EPIPE), or we closed its input
                raise OSError(f"the session shell's input is closed ({exc})") from exc
            view = view[n:]

    def started(self) -> None:
        # The shell has opened all three FIFOs once it answers: their names can go (nothing
        # in the container can open them after that).
        _unlink(self._names)

    def _read_loop(self) -> None:
        scanners = {self._fds[0]: self._out, self._fds[1]: self._err}
        poller = select.poll()
        for fd in (*self._fds, self._wake_r, self._pidfd):
            poller.register(fd, select.POLLIN)
        open_fds = set(self._fds)
        try:
            while open_fds:
                try:
                    events = poller.poll()
                except InterruptedError:
                    continue
                for fd, ev in events:
                    if fd == self._wake_r:
                        return  # closed by us
                    if fd == self._pidfd:
                        self._drain(scanners)
                        return  # the shell exited: what it wrote is in the pipes
                    chunk = b""
                    if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        try:
                            chunk = os.read(fd, 1 << 17)
                        except BlockingIOError:
                            continue
                        except OSError:
                            chunk = b""
                    if chunk:
                        with self._lock:
                            scanners[fd].feed(chunk)
                    else:  # every writer is gone
                        poller.unregister(fd)
                        open_fds.discard(fd)
        finally:
            for fd in (*self._fds, self._pidfd, self._wake_r):
                with suppress(OSError):
                    os.close(fd)
            self._ended()

    def _drain(self, scanners: dict[int, MarkerScanner]) -> None:
        """What the shell wrote before it exited is in the pipes (a pipe holds at most
        1 MiB): read that much, not what something it left behind goes on writing."""
        for fd, scanner in scanners.items():
            for _ in range(16):
                try:
                    chunk = os.read(fd, 1 << 17)
                except OSError:
                    break
                if not chunk:
                    break
                with self._lock:
                    scanner.feed(chunk)

    def exit_code(self) -> int | None:
        for _ in range(50):
            try:
                code = self._status()
            except SandboxError:
                return None  # gone with its container
            if code is not None:
                return code
            time.sleep(0.02)
        return None

    def close(self) -> None:
        with self._lock:
            if self._closed_in:
                return
            self._closed_in = True
        with suppress(OSError):
            os.close(self._in)
        with suppress(OSError):
            os.write(self._wake_w, b"x")
        with suppress(OSError):
            os.close(self._wake_w)


def _unlink(paths: list[str]) -> None:
    for path in paths:
        with suppress(OSError):
            os.unlink(path)


def _fifo_root(info: Mapping[str, Any]) -> tuple[str, int] | None:
    """The container's /dev/shm as the host sees it, and PID 1's host pid, if session shells
    can live on FIFOs there: its PID 1 runs as root (so it can open what root made) and so
    do we, and a shell's end can be watched from the host (a pidfd)."""
    pid = int((info.get("State") or {}).get("Pid") or 0)
    user = str((info.get("Config") or {}).get("User") or "")
    if pid <= 0 or os.geteuid() != 0 or user not in ("", "root", "0", "0:0"):
        return None
    root = f"/proc/{pid}/root/dev/shm"
    children = f"/proc/{pid}/task/{pid}/children"
    if not (hasattr(os, "pidfd_open") and os.path.isdir(root) and os.path.exists(children)):
        return None
    return root, pid


def _host_child(parent: int, inner_pid: int) -> int | None:
    """The host pid of the child of ``parent`` (a host pid) whose pid in its container is
    ``inner_pid``."""
    try:
        with open(f"/proc/{parent}/task/{parent}/children") as f:
            children = f.read().split()
    except OSError:
        return None
    for child in children:
        try:
            with open(f"/proc/{child}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        if line.split()[-1] == str(inner_pid):
                            return int(child)
                        break
        except OSError:
            continue
    return None


def _raw_socket(sock: Any) -> socket.socket:
    """The plain socket under what docker-py returns for a hijacked connection."""
    raw = getattr(sock, "_sock", sock)
    return raw  # type: ignore[no-any-return]
