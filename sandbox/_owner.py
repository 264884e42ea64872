"""Who owns a container: labels that let `harness gc` tell leaked containers from live ones."""

from __future__ import annotations

import os
import socket
from functools import cache

from traces.vocab import Label


def process_start_ticks(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if it is gone.

    A pid alone can be reused by an unrelated process; pid plus start time cannot.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return fields[19].decode()


@cache
def _hostname() -> str:
    return socket.gethostname()


def owner_labels(run_id: str | None = None) -> dict[str, str]:
    """Labels that mark a container or image as created by this process."""
    pid = os.getpid()
    labels = {
        Label.MANAGED: "1",
        Label.OWNER_PID: str(pid),
        Label.OWNER_START: process_start_ticks(pid) or "",
        Label.OWNER_HOST: _hostname(),
    }
    if run_id:
        labels[Label.RUN_ID] = run_id
    return labels


def owner_alive(labels: dict[str, str]) -> bool | None:
    """Whether the owning process still runs: True, False, or None when it cannot be known
    (created on another host, or labels missing)."""
    if labels.get(Label.OWNER_HOST) != _hostname():
        return None
    try:
        pid = int(labels.get(Label.OWNER_PID, ""))
    except ValueError:
        return None
    start = process_start_ticks(pid)
    if start is None:
        return False
    recorded = labels.get(Label.OWNER_START, "")
    return not recorded or recorded == start
