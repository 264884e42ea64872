"""A minimal recursive inotify watcher over a directory tree (Linux, via ctypes).

Used on a container's overlay upper directory from the host: every write through the overlay
lands there, so the events name exactly the paths a command touched. The cost per command is
one non-blocking read when nothing changed, and grows with the number of changed paths, never
with the size of the tree.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
IN_DONT_FOLLOW = 0x2000000
IN_ONLYDIR = 0x1000000

WATCH_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_DONT_FOLLOW
    | IN_ONLYDIR
)
_HEADER = struct.Struct("iIII")

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


class Overflow(Exception):
    """The kernel dropped events (queue overflow): the caller must rescan."""


class TreeWatcher:
    """Watches ``root`` and every directory below it, following new directories.

    :meth:`changes` returns the relative paths (bytes) touched since the last call, and the
    renames it could pair (old path -> new path).
    """

    def __init__(self, root: bytes) -> None:
        self.root = root.rstrip(b"/")
        fd = _lib().inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd = fd
        self._dirs: dict[int, bytes] = {}  # watch descriptor -> relative dir path
        self._pending: set[bytes] = set()
        self._add_tree(b"")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _add(self, rel: bytes) -> bool:
        path = self.root + (b"/" + rel if rel else b"")
        wd = _lib().inotify_add_watch(self.fd, path, WATCH_MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOENT, errno.ENOTDIR):
                return False
            raise OSError(err, f"inotify_add_watch {path!r}: {os.strerror(err)}")
        self._dirs[wd] = rel
        return True

    def _add_tree(self, rel: bytes) -> None:
        """Watch ``rel`` and everything below it; report what is already inside, since it
        may have been written before the watch existed."""
        if not self._add(rel):
            return
        top = self.root + (b"/" + rel if rel else b"")
        for dirpath, dirnames, filenames in os.walk(top):
            base = dirpath[len(self.root) + 1 :]
            for name in filenames:
                self._pending.add(base + b"/" + name if base else name)
            for name in dirnames:
                child = base + b"/" + name if base else name
                self._pending.add(child)
                self._add(child)

    # A read returns whole events; one that leaves less room than the largest event (header
    # and a NAME_MAX name) unused has taken everything queued when it was made.
    _BUFFER = 1 << 16
    _FULL = _BUFFER - (16 + 256)

    def _read(self) -> bytes:
        try:
            return os.read(self.fd, self._BUFFER)
        except BlockingIOError:
            return b""

    def changes(self) -> tuple[set[bytes], dict[bytes, bytes]]:
        """Paths (relative to root) touched since the last call, and paired renames."""
        moved_from: dict[int, bytes] = {}
        renames: dict[bytes, bytes] = {}
        more = True
        while more and (data := self._read()):
            more = len(data) > self._FULL
            off = 0
            while off < len(data):
                wd, mask, cookie, length = _HEADER.unpack_from(data, off)
                name = data[off + 16 : off + 16 + length].rstrip(b"\0")
                off += 16 + length
                if mask & IN_Q_OVERFLOW:
                    raise Overflow("inotify queue overflow")
                if mask & IN_IGNORED:
                    self._dirs.pop(wd, None)
                    continue
                parent = self._dirs.get(wd)
                if parent is None or not name:
                    continue
                rel = parent + b"/" + name if parent else name
                self._pending.add(rel)
                if mask & IN_MOVED_FROM:
                    moved_from[cookie] = rel
                if mask & IN_MOVED_TO and cookie in moved_from:
                    old = moved_from.pop(cookie)
                    renames[old] = rel
                    if mask & IN_ISDIR:
                        self._rename_dir(old, rel)
                if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                    self._add_tree(rel)
        out, self._pending = self._pending, set()
        return out, renames

    def _rename_dir(self, old: bytes, new: bytes) -> None:
        prefix = old + b"/"
        for wd, rel in list(self._dirs.items()):
            if rel == old:
                self._dirs[wd] = new
            elif rel.startswith(prefix):
                self._dirs[wd] = new + rel[len(old) :]

    def rescan(self) -> set[bytes]:
        """After an overflow: every path in the tree (slow, but correct)."""
        self._dirs.clear()
        os.close(self.fd)
        self.fd = _lib().inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        self._pending = set()
        self._add_tree(b"")
        out, self._pending = self._pending, set()
        return out
