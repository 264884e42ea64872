"""Stopping what an actor started: `processes()` snapshots, `kill_processes(keep=...)`.

A trial runs the agent, then the verifier in the same sandbox. Whatever the agent left
running (a `setsid` loop rewriting the reward file, a background fork bomb at the pids limit)
must be gone before the verifier starts, while the services the task's setup started stay.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from sandbox import Limits, ProcessInfo, ProcessSnapshot, Sandbox

REWARD = "/logs/verifier/reward.txt"
# Rewrites the reward file as fast as it can: builtins only, so it never needs a pid slot.
CHEAT = (
    "mkdir -p /logs/verifier && (setsid bash -c 'while :; do echo 1 > "
    + REWARD
    + "; done' </dev/null >/dev/null 2>&1 &)"
)
BOMB = ":(){ :|:& };:"


def _service(sb: Sandbox) -> ProcessInfo:
    """Start a long-running service as a task's setup would, and find it in a snapshot."""
    r = sb.run("(setsid sleep 86400 </dev/null >/dev/null 2>&1 &)")
    assert r.exit_code == 0, r
    # The subshell returns before its grandchild has exec'd sleep: wait for that.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [p for p in sb.processes() if p.argv == ("sleep", "86400")]
        if found:
            assert len(found) == 1, found
            return found[0]
    raise AssertionError(f"the service did not start: {sb.processes()}")


def _wait_for_cheat(sb: Sandbox) -> None:
    """Block (builtins only, no sleeping) until the cheating loop has written its reward."""
    r = sb.run(f"until builtin read -r x < {REWARD} 2>/dev/null && [[ $x == 1 ]]; do :; done")
    assert r.exit_code == 0 and not r.timed_out, r


def _fill_pids(sb: Sandbox, limit: int) -> None:
    """Start a background fork bomb and block until it holds most pid slots (its processes
    come and go, so the count swings just below the limit; on a busy machine it may take a
    while to climb)."""
    assert sb.run(BOMB, timeout=10).exit_code == 0
    r = sb.run(
        "f=/sys/fs/cgroup/pids/pids.current; [[ -r $f ]] || f=/sys/fs/cgroup/pids.current;"
        f" until builtin read -r n < $f && (( n >= {limit} - 8 )); do builtin :; done; echo $n",
        timeout=120,
    )
    assert r.exit_code == 0 and not r.timed_out, r


def _stays(sb: Sandbox, path: str, value: str, reads: int = 200_000) -> str:
    """Read ``path`` ``reads`` times in a builtin loop; the first value other than ``value``
    (or ``value`` itself if it never changed). A live rewriting loop is caught in far fewer."""
    r = sb.run(
        f"for ((i = 0; i < {reads}; i++)); do builtin read -r x < {path};"
        f" [[ $x == {value} ]] || break; done; echo $x",
        timeout=120,
    )
    assert r.exit_code == 0, r
    return r.stdout_text.strip()


def test_processes_lists_what_runs_by_pid_and_start_time(sb: Sandbox) -> None:
    svc = _service(sb)
    assert svc.pid > 1 and svc.start > 0 and svc.name == "sleep"
    snap = sb.processes()
    assert svc in snap and (svc.pid, svc.start) in snap
    # The same pid with another start time is another process.
    assert (svc.pid, svc.start + 1) not in snap
    # PID 1 (the container's control shell) and the session's own shell are harness's, not
    # the sandbox's processes.
    assert 1 not in snap.pids
    shell_pid = int(sb.run("echo $$").stdout)
    assert shell_pid not in sb.processes().pids
    # What ps inside the container sees agrees: same pid, same start time (in ticks).
    r = sb.run(f"cut -d' ' -f22 /proc/{svc.pid}/stat")
    assert int(r.stdout) == svc.start


