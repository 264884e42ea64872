"""Container resource readings: the host's cgroup files (fast), or the Docker stats API.

The engine's stats API takes about a second per reading; the same numbers are in the
container's cgroup files on the host, readable in microseconds. Both give one dict of
OpenTelemetry-style metric names.

Also here: the container's OOM-kill counter (host cgroup files), and the size of its writable
layer measured against a disk limit where the storage driver cannot enforce one.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol

from traces.vocab import Attr

from ._inotify import Overflow, TreeWatcher


class Reader(Protocol):
    def sample(self) -> dict[str, int | float]: ...

    def cpu_time(self) -> float | None: ...

    def reset_peak(self) -> bool: ...

    def peak(self) -> int | None: ...

    def close(self) -> None: ...


def _keyed_text(text: bytes) -> dict[str, int]:
    """``key value`` lines (cpu.stat, memory.events, memory.oom_control) as a dict."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0].decode()] = int(parts[1])
    return out


# The bytes of one reading of a container's cgroup files (cpu, memory, peak, pids, io) and
# its network counters (None without a network).
RawReading = tuple[bytes, bytes, bytes, bytes, bytes, bytes | None]


def _int_of(data: bytes) -> int | None:
    try:
        return int(data.split()[0])
    except (ValueError, IndexError):
        return None


def _net_dev(proc: Path, pid: int) -> bytes | None:
    """The container's /proc/<pid>/net/dev as read now."""
    try:
        return (proc / str(pid) / "net" / "dev").read_bytes()
    except OSError:
        return None


def _net_of(data: bytes) -> tuple[int, int]:
    """Bytes received and sent by the container's interfaces (other than lo)."""
    rx = tx = 0
    for line in data.decode().splitlines()[2:]:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        f = rest.split()
        rx, tx = rx + int(f[0]), tx + int(f[8])
    return rx, tx


def cgroup_dirs(
    host_pid: int, proc: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")
) -> tuple[dict[str, Path], bool]:
    """The cgroup directory of each controller of a process on the host, and whether the
    host uses the v2 (unified) layout for memory."""
    dirs: dict[str, Path] = {}
    for line in (proc / str(host_pid) / "cgroup").read_text().splitlines():
        _, controllers, rel = line.split(":", 2)
        if controllers == "":
            dirs["unified"] = cgroup_root / rel.lstrip("/")
        for c in controllers.split(","):
            if c:
                dirs[c] = cgroup_root / c / rel.lstrip("/")
    # A hybrid host lists an empty v2 hierarchy too; v1 controllers take precedence.
    return dirs, "memory" not in dirs and "unified" in dirs


