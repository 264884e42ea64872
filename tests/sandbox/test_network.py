"""Per-sandbox networks: `Sandbox(network="isolated")`.

Every target here is on this machine: other sandboxes on bridges the tests create, and HTTP
servers on the host itself. The only outside address is Debian's mirror, which isolated
sandboxes must still reach (tasks install packages from it).
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sandbox import DEFAULT_MIRROR, ISOLATED, Recording, Sandbox
from sandbox._network import firewall_problem
from sandbox._probe import host_isolation_check
from tests.conftest import harness_cli
from traces.vocab import Attr, Label, Span

ROOT = Path(__file__).resolve().parents[2]
SECRET = "trial-a-private-answer"


def _api() -> docker.APIClient:
    return docker.from_env().api


def _ip(sb: Sandbox) -> str:
    nets = _api().inspect_container(sb.container_id)["NetworkSettings"]["Networks"]
    assert list(nets) == [sb.network_name], nets
    return str(nets[sb.network_name]["IPAddress"])


def _gateway(sb: Sandbox) -> str:
    """The host's address on the sandbox's bridge."""
    nets = _api().inspect_container(sb.container_id)["NetworkSettings"]["Networks"]
    return str(nets[sb.network_name]["Gateway"])


def _input_rules() -> str:
    return subprocess.run(
        ["iptables", "-w", "-S", "INPUT"], capture_output=True, text=True, check=True
    ).stdout


def _fetch(sb: Sandbox, url: str, max_time: int = 3) -> tuple[int, str]:
    """curl from inside the sandbox: (curl's exit code, body)."""
    r = sb.run(f"curl -sS --max-time {max_time} {url}", timeout=30)
    return r.exit_code, r.stdout_text + r.stderr_text


def _host_addresses() -> list[str]:
    """Every IPv4 address of this host but loopback: each is a way to its services."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    addrs = [line.split()[3].split("/")[0] for line in out.stdout.splitlines()]
    return [a for a in addrs if not a.startswith("127.")]


@pytest.fixture
def host_server() -> Iterator[int]:
    """An HTTP server on the host, bound to every address, answering a secret."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = b"host-secret\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def isolated(base_image: str) -> Iterator[Sandbox]:
    with Sandbox(base_image, network=ISOLATED, timeout=60) as sb:
        yield sb


def test_isolated_sandboxes_cannot_reach_each_other(base_image: str) -> None:
    with (
        Sandbox(base_image, network=ISOLATED, timeout=60) as a,
        Sandbox(base_image, network=ISOLATED, timeout=60) as b,
    ):
        assert a.network_name != b.network_name
        a.run(f"mkdir -p /srv/www && echo {SECRET} > /srv/www/answer.txt && cd /srv/www")
        a.run("python3 -m http.server 8000 --bind 0.0.0.0 >/dev/null 2>&1 &")
        r = a.run("until (exec 3<>/dev/tcp/127.0.0.1/8000) 2>/dev/null; do :; done", timeout=30)
        assert r.exit_code == 0, r
        a_ip = _ip(a)
        # The server is up and reachable over the network: the host gets the file.
        with urllib.request.urlopen(f"http://{a_ip}:8000/answer.txt", timeout=10) as resp:
            assert resp.read().decode().strip() == SECRET
        # The other trial's sandbox does not, neither directly nor through A's gateway.
        code, body = _fetch(b, f"http://{a_ip}:8000/answer.txt")
        assert code != 0 and SECRET not in body, body
        code, body = _fetch(b, f"http://{_gateway(a)}:8000/answer.txt")
        assert code != 0 and SECRET not in body, body


def test_isolated_sandbox_cannot_reach_host_services(
    base_image: str, isolated: Sandbox, host_server: int
) -> None:
    assert firewall_problem() is None, "this machine can isolate from the host"
    assert isolated.host_isolated
    # Control: a sandbox on the default bridge reaches the host's server.
    with Sandbox(base_image, network="bridge", timeout=60) as open_box:
        assert not open_box.host_isolated
        code, body = _fetch(open_box, f"http://{_gateway(open_box)}:{host_server}/")
        assert code == 0 and "host-secret" in body, body
    addresses = [_gateway(isolated), *_host_addresses()]
    for addr in addresses:
        code, body = _fetch(isolated, f"http://{addr}:{host_server}/")
        assert code != 0 and "host-secret" not in body, f"{addr}: {body}"


def test_isolated_sandbox_reaches_the_debian_mirror(isolated: Sandbox) -> None:
    host = DEFAULT_MIRROR.split("://", 1)[1].split("/", 1)[0]
    r = isolated.run(f"getent hosts {host}", timeout=30)
    assert r.exit_code == 0 and r.stdout, r
    code, body = _fetch(isolated, f"{DEFAULT_MIRROR}/dists/bookworm/Release", max_time=30)
    assert code == 0 and "Codename: bookworm" in body, body


def test_network_and_firewall_rule_are_gone_after_close(base_image: str) -> None:
    sb = Sandbox(base_image, network=ISOLATED).start()
    name = sb.network_name
    bridge = _api().inspect_network(name)["Options"]["com.docker.network.bridge.name"]
    labels = _api().inspect_network(name)["Labels"]
    assert labels[Label.MANAGED] == "1" and labels[Label.OWNER_PID] == str(os.getpid())
    assert f"-i {bridge} " in _input_rules()
    sb.close()
    with pytest.raises(docker.errors.NotFound):
        _api().inspect_network(name)
    assert bridge not in _input_rules()
    sb.close()  # idempotent


def test_start_span_records_the_network_and_host_isolation(base_image: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rec = Recording(tracer=provider.get_tracer("t"), resource_interval=None, file_changes=False)
    for mode, isolated_from_host in ((ISOLATED, True), ("bridge", False), ("none", True)):
        with Sandbox(base_image, network=mode, record=rec) as sb:
            effective = sb.network_name
        (start,) = [s for s in exporter.get_finished_spans() if s.name == Span.SANDBOX_START]
        exporter.clear()
        assert start.attributes is not None
        assert start.attributes[Attr.NETWORK] == effective
        assert start.attributes[Attr.NETWORK_HOST_ISOLATED] is isolated_from_host
        if mode == ISOLATED:
            assert effective.startswith("harness-sb-")
        else:
            assert effective == mode


def test_a_named_network_is_joined_and_left_in_place(base_image: str) -> None:
    api = _api()
    name = f"harness-test-named-{os.getpid()}"
    api.create_network(name, driver="bridge")
    try:
        with Sandbox(base_image, network=name) as sb:
            assert sb.network_name == name and not sb.host_isolated
            assert _ip(sb)
        api.inspect_network(name)  # still there: it is the caller's
    finally:
        api.remove_network(name)


CHILD = """
import sys, time
from sandbox import Sandbox
sb = Sandbox(sys.argv[1], network="isolated").start()
print(sb.container_id, sb.network_name, flush=True)
time.sleep(600)
"""


def test_gc_removes_a_dead_owners_network_and_its_rule(base_image: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, base_image], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert len(line) == 2, "the child did not start a sandbox"
    cid, name = line
    api = _api()
    bridge = api.inspect_network(name)["Options"]["com.docker.network.bridge.name"]
    try:
        # A live owner's network is not touched.
        res = harness_cli("gc", "--dry-run", "--json")
        assert res.returncode == 0, res.stderr
        assert name not in {i["name"] for i in json.loads(res.stdout)["would_remove"]}
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # The engine removes the container itself (its PID 1 reads EOF); wait for that.
        try:
            api.wait(cid, timeout=30, condition="removed")
        except docker.errors.NotFound:
            pass
        api.inspect_network(name)  # left behind by the dead owner
        assert f"-i {bridge} " in _input_rules()
        res = harness_cli("gc", "--dry-run", "--json")
        assert res.returncode == 0, res.stderr
        listed = {(i["kind"], i["name"]) for i in json.loads(res.stdout)["would_remove"]}
        assert ("network", name) in listed
        res = harness_cli("gc")
        assert res.returncode == 0, res.stderr
        assert f"removed network {name}" in res.stdout
        with pytest.raises(docker.errors.NotFound):
            api.inspect_network(name)
        assert bridge not in _input_rules()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


NO_IPTABLES = """
import json, sys
import docker
from sandbox import Sandbox
from sandbox._probe import host_isolation_check
check = host_isolation_check()
with Sandbox(sys.argv[1], network="isolated") as sb:
    sb.run(f"mkdir -p /srv/www && echo {sys.argv[2]} > /srv/www/answer.txt && cd /srv/www")
    sb.run("python3 -m http.server 8000 --bind 0.0.0.0 >/dev/null 2>&1 &")
    sb.run("until (exec 3<>/dev/tcp/127.0.0.1/8000) 2>/dev/null; do :; done", timeout=30)
    info = docker.from_env().api.inspect_container(sb.container_id)
    ip = info["NetworkSettings"]["Networks"][sb.network_name]["IPAddress"]
    print(json.dumps({"check": check.as_dict(), "host_isolated": sb.host_isolated, "ip": ip}),
          flush=True)
    sys.stdin.readline()
"""


def test_without_iptables_isolation_from_other_sandboxes_remains_and_doctor_says_so(
    base_image: str, isolated: Sandbox
) -> None:
    # iptables really is unusable for this child: nothing on its PATH provides it (dockerd
    # finds it the same way).
    env = dict(os.environ, PATH=os.path.dirname(sys.executable))
    proc = subprocess.Popen(
        [sys.executable, "-c", NO_IPTABLES, base_image, SECRET],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = proc.stdout.readline()
        assert line, "the child did not start its sandbox"
        out = json.loads(line)
        check = out["check"]
        assert check["status"] == "warn" and "iptables" in check["detail"]
        assert "host" in check["detail"] and check["fix"]
        assert out["host_isolated"] is False
        # Its server answers the host (no host isolation there) ...
        url = f"http://{out['ip']}:8000/answer.txt"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.read().decode().strip() == SECRET
        # ... but still not another sandbox: it is on a network of its own.
        code, body = _fetch(isolated, url)
        assert code != 0 and SECRET not in body, body
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=60)


def test_doctor_reports_host_isolation(engine: None) -> None:
    check = host_isolation_check()
    assert check.status == "ok", check
    assert "host" in check.detail
    res = harness_cli("doctor", "--json")
    names = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
    assert names[check.name]["status"] == "ok"
