"""What each command changed in the container's filesystem.

Fast path (local engine, overlay2): watch the container's upper directory from the host with
inotify; after a command, look only at the paths it touched and compare each with its state
before the command (our record of it, or the image's lower layers). Fallback (remote engine or
another storage driver): the Docker API's diff plus archive reads, slower but exact.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import os
import re
import stat
import tarfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Protocol

import docker.errors

from ._archive import IterReader
from ._inotify import Overflow, TreeWatcher
from ._owner import owner_labels

DEFAULT_IGNORE = (
    "/proc",
    "/sys",
    "/dev",
    "/tmp/.harness",
    "/var/cache/apt",
    "/var/lib/apt/lists",
    "/var/cache/debconf",
    "/var/log/apt",
    "/var/lib/dpkg/lock",
    "/root/.cache",
)


@dataclass(frozen=True)
class FileState:
    """One path's state: type, permission bits, size, content hash (files), target (links)."""

    type: str  # file | dir | symlink | fifo | socket | char | block
    mode: int
    size: int
    sha256: str | None = None
    target: bytes | None = None
    content: bytes | None = field(default=None, compare=False, repr=False)
    content_omitted: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class FileChange:
    path: bytes
    op: str  # added | modified | deleted | renamed | mode
    before: FileState | None
    after: FileState | None
    old_path: bytes | None = None
    # The old and new content of a modified small file. Both are snapshots taken when the
    # change was found, so the diff can be made later, off the command's path.
    texts: tuple[bytes, bytes] | None = field(default=None, compare=False, repr=False)

    @cached_property
    def diff(self) -> bytes | None:
        """A unified diff of a modified text file (None for anything else)."""
        return unified_diff(self.path, *self.texts) if self.texts is not None else None


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "char"
    return "block"


def _hash_file(path: bytes, size: int, cap: int) -> tuple[str, bytes | None]:
    keep = size <= cap
    h = hashlib.sha256()
    parts: list[bytes] = []
    total = 0
    # Plain reads on a raw descriptor, sized so that a file that has not grown since its
    # lstat is read whole in one call: a command's changed files are read on its path, and
    # most are small. A short read of a regular file is its end.
    want = min(size + 1, 1 << 20)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        while True:
            chunk = os.read(fd, want)
            h.update(chunk)
            total += len(chunk)
            if keep:
                parts.append(chunk)
            if len(chunk) < want:
                break
            want = 1 << 20
    finally:
        os.close(fd)
    keep = keep and total <= cap  # not if it grew past the cap while it was read
    return h.hexdigest(), (b"".join(parts) if keep else None)


_MISSING = object()


def _lstat(path: bytes) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def state_of(
    path: bytes, cap: int, st: os.stat_result | None | object = _MISSING
) -> FileState | None:
    """The state of a host path (None if absent or an overlay whiteout); ``st`` is its
    lstat when the caller has just taken it."""
    if st is _MISSING:
        st = _lstat(path)
    if not isinstance(st, os.stat_result):
        return None
    kind = _kind(st.st_mode)
    if kind == "char" and st.st_rdev == 0:
        return None  # overlay whiteout: deleted in this layer
    mode = stat.S_IMODE(st.st_mode)
    if kind == "file":
        try:
            sha, content = _hash_file(path, st.st_size, cap)
        except OSError:
            return FileState(kind, mode, st.st_size)
        return FileState(kind, mode, st.st_size, sha, None, content, content is None)
    if kind == "symlink":
        return FileState(kind, mode, st.st_size, None, os.readlink(path))
    return FileState(kind, mode, 0 if kind == "dir" else st.st_size)


def unified_diff(path: bytes, before: bytes, after: bytes) -> bytes | None:
    """A unified diff for text content (None when either side is not UTF-8 text)."""
    try:
        a = before.decode("utf-8").splitlines(keepends=True)
        b = after.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None
    if b"\0" in before or b"\0" in after:
        return None
    name = os.fsdecode(path)
    text = "".join(_trimmed_unified_diff(a, b, f"a{name}", f"b{name}"))
    return text.encode("utf-8") if text else None


_CONTEXT = 3  # difflib's default context lines
_HUNK = re.compile(r"@@ -(\d+)((?:,\d+)?) \+(\d+)((?:,\d+)?) @@")


