"""The processes in a sandbox, as its PID 1 sees them, and the replies that carry them.

PID 1 (the control shell, see ``_shell``) lists and kills processes with bash builtins only,
so it works under a fork bomb that holds every pid slot. It replies on the container's
stdout, which the harness reads through the same attach connection it writes commands to:
a multiplexed stream of frames (an 8-byte header, then the payload).
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ._errors import SessionLost


@dataclass(frozen=True)
class ProcessInfo:
    """One process in the sandbox. ``pid`` is the pid inside the container; ``start`` is the
    kernel's start time of the process (clock ticks after boot, field 22 of
    ``/proc/<pid>/stat``). A process is its ``(pid, start)``: a later process that reuses
    the pid is a different one, so equality and hashing use those two fields only."""

    pid: int
    start: int
    ppid: int = field(default=0, compare=False)
    state: str = field(default="", compare=False)
    name: str = field(default="", compare=False)  # the kernel's short name (comm)
    argv: tuple[str, ...] = field(default=(), compare=False)

    @property
    def id(self) -> tuple[int, int]:
        return (self.pid, self.start)

    @property
    def command(self) -> str:
        """The command line, or ``[name]`` for a process without one (a zombie)."""
        return " ".join(self.argv) if self.argv else f"[{self.name}]"


@dataclass(frozen=True)
class ProcessSnapshot:
    """The processes alive in a sandbox at one moment (PID 1 and harness's own session shells
    left out). ``in`` takes a :class:`ProcessInfo` or a ``(pid, start)`` pair."""

    processes: tuple[ProcessInfo, ...] = ()

    def __post_init__(self) -> None:
        if not all(isinstance(p, ProcessInfo) for p in self.processes):
            raise TypeError("ProcessSnapshot holds ProcessInfo items (from Sandbox.processes())")

    def __iter__(self) -> Iterator[ProcessInfo]:
        return iter(self.processes)

    def __len__(self) -> int:
        return len(self.processes)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, ProcessInfo):
            return item.id in self.ids
        return item in self.ids

    @property
    def ids(self) -> frozenset[tuple[int, int]]:
        return frozenset(p.id for p in self.processes)

    @property
    def pids(self) -> frozenset[int]:
        return frozenset(p.pid for p in self.processes)

    def __str__(self) -> str:
        return "\n".join(f"{p.pid:>7} {p.command}" for p in self.processes)


def parse_records(payload: bytes) -> tuple[list[ProcessInfo], list[str], int]:
    """The process records of a reply (what follows ``BEGIN``), the fields of its ``END``
    line and the bytes up to and including it. Raises ValueError while it is incomplete."""
    fields = payload.split(b"\0")
    procs: list[ProcessInfo] = []
    i = 0
    while i < len(fields) - 1:
        head = fields[i]
        if head.startswith(b"END "):
            used = sum(len(f) + 1 for f in fields[: i + 1])
            return procs, [os.fsdecode(w) for w in head.split()[1:]], used
        pid, start, ppid, state, argc = head.split()
        n = int(argc)
        if i + 2 + n > len(fields) - 1:
            break
        procs.append(
            ProcessInfo(
                pid=int(pid),
                start=int(start),
                ppid=int(ppid),
                state=os.fsdecode(state),
                name=os.fsdecode(fields[i + 1]),
                argv=tuple(os.fsdecode(a) for a in fields[i + 2 : i + 2 + n]),
            )
        )
        i += 2 + n
    raise ValueError("incomplete reply")


class ControlReplies:
    """Reads PID 1's replies from the container's attach connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._raw = bytearray()  # frames not yet split
        self._data = bytearray()  # stdout payload not yet consumed

    def _fill(self, deadline: float, what: str) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(what)
        ready, _, _ = select.select([self.sock], [], [], left)
        if not ready:
            raise TimeoutError(what)
        try:
            chunk = self.sock.recv(1 << 16)
        except OSError as exc:
            raise SessionLost(f"the container's control connection failed ({exc})") from exc
        if not chunk:
            raise SessionLost(
                "the container's PID 1 is gone (its control connection closed); close this "
                "sandbox and start a new one"
            )
        self._raw += chunk
        while len(self._raw) >= 8:
            size = int.from_bytes(self._raw[4:8], "big")
            if len(self._raw) < 8 + size:
                break
            if self._raw[0] == 1:  # stdout; PID 1's stderr is /dev/null
                self._data += self._raw[8 : 8 + size]
            del self._raw[: 8 + size]

    def reply(self, nonce: str, timeout: float, what: str) -> tuple[list[ProcessInfo], list[str]]:
        """Wait for the reply tagged ``nonce``: its records and the fields after ``END``.
        Anything before it (a reply nobody waited for) is dropped."""
        begin = b"BEGIN " + nonce.encode() + b"\0"
        end = b"END " + nonce.encode()
        deadline = time.monotonic() + timeout
        while True:
            at = self._data.find(begin)
            if at >= 0 and self._data.find(end, at) >= 0:
                body = bytes(self._data[at + len(begin) :])
                try:
                    procs, tail, used = parse_records(body)
                except ValueError:
                    pass  # END's bytes inside an argument; the real END is yet to come
                else:
                    del self._data[: at + len(begin) + used]
                    if tail[:1] == [nonce]:
                        return procs, tail[1:]
            self._fill(deadline, what)


def keep_args(keep: Iterable[ProcessInfo], exclude: Iterable[int]) -> list[str]:
    """``PID:START`` words for ``__h_killall``, leaving out the pids in ``exclude``."""
    skip = {1, *exclude}
    return [f"{p.pid}:{p.start}" for p in keep if p.pid not in skip]
