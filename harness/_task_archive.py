"""A task folder as one deterministic archive, so a record can be replayed without it.

A trial's root names the archive (a blob, stored once however many trials share it); replay
and re-grading unpack it when the task folder is not at hand, for example on another machine
after ``harness import``. The same folder always gives the same bytes: entries sorted, times,
owners and compression headers fixed.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

__all__ = ["ARCHIVE_CAP", "task_archive", "unpack_task"]

# Folders larger than this are not archived (the trial records no archive; replay then needs
# the task folder: --task PATH).
ARCHIVE_CAP = 64 << 20


def task_archive(root: Path, cap: int = ARCHIVE_CAP) -> bytes | None:
    """The folder's files (regular files, folders and symlinks; modes kept) as a gzip'd tar,
    or None when it holds more than ``cap`` bytes."""
    buf = io.BytesIO()
    total = 0
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in [*sorted(dirnames), *sorted(filenames)]:
                p = Path(dirpath) / name
                st = p.lstat()
                info = tarfile.TarInfo(p.relative_to(root).as_posix())
                info.mode, info.mtime, info.uid, info.gid = st.st_mode & 0o7777, 0, 0, 0
                if stat.S_ISLNK(st.st_mode):
                    info.type, info.linkname = tarfile.SYMTYPE, os.readlink(p)
                    tar.addfile(info)
                elif stat.S_ISDIR(st.st_mode):
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif stat.S_ISREG(st.st_mode):
                    total += st.st_size
                    if total > cap:
                        return None
                    info.size = st.st_size
                    with p.open("rb") as f:
                        tar.addfile(info, f)
    return buf.getvalue()


def unpack_task(archive: bytes, dest: Path) -> Path:
    """Unpack an archive made by :func:`task_archive` into ``dest`` (created); returns it.

    Only what ``task_archive`` writes is accepted: a member that would land outside
    ``dest`` (an absolute path, ``..``, a link out) is refused by tarfile's ``data`` filter.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest
