"""Streaming tar archives to and from the engine's archive API, never whole in memory."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from typing import IO, Any

from ._errors import SandboxError


def tar_stream(info: tarfile.TarInfo, fobj: IO[bytes]) -> Iterator[bytes]:
    """A one-member tar archive as a stream of chunks: the file is never held in memory."""
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    remaining = info.size
    while remaining > 0:
        chunk = fobj.read(min(remaining, 1 << 20))
        if not chunk:
            raise SandboxError(f"file ended {remaining} bytes early while writing {info.name}")
        remaining -= len(chunk)
        yield chunk
    pad = -info.size % tarfile.BLOCKSIZE
    yield b"\0" * (pad + 2 * tarfile.BLOCKSIZE)


class IterReader(io.RawIOBase):
    """A file object over an iterator of byte chunks, for streaming tar parsing."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