def _trimmed_unified_diff(a: list[str], b: list[str], from_: str, to: str) -> Iterator[str]:
    """``difflib.unified_diff(a, b)``, the same text, with the lines both sides share at the
    start and end left out of the matching (an append to a long log file would otherwise
    cost a full comparison of both files every time it is recorded)."""
    n = min(len(a), len(b))
    head = 0
    while head < n and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < n - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    # Keep the context the hunks need; the unseen shared lines cannot change the hunks.
    lo = max(0, head - _CONTEXT)
    ta = len(a) - max(0, tail - _CONTEXT)
    tb = len(b) - max(0, tail - _CONTEXT)
    if lo == 0 and ta == len(a) and tb == len(b):
        yield from difflib.unified_diff(a, b, from_, to)
        return
    for line in difflib.unified_diff(a[lo:ta], b[lo:tb], from_, to):
        m = _HUNK.match(line) if line.startswith("@@") else None
        if m is None:
            yield line
            continue
        old, new = int(m[1]), int(m[3])
        # A hunk's start moves with the lines cut before it (an empty range's start is the
        # line before it, 0 at the top: it moves the same way).
        yield f"@@ -{old + lo}{m[2]} +{new + lo}{m[4]} @@\n"


class _ContentCache:
    """Last known content of small files, so a later change can be diffed (bounded LRU)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._items: OrderedDict[bytes, bytes] = OrderedDict()

    def get(self, path: bytes) -> bytes | None:
        data = self._items.get(path)
        if data is not None:
            self._items.move_to_end(path)
        return data

    def put(self, path: bytes, data: bytes | None) -> None:
        old = self._items.pop(path, None)
        if old is not None:
            self.used -= len(old)
        if data is None or len(data) > self.budget // 4:
            return
        self._items[path] = data
        self.used += len(data)
        while self.used > self.budget and self._items:
            _, dropped = self._items.popitem(last=False)
            self.used -= len(dropped)


class Differ(Protocol):
    def changes(self) -> list[FileChange]: ...

    def close(self) -> None: ...


@dataclass
class DiffConfig:
    content_cap: int = 16 << 20  # file contents above this: size and hash only
    diff_cap: int = 1 << 20  # unified diffs only for text files up to this size
    ignore: tuple[str, ...] = DEFAULT_IGNORE


class _Base:
    def __init__(self, config: DiffConfig) -> None:
        self.config = config
        self._ignore = tuple(os.fsencode(p.rstrip("/")) for p in config.ignore)
        self._known: dict[bytes, FileState | None] = {}
        self._cache = _ContentCache(64 << 20)
        # Image states read in bulk for this call (a deleted directory's tree), by path.
        self._prefetched: dict[bytes, FileState | None] = {}

    def _ignored(self, path: bytes) -> bool:
        return any(path == p or path.startswith(p + b"/") for p in self._ignore)

    def _lower(self, path: bytes) -> FileState | None:
        raise NotImplementedError

    def _before(self, path: bytes) -> FileState | None:
        """A path's state before this command: our record of it, else the image's."""
        if path in self._known:
            return self._known[path]
        if path in self._prefetched:
            return self._prefetched[path]
        return self._lower(path)

    def _known_below(self, roots: set[bytes]) -> set[bytes]:
        """Paths we know to exist below any of ``roots`` (one pass over what we know)."""
        if not roots:
            return set()
        return {p for p, st in self._known.items() if st is not None and _under(p, roots)}

    def _compare(
        self, states: Iterable[tuple[bytes, FileState | None]], renames: dict[bytes, bytes]
    ) -> list[FileChange]:
        out: dict[bytes, FileChange] = {}
        for path, after in states:
            before = self._before(path)
            # Contents live in the bounded cache, not in the record of every path.
            self._known[path] = replace(after, content=None) if after is not None else None
            if before == after:
                continue  # untouched, or changed and restored within the command
            if (
                before is not None
                and after is not None
                and before.type == after.type == "dir"
                and before.mode == after.mode
            ):
                continue  # a directory's own metadata: its children say what changed
            op = "modified"
            if before is None:
                op = "added"
            elif after is None:
                op = "deleted"
            elif (before.type, before.sha256, before.target) == (
                after.type,
                after.sha256,
                after.target,
            ):
                op = "mode"
            texts = None
            if (
                op == "modified"
                and before is not None
                and after is not None
                and before.type == after.type == "file"
            ):
                old = before.content if before.content is not None else self._cache.get(path)
                new = after.content
                if (
                    old is not None
                    and new is not None
                    and max(len(old), len(new)) <= self.config.diff_cap
                ):
                    texts = (old, new)  # diffed when the change is recorded
            if after is not None and after.type == "file":
                self._cache.put(path, after.content)
            out[path] = FileChange(path, op, before, after, None, texts)
        for old, new in renames.items():
            a, b = out.get(old), out.get(new)
            if (
                a is not None
                and b is not None
                and a.op == "deleted"
                and b.op == "added"
                and a.before is not None
                and b.after is not None
                and (a.before.type, a.before.sha256, a.before.target)
                == (b.after.type, b.after.sha256, b.after.target)
            ):
                del out[old]
                out[new] = FileChange(new, "renamed", a.before, b.after, old)
        return [out[p] for p in sorted(out)]


class OverlayDiffer(_Base):
    """Fast path: inotify on the container's overlay upper dir, lower dirs read on the host.

    A path is looked up as overlayfs does: the topmost layer that has it wins, a whiteout
    (a 0/0 character device) hides it and everything below it, and an opaque directory hides
    the layers under it. A directory the command deleted (or deleted and re-created) stands
    for its whole former tree: every path below it is compared, so each one the command
    removed gets its own change.
    """

    _MEMO_LIMIT = 200_000

    def __init__(self, upper: str, lowers: list[str], config: DiffConfig) -> None:
        super().__init__(config)
        self.upper = os.fsencode(upper)
        self.lowers = tuple(os.fsencode(p) for p in lowers)
        self.layers = (self.upper, *self.lowers)
        # Which layers hold a directory as a visible directory. The lower layers never
        # change, so theirs is kept; the upper layer's only within one look.
        self._lower_dirs: dict[bytes, tuple[bytes, ...]] = {}
        self._merged_dirs: dict[bytes, tuple[bytes, ...]] = {}
        self.watcher = TreeWatcher(self.upper)
        self.watcher.changes()  # what the engine itself put there at start is not a change

    def close(self) -> None:
        self.watcher.close()

    def _dir_layers(
        self, layers: tuple[bytes, ...], d: bytes, memo: dict[bytes, tuple[bytes, ...]]
    ) -> tuple[bytes, ...]:
        """The layers (top first) in which directory ``d`` is part of the merged view."""
        if d in (b"/", b""):
            return layers
        found = memo.get(d)
        if found is not None:
            return found
        out: list[bytes] = []
        for layer in self._dir_layers(layers, os.path.dirname(d), memo):
            try:
                st = os.lstat(layer + d)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if not stat.S_ISDIR(st.st_mode):
                break  # a whiteout or a non-directory hides the layers below
            out.append(layer)
            if _opaque(layer + d):
                break
        if len(memo) > self._MEMO_LIMIT:
            memo.clear()
        memo[d] = result = tuple(out)
        return result

    def _lookup(
        self, layers: tuple[bytes, ...], path: bytes, memo: dict[bytes, tuple[bytes, ...]]
    ) -> FileState | None:
        for layer in self._dir_layers(layers, os.path.dirname(path), memo):
            p = layer + path
            try:
                st = os.lstat(p)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return None
            return state_of(p, self.config.content_cap, st)
        return None

    def _lower(self, path: bytes) -> FileState | None:
        return self._lookup(self.lowers, path, self._lower_dirs)

    def _merged(self, path: bytes, st: os.stat_result | None) -> FileState | None:
        """A path's state in the merged view; ``st`` is its lstat in the upper layer."""
        if st is None:
            return self._lookup(self.layers, path, self._merged_dirs)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None
        return state_of(self.upper + path, self.config.content_cap, st)

    def changes(self) -> list[FileChange]:
        try:
            touched, renames = self.watcher.changes()
        except Overflow:
            # Events were lost: look at everything in the upper layer and everything we knew.
            touched = self.watcher.rescan()
            touched.update(p[1:] for p, st in self._known.items() if st is not None)
            renames = {}
        if not touched:
            return []
        self._merged_dirs = {}
        # One lstat of each path in the upper layer, for both looks below.
        upper = {p: _lstat(self.upper + p) for p in (b"/" + t for t in touched)}
        paths = set(upper)
        paths |= self._gone_below(upper)
        states = (
            (p, self._merged(p, upper[p] if p in upper else _lstat(self.upper + p)))
            for p in sorted(paths)
            if not self._ignored(p)
        )
        renamed = {b"/" + a: b"/" + b for a, b in renames.items()}
        return self._compare(states, renamed)

    def _gone_below(self, paths: dict[bytes, os.stat_result | None]) -> set[bytes]:
        """Every path below a directory that was deleted, replaced, or deleted and re-created
        (opaque): its image tree and what we know was in it."""
        roots: set[bytes] = set()
        for p in sorted(paths, key=len):
            if self._ignored(p) or _under(p, roots):
                continue
            st = paths[p]
            if st is not None and stat.S_ISDIR(st.st_mode) and not _opaque(self.upper + p):
                continue  # still a directory: what left it is a change of its own
            if p in self._known:
                before = self._known[p]
                was_dir = before is not None and before.type == "dir"
            else:  # the image's (no lstat at all below a directory the image lacks)
                was_dir = bool(self._dir_layers(self.lowers, p, self._lower_dirs))
            if was_dir:
                roots.add(p)
        out = self._known_below(roots)
        for root in roots:
            out.update(self._lower_tree(root))
        return out

    def _lower_tree(self, root: bytes) -> set[bytes]:
        """Every path below ``root`` in the image (as the lower layers merge)."""
        out: set[bytes] = set()
        stack = [root]
        while stack:
            d = stack.pop()
            names: set[bytes] = set()
            for layer in self._dir_layers(self.lowers, d, self._lower_dirs):
                try:
                    names.update(os.listdir(layer + d))
                except (FileNotFoundError, NotADirectoryError):
                    continue
            for name in names:
                child = d + b"/" + name
                out.add(child)
                if self._dir_layers(self.lowers, child, self._lower_dirs):
                    stack.append(child)
        return out


