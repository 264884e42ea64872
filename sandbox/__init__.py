"""Self-hosted, session-scoped Linux containers that an agent drives like a terminal.

The public surface is small: :class:`Sandbox` (a container with a persistent shell),
:class:`Limits`, :class:`CommandResult`, :class:`Recording`, images (the base image, task
images built from a folder), the engine (find or start it, check what it can do) and garbage
collection. Every engine failure is raised as a :class:`SandboxError` subclass with the
engine client's exception as its ``__cause__``.
"""

from ._build import BuiltImage, build_image
from ._engine import engine_answers, ensure_engine
from ._errors import (
    EngineError,
    EngineUnavailable,
    ImageBuildFailed,
    ImageNotFound,
    LimitNotSupported,
    SandboxError,
    SessionLost,
    UnknownUser,
)
from ._gc import Leftover, find_leftovers, gc
from ._images import DEFAULT_MIRROR, build_base_image, image_entrypoint, image_exists, image_id
from ._network import ISOLATED
from ._probe import Check, disk_limit_mode, run_checks
from ._processes import ProcessInfo, ProcessSnapshot
from ._recording import BlobSink, Recording
from ._session import (
    DEFAULT_IMAGE,
    CommandResult,
    DiskMode,
    DiskRequest,
    Limits,
    Sandbox,
    parse_size,
)
from ._snapshots import Snapshot, find_snapshots, remove_snapshots

__all__ = [
    "BlobSink",
    "BuiltImage",
    "Check",
    "CommandResult",
    "DEFAULT_IMAGE",
    "DEFAULT_MIRROR",
    "DiskMode",
    "DiskRequest",
    "EngineError",
    "EngineUnavailable",
    "ImageBuildFailed",
    "ISOLATED",
    "ImageNotFound",
    "Leftover",
    "LimitNotSupported",
    "Limits",
    "ProcessInfo",
    "ProcessSnapshot",
    "Recording",
    "Sandbox",
    "SandboxError",
    "SessionLost",
    "Snapshot",
    "find_snapshots",
    "remove_snapshots",
    "UnknownUser",
    "build_base_image",
    "build_image",
    "disk_limit_mode",
    "engine_answers",
    "ensure_engine",
    "find_leftovers",
    "gc",
    "image_entrypoint",
    "image_exists",
    "image_id",
    "parse_size",
    "run_checks",
]
