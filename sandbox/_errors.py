"""Errors raised by the sandbox layer. Each message says what failed and how to fix it.

Every failure of the engine reaches callers as one of these, with the engine client's own
exception as its ``__cause__``: callers never need to know the Docker SDK's exception types.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base class for every error raised by ``sandbox``."""


class EngineUnavailable(SandboxError):
    """No Docker engine answers: none is running and none could be started here, or the one
    in use went away (its connection failed)."""


class EngineError(SandboxError):
    """The engine answered with an error to a request that should have succeeded."""


class ImageNotFound(SandboxError):
    """The image a sandbox asks for is not present on the engine."""


class ImageBuildFailed(SandboxError):
    """An image build failed or timed out; ``log`` has the build output so far."""

    def __init__(self, message: str, log: str = "", *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.log = log
        self.timed_out = timed_out


class SessionLost(SandboxError):
    """The session shell or its container died and could not be restarted."""


class LimitNotSupported(SandboxError):
    """A requested resource limit cannot be enforced by this engine's storage driver."""


class UnknownUser(SandboxError):
    """A command was to run as a user the sandbox's image does not have."""

    def __init__(self, message: str, user: str = "", image: str = "") -> None:
        super().__init__(message)
        self.user = user
        self.image = image
