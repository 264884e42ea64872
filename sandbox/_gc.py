"""Removing what dead harness processes left behind, and nothing else: containers, temporary
images, isolated sandboxes' networks and their firewall rules."""

from __future__ import annotations

from dataclasses import dataclass

import docker.errors

from traces.vocab import Label

from . import _network
from ._engine import client, engine_errors
from ._owner import owner_alive


@dataclass(frozen=True)
class Leftover:
    """A container, temporary image, sandbox network or firewall rule whose owning process is
    gone. A network's firewall rule goes with it; a rule is listed on its own only when its
    network is already gone."""

    kind: str  # "container" | "image" | "network" | "firewall rule"
    id: str
    name: str
    owner_pid: str
    run_id: str


@engine_errors("listing leftover containers and images")
def find_leftovers() -> list[Leftover]:
    """Containers, temporary images and sandbox networks labelled by harness whose owner
    process has exited, and firewall rules of sandbox networks that no longer exist.

    Objects without harness labels, owned by a live process, or created on another host
    (their owner cannot be checked from here) are never listed.
    """
    c = client()
    found: list[Leftover] = []
    # Rules first: a rule is added after its network is created and removed after it is, so
    # a rule whose network is missing from the later listing belongs to a removed network.
    rules = _network.fence_rules()
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
    networks = c.api.networks()
    for net in networks:
        labels = net.get("Labels") or {}
        if labels.get(Label.MANAGED) == "1" and owner_alive(labels) is False:
            found.append(
                Leftover(
                    "network",
                    net["Id"],
                    net["Name"],
                    labels.get(Label.OWNER_PID, ""),
                    labels.get(Label.RUN_ID, ""),
                )
            )
    names = {net["Name"] for net in networks}
    for rule in rules:
        if rule.network not in names:
            found.append(Leftover("firewall rule", rule.bridge, rule.network, rule.owner_pid, ""))
    return found


@engine_errors("removing leftover containers and images")
def gc(dry_run: bool = False) -> list[Leftover]:
    """Remove leftovers (containers first, so their images are free); returns what it found."""
    api = client().api
    items = find_leftovers()
    if dry_run:
        return items
    rules = _network.fence_rules() if any(i.kind != "container" for i in items) else []
    for item in items:
        try:
            if item.kind == "container":
                api.remove_container(item.id, force=True)
            elif item.kind == "image":
                api.remove_image(item.id, force=True)
            elif item.kind == "network":
                api.remove_network(item.id)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            # 409: being removed; a network with an endpoint left waits for the next gc.
            if exc.status_code != 409 and "active endpoints" not in str(exc.explanation):
                raise
            continue
        if item.kind in ("network", "firewall rule"):
            for rule in rules:
                if rule.network == item.name:
                    _network.remove_rule(rule)
    return items
