"""Task images: built once per content hash of the environment folder, then cached.

No registry is reachable here, so a task's ``FROM`` image must already be on the engine;
``--image-map FROM=TO`` points a base a user cannot pull at one they have (for example
``ubuntu:24.04=harness-base:bookworm``). Build logs are kept: a failed build fails that task's
trials as ``build_error`` with the log, never the suite.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sandbox import ImageBuildFailed, build_image, image_entrypoint, image_id
from traces.vocab import Label

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
        return image_entrypoint(self.image_id)


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
        found = image_id(name)
        if found:
            return TaskImage(name, found, True, "")
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
    bases = [f"{m.group(3)}={image_id(m.group(3)) or ''}" for m in _FROM.finditer(mapped)]
    key = "\0".join([task.environment_hash, mapped, *bases])
    digest = hashlib.sha256(key.encode()).hexdigest()
    tag = f"harness-task/{_slug(task.id)}:{digest[:16]}"
    if not force:
        found = image_id(tag)
        if found:
            return TaskImage(tag, found, True, "")
    return _build(task, tag, mapped, progress)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "task"


def _build(
    task: Task, tag: str, dockerfile: str, progress: Callable[[str], None] | None
) -> TaskImage:
    env = task.environment
    assert env.dockerfile_dir is not None
    try:
        built = build_image(
            env.dockerfile_dir,
            dockerfile,
            tag,
            labels={Label.TASK: task.id, Label.TASK_ENV: tag.rsplit(":", 1)[1]},
            timeout_s=env.build_timeout_sec,
            progress=progress,
        )
    except ImageBuildFailed as exc:
        if exc.timed_out:
            raise BuildError(
                f"task {task.id}: image build exceeded build_timeout_sec="
                f"{env.build_timeout_sec:.0f}",
                exc.log,
            ) from exc
        raise BuildError(f"task {task.id}: {exc}", exc.log) from exc
    return TaskImage(tag, built.image_id, False, built.log)
