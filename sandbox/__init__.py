"""Self-hosted, session-scoped Linux containers that an agent drives like a terminal.

The public surface is small: :class:`Sandbox` (a container with a persistent shell),
:class:`Limits`, :class:`CommandResult`, image building and garbage collection.
"""

from ._errors import (
    EngineUnavailable,
    ImageNotFound,
    LimitNotSupported,
    SandboxError,
    SessionLost,
)
from ._gc import Leftover, find_leftovers, gc
from ._images import build_base_image, image_exists
from ._recording import BlobSink, Recording
from ._session import DEFAULT_IMAGE, CommandResult, Limits, Sandbox, parse_size

__all__ = [
    "BlobSink",
    "Recording",
    "DEFAULT_IMAGE",
    "CommandResult",
    "EngineUnavailable",
    "ImageNotFound",
    "Leftover",
    "LimitNotSupported",
    "Limits",
    "Sandbox",
    "SandboxError",
    "SessionLost",
    "build_base_image",
    "find_leftovers",
    "gc",
    "image_exists",
    "parse_size",
]
