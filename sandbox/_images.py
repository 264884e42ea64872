"""Building the base image without a container registry.

No registry is reachable on the machines this runs on, so ``FROM debian`` is impossible. The
base image is made from Debian's package mirror instead: ``debootstrap`` a minimal bookworm
root filesystem, ``docker import`` it, then a small Dockerfile layer for configuration. Task
images are then ordinary ``docker build`` s ``FROM`` it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import docker.errors

from traces.vocab import Label

from ._engine import apt_install, client, engine_errors
from ._errors import ImageNotFound, SandboxError
from ._session import DEFAULT_IMAGE

logger = logging.getLogger(__name__)

SUITE = "bookworm"
PACKAGES = (
    "bash",
    "coreutils",
    "procps",
    "python3",
    "git",
    "jq",
    "curl",
    "ca-certificates",
    "less",
    "xz-utils",
    "python-is-python3",  # tasks written for python images call `python`
    "passwd",  # useradd, for tasks with an [agent] user
)
DEFAULT_MIRROR = os.environ.get("HARNESS_DEBIAN_MIRROR", "http://deb.debian.org/debian")

DOCKERFILE = """\
FROM {rootfs}
ENV LANG=C.UTF-8 \\
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    DEBIAN_FRONTEND=noninteractive
LABEL {label}="{recipe}" \\
      org.opencontainers.image.title="harness base image ({suite}, debootstrap minbase)"
WORKDIR /root
CMD ["bash"]
"""


def recipe_hash(suite: str = SUITE, packages: tuple[str, ...] = PACKAGES) -> str:
    """Identifies what the base image is built from, so `doctor` can spot a stale image."""
    text = "\n".join([suite, *packages, DOCKERFILE])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@engine_errors("looking up an image")
def image_exists(name: str) -> bool:
    """Whether the engine has an image of this name (or id)."""
    return image_id(name) is not None


@engine_errors("looking up an image")
def image_id(name: str) -> str | None:
    """The id (``sha256:...``) of the engine's image of this name, or None if it has none."""
    try:
        return str(client().images.get(name).id)
    except docker.errors.ImageNotFound:
        return None


@engine_errors("inspecting an image")
def image_entrypoint(image_id: str) -> list[str]:
    """The image's ENTRYPOINT followed by its CMD when it has an ENTRYPOINT (a service the
    image means to start), else ``[]``."""
    try:
        info = client().api.inspect_image(image_id)
    except docker.errors.ImageNotFound as exc:
        raise ImageNotFound(f"image {image_id!r} is not on the engine") from exc
    cfg = info.get("Config") or {}
    entry = cfg.get("Entrypoint") or []
    return [*entry, *(cfg.get("Cmd") or [])] if entry else []


@engine_errors("building the base image")
def build_base_image(
    name: str = DEFAULT_IMAGE,
    *,
    force: bool = False,
    mirror: str = DEFAULT_MIRROR,
    progress: Callable[[str], None] = logger.info,
) -> str:
    """Build ``name`` from Debian's mirror; a no-op returning the existing id unless ``force``.

    Returns:
        The image id.
    """
    images = client().images
    if not force:
        try:
            return str(images.get(name).id)
        except docker.errors.ImageNotFound:
            pass
    if os.geteuid() != 0:
        raise SandboxError("building the base image runs debootstrap, which needs root")
    if shutil.which("debootstrap") is None:
        progress("installing debootstrap (apt-get install debootstrap)")
        apt_install(["debootstrap"], progress)
    recipe = recipe_hash()
    rootfs_tag = f"harness-rootfs:{recipe}"
    with tempfile.TemporaryDirectory(prefix="harness-rootfs-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "root"
        _debootstrap(root, mirror, progress)
        progress("importing the root filesystem into the engine")
        _import(root, rootfs_tag)
    progress("adding the configuration layer")
    dockerfile = DOCKERFILE.format(
        rootfs=rootfs_tag, label=Label.RECIPE, recipe=recipe, suite=SUITE
    )
    try:
        image, _ = images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=name, rm=True, forcerm=True
        )
    except docker.errors.BuildError as exc:
        log = "".join(str(x.get("stream", x.get("error", ""))) for x in exc.build_log)
        raise SandboxError(f"building {name} failed: {exc.msg}\n{log[-2000:]}") from exc
    try:
        images.remove(rootfs_tag)  # untag only: the layer stays as the image's parent
    except docker.errors.APIError:
        pass
    progress(f"built {name} ({image.short_id})")
    return str(image.id)


def _debootstrap(root: Path, mirror: str, progress: Callable[[str], None]) -> None:
    cmd = [
        "debootstrap",
        "--variant=minbase",
        "--include=" + ",".join(PACKAGES),
        SUITE,
        str(root),
        mirror,
    ]
    progress(f"debootstrap {SUITE} from {mirror} (about a minute)")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-20:]
        if line.startswith(
            (
                "I: Retrieving",
                "I: Validating",
                "I: Extracting",
                "I: Unpacking",
                "I: Configuring",
                "I: Installing",
                "I: Base system",
            )
        ):
            progress(line[3:])
    if proc.wait() != 0:
        raise SandboxError(
            f"debootstrap failed (exit {proc.returncode}); is {mirror} reachable? "
            "Set HARNESS_DEBIAN_MIRROR to a reachable mirror. Last output:\n" + "\n".join(tail)
        )
    # Package caches and lists only make the image bigger; `apt-get update` restores lists.
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for p in (root / sub).glob("*"):
            if p.is_file() and p.name != "lock":
                p.unlink()


def _import(root: Path, tag: str) -> None:
    proc = subprocess.Popen(
        ["tar", "-C", str(root), "--numeric-owner", "-cf", "-", "."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    stdout = proc.stdout

    def chunks() -> Iterator[bytes]:
        while block := stdout.read(1 << 20):
            yield block

    repo, _, version = tag.partition(":")
    try:
        client().api.import_image(src=chunks(), repository=repo, tag=version, stream_src=True)
    finally:
        err = proc.stderr.read() if proc.stderr else b""
        if proc.wait() != 0:
            raise SandboxError(f"tar of the root filesystem failed: {err.decode()[-500:]}")
