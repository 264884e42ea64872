"""Removing containers however the process ends.

Normal exit and exceptions are handled by ``Sandbox.__exit__``; this module adds the rest:
``atexit`` for sandboxes used without ``with``, and SIGTERM/SIGHUP turned into ``SystemExit``
so that ``with`` blocks unwind instead of the process vanishing. SIGKILL cannot be handled in
process: there the container's PID 1 reads EOF on its stdin and the engine auto-removes it.
"""

from __future__ import annotations

import atexit
import signal
import threading
import weakref
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._session import Sandbox

_live: weakref.WeakSet[Sandbox] = weakref.WeakSet()
_lock = threading.Lock()
_installed = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _install() -> None:
    global _installed
    _installed = True
    atexit.register(close_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        # Respect a handler the application installed itself.
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _on_signal)


def register(sb: Sandbox) -> None:
    with _lock:
        if not _installed:
            _install()
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
