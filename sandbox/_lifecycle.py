"""Removing containers however the process ends.

Normal exit and exceptions are handled by ``Sandbox.__exit__``; this module adds ``atexit``
for sandboxes used without ``with`` (and for those still open when the interpreter exits).
Signals are the application's to decide: a library installs no handlers. A process that
dies on a signal (SIGTERM with the default action, SIGKILL) runs no Python at all; there the
container's PID 1, which reads our end of its stdin, sees EOF and exits, and the engine
auto-removes the container. An application that wants ``with`` blocks to unwind on SIGTERM
(so that ``sandbox.stop`` is recorded, say) turns it into ``SystemExit`` itself.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._session import Sandbox

_live: weakref.WeakSet[Sandbox] = weakref.WeakSet()
_lock = threading.Lock()
_installed = False


def register(sb: Sandbox) -> None:
    global _installed
    with _lock:
        if not _installed:
            atexit.register(close_all)
            _installed = True
        _live.add(sb)


def unregister(sb: Sandbox) -> None:
    with _lock:
        _live.discard(sb)


def close_all() -> None:
    """Remove every sandbox this process still has open."""
    with _lock:
        boxes = list(_live)
    for sb in boxes:
        try:
            sb.close()
        except Exception:  # noqa: BLE001 - best effort at exit; the engine auto-removes too
            pass
