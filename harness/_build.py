"""Task images: built once per content hash of the environment folder, then cached.

No registry is reachable here, so a task's ``FROM`` image must already be on the engine;
``--image-map FROM=TO`` points a base a user cannot pull at one they have (for example
``ubuntu:24.04=harness-base:bookworm``). Build logs are kept: a failed build fails that task's
trials as ``build_error`` with the log, never the suite.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import docker.errors

from sandbox._engine import client

from ._tasks import Task

_FROM = re.compile(r"^(\s*FROM\s+)((?:--\S+\s+)*)(\S+)(.*)$", re.IGNORECASE | re.MULTILINE)


class BuildError(Exception):
    """A task image could not be built or found; ``log`` has the build output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class TaskImage:
    tag: str
    image_id: str
    cached: bool
    log: str

    @functools.cached_property
    def entrypoint(self) -> list[str]:
        """The image's ENTRYPOINT and CMD when it has an ENTRYPOINT (a service to start)."""
        cfg = client().api.inspect_image(self.image_id).get("Config") or {}
        entry = cfg.get("Entrypoint") or []
        return [*entry, *(cfg.get("Cmd") or [])] if entry else []


def parse_image_map(items: list[str] | None) -> dict[str, str]:
    """``["FROM=TO", ...]`` as a dict; a clear error for anything else."""
    out: dict[str, str] = {}
    for item in items or []:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ValueError(
                f"--image-map {item!r}: expected FROM=TO, e.g. ubuntu:24.04=harness-base:bookworm"
            )
        out[src.strip()] = dst.strip()
    return out


def map_dockerfile(text: str, image_map: Mapping[str, str]) -> str:
    """The Dockerfile with every ``FROM`` image replaced as ``image_map`` says."""

    def repl(m: re.Match[str]) -> str:
        return f"{m.group(1)}{m.group(2)}{image_map.get(m.group(3), m.group(3))}{m.group(4)}"

    return _FROM.sub(repl, text)


def _image_present(name: str) -> str | None:
    try:
        return str(client().images.get(name).id)
    except docker.errors.ImageNotFound:
        return None


def task_image(
    task: Task,
    image_map: Mapping[str, str] | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> TaskImage:
    """The image a task's trials run in: its ``docker_image`` if the engine has it, else
    built from ``environment/`` (always, with ``force``)."""
    image_map = dict(image_map or {})
    env = task.environment
    if env.docker_image and not force:
        name = image_map.get(env.docker_image, env.docker_image)
        image_id = _image_present(name)
        if image_id:
            return TaskImage(name, image_id, True, "")
        if env.dockerfile_dir is None:
            raise BuildError(
                f"task {task.id}: image {name!r} is not on the engine and cannot be pulled "
                "here, and the task has no environment/ to build it from; build or load it, "
                "or map it with --image-map"
            )
    if env.dockerfile_dir is None:
        raise BuildError(f"task {task.id}: no environment/Dockerfile to build")
    dockerfile = (env.dockerfile_dir / "Dockerfile").read_text(encoding="utf-8")
    mapped = map_dockerfile(dockerfile, image_map)
    # The base images' ids count too: a rebuilt base means rebuilt task images.
    bases = [f"{m.group(3)}={_image_present(m.group(3)) or ''}" for m in _FROM.finditer(mapped)]
    key = "\0".join([task.environment_hash, mapped, *bases])
    digest = hashlib.sha256(key.encode()).hexdigest()
    tag = f"harness-task/{_slug(task.id)}:{digest[:16]}"
    if not force:
        image_id = _image_present(tag)
        if image_id:
            return TaskImage(tag, image_id, True, "")
    return _build(task, tag, mapped, progress)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "task"


def _context(task: Task, dockerfile: str) -> io.BytesIO:
    """The environment folder as a tar build context, with the mapped Dockerfile."""
    assert task.environment.dockerfile_dir is not None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(task.environment.dockerfile_dir.rglob("*")):
            rel = p.relative_to(task.environment.dockerfile_dir).as_posix()
            if rel == "Dockerfile":
                continue
            tar.add(p, arcname=rel, recursive=False)
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _build(
    task: Task, tag: str, dockerfile: str, progress: Callable[[str], None] | None
) -> TaskImage:
    api = client().api
    log: list[str] = []
    deadline = time.monotonic() + task.environment.build_timeout_sec
    image_id = ""
    try:
        stream = api.build(
            fileobj=_context(task, dockerfile),
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            labels={"harness.task": task.id, "harness.task.env": tag.rsplit(":", 1)[1]},
        )
        for chunk in stream:
            text = _chunk_text(chunk)
            if text:
                log.append(text)
                if progress is not None and text.strip():
                    progress(text.strip().splitlines()[-1])
            if "error" in chunk:
                raise BuildError(
                    f"task {task.id}: image build failed: {str(chunk['error']).strip()}",
                    "".join(log),
                )
            if "aux" in chunk and isinstance(chunk["aux"], dict):
                image_id = chunk["aux"].get("ID", image_id)
            if time.monotonic() > deadline:
                raise BuildError(
                    f"task {task.id}: image build exceeded build_timeout_sec="
                    f"{task.environment.build_timeout_sec:.0f}",
                    "".join(log),
                )
    except docker.errors.APIError as exc:
        raise BuildError(
            f"task {task.id}: image build failed: {exc.explanation or exc}", "".join(log)
        ) from None
    image_id = image_id or (_image_present(tag) or "")
    if not image_id:
        raise BuildError(f"task {task.id}: build produced no image", "".join(log))
    return TaskImage(tag, image_id, False, "".join(log))


def _chunk_text(chunk: dict[str, Any]) -> str:
    if "stream" in chunk:
        return str(chunk["stream"])
    if "status" in chunk:
        return str(chunk["status"]) + "\n"
    if "error" in chunk:
        return str(chunk["error"]) + "\n"
    return ""
