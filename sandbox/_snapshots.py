"""Snapshots: a sandbox's filesystem committed as an image, to start another sandbox from.

A snapshot keeps the container's files (its writable layer on top of its image), not its
processes or its shells' state (variables, the directory): starting from one is like a reboot
of the machine at that moment. Snapshots are labelled with the run, trial and step they were
taken at, so they can be found again and pruned (:func:`remove_snapshots`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import docker.errors

from traces.vocab import Label

from ._engine import client, engine_errors
from ._errors import EngineError

__all__ = ["SNAPSHOT_REPOSITORY", "Snapshot", "commit", "find_snapshots", "remove_snapshots"]

SNAPSHOT_REPOSITORY = "harness-snapshot"


@dataclass(frozen=True)
class Snapshot:
    """One snapshot image: its id, what it cost, and whose it is."""

    image_id: str
    seconds: float  # how long the commit took (the container is paused meanwhile)
    size: int  # bytes of its own layer: what it adds to the disk
    labels: Mapping[str, str]
    created: datetime | None = None

    @property
    def run_id(self) -> str:
        return self.labels.get(Label.RUN_ID, "")

    @property
    def trial_id(self) -> str:
        return self.labels.get(Label.TRIAL_ID, "")

    @property
    def step(self) -> int | None:
        value = self.labels.get(Label.STEP)
        return int(value) if value and value.isdigit() else None


def commit(api: Any, container_id: str, labels: Mapping[str, str]) -> Snapshot:
    """Commit a container (paused meanwhile, so the files are consistent) as a snapshot."""
    t = time.perf_counter()
    try:
        image = api.commit(
            container_id,
            repository=SNAPSHOT_REPOSITORY,
            tag=f"{labels.get(Label.TRIAL_ID, 'x')[:12]}-{labels.get(Label.STEP, '0')}",
            pause=True,
            conf={"Labels": {**labels, Label.SNAPSHOT: "1"}},
        )
        seconds = time.perf_counter() - t
        image_id = str(image["Id"])
        layers = api.history(image_id)
    except docker.errors.APIError as exc:
        raise EngineError(f"could not snapshot {container_id[:12]}: {exc}") from exc
    size = int(layers[0].get("Size") or 0) if layers else 0
    return Snapshot(image_id, seconds, size, {**labels, Label.SNAPSHOT: "1"})


@engine_errors("listing snapshots")
def find_snapshots(trial_id: str | None = None) -> list[Snapshot]:
    """Every snapshot on the engine (or one trial's), oldest first."""
    filters = [f"{Label.SNAPSHOT}=1"]
    if trial_id is not None:
        filters.append(f"{Label.TRIAL_ID}={trial_id}")
    found = []
    for im in client().api.images(filters={"label": filters}):
        labels = im.get("Labels") or {}
        created = datetime.fromtimestamp(int(im.get("Created") or 0), UTC)
        found.append(Snapshot(str(im["Id"]), 0.0, int(im.get("Size") or 0), labels, created))
    return sorted(found, key=lambda s: (s.created or datetime.min.replace(tzinfo=UTC), s.step or 0))


@engine_errors("removing snapshots")
def remove_snapshots(
    *,
    older_than_s: float | None = None,
    orphaned: Callable[[Snapshot], bool] | None = None,
    dry_run: bool = False,
) -> list[Snapshot]:
    """Remove snapshots older than ``older_than_s`` seconds, and those ``orphaned`` says
    belong to nothing any more; returns what was (or, with ``dry_run``, would be) removed."""
    now = datetime.now(UTC)
    gone = []
    for snap in find_snapshots():
        old = (
            older_than_s is not None
            and snap.created is not None
            and (now - snap.created).total_seconds() >= older_than_s
        )
        orphan = orphaned is not None and orphaned(snap)
        if not (old or orphan):
            continue
        gone.append(snap)
        if not dry_run:
            try:
                client().api.remove_image(snap.image_id, force=True)
            except docker.errors.NotFound:
                pass
    return gone
