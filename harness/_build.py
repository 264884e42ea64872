"""Task images: built once per content hash of the environment folder, then cached.

No registry is reachable here, so a task's ``FROM`` image must already be on the engine;
``--image-map FROM=TO`` points a base a user cannot pull at one they have (for example
``ubuntu:24.04=harness-base:bookworm``). Build logs are kept as plain text (terminal escape
codes removed): a failed build fails that task's trials as ``build_error`` with the log, never
the suite. How long a build took is kept too (``build_s``; 0 for an image already built).
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sandbox import DEFAULT_IMAGE, ImageBuildFailed, build_image, image_entrypoint, image_id
from traces.vocab import Label

from ._tasks import Task

_FROM = re.compile(r"^(\s*FROM\s+)((?:--\S+\s+)*)(\S+)(.*)$", re.IGNORECASE | re.MULTILINE)
_STAGE = re.compile(r"^\s+AS\s+(\S+)", re.IGNORECASE)
# Terminal escape sequences: CSI (colours, cursor moves), OSC (titles, links), and the
# two-byte ones. Build output is stored and shown as plain text.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def plain(text: str) -> str:
    """``text`` without terminal escape sequences."""
    return _ANSI.sub("", text)


class BuildError(Exception):
    """A task image could not be built or found; ``log`` has the build output (plain text)
    and ``build_s`` how long the failed build ran."""

    def __init__(self, message: str, log: str = "", build_s: float = 0.0) -> None:
        super().__init__(message)
        self.log = log
        self.build_s = build_s


@dataclass(frozen=True)
class TaskImage:
    tag: str
    image_id: str
    cached: bool  # already built (or the task's docker_image): nothing was built now
    log: str  # the build's output as plain text; empty when cached
    build_s: float = 0.0  # seconds this build took; 0 when cached

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
                f"task {task.id}: [environment] docker_image {name!r} is not on the engine, "
                "cannot be pulled here, and the task has no environment/Dockerfile to build "
                f"it from; map it to an image you have (--image-map {name}={DEFAULT_IMAGE}) "
                f"or load it (docker load -i {_tar_name(name)})"
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


def _tar_name(image: str) -> str:
    return _slug(image.replace(":", "-").replace("/", "-")) + ".tar"


def base_images(dockerfile: str) -> list[str]:
    """The images a Dockerfile's ``FROM`` lines name, in order, without build stages
    (``FROM builder``), ``scratch`` or names made of build arguments (``FROM $BASE``)."""
    stages: set[str] = set()
    images: list[str] = []
    for m in _FROM.finditer(dockerfile):
        name = m.group(3)
        own = name.lower() in stages or name == "scratch" or "$" in name
        if not own and name not in images:
            images.append(name)
        if stage := _STAGE.match(m.group(4)):
            stages.add(stage.group(1).lower())
    return images


def _missing_bases_message(task: Task, missing: list[str]) -> str:
    names = ", ".join(missing)
    maps = " ".join(f"--image-map {m}={DEFAULT_IMAGE}" for m in missing)
    loads = "; ".join(f"docker load -i {_tar_name(m)}" for m in missing)
    verb = "is" if len(missing) == 1 else "are"
    return (
        f"task {task.id}: environment/Dockerfile: FROM {names} {verb} not on the engine and "
        f"cannot be pulled here (no registry is reachable); map it to an image you have "
        f"({maps}) or load it ({loads})"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "task"


def _build(
    task: Task, tag: str, dockerfile: str, progress: Callable[[str], None] | None
) -> TaskImage:
    env = task.environment
    assert env.dockerfile_dir is not None
    started = time.monotonic()
    try:
        built = build_image(
            env.dockerfile_dir,
            dockerfile,
            tag,
            labels={Label.TASK: task.id, Label.TASK_ENV: tag.rsplit(":", 1)[1]},
            timeout_s=env.build_timeout_sec,
            progress=(lambda line: progress(plain(line))) if progress is not None else None,
        )
    except ImageBuildFailed as exc:
        log, took = plain(exc.log), time.monotonic() - started
        if exc.timed_out:
            raise BuildError(
                f"task {task.id}: image build exceeded build_timeout_sec="
                f"{env.build_timeout_sec:.0f}",
                log,
                took,
            ) from exc
        missing = [b for b in base_images(dockerfile) if image_id(b) is None]
        if missing:  # the engine tried to pull them: its error is in the log
            raise BuildError(_missing_bases_message(task, missing), log, took) from exc
        raise BuildError(f"task {task.id}: {plain(str(exc))}", log, took) from exc
    return TaskImage(tag, built.image_id, False, plain(built.log), time.monotonic() - started)
