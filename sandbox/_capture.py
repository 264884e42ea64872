"""Bounded capture of a byte stream and in-band marker scanning.

The session shell reports the start and end of each command by writing unique markers into
the same stdout/stderr streams as the command's own output. These classes split those streams
back into per-command output without ever holding more than a bounded amount in memory, so a
command that prints a gigabyte costs a gigabyte of socket reads, not of RAM.
"""

from __future__ import annotations

from collections.abc import Callable

TRUNCATION_MARKER = b"\n[... harness: %d bytes omitted ...]\n"


class HeadTail:
    """Keeps the first and last ``limit // 2`` bytes of everything written, and the total count.

    Head and tail are what a human or a model needs to judge a long output (the command's
    banner and its final error); the middle is dropped with a visible marker.
    """

    __slots__ = ("limit", "total", "_head", "_tail", "_tail_cap", "record_cap", "recorded")

    def __init__(self, limit: int, record_cap: int = 0) -> None:
        if limit < 0:
            raise ValueError("output limit must be >= 0")
        self.limit = limit
        self.total = 0
        # For the record (not the model): the stream's first `record_cap` bytes, exactly.
        self.record_cap = record_cap
        self.recorded = bytearray()
        self._head = bytearray()
        self._tail = bytearray()
        self._tail_cap = limit - limit // 2

    def write(self, data: bytes | bytearray | memoryview) -> None:
        n = len(data)
        if not n:
            return
        if len(self.recorded) < self.record_cap:
            self.recorded += data[: self.record_cap - len(self.recorded)]
        self.total += n
        room = self.limit // 2 - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not len(data) or not self._tail_cap:
            return
        if len(data) >= self._tail_cap:
            self._tail[:] = data[-self._tail_cap :]
            return
        self._tail += data
        # Trim lazily: amortised O(1) per byte, memory stays under 2x the cap.
        if len(self._tail) > 2 * self._tail_cap:
            del self._tail[: len(self._tail) - self._tail_cap]

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def getvalue(self) -> bytes:
        """The captured bytes: exact when nothing was dropped, else head + marker + tail."""
        tail = bytes(self._tail[-self._tail_cap :]) if self._tail_cap else b""
        if not self.truncated:
            return bytes(self._head) + tail[len(tail) - (self.total - len(self._head)) :]
        omitted = self.total - len(self._head) - len(tail)
        return bytes(self._head) + TRUNCATION_MARKER % omitted + tail


class MarkerScanner:
    """Splits one stream at expected markers, each followed by a NUL-terminated trailer.

    Bytes that are not part of a marker go to ``sink``. Markers are random per command, so a
    command cannot forge them by accident. At most ``len(marker) - 1`` bytes are held back at
    any time, so output reaches the sink promptly even when no marker is expected.
    """

    def __init__(self, sink: HeadTail) -> None:
        self.sink = sink
        self._expect: list[tuple[bytes, Callable[[bytes], None]]] = []
        self._held = b""
        self._trailer: bytearray | None = None

    def expect(self, marker: bytes, on_found: Callable[[bytes], None]) -> None:
        self._expect.append((marker, on_found))

    def clear(self) -> None:
        self._expect.clear()
        self._trailer = None
        if self._held:
            self.sink.write(self._held)
            self._held = b""

    def feed(self, data: bytes) -> None:
        while data:
            if self._trailer is not None:
                end = data.find(b"\0")
                if end < 0:
                    self._trailer += data
                    return
                self._trailer += data[:end]
                data = data[end + 1 :]
                trailer, self._trailer = bytes(self._trailer), None
                _, on_found = self._expect.pop(0)
                on_found(trailer)  # may swap self.sink
                continue
            if not self._expect:
                if self._held:
                    data, self._held = self._held + data, b""
                self.sink.write(data)
                return
            marker = self._expect[0][0]
            buf = self._held + data if self._held else data
            idx = buf.find(marker)
            if idx >= 0:
                self.sink.write(buf[:idx])
                self._held = b""
                self._trailer = bytearray()
                data = buf[idx + len(marker) :]
                continue
            keep = len(marker) - 1
            # Hold back only a suffix that could still begin a marker.
            cut = len(buf) - keep
            while cut < len(buf) and not marker.startswith(buf[cut:]):
                cut += 1
            self.sink.write(buf[:cut])
            self._held = buf[cut:]
            return