class CgroupReader:
    """Reads the container's cgroup files on the host (v1 and v2 layouts)."""

    def __init__(
        self,
        host_pid: int,
        network: bool,
        proc: Path = Path("/proc"),
        cgroup_root: Path = Path("/sys/fs/cgroup"),
    ) -> None:
        self.pid = host_pid
        self.proc = proc
        self.network = network
        self._fds: dict[tuple[str, int], int] = {}
        self._fd_lock = threading.Lock()
        self.dirs, self.v2 = cgroup_dirs(host_pid, proc, cgroup_root)
        if self.v2:
            d = self.dirs["unified"]
            if not (d / "memory.current").exists():
                raise OSError(f"cgroup v2 files not readable under {d}")
            names = {
                "cpu": d / "cpu.stat",
                "memory": d / "memory.current",
                "peak": d / "memory.peak",
                "pids": d / "pids.current",
                "io": d / "io.stat",
            }
        else:
            mem = self.dirs.get("memory", Path("/nonexistent"))
            if not (mem / "memory.usage_in_bytes").exists():
                raise OSError("cgroup v1 memory files not readable")
            none = Path("/nonexistent")
            names = {
                "cpu": self.dirs.get("cpuacct", none) / "cpuacct.usage",
                "memory": mem / "memory.usage_in_bytes",
                "peak": mem / "memory.max_usage_in_bytes",
                "pids": self.dirs.get("pids", none) / "pids.current",
                "io": self.dirs.get("blkio", none) / "blkio.throttle.io_service_bytes",
            }
        # Paths as plain strings, made once: these are read at the end of every command.
        self._file = {key: str(path) for key, path in names.items()}

    def sample(self) -> dict[str, int | float]:
        """One reading of every metric: a pread of each (kept open) file, so it is cheap
        enough for the end of every command."""
        return self.parse(self.read_raw())

    def read_raw(self) -> RawReading:
        """The files' bytes, as they are now: all that must happen at the moment of the
        reading (the end of a command); :meth:`parse` can run later, on another thread."""
        f = self._file
        return (
            self._pread(f["cpu"], 4096),
            self._pread(f["memory"], 64),
            self._pread(f["peak"], 64),
            self._pread(f["pids"], 64),
            self._pread(f["io"]),
            _net_dev(self.proc, self.pid) if self.network else None,
        )

    def parse(self, raw: RawReading) -> dict[str, int | float]:
        """A reading from :meth:`read_raw` as metrics."""
        cpu_raw, mem_raw, peak_raw, pids_raw, io, net_raw = raw
        out: dict[str, int | float] = {}
        cpu = self._cpu_of(cpu_raw)
        if cpu is not None:
            out[Attr.CONTAINER_CPU_TIME] = cpu
        for data, name in (
            (mem_raw, Attr.CONTAINER_MEMORY),
            (peak_raw, Attr.CONTAINER_MEMORY_PEAK),
            (pids_raw, Attr.CONTAINER_PIDS),
        ):
            v = _int_of(data)
            if v is not None:
                out[name] = v
        rb = wb = 0
        if self.v2:
            for line in io.splitlines():
                for kv in line.split()[1:]:
                    k, _, num = kv.partition(b"=")
                    if k == b"rbytes":
                        rb += int(num)
                    elif k == b"wbytes":
                        wb += int(num)
        else:
            for line in io.splitlines():
                f = line.split()
                if len(f) == 3 and f[1] == b"Read":
                    rb += int(f[2])
                elif len(f) == 3 and f[1] == b"Write":
                    wb += int(f[2])
        out[Attr.CONTAINER_DISK_READ], out[Attr.CONTAINER_DISK_WRITE] = rb, wb
        net = _net_of(net_raw) if net_raw is not None else None
        if net is not None:
            out[Attr.CONTAINER_NET_RX], out[Attr.CONTAINER_NET_TX] = net
        return out

    # These are read on the command path: the files stay open and are read with pread.
    def _fd(self, path: str, flags: int = os.O_RDONLY) -> int | None:
        key = (path, flags)
        fd = self._fds.get(key)
        if fd is None:
            with self._fd_lock:  # the sampler thread and the command path share these
                fd = self._fds.get(key)
                if fd is None:
                    try:
                        fd = os.open(path, flags | os.O_CLOEXEC)
                    except OSError:
                        return None
                    self._fds[key] = fd
        return fd

    def _pread(self, path: str, size: int = 1 << 16) -> bytes:
        fd = self._fd(path)
        if fd is None:
            return b""
        try:
            return os.pread(fd, size, 0)
        except OSError:
            return b""

    def _pread_int(self, path: str) -> int | None:
        return _int_of(self._pread(path, 64))

    def cpu_time(self) -> float | None:
        """CPU seconds used by the container so far (one file read)."""
        return self._cpu_of(self._pread(self._file["cpu"], 4096))

    def _cpu_of(self, data: bytes) -> float | None:
        if self.v2:
            usec = _keyed_text(data).get("usage_usec")
            return None if usec is None else usec / 1e6
        ns = _int_of(data)
        return None if ns is None else ns / 1e9

    def reset_peak(self) -> bool:
        """Restart the memory high-water mark (v1: write 0; v2: write to memory.peak)."""
        fd = self._fd(self._file["peak"], os.O_WRONLY)
        if fd is None:
            return False
        try:
            os.write(fd, b"0")
            return True
        except OSError:
            return False

    def peak(self) -> int | None:
        return self._pread_int(self._file["peak"])

    def close(self) -> None:
        for fd in self._fds.values():
            with suppress(OSError):
                os.close(fd)
        self._fds.clear()


