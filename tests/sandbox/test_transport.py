"""Session shells behave the same however they were started: by PID 1 on FIFOs (the local
engine, as root) or by a docker exec (any other engine, user or image)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox import Sandbox, _session


@pytest.fixture(params=["fifo", "exec"])
def box(
    request: pytest.FixtureRequest, base_image: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sandbox]:
    if request.param == "exec":
        monkeypatch.setenv("HARNESS_NO_FAST_PATHS", "1")
    with Sandbox(base_image, timeout=60) as sb:
        kind = type(sb._sessions[""].channel)
        assert kind is (
            _session._FifoChannel if request.param == "fifo" else _session._ShellChannel
        )
        yield sb


def _environ(sb: Sandbox) -> list[bytes]:
    r = sb.run("tr '\\0' '\\n' < /proc/$$/environ | sort; echo SHLVL=$SHLVL")
    return [line for line in r.stdout.splitlines() if not line.startswith(b"HOSTNAME=")]


def test_a_shell_keeps_state_and_separates_its_streams(box: Sandbox) -> None:
    r = box.run("cd /tmp && export A=1; echo out; echo err >&2; false")
    assert (r.exit_code, r.stdout, r.stderr, r.cwd) == (1, b"out\n", b"err\n", "/tmp")
    assert box.run("echo $A $PWD").stdout == b"1 /tmp\n"


def test_a_shell_that_exits_reports_its_status_though_a_job_holds_its_output(
    box: Sandbox,
) -> None:
    # The background job keeps the shell's stdout open; the shell's end is still seen.
    box.run("mkdir -p /srv && cd /srv; export KEEP=1; sleep 300 &")
    r = box.run("exit 7", timeout=20)
    assert (r.exit_code, r.session_restarted, r.timed_out) == (7, True, False)
    assert box.run("echo $KEEP $PWD").stdout == b"1 /srv\n"


def test_a_timeout_restarts_the_shell(box: Sandbox) -> None:
    r = box.run("sleep 30", timeout=0.5)
    assert r.timed_out and r.session_restarted
    assert box.run("echo ok").stdout == b"ok\n"


def test_nothing_of_the_harness_is_left_to_the_shell(box: Sandbox) -> None:
    # No FIFO names to open, no PID 1 reply channel (fd 97) to write fake replies into.
    box.run("echo started", session="other")
    r = box.run("ls -a /dev/shm")
    assert b".harness-sh-" not in r.stdout, r.stdout
    assert b"97" not in box.run("ls /proc/$$/fd").stdout.split()


def test_both_transports_give_a_shell_the_same_environment(
    base_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Sandbox(base_image, workdir="/tmp") as sb:
        assert isinstance(sb._sessions[""].channel, _session._FifoChannel)
        fifo = _environ(sb)
    monkeypatch.setenv("HARNESS_NO_FAST_PATHS", "1")
    with Sandbox(base_image, workdir="/tmp") as sb:
        assert not isinstance(sb._sessions[""].channel, _session._FifoChannel)
        exec_ = _environ(sb)
    assert fifo == exec_
    assert b"SHLVL=1" in fifo


def test_another_users_shell_is_an_exec(sb: Sandbox) -> None:
    assert sb.run("id -un", user="nobody").stdout == b"nobody\n"
    assert not isinstance(sb._sessions["nobody"].channel, _session._FifoChannel)
