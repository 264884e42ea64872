"""Removing what dead harness processes left behind, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

import docker.errors

from traces.vocab import Label

from ._engine import client, engine_errors
from ._owner import owner_alive


@dataclass(frozen=True)
class Leftover:
    """A container or temporary image whose owning process is gone."""

    kind: str  # "container" | "image"
    id: str
    name: str
    owner_pid: str
    run_id: str


@engine_errors("listing leftover containers and images")
def find_leftovers() -> list[Leftover]:
    """Containers and temporary images labelled by harness whose owner process has exited.

    Objects without harness labels, owned by a live process, or created on another host
    (their owner cannot be checked from here) are never listed.
    """
    c = client()
    found: list[Leftover] = []
    for ct in c.containers.list(all=True, filters={"label": f"{Label.MANAGED}=1"}):
        labels = ct.labels or {}
        if owner_alive(labels) is False:
            found.append(
                Leftover(
                    "container",
                    ct.id,
                    ct.name,
                    labels.get(Label.OWNER_PID, ""),
                    labels.get(Label.RUN_ID, ""),
                )
            )
    for im in c.images.list(filters={"label": f"{Label.TEMP}=1"}):
        labels = im.labels or {}
        if owner_alive(labels) is False:
            name = im.tags[0] if im.tags else im.short_id
            found.append(
                Leftover(
                    "image",
                    im.id,
                    name,
                    labels.get(Label.OWNER_PID, ""),
                    labels.get(Label.RUN_ID, ""),
                )
            )
    return found


@engine_errors("removing leftover containers and images")
def gc(dry_run: bool = False) -> list[Leftover]:
    """Remove leftovers (containers first, so their images are free); returns what it found."""
    api = client().api
    items = find_leftovers()
    if dry_run:
        return items
    for item in items:
        try:
            if item.kind == "container":
                api.remove_container(item.id, force=True)
            else:
                api.remove_image(item.id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
    return items