class StatsApiReader:
    """Fallback: the engine's stats API (about a second per reading)."""

    def __init__(self, api: Any, container_id: str) -> None:
        self.api = api
        self.container_id = container_id

    def sample(self) -> dict[str, int | float]:
        s = self.api.stats(self.container_id, stream=False, one_shot=True)
        out: dict[str, int | float] = {}
        cpu = (s.get("cpu_stats") or {}).get("cpu_usage", {}).get("total_usage")
        if cpu is not None:
            out[Attr.CONTAINER_CPU_TIME] = cpu / 1e9
        mem = s.get("memory_stats") or {}
        if "usage" in mem:
            out[Attr.CONTAINER_MEMORY] = int(mem["usage"])
        if "max_usage" in mem:
            out[Attr.CONTAINER_MEMORY_PEAK] = int(mem["max_usage"])
        pids = (s.get("pids_stats") or {}).get("current")
        if pids is not None:
            out[Attr.CONTAINER_PIDS] = int(pids)
        rb = wb = 0
        for e in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
            if e.get("op") in ("Read", "read"):
                rb += int(e.get("value", 0))
            elif e.get("op") in ("Write", "write"):
                wb += int(e.get("value", 0))
        out[Attr.CONTAINER_DISK_READ], out[Attr.CONTAINER_DISK_WRITE] = rb, wb
        nets = s.get("networks") or {}
        if nets:
            out[Attr.CONTAINER_NET_RX] = sum(int(n.get("rx_bytes", 0)) for n in nets.values())
            out[Attr.CONTAINER_NET_TX] = sum(int(n.get("tx_bytes", 0)) for n in nets.values())
        return out

    def cpu_time(self) -> float | None:
        return None  # a stats call per command would cost a second

    def reset_peak(self) -> bool:
        return False

    def peak(self) -> int | None:
        return None

    def close(self) -> None:
        pass


def host_reader(host_pid: int, network: bool) -> CgroupReader | None:
    """The fast reader when this process can read the container's cgroups, else None."""
    if os.environ.get("HARNESS_NO_FAST_PATHS"):
        return None
    try:
        return CgroupReader(host_pid, network)
    except (OSError, ValueError, KeyError):
        return None


# -- OOM kills -----------------------------------------------------------------------------


class OomCounter:
    """The container's count of OOM kills, from its memory cgroup on the host (v1:
    ``memory.oom_control``, v2: ``memory.events``, key ``oom_kill``). One pread of a kept-open
    file per reading. It counts every process the kernel killed in the container, the session
    shell itself included, which no reading from inside can report."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def count(self) -> int | None:
        try:
            return _keyed_text(os.pread(self._fd, 4096, 0)).get("oom_kill")
        except OSError:
            return None

    def close(self) -> None:
        with suppress(OSError):
            os.close(self._fd)


def host_oom_counter(
    host_pid: int, proc: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")
) -> OomCounter | None:
    """The OOM counter of the container whose init has ``host_pid``, or None when its cgroup
    files cannot be read here (remote engine, not root, or ``HARNESS_NO_FAST_PATHS``)."""
    if os.environ.get("HARNESS_NO_FAST_PATHS") or host_pid <= 0:
        return None
    try:
        dirs, v2 = cgroup_dirs(host_pid, proc, cgroup_root)
        path = dirs["unified"] / "memory.events" if v2 else dirs["memory"] / "memory.oom_control"
        counter = OomCounter(path)
    except (OSError, ValueError, KeyError):
        return None
    if counter.count() is None:
        counter.close()
        return None
    return counter


# -- the writable layer's size against a disk limit ----------------------------------------


class LayerSize(Protocol):
    """How many bytes a container's writable layer holds."""

    cheap: bool  # cheap enough to read at the end of every command

    def size(self) -> int | None: ...

    def close(self) -> None: ...


class UpperDirSize:
    """Bytes allocated under the container's overlay upper directory on the host, kept up to
    date from inotify events: a reading costs what changed since the last one, not what the
    layer holds. Blocks are counted once per inode (hard links), as a quota would."""

    cheap = True

    def __init__(self, upper: str) -> None:
        self.root = os.fsencode(upper)
        self.watcher = TreeWatcher(self.root)  # reports what is already there as changed
        self._lock = threading.Lock()
        self._entries: dict[bytes, int] = {}  # relative path -> inode
        self._kids: dict[bytes, set[bytes]] = {}  # directory -> its entries we counted
        self._inodes: dict[int, list[int]] = {}  # inode -> [paths counted, bytes]
        self.total = 0

    def size(self) -> int | None:
        with self._lock:
            try:
                touched, _ = self.watcher.changes()
            except Overflow:
                touched = self.watcher.rescan()
                for rel in list(self._entries):
                    self._forget(rel)
            for rel in sorted(touched, key=len):
                self._update(rel)
            return self.total

    def _update(self, rel: bytes) -> None:
        try:
            st = os.lstat(self.root + b"/" + rel)
        except OSError:
            self._forget(rel)
            return
        ino = self._entries.get(rel)
        if ino is not None and ino != st.st_ino:
            self._forget(rel)
            ino = None
        used = st.st_blocks * 512
        if ino is None:
            self._entries[rel] = st.st_ino
            self._kids.setdefault(os.path.dirname(rel), set()).add(rel)
            rec = self._inodes.setdefault(st.st_ino, [0, 0])
            rec[0] += 1
            if rec[0] == 1:
                rec[1] = used
                self.total += used
                return
        rec = self._inodes[st.st_ino]
        self.total += used - rec[1]
        rec[1] = used
        if not stat.S_ISDIR(st.st_mode):
            # What was a directory here is gone (replaced by this file).
            for kid in list(self._kids.get(rel, ())):
                self._forget(kid)

    def _forget(self, rel: bytes) -> None:
        """Stop counting ``rel`` and everything we counted below it."""
        for kid in list(self._kids.pop(rel, ())):
            self._forget(kid)
        ino = self._entries.pop(rel, None)
        if ino is None:
            return
        siblings = self._kids.get(os.path.dirname(rel))
        if siblings is not None:
            siblings.discard(rel)
        rec = self._inodes.get(ino)
        if rec is not None:
            rec[0] -= 1
            if rec[0] <= 0:
                self.total -= rec[1]
                del self._inodes[ino]

    def close(self) -> None:
        self.watcher.close()


class ApiLayerSize:
    """Fallback: the engine's own measure of the writable layer (``SizeRw``). The engine
    walks the layer for it, so it is read periodically, never per command."""

    cheap = False

    def __init__(self, api: Any, container_id: str) -> None:
        self.api = api
        self.container_id = container_id

    def size(self) -> int | None:
        found = self.api.containers(all=True, size=True, filters={"id": self.container_id})
        value = found[0].get("SizeRw") if found else None
        return None if value is None else int(value)

    def close(self) -> None:
        pass


class DiskGuard:
    """Holds a container's writable layer to ``limit`` bytes where no quota can: measured
    every ``interval`` seconds on a thread of its own (and, when that is cheap, at the end of
    each command). When the layer is over the limit and has grown since the last time it
    was stopped for that, ``on_exceeded(size)`` runs: the sandbox stops its processes.

    ``exceeded`` stays True once the limit was crossed; ``last`` is the latest measure.
    """

    def __init__(
        self,
        layer: LayerSize,
        limit: int,
        on_exceeded: Callable[[int], None],
        interval: float = 0.5,
    ) -> None:
        self.layer = layer
        self.limit = limit
        self.on_exceeded = on_exceeded
        self.interval = interval
        self.exceeded = False
        self.last: int | None = None
        self._stopped_at: int | None = None  # the size when processes were last stopped
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="harness-disk")
        self._thread.start()

    def check(self) -> bool:
        """Measure now; True if the layer is over the limit and its processes were stopped."""
        with self._lock:
            if self._stop.is_set():
                return False
            size = self.layer.size()
            self.last = size
            if size is None or size <= self.limit:
                self._stopped_at = None  # back under the limit: crossing it again stops again
                return False
            if self._stopped_at is not None and size <= self._stopped_at:
                return False  # over, but nothing more was written since the last stop
            self._stopped_at = size
            self.exceeded = True
            self.on_exceeded(size)
            return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the container may be going away
                if self._stop.is_set():
                    return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            self.layer.close()
