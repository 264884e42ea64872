"""Per-sandbox networks: ``Sandbox(network="isolated")``.

On Docker's default bridge every sandbox can reach every other (one trial could read another's
files over HTTP) and the host's own services. An isolated sandbox gets a user-defined bridge of
its own, created at start and removed at close (or by ``harness gc`` when its owner died):

* other sandboxes are on other bridges, and Docker's own isolation rules
  (``DOCKER-ISOLATION-STAGE-*``) drop traffic between bridges;
* the outside world is reached through NAT exactly as from the default bridge, and names
  resolve through Docker's embedded DNS server, which answers inside the container's own
  network namespace and forwards from there (its traffic never enters the host's INPUT chain);
* the host's services (anything listening on the bridge's gateway or any other host address)
  are fenced off by one iptables rule on the bridge's interface in the host's INPUT chain,
  rejecting every new connection from the sandbox. Replies to connections the host opens
  into the sandbox still pass.

The rule needs iptables, root and a local engine (the rule belongs on the engine's host). Where
that is not available the sandbox is still isolated from other sandboxes, but host services
are reachable: ``IsolatedNetwork.host_isolated`` is False and ``harness doctor`` says so.
iptables is found on PATH, as dockerd finds it.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import docker.errors

from traces.vocab import Label

from ._engine import client, is_local_engine
from ._errors import EngineError

ISOLATED = "isolated"
NAME_PREFIX = "harness-sb-"
BRIDGE_PREFIX = "hsb"  # + 10 hex digits: 13 characters, within the kernel's 15
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
_POOLS_FIX = (
    'give dockerd more, smaller address pools, e.g. "default-address-pools": '
    '[{"base": "10.200.0.0/16", "size": 28}] in /etc/docker/daemon.json, then restart it'
)


@dataclass(frozen=True)
class IsolatedNetwork:
    """A sandbox's own network. ``problem`` says why host isolation is not in force."""

    name: str
    id: str
    bridge: str
    comment: str  # of its firewall rule
    host_isolated: bool
    problem: str = ""


def _iptables() -> tuple[str | None, str]:
    """The iptables executable to use, or None and why it cannot be used."""
    if not is_local_engine():
        return None, (
            f"the Docker engine is remote (DOCKER_HOST={os.environ.get('DOCKER_HOST')}); the "
            "firewall rule would belong on its host"
        )
    if os.geteuid() != 0:
        return None, "adding iptables rules needs root"
    exe = shutil.which("iptables")
    if exe is None:
        return None, "iptables is not installed (not found on PATH)"
    return exe, ""


def _run(exe: str, *args: str) -> subprocess.CompletedProcess[str]:
    # -w: wait for the xtables lock, which dockerd and other sandboxes take too.
    return subprocess.run(
        [exe, "-w", "10", *args], capture_output=True, text=True, timeout=60, check=False
    )


def firewall_problem() -> str | None:
    """Why isolated sandboxes cannot be kept from the host's services here, or None."""
    exe, why = _iptables()
    if exe is None:
        return why
    r = _run(exe, "-S", "INPUT")
    if r.returncode != 0:
        return f"`iptables -S INPUT` failed: {r.stderr.strip() or r.returncode}"
    return None


def _comment(name: str, owner_pid: str) -> str:
    return f"{name} owner {owner_pid}"


def _rule(bridge: str, comment: str) -> list[str]:
    """The INPUT rule that fences a bridge off from the host: every connection the sandbox
    opens to any host address is refused (``No route to host``), replies pass."""
    return [
        "INPUT",
        "-i",
        bridge,
        "-m",
        "conntrack",
        "!",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-m",
        "comment",
        "--comment",
        comment,
        "-j",
        "REJECT",
        "--reject-with",
        "icmp-admin-prohibited",
    ]


