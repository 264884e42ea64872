"""Errors raised by the sandbox layer. Each message says what failed and how to fix it."""

from __future__ import annotations


class SandboxError(Exception):
    """Base class for every error raised by ``sandbox``."""


class EngineUnavailable(SandboxError):
    """No Docker engine answers, and none could be started here."""


class ImageNotFound(SandboxError):
    """The image a sandbox asks for is not present on the engine."""


class SessionLost(SandboxError):
    """The session shell or its container died and could not be restarted."""


class LimitNotSupported(SandboxError):
    """A requested resource limit cannot be enforced by this engine's storage driver."""