def test_kill_with_keep_spares_services_and_stops_what_came_after(base_image: str) -> None:
    limit = 64
    with Sandbox(base_image, limits=Limits(pids=limit), timeout=60) as sb:
        svc = _service(sb)
        sb.run("mkdir -p /srv && cd /srv && export PHASE=setup")
        snap = sb.processes()

        # The agent's leftovers: a daemon that rewrites the reward, a background fork bomb.
        assert sb.run(CHEAT).exit_code == 0
        _wait_for_cheat(sb)
        _fill_pids(sb, limit)

        killed = sb.kill_processes(keep=snap)

        after = sb.processes()
        assert svc in after, "the service started before the snapshot was killed"
        assert [p for p in after if p not in snap] == [], "the agent's processes survived"
        assert any("while :" in " ".join(p.argv) for p in killed), killed
        # The bomb's processes come and go while they are killed: under load fewer of them
        # are alive at the moment of the kill than the pid limit allows (none survive: above).
        assert len(killed) >= limit // 4, "the fork bomb's processes are not among the killed"
        assert svc not in killed
        # The shell works again, forks included, with its directory and variables.
        r = sb.run("echo $PHASE $PWD; ps -e --no-headers | wc -l", timeout=30)
        assert r.exit_code == 0, r
        phase, cwd, count = r.stdout.split()
        assert (phase, cwd) == (b"setup", b"/srv") and int(count) < 8, r.stdout
        # The verifier's write stays: nothing is left to overwrite it.
        sb.run(f"echo 0 > {REWARD}")
        assert _stays(sb, REWARD, "0") == "0"


def test_a_reused_pid_is_not_mistaken_for_the_kept_process(sb: Sandbox) -> None:
    svc = _service(sb)
    assert sb.run(CHEAT).exit_code == 0
    _wait_for_cheat(sb)
    cheat = [p for p in sb.processes() if "while :" in " ".join(p.argv)]
    assert len(cheat) == 1, sb.processes()
    # A keep list naming the cheat's pid with another start time: a process that once had
    # this pid, not the one running now.
    keep = ProcessSnapshot((svc, replace(cheat[0], start=cheat[0].start - 1)))
    killed = sb.kill_processes(keep=keep)
    assert cheat[0] in killed
    after = sb.processes()
    assert svc in after and cheat[0].pid not in after.pids
    sb.run(f"echo 0 > {REWARD}")
    assert _stays(sb, REWARD, "0") == "0"


def test_kill_without_keep_stops_everything(sb: Sandbox) -> None:
    svc = _service(sb)
    sb.run("sleep 1000 & cd /tmp && export KEPT=yes")
    killed = sb.kill_processes()
    assert svc in killed
    assert list(sb.processes()) == []
    assert sb.run("echo $KEPT $PWD").stdout == b"yes /tmp\n"


def test_a_command_named_like_a_builtin_is_not_run_by_the_harness(sb: Sandbox) -> None:
    # A fork bomb defines a function named ":"; the session's state keeps it across a kill
    # and restart, and the harness's own no-ops must not call it.
    sb.run(":() { echo called >> /tmp/colon; }")
    sb.kill_processes()
    sb.kill_processes()
    r = sb.run("cat /tmp/colon 2>/dev/null; declare -F :")
    assert r.stdout == b":\n", r


def test_other_users_shells_are_stopped_and_restarted(sb: Sandbox) -> None:
    sb.run("useradd -m agent")
    snap = sb.processes()
    r = sb.run("cd /tmp; export WHO=agent; (setsid sleep 4321 &); sleep 1234 &", user="agent")
    assert r.exit_code == 0, r
    # The detached one may still be between fork and exec when the command returns.
    deadline, agents = time.monotonic() + 10, []
    while time.monotonic() < deadline and len(agents) < 2:
        agents = [p for p in sb.processes() if p.argv[:1] == ("sleep",)]
    assert {p.argv[1] for p in agents} == {"4321", "1234"}
    sb.kill_processes(keep=snap)
    assert [p for p in sb.processes() if p not in snap] == []
    assert sb.run("id -un; echo $WHO $PWD", user="agent").stdout == b"agent\nagent /tmp\n"
    assert sb.run("id -un").stdout == b"root\n"


def test_snapshot_is_a_value(sb: Sandbox) -> None:
    snap = sb.processes()
    assert isinstance(snap, ProcessSnapshot)
    assert ProcessSnapshot(tuple(snap)) == snap
    with pytest.raises(TypeError):
        sb.kill_processes(keep=[1, 2])  # type: ignore[arg-type]


def test_arguments_come_back_exactly(sb: Sandbox) -> None:
    argv = ("bash", "-c", "sleep 997; :", "two words", "new\nline", "END abc 0", "")
    sb.run("(setsid bash -c 'sleep 997; :' 'two words' $'new\\nline' 'END abc 0' '' &)")
    deadline, found = time.monotonic() + 10, []
    while time.monotonic() < deadline:
        found = [p for p in sb.processes() if p.argv[:3] == argv[:3]]
        if found:
            break
    assert [p.argv for p in found] == [argv]
    assert found[0].name == "bash" and found[0].command.startswith("bash -c sleep 997")
