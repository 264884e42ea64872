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
)
from ._gc import Leftover, find_leftovers, gc
from ._images import DEFAULT_MIRROR, build_base_image, image_entrypoint, image_exists, image_id
from ._probe import Check, run_checks
from ._recording import BlobSink, Recording
from ._session import DEFAULT_IMAGE, CommandResult, Limits, Sandbox, parse_size

__all__ = [
    "BlobSink",
    "BuiltImage",
    "Check",
    "CommandResult",
    "DEFAULT_IMAGE",
    "DEFAULT_MIRROR",
    "EngineError",
    "EngineUnavailable",
    "ImageBuildFailed",
    "ImageNotFound",
    "Leftover",
    "LimitNotSupported",
    "Limits",
    "Recording",
    "Sandbox",
    "SandboxError",
    "SessionLost",
    "build_base_image",
    "build_image",
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
