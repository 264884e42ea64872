"""Building an image from a folder, as ``docker build`` does, keeping the whole log.

The caller gives the Dockerfile's text (it may have rewritten the folder's own, say to point
``FROM`` at an image this engine has); the folder is sent as the build context with that text
in place of its Dockerfile. Nothing is pulled: no registry is reachable here.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

from ._engine import client, engine_errors
from ._errors import ImageBuildFailed
from ._images import image_id as _image_id


@dataclass(frozen=True)
class BuiltImage:
    """What :func:`build_image` made: the image id and the build's whole output."""

    image_id: str
    log: str


def _context(context_dir: Path, dockerfile: str) -> io.BytesIO:
    """The folder as a tar build context, with ``dockerfile`` as its Dockerfile."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(context_dir.rglob("*")):
            rel = p.relative_to(context_dir).as_posix()
            if rel == "Dockerfile":
                continue
            tar.add(p, arcname=rel, recursive=False)
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@engine_errors("building an image")
def build_image(
    context_dir: Path,
    dockerfile: str,
    tag: str,
    *,
    labels: Mapping[str, str] | None = None,
    timeout_s: float,
    progress: Callable[[str], None] | None = None,
) -> BuiltImage:
    """Build ``tag`` from ``context_dir`` with ``dockerfile`` as its Dockerfile.

    Args:
        context_dir: the build context; its own ``Dockerfile``, if any, is replaced.
        dockerfile: the Dockerfile's text.
        tag: the name the image gets.
        labels: labels the image gets.
        timeout_s: give up (checked as build output arrives) after this many seconds.
        progress: called with the last line of each piece of build output.

    Raises:
        ImageBuildFailed: the build failed, timed out (``timed_out``) or produced no image;
            ``log`` has the output so far.
    """
    api = client().api
    log: list[str] = []
    deadline = time.monotonic() + timeout_s
    found = ""
    try:
        stream = api.build(
            fileobj=_context(context_dir, dockerfile),
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            labels=dict(labels or {}),
        )
        for chunk in stream:
            text = _chunk_text(chunk)
            if text:
                log.append(text)
                if progress is not None and text.strip():
                    progress(text.strip().splitlines()[-1])
            if "error" in chunk:
                raise ImageBuildFailed(
                    f"image build failed: {str(chunk['error']).strip()}", "".join(log)
                )
            if "aux" in chunk and isinstance(chunk["aux"], dict):
                found = chunk["aux"].get("ID", found)
            if time.monotonic() > deadline:
                raise ImageBuildFailed(
                    f"image build exceeded {timeout_s:.0f} s", "".join(log), timed_out=True
                )
    except docker.errors.APIError as exc:
        raise ImageBuildFailed(
            f"image build failed: {exc.explanation or exc}", "".join(log)
        ) from exc
    found = found or (_image_id(tag) or "")
    if not found:
        raise ImageBuildFailed("build produced no image", "".join(log))
    return BuiltImage(found, "".join(log))


def _chunk_text(chunk: dict[str, Any]) -> str:
    if "stream" in chunk:
        return str(chunk["stream"])
    if "status" in chunk:
        return str(chunk["status"]) + "\n"
    if "error" in chunk:
        return str(chunk["error"]) + "\n"
    return ""
