"""Container resource readings: the host's cgroup files (fast), or the Docker stats API.

The engine's stats API takes about a second per reading; the same numbers are in the
container's cgroup files on the host, readable in microseconds. Both give one dict of
OpenTelemetry-style metric names.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol

from traces.vocab import Attr


class Reader(Protocol):
    def sample(self) -> dict[str, int | float]: ...

    def cpu_time(self) -> float | None: ...

    def reset_peak(self) -> bool: ...

    def peak(self) -> int | None: ...

    def close(self) -> None: ...


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                out[parts[0]] = int(parts[1])
    except OSError:
        pass
    return out


def _net(proc: Path, pid: int) -> tuple[int, int] | None:
    """Bytes received and sent by the container's interfaces (other than lo)."""
    try:
        lines = (proc / str(pid) / "net" / "dev").read_text().splitlines()[2:]
    except OSError:
        return None
    rx = tx = 0
    for line in lines:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        f = rest.split()
        rx, tx = rx + int(f[0]), tx + int(f[8])
    return rx, tx


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
        self.v2 = False
        self.dirs: dict[str, Path] = {}
        for line in (proc / str(host_pid) / "cgroup").read_text().splitlines():
            _, controllers, rel = line.split(":", 2)
            if controllers == "":
                self.dirs["unified"] = cgroup_root / rel.lstrip("/")
            for c in controllers.split(","):
                if c:
                    self.dirs[c] = cgroup_root / c / rel.lstrip("/")
        # A hybrid host lists an empty v2 hierarchy too; v1 controllers take precedence.
        self.v2 = "memory" not in self.dirs and "unified" in self.dirs
        if self.v2:
            d = self.dirs["unified"]
            if not (d / "memory.current").exists():
                raise OSError(f"cgroup v2 files not readable under {d}")
        elif not (self.dirs.get("memory", Path("/nonexistent")) / "memory.usage_in_bytes").exists():
            raise OSError("cgroup v1 memory files not readable")

    def sample(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {}
        if self.v2:
            d = self.dirs["unified"]
            cpu = _keyed(d / "cpu.stat").get("usage_usec")
            if cpu is not None:
                out[Attr.CONTAINER_CPU_TIME] = cpu / 1e6
            for key, name in (
                ("memory.current", Attr.CONTAINER_MEMORY),
                ("memory.peak", Attr.CONTAINER_MEMORY_PEAK),
                ("pids.current", Attr.CONTAINER_PIDS),
            ):
                v = _read_int(d / key)
                if v is not None:
                    out[name] = v
            rb = wb = 0
            try:
                for line in (d / "io.stat").read_text().splitlines():
                    for kv in line.split()[1:]:
                        k, _, num = kv.partition("=")
                        if k == "rbytes":
                            rb += int(num)
                        elif k == "wbytes":
                            wb += int(num)
            except OSError:
                pass
            out[Attr.CONTAINER_DISK_READ], out[Attr.CONTAINER_DISK_WRITE] = rb, wb
        else:
            cpu = _read_int(self.dirs.get("cpuacct", Path("/x")) / "cpuacct.usage")
            if cpu is not None:
                out[Attr.CONTAINER_CPU_TIME] = cpu / 1e9
            mem = self.dirs["memory"]
            for key, name in (
                ("memory.usage_in_bytes", Attr.CONTAINER_MEMORY),
                ("memory.max_usage_in_bytes", Attr.CONTAINER_MEMORY_PEAK),
            ):
                v = _read_int(mem / key)
                if v is not None:
                    out[name] = v
            pids = _read_int(self.dirs.get("pids", Path("/x")) / "pids.current")
            if pids is not None:
                out[Attr.CONTAINER_PIDS] = pids
            rb = wb = 0
            try:
                blk = self.dirs.get("blkio", Path("/x")) / "blkio.throttle.io_service_bytes"
                for line in blk.read_text().splitlines():
                    f = line.split()
                    if len(f) == 3 and f[1] == "Read":
                        rb += int(f[2])
                    elif len(f) == 3 and f[1] == "Write":
                        wb += int(f[2])
            except OSError:
                pass
            out[Attr.CONTAINER_DISK_READ], out[Attr.CONTAINER_DISK_WRITE] = rb, wb
        if self.network:
            net = _net(self.proc, self.pid)
            if net is not None:
                out[Attr.CONTAINER_NET_RX], out[Attr.CONTAINER_NET_TX] = net
        return out

    # The per-command readings are on the command path: keep those files open and pread.
    def _fd(self, path: Path, flags: int = os.O_RDONLY) -> int | None:
        key = (str(path), flags)
        fd = self._fds.get(key)
        if fd is None:
            try:
                fd = os.open(path, flags | os.O_CLOEXEC)
            except OSError:
                return None
            self._fds[key] = fd
        return fd

    def _pread_int(self, path: Path) -> int | None:
        fd = self._fd(path)
        if fd is None:
            return None
        try:
            return int(os.pread(fd, 64, 0).split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def cpu_time(self) -> float | None:
        """CPU seconds used by the container so far (one file read)."""
        if self.v2:
            usec = _keyed(self.dirs["unified"] / "cpu.stat").get("usage_usec")
            return None if usec is None else usec / 1e6
        ns = self._pread_int(self.dirs.get("cpuacct", Path("/x")) / "cpuacct.usage")
        return None if ns is None else ns / 1e9

    def _peak_path(self) -> Path:
        if self.v2:
            return self.dirs["unified"] / "memory.peak"
        return self.dirs["memory"] / "memory.max_usage_in_bytes"

    def reset_peak(self) -> bool:
        """Restart the memory high-water mark (v1: write 0; v2: write to memory.peak)."""
        fd = self._fd(self._peak_path(), os.O_WRONLY)
        if fd is None:
            return False
        try:
            os.write(fd, b"0")
            return True
        except OSError:
            return False

    def peak(self) -> int | None:
        return self._pread_int(self._peak_path())

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