def _under(path: bytes, roots: set[bytes]) -> bool:
    """Whether ``path`` is strictly below one of ``roots``."""
    if not roots:
        return False
    parent = os.path.dirname(path)
    while parent not in (b"/", b""):
        if parent in roots:
            return True
        parent = os.path.dirname(parent)
    return False


# Go's os.FileMode type bits, as the engine reports them.
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_STICKY = 1 << 23, 1 << 22, 1 << 20


def _opaque(path: bytes) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


class ApiDiffer(_Base):
    """Fallback for remote engines and other storage drivers: ``docker diff`` and archives.

    The image's own files are read from a created (never started) container of the same
    image, which costs nothing to keep.
    """

    def __init__(self, api: Any, container_id: str, image: str, config: DiffConfig) -> None:
        super().__init__(config)
        self.api = api
        self.container_id = container_id
        # Owner labels let `harness gc` remove it if this process dies before close().
        self.reference = api.create_container(image, command=["true"], labels=owner_labels())["Id"]
        self._last: set[bytes] = set()

    def close(self) -> None:
        try:
            self.api.remove_container(self.reference, force=True)
        except Exception:  # noqa: BLE001 - the container may be gone with its engine
            pass

    def _archive_state(self, container: str, path: bytes) -> FileState | None:
        """One path's state through the archive API: a HEAD for its metadata, and the
        content only for regular files (a directory's archive would be the whole tree)."""
        url = self.api._url("/containers/{0}/archive", container)
        # Raw bytes in the query keep non-UTF-8 names exact.
        res = self.api.head(url, params={"path": path})
        if res.status_code == 404:
            return None
        res.raise_for_status()
        info = json.loads(base64.b64decode(res.headers["X-Docker-Container-Path-Stat"]))
        gomode = int(info["mode"])
        perm = (
            gomode & 0o777
            | (0o4000 if gomode & _GO_SETUID else 0)
            | (0o2000 if gomode & _GO_SETGID else 0)
            | (0o1000 if gomode & _GO_STICKY else 0)
        )
        if gomode & _GO_DIR:
            return FileState("dir", perm, 0)
        if gomode & _GO_SYMLINK:
            # The stat header resolves the link; the archive keeps its exact target.
            member = self._member(container, path)
            target = os.fsencode(member[0].linkname) if member else b""
            return FileState("symlink", 0o777, len(target), None, target)
        if gomode & (_GO_PIPE | _GO_SOCKET | _GO_DEVICE):
            kind = "fifo" if gomode & _GO_PIPE else "socket" if gomode & _GO_SOCKET else "char"
            return FileState(kind, perm, 0)
        member = self._member(container, path)
        data = member[1] if member else b""
        keep = data if len(data) <= self.config.content_cap else None
        return FileState(
            "file", perm, len(data), hashlib.sha256(data).hexdigest(), None, keep, keep is None
        )

    def _member(self, container: str, path: bytes) -> tuple[tarfile.TarInfo, bytes] | None:
        """The archive's single member for a file or symlink, with its content."""
        chunks, _ = self.api.get_archive(container, path)
        with tarfile.open(fileobj=IterReader(chunks), mode="r|") as tar:
            m = tar.next()
            if m is None:
                return None
            f = tar.extractfile(m) if m.isfile() else None
            return m, (f.read() if f is not None else b"")

    def _lower(self, path: bytes) -> FileState | None:
        return self._archive_state(self.reference, path)

    def _unmangle(self, path: bytes) -> list[bytes]:
        parent, _, name = path.rpartition(b"/")
        try:
            chunks, _ = self.api.get_archive(self.container_id, parent or b"/")
        except Exception:  # noqa: BLE001
            return [path]
        want = name.decode("utf-8", errors="replace")
        found = []
        with tarfile.open(fileobj=IterReader(chunks), mode="r|") as tar:
            for m in tar:
                raw = os.fsencode(m.name)
                head, _, base = raw.partition(b"/")
                if base and b"/" not in base and base.decode("utf-8", "replace") == want:
                    found.append((parent or b"") + b"/" + base)
        return found or [path]

    def changes(self) -> list[FileChange]:
        diff = self.api.diff(self.container_id) or []
        current: set[bytes] = set()
        for d in diff:
            path = os.fsencode(d["Path"])
            # The engine's JSON replaces bytes that are not UTF-8 with U+FFFD; find the real
            # name in the parent directory's listing.
            current.update(self._unmangle(path) if "\ufffd" in d["Path"] else [path])
        # Everything in the diff may have changed again; what left it went back to the image.
        paths = sorted(p for p in current | self._last if not self._ignored(p))
        self._last = current
        states = {p: self._archive_state(self.container_id, p) for p in paths}
        # The engine lists a deleted directory alone: everything that was below it is gone
        # too, and the reference container's archive of it says what that was.
        self._prefetched = {}
        roots: set[bytes] = set()
        for p in sorted(paths, key=len):
            after = states[p]
            if (after is not None and after.type == "dir") or _under(p, roots):
                continue
            before = self._before(p)
            if p not in self._known:
                self._prefetched[p] = before
            if before is None or before.type != "dir":
                continue
            roots.add(p)
            self._prefetched.update(self._tree(self.reference, p))
        gone = {p for p in self._prefetched if _under(p, roots)} | self._known_below(roots)
        every = sorted(set(paths) | {p for p in gone if not self._ignored(p)})
        try:
            return self._compare(((p, states.get(p)) for p in every), {})
        finally:
            self._prefetched = {}

    def _tree(self, container: str, root: bytes) -> dict[bytes, FileState]:
        """Every path at and below ``root`` with its state, from one archive of it."""
        try:
            chunks, _ = self.api.get_archive(container, root)
        except docker.errors.NotFound:
            return {}
        parent = os.path.dirname(root)
        prefix = b"" if parent == b"/" else parent
        cap = self.config.content_cap
        out: dict[bytes, FileState] = {}
        by_name: dict[str, FileState] = {}
        with tarfile.open(fileobj=IterReader(chunks), mode="r|") as tar:
            for m in tar:
                path = prefix + b"/" + os.fsencode(m.name).rstrip(b"/")
                perm = m.mode & 0o7777
                st: FileState | None
                if m.isdir():
                    st = FileState("dir", perm, 0)
                elif m.issym():
                    target = os.fsencode(m.linkname)
                    st = FileState("symlink", 0o777, len(target), None, target)
                elif m.islnk():
                    st = by_name.get(m.linkname)
                elif m.isfile():
                    f = tar.extractfile(m)
                    h = hashlib.sha256()
                    parts: list[bytes] = []
                    while f is not None and (chunk := f.read(1 << 20)):
                        h.update(chunk)
                        if m.size <= cap:
                            parts.append(chunk)
                    keep = b"".join(parts) if m.size <= cap else None
                    st = FileState("file", perm, m.size, h.hexdigest(), None, keep, keep is None)
                else:
                    kind = "fifo" if m.isfifo() else "block" if m.isblk() else "char"
                    st = FileState(kind, perm, 0)
                if st is not None:
                    out[path] = by_name[m.name] = st
        return out
