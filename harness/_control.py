"""Stopping a run from outside, cleanly: the user's Ctrl-C or SIGTERM, or an engine that is
gone for good.

The first request stops new trials from starting and gives running ones a grace period to
end on their own; after it (or at a second request) their sandboxes are closed, which ends
whatever they were doing. A trial stopped this way is recorded as interrupted, with no
outcome, so ``--resume`` runs it again and no summary counts it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Protocol


class _Closable(Protocol):
    def close(self) -> None: ...


class RunControl:
    """Shared by the runner and its trials; safe to call from signal handlers.

    Args:
        grace_s: how long running trials may go on after a stop request.
        say: where progress messages go (the CLI prints them).
    """

    def __init__(self, grace_s: float = 30.0, say: Callable[[str], None] | None = None) -> None:
        self.grace_s = grace_s
        self.say = say or (lambda _m: None)
        self.stopping = threading.Event()  # start no new trials
        self.aborting = threading.Event()  # running trials are being stopped
        self.reason = ""
        self.exit_code = 0
        self._lock = threading.Lock()
        self._live: set[_Closable] = set()
        self._requests = itertools.count(1)

    def request_stop(self, reason: str, exit_code: int) -> bool:
        """First call: stop starting trials, abort running ones after the grace period.
        A second call aborts them now. Returns whether this was the first call.

        Signal handlers call this, and a second signal's handler can run inside the first's:
        the count is one ``next()`` (atomic for Python code), so two signals are never both
        taken for the first."""
        if next(self._requests) == 1:
            self.reason, self.exit_code = reason, exit_code
            self.stopping.set()
            timer = threading.Timer(self.grace_s, self.abort)
            timer.daemon = True
            timer.start()
            return True
        self.abort()
        return False

    def abort(self) -> None:
        """Stop running trials now: their sandboxes are closed under them."""
        if self.aborting.is_set():
            return
        self.aborting.set()
        with self._lock:
            live = list(self._live)
        for sb in live:
            with suppress(Exception):  # already going, or the engine is gone: either way done
                sb.close()

    def attach(self, sandbox: _Closable) -> None:
        """A trial's sandbox, closed if the run is aborted (at once if it already is)."""
        with self._lock:
            self._live.add(sandbox)
        if self.aborting.is_set():
            with suppress(Exception):
                sandbox.close()

    def detach(self, sandbox: _Closable) -> None:
        with self._lock:
            self._live.discard(sandbox)


def wait_for_engine(limit_s: float, control: RunControl | None, say: Callable[[str], None]) -> bool:
    """Wait, with backoff, for the engine to answer again; False if it did not in time (or
    the run is being aborted meanwhile)."""
    from sandbox import engine_answers

    deadline = time.monotonic() + limit_s
    delay = 0.5
    say(f"the Docker engine is not answering; waiting up to {limit_s:.0f} s for it")
    while time.monotonic() < deadline:
        if control is not None and control.aborting.is_set():
            return False
        if engine_answers(timeout=2.0):
            say("the Docker engine answers again; retrying")
            return True
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 5.0)
    return False