def fence_host(bridge: str, comment: str) -> str | None:
    """Insert the rule unless it is there already; None on success, else why not."""
    exe, why = _iptables()
    if exe is None:
        return why
    rule = _rule(bridge, comment)
    if _run(exe, "-C", *rule).returncode == 0:
        return None
    r = _run(exe, "-I", *rule)
    if r.returncode != 0:
        return f"`iptables -I {shlex.join(rule)}` failed: {r.stderr.strip() or r.returncode}"
    return None


def unfence_host(bridge: str, comment: str) -> None:
    """Remove the rule (every copy of it); nothing to do when it is absent."""
    exe, _ = _iptables()
    if exe is None:
        return
    rule = _rule(bridge, comment)
    for _ in range(100):
        if _run(exe, "-C", *rule).returncode != 0:
            return
        r = _run(exe, "-D", *rule)
        if r.returncode != 0:
            raise EngineError(
                f"could not remove the firewall rule of network bridge {bridge}: "
                f"{r.stderr.strip()}. Remove it with `iptables -D {shlex.join(rule)}`."
            )


@dataclass(frozen=True)
class FenceRule:
    """One of our INPUT rules as the host has it."""

    network: str
    owner_pid: str
    bridge: str
    spec: tuple[str, ...]  # as `iptables -S` prints it, without "-A"


def fence_rules() -> list[FenceRule]:
    """Every rule isolated sandboxes have put in the INPUT chain (none if iptables is
    unusable here)."""
    exe, _ = _iptables()
    if exe is None:
        return []
    r = _run(exe, "-S", "INPUT")
    if r.returncode != 0:
        return []
    found = []
    for line in r.stdout.splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if words[:1] != ["-A"] or "--comment" not in words or "-i" not in words:
            continue
        comment = words[words.index("--comment") + 1].split()
        if len(comment) != 3 or not comment[0].startswith(NAME_PREFIX) or comment[1] != "owner":
            continue
        found.append(
            FenceRule(comment[0], comment[2], words[words.index("-i") + 1], tuple(words[1:]))
        )
    return found


def remove_rule(rule: FenceRule) -> None:
    exe, _ = _iptables()
    if exe is not None:
        _run(exe, "-D", *rule.spec)


def create_isolated(labels: Mapping[str, str]) -> IsolatedNetwork:
    """Create a sandbox's own bridge network (labelled like its container) and fence the
    host off from it where iptables allows."""
    token = secrets.token_hex(5)
    name, bridge = NAME_PREFIX + token, BRIDGE_PREFIX + token
    api = client().api
    try:
        net = api.create_network(
            name,
            driver="bridge",
            options={BRIDGE_NAME_OPTION: bridge},
            labels=dict(labels),
            check_duplicate=True,
        )
    except docker.errors.APIError as exc:
        msg = str(exc.explanation or exc)
        if "address pool" in msg or "non-overlapping" in msg:
            ours = len(api.networks(filters={"name": NAME_PREFIX}))
            raise EngineError(
                f"no address range is left for a sandbox's own network ({msg}). Each isolated "
                f"sandbox takes one of the engine's address pools; {ours} sandbox networks "
                "exist now. Run `harness gc` to remove leftovers, run fewer isolated sandboxes "
                f"at once, or {_POOLS_FIX}."
            ) from exc
        raise EngineError(f"could not create the sandbox network {name}: {msg}") from exc
    comment = _comment(name, labels.get(Label.OWNER_PID, "?"))
    problem = fence_host(bridge, comment)
    return IsolatedNetwork(name, str(net["Id"]), bridge, comment, problem is None, problem or "")


def remove_isolated(net: IsolatedNetwork) -> None:
    """Remove the network, then its firewall rule. Raises if the network stays (an endpoint
    is still attached); ``harness gc`` removes it once this process has exited."""
    api = client().api
    try:
        api.remove_network(net.id)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        raise EngineError(
            f"could not remove the sandbox network {net.name}: {exc.explanation or exc}. "
            "`harness gc` removes it after this process has exited."
        ) from exc
    unfence_host(net.bridge, net.comment)
