"""Memory and disk limits: OOM kills counted in the container's cgroup (the session shell's own
death included), and a disk limit held by the engine's quota or by measuring the writable
layer, on the host's files and without them (``HARNESS_NO_FAST_PATHS``: what a remote engine
or a non-root user gets)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sandbox import Limits, Recording, Sandbox, disk_limit_mode, run_checks
from traces.vocab import Attr, Span

# bash keeps the whole output of a command substitution in its own memory: under a 256 MiB
# limit the kernel kills the session shell itself, which then cannot report anything.
SHELL_HOG = "x=$(head -c 400M /dev/zero | tr '\\0' a)"
CHILD_HOG = "python3 -c \"x = b'x' * (400 << 20)\""


@pytest.fixture(params=["host-files", "no-host-files"])
def host_files(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param == "no-host-files":
        monkeypatch.setenv("HARNESS_NO_FAST_PATHS", "1")
    return bool(request.param == "host-files")


def test_oom_killed_session_shell_is_reported(base_image: str, host_files: bool) -> None:
    with Sandbox(base_image, limits=Limits(memory=256 << 20), timeout=120) as sb:
        assert (sb._oom is not None) == host_files
        r = sb.run(SHELL_HOG)
        assert r.oom_killed and r.session_restarted, r
        after = sb.run("echo ok")
        assert after.stdout == b"ok\n" and not after.oom_killed
        # A child killed while the shell lives, then commands without a kill.
        r = sb.run(CHILD_HOG)
        assert r.oom_killed and not r.session_restarted and r.exit_code == 137, r
        assert not sb.run("true").oom_killed
        # A shell that dies for another reason is not an OOM kill.
        r = sb.run("kill -9 $$")
        assert r.session_restarted and not r.oom_killed, r


def _spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.name == name or (name == Span.EXEC and Span.is_exec(s.name))
    ]


def _recording() -> tuple[Recording, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rec = Recording(tracer=provider.get_tracer("test"), file_changes=False, resource_interval=60)
    return rec, exporter


def test_oom_killed_session_shell_is_on_its_span(base_image: str) -> None:
    rec, exporter = _recording()
    with Sandbox(base_image, limits=Limits(memory=256 << 20), timeout=120, record=rec) as sb:
        sb.run(SHELL_HOG)
        sb.run("true")
    execs = _spans(exporter, Span.EXEC)
    assert [s.attributes[Attr.OOM_KILLED] for s in execs] == [True, False]  # type: ignore[index]


def test_disk_limit_defaults_to_the_mode_the_engine_has_and_doctor_says_it(base_image: str) -> None:
    mode = disk_limit_mode(base_image)
    assert mode in ("quota", "measured")
    with Sandbox(base_image, limits=Limits(disk=64 << 20)) as sb:
        # Limits(disk=...) alone: a quota where the engine has them, else measured.
        assert sb.disk_mode == mode
    with Sandbox(base_image) as sb:
        assert sb.disk_mode == "none" and not sb.disk_exceeded
    doctor = {c.name: c for c in run_checks(base_image, try_session=False)}
    assert doctor["disk limits"].detail.startswith(mode + ":")
    assert (doctor["disk limits"].status == "ok") == (mode == "quota")


def test_writing_past_a_measured_disk_limit_stops_the_sandbox(
    base_image: str, host_files: bool
) -> None:
    limits = Limits(disk=64 << 20, disk_mode="measured")
    with Sandbox(base_image, limits=limits, timeout=120) as sb:
        assert sb.disk_mode == "measured"
        r = sb.run("head -c 24M /dev/urandom > /under && rm /under && head -c 24M /dev/zero > /x")
        assert r.exit_code == 0 and not r.disk_exceeded and not sb.disk_exceeded
        # A background job of an earlier command is stopped as well.
        sb.run("(sleep 1000 &)")
        # A steady writer that would reach 1 GiB unless it is stopped.
        r = sb.run("for i in $(seq 1000); do head -c 1M /dev/zero >> /big; sleep 0.01; done")
        assert r.disk_exceeded and sb.disk_exceeded and not r.timed_out, r
        assert r.session_restarted and r.exit_code != 0
        size = int(sb.run("stat -c %s /big").stdout)
        assert 40 << 20 < size < 512 << 20
        # The sandbox goes on, and what does not write is not stopped again.
        after = sb.run("pgrep -c sleep; echo alive")
        assert after.stdout == b"0\nalive\n" and not after.disk_exceeded, after


def test_a_fast_write_past_the_limit_is_caught_when_its_command_ends(base_image: str) -> None:
    limits = Limits(disk=64 << 20, disk_mode="measured")
    with Sandbox(base_image, limits=limits, timeout=120) as sb:
        r = sb.run("head -c 100M /dev/zero > /big")
        assert r.disk_exceeded and sb.disk_exceeded, r
        assert sb.run("rm /big").exit_code == 0
        r = sb.run("head -c 8M /dev/zero > /small")
        assert not r.disk_exceeded and r.exit_code == 0


def test_disk_limit_mode_and_overrun_are_recorded(base_image: str) -> None:
    rec, exporter = _recording()
    rec.resource_interval = 0.2
    limits = Limits(disk=64 << 20, disk_mode="measured")
    with Sandbox(base_image, limits=limits, timeout=120, record=rec) as sb:
        sb.run("head -c 8M /dev/zero > /small")
        sb.run("head -c 100M /dev/zero > /big")
    (start,) = _spans(exporter, Span.SANDBOX_START)
    assert start.attributes is not None
    assert start.attributes[Attr.LIMITS_DISK_MODE] == "measured"
    assert start.attributes[Attr.LIMITS_DISK] == 64 << 20
    small, big = _spans(exporter, Span.EXEC)
    assert small.attributes is not None and big.attributes is not None
    assert Attr.DISK_EXCEEDED not in small.attributes
    assert big.attributes[Attr.DISK_EXCEEDED] is True
    assert big.status.description == "disk limit exceeded"
    (event,) = [e for e in big.events if e.name == Attr.DISK_EXCEEDED]
    assert event.attributes is not None
    assert event.attributes[Attr.CONTAINER_DISK_USAGE] > 64 << 20  # type: ignore[operator]
    assert event.attributes[Attr.LIMITS_DISK] == 64 << 20
    usage = [
        s.attributes.get(Attr.CONTAINER_DISK_USAGE)
        for s in _spans(exporter, Span.RESOURCES)
        if s.attributes is not None
    ]
    assert max(u for u in usage if isinstance(u, int)) > 100 << 20
    (stop,) = _spans(exporter, Span.SANDBOX_STOP)
    assert stop.attributes is not None and stop.attributes[Attr.DISK_EXCEEDED] is True
