"""The sandbox session against a real Docker engine."""

from __future__ import annotations

import os
import threading

import docker
import pytest
import requests.exceptions

from sandbox import (
    EngineUnavailable,
    ImageNotFound,
    LimitNotSupported,
    Limits,
    Sandbox,
    SandboxError,
    SessionLost,
    UnknownUser,
    image_entrypoint,
)
from traces.vocab import Label


def test_cwd_env_functions_aliases_and_files_persist(sb: Sandbox) -> None:
    r = sb.run(
        "mkdir -p /work && cd /work && export GREETING=hi && LOCAL=kept"
        " && greet() { echo \"$GREETING $1\"; } && alias say='echo said'"
        " && echo content > notes.txt"
    )
    assert r.exit_code == 0, r
    r = sb.run("pwd; echo $LOCAL; greet you; say it; cat notes.txt; env | grep GREETING")
    assert r.stdout == b"/work\nkept\nhi you\nsaid it\ncontent\nGREETING=hi\n"
    assert r.cwd == "/work" and sb.cwd == "/work"


def test_declare_inside_a_command_is_global(sb: Sandbox) -> None:
    sb.run("declare -A M=([a]=1); declare N=5")
    assert sb.run('echo "${M[a]} $N"').stdout == b"1 5\n"


def test_installed_package_and_binary_persist(sb: Sandbox) -> None:
    r = sb.run(
        "set -e; mkdir -p /tmp/pkg/DEBIAN /tmp/pkg/usr/bin\n"
        "printf 'Package: hello-harness\\nVersion: 1.0\\nArchitecture: all\\n"
        "Maintainer: t <t@example.com>\\nDescription: test\\n' > /tmp/pkg/DEBIAN/control\n"
        "printf '#!/bin/sh\\necho from-deb\\n' > /tmp/pkg/usr/bin/hello-harness\n"
        "chmod 755 /tmp/pkg/usr/bin/hello-harness\n"
        "dpkg-deb --build /tmp/pkg /tmp/hello.deb >/dev/null && dpkg -i /tmp/hello.deb >/dev/null\n"
        "printf '#!/bin/sh\\necho local-bin\\n' > /usr/local/bin/mytool\n"
        "chmod +x /usr/local/bin/mytool"
    )
    assert r.exit_code == 0, r.stderr
    r = sb.run("hello-harness; mytool; dpkg-query -W -f='${Status}' hello-harness")
    assert r.stdout == b"from-deb\nlocal-bin\ninstall ok installed"


def test_exit_codes_and_separate_streams(sb: Sandbox) -> None:
    r = sb.run("echo out; echo err >&2; false")
    assert (r.exit_code, r.stdout, r.stderr) == (1, b"out\n", b"err\n")
    assert not r.ok
    assert sb.run("(exit 42)").exit_code == 42
    r = sb.run("printf 'no newline'")
    assert r.stdout == b"no newline" and r.stdout_bytes == 10


def test_syntax_error_does_not_break_the_session(sb: Sandbox) -> None:
    r = sb.run("echo 'unterminated")
    assert r.exit_code != 0 and b"unexpected EOF" in r.stderr
    r = sb.run("if then fi")
    assert r.exit_code == 2
    assert sb.run("echo fine").stdout == b"fine\n"


def test_redirecting_the_shells_own_output_does_not_hang_it(sb: Sandbox) -> None:
    r = sb.run("exec 2>&1; echo to-err >&2", timeout=10)
    assert not r.timed_out and r.stdout == b"to-err\n" and r.stderr == b""
    r = sb.run("exec >/tmp/log; echo hidden", timeout=10)
    assert not r.timed_out and r.stdout == b""
    # fd 2 still points where the first command sent it: the original stdout.
    assert sb.run("cat /tmp/log >&2", timeout=10).stdout == b"hidden\n"


def test_stdin_is_closed_so_readers_return_at_once(sb: Sandbox) -> None:
    r = sb.run("cat; echo cat=$?", timeout=10)
    assert not r.timed_out and r.stdout == b"cat=0\n"
    r = sb.run("read x; echo read=$? x=[$x]", timeout=10)
    assert not r.timed_out and r.stdout == b"read=1 x=[]\n"
    r = sb.run("python3 -c 'import sys; print(repr(sys.stdin.read()))'", timeout=10)
    assert r.stdout == b"''\n"
    # A reader never eats the next command.
    assert sb.run("echo next").stdout == b"next\n"


def test_binary_and_invalid_utf8_output_round_trip(sb: Sandbox) -> None:
    payload = os.urandom(300_000) + b"\xff\xfe\x00\x80 tail"
    sb.write_file("/tmp/blob.bin", payload)
    r = sb.run("cat /tmp/blob.bin; printf '\\xff\\xc3(' >&2")
    assert r.stdout == payload
    assert r.stderr == b"\xff\xc3("
    assert r.stdout_bytes == len(payload)


def test_output_is_bounded_with_head_tail_marker(base_image: str) -> None:
    with Sandbox(base_image, output_limit=1000) as sb:
        r = sb.run("seq 1 200000")
    assert r.truncated
    assert r.stdout.startswith(b"1\n2\n3\n")
    assert r.stdout.endswith(b"199999\n200000\n")
    assert b"bytes omitted" in r.stdout
    assert r.stdout_bytes == len(b"".join(b"%d\n" % i for i in range(1, 200001)))
    assert len(r.stdout) < 1100


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmRSS:")) / 1024


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmHWM:")) / 1024


def test_one_gib_of_output_is_counted_not_held(sb: Sandbox) -> None:
    # The peak of this command alone: the process's high-water mark restarts here (earlier
    # tests in the same process may have used more for their own reasons).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _rss_mib()
    r = sb.run("head -c 1073741824 /dev/zero; echo done >&2", timeout=300)
    assert r.exit_code == 0 and not r.timed_out
    assert r.stdout_bytes == 1 << 30
    assert r.truncated and len(r.stdout) <= (1 << 20) + 100
    assert r.stderr == b"done\n"
    grew = _peak_rss_mib() - before
    assert grew < 200, f"host process grew by {grew:.0f} MiB while reading 1 GiB of output"


def _procs(sb: Sandbox, pattern: str) -> list[str]:
    r = sb.run(f"ps -eo pid,args | grep -F -- '{pattern}' | grep -v grep || true")
    return [line for line in r.stdout_text.splitlines() if line.strip()]


def test_timeout_kills_the_whole_tree_and_spares_earlier_jobs(sb: Sandbox) -> None:
    sb.run("sleep 1001 &")
    r = sb.run("sleep 1000 & sleep 1000 & (sleep 1000; echo never) ; echo never", timeout=1)
    assert r.timed_out and not r.ok
    assert b"never" not in r.stdout
    assert _procs(sb, "sleep 1000") == []
    assert len(_procs(sb, "sleep 1001")) == 1, "a job from an earlier command was killed"
    assert sb.run("echo alive").stdout == b"alive\n"


def test_timeout_kills_setsid_daemons_of_the_command(sb: Sandbox) -> None:
    r = sb.run("setsid sleep 1002 & sleep 1000", timeout=1)
    assert r.timed_out
    assert _procs(sb, "sleep 1002") == []


def test_timeout_of_a_shell_builtin_loop_restarts_the_shell(sb: Sandbox) -> None:
    sb.run("cd /tmp && export KEEP=yes")
    r = sb.run("while :; do :; done", timeout=1)
    assert r.timed_out and r.session_restarted
    assert sb.run("echo $KEEP $PWD").stdout == b"yes /tmp\n"


def test_exit_restarts_the_shell_with_cwd_and_env(sb: Sandbox) -> None:
    sb.run("cd /usr && export KEEP=1 && f() { echo fn; }")
    r = sb.run("echo before; exit 3")
    assert r.exit_code == 3 and r.session_restarted and r.stdout == b"before\n"
    r = sb.run("echo $KEEP $PWD; f")
    assert r.stdout == b"1 /usr\nfn\n" and not r.session_restarted
    r = sb.run("kill -9 $$")
    assert r.exit_code == 137 and r.session_restarted
    assert sb.run("echo $KEEP").stdout == b"1\n"


def test_background_processes_keep_running(sb: Sandbox) -> None:
    sb.run("python3 -m http.server 8123 --bind 127.0.0.1 >/tmp/http.log 2>&1 &")
    r = sb.run(
        "for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8123/ && break;"
        " sleep 0.1; done; curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8123/",
        timeout=20,
    )
    assert r.stdout == b"200"
    assert len(_procs(sb, "http.server 8123")) == 1


def test_run_with_cwd_leaves_session_directory(sb: Sandbox) -> None:
    sb.run("cd /etc")
    assert sb.run("pwd", cwd="/usr").stdout == b"/usr\n"
    assert sb.run("pwd").stdout == b"/etc\n"
    r = sb.run("pwd", cwd="/nonexistent")
    assert r.exit_code == 1 and b"No such file" in r.stderr


def test_memory_hog_is_oom_killed_and_reported(base_image: str) -> None:
    with Sandbox(base_image, limits=Limits(memory="128m")) as sb:
        r = sb.run("python3 -c \"x = b'x' * (512 << 20); print(len(x))\"", timeout=60)
        assert r.exit_code == 137 and r.oom_killed, r
        assert not sb.run("echo ok").oom_killed


def test_fork_bomb_is_contained_and_session_survives(base_image: str) -> None:
    with Sandbox(base_image, limits=Limits(pids=128)) as sb:
        # Foreground bomb: the timeout kills all of it, the restarted shell can fork again.
        r = sb.run("bomb() { bomb | bomb; }; bomb", timeout=3)
        assert r.timed_out and r.session_restarted
        r = sb.run("echo alive; ps -e --no-headers | wc -l", timeout=30)
        assert r.stdout.startswith(b"alive\n") and int(r.stdout.split()[1]) < 10
        # The classic background bomb returns at once and fills the pids limit; builtins
        # still answer, and kill_processes() recovers the session.
        r = sb.run(":(){ :|:& };:", timeout=5)
        assert r.exit_code == 0
        assert sb.run("echo survives", timeout=10).stdout == b"survives\n"
        sb.kill_processes()
        r = sb.run("ps -e --no-headers | wc -l", timeout=30)
        assert r.exit_code == 0 and int(r.stdout) < 10


def test_network_none_has_no_egress(sb: Sandbox) -> None:
    r = sb.run("curl -sS --max-time 5 http://deb.debian.org/debian/", timeout=30)
    assert r.exit_code != 0
    routes = sb.run("tail -n +2 /proc/net/route").stdout
    assert routes == b"", "a route exists with network none"
    ifaces = sb.run("ls /sys/class/net").stdout.split()
    assert ifaces == [b"lo"]


def test_hardening_defaults(sb: Sandbox, engine: None) -> None:
    status = sb.run("grep -E '^(CapEff|NoNewPrivs)' /proc/self/status").stdout_text
    caps = int(status.split("CapEff:")[1].split()[0], 16)
    cap_net_raw, cap_mknod, cap_sys_admin, cap_chown = 13, 27, 21, 0
    assert not caps & (1 << cap_net_raw)
    assert not caps & (1 << cap_mknod)
    assert not caps & (1 << cap_sys_admin)
    assert caps & (1 << cap_chown)
    assert "NoNewPrivs:\t1" in status
    assert sb.run("test -e /var/run/docker.sock || test -e /run/docker.sock").exit_code == 1
    info = docker.from_env().api.inspect_container(sb.container_id)
    hc = info["HostConfig"]
    assert hc["Memory"] == 2 << 30 and hc["MemorySwap"] == 2 << 30
    assert hc["NanoCpus"] == 1_000_000_000 and hc["PidsLimit"] == 1024
    assert hc["NetworkMode"] == "none"
    labels = info["Config"]["Labels"]
    assert labels[Label.OWNER_PID] == str(os.getpid())
    assert labels[Label.MANAGED] == "1"


def test_limits_and_labels_are_applied(base_image: str) -> None:
    limits = Limits(memory="256m", cpus=0.5, pids=64)
    with Sandbox(base_image, limits=limits, run_id="run-xyz", labels={"team": "a"}) as sb:
        info = docker.from_env().api.inspect_container(sb.container_id)
    hc = info["HostConfig"]
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (256 << 20, 500_000_000, 64)
    assert info["Config"]["Labels"][Label.RUN_ID] == "run-xyz"
    assert info["Config"]["Labels"]["team"] == "a"


def test_env_workdir_and_user(base_image: str) -> None:
    with Sandbox(base_image, env={"A": "1 2"}, workdir="/srv/app", user="nobody") as sb:
        assert sb.run('echo "$A"; pwd; id -un').stdout == b"1 2\n/srv/app\nnobody\n"


def test_disk_quota_is_enforced_or_refused_clearly(base_image: str) -> None:
    """A quota-only request is enforced by the storage driver, or refused: never silently
    measured instead (``tests/sandbox/test_limits.py`` covers the measured mode)."""
    from sandbox import disk_limit_mode

    quota = Limits(disk=64 << 20, disk_mode="quota")
    if disk_limit_mode(base_image) == "quota":
        with Sandbox(base_image, limits=quota) as sb:
            assert sb.disk_mode == "quota"
            r = sb.run("head -c 100000000 /dev/zero > /big", timeout=60)
            assert r.exit_code != 0 and b"No space" in r.stderr
    else:
        with pytest.raises(LimitNotSupported, match="pquota"):
            Sandbox(base_image, limits=quota).start()


def test_missing_image_is_a_clear_error(engine: None) -> None:
    with pytest.raises(ImageNotFound, match="harness images build"):
        Sandbox("no-such-image:never").start()


def test_engine_errors_arrive_as_sandbox_errors_with_their_cause(base_image: str) -> None:
    with pytest.raises(ImageNotFound) as missing:
        image_entrypoint("sha256:" + "0" * 64)
    assert isinstance(missing.value.__cause__, docker.errors.ImageNotFound)
    with Sandbox(base_image) as sb:
        docker.from_env().api.remove_container(sb.container_id, force=True)
        with pytest.raises(SessionLost) as gone:
            sb.read_file("/etc/hostname")  # not FileNotFoundError: the container is gone
        assert isinstance(gone.value.__cause__, docker.errors.NotFound)
        with pytest.raises(SandboxError) as write:
            sb.write_file("/tmp/big", b"x" * (1 << 20))
        assert isinstance(write.value.__cause__, docker.errors.NotFound)
        with pytest.raises(SessionLost) as run:
            sb.run("true")
        assert isinstance(run.value.__cause__, docker.errors.APIError)


def test_engine_going_away_is_engine_unavailable(sb: Sandbox) -> None:
    api = sb._api
    sb._api = docker.APIClient(base_url="unix:///nonexistent/docker.sock", version="1.41")
    try:
        with pytest.raises(EngineUnavailable) as info:
            sb.read_file("/etc/hostname")
    finally:
        sb._api = api
    assert isinstance(info.value.__cause__, requests.exceptions.ConnectionError)
    assert "stopped answering" in str(info.value)


def test_container_removed_after_exception_in_with(base_image: str) -> None:
    api = docker.from_env().api
    cid = None
    with pytest.raises(RuntimeError), Sandbox(base_image) as sb:
        cid = sb.container_id
        raise RuntimeError("boom")
    assert cid is not None
    with pytest.raises(docker.errors.NotFound):
        api.inspect_container(cid)
    with pytest.raises(SandboxError, match="not running"):
        sb.run("true")


def test_files_round_trip_any_size(sb: Sandbox) -> None:
    big = os.urandom(24 << 20)
    sb.write_file("/data/nested/big.bin", big)
    assert sb.run("stat -c %s /data/nested/big.bin").stdout == b"%d\n" % len(big)
    assert sb.read_file("/data/nested/big.bin") == big
    sb.run("cd /data")
    sb.write_file("script.sh", "#!/bin/sh\necho ran\n", mode=0o755)
    assert sb.run("./script.sh; stat -c %a script.sh").stdout == b"ran\n755\n"
    assert sb.read_file("nested/big.bin")[:100] == big[:100]
    sb.run("ln -s nested/big.bin /data/link && ln -s /data/link /tmp/link2")
    assert sb.read_file("/tmp/link2") == big
    with pytest.raises(FileNotFoundError, match="/nope"):
        sb.read_file("/nope")
    with pytest.raises(IsADirectoryError):
        sb.read_file("/data")


def test_write_file_from_a_file_object(sb: Sandbox, tmp_path: os.PathLike[str]) -> None:
    src = os.path.join(tmp_path, "src.bin")
    data = os.urandom(3 << 20)
    with open(src, "wb") as f:
        f.write(data)
    with open(src, "rb") as f:
        sb.write_file("/tmp/from-file.bin", f)
    assert sb.run("sha256sum < /tmp/from-file.bin").stdout_text.split()[0] == (
        __import__("hashlib").sha256(data).hexdigest()
    )


def test_many_sessions_in_parallel_threads(base_image: str) -> None:
    errors: list[str] = []

    def worker(i: int) -> None:
        try:
            with Sandbox(base_image) as sb:
                sb.run(f"export ME={i}")
                for j in range(30):
                    r = sb.run(f"echo $ME-{j}")
                    if r.stdout != f"{i}-{j}\n".encode():
                        errors.append(f"{i}/{j}: {r.stdout!r}")
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_one_sandbox_shared_by_threads_serialises_commands(sb: Sandbox) -> None:
    results: list[bytes] = []

    def worker(i: int) -> None:
        for j in range(20):
            results.append(sb.run(f"echo {i}-{j}").stdout)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(f"{i}-{j}\n".encode() for i in range(3) for j in range(20))


def test_commands_as_another_user_have_their_own_persistent_shell(sb: Sandbox) -> None:
    sb.run("useradd -m agent && cd /srv && export WHO=root")
    r = sb.run("id -un; cd /tmp; export WHO=agent; echo $HOME", user="agent")
    assert r.stdout == b"agent\n/home/agent\n"
    assert sb.run("echo $WHO; pwd", user="agent").stdout == b"agent\n/tmp\n"
    assert sb.run("id -un; echo $WHO; pwd").stdout == b"root\nroot\n/srv\n"
    r = sb.run("exit 4", user="agent")
    assert r.exit_code == 4 and r.session_restarted
    assert sb.run("echo $WHO $PWD", user="agent").stdout == b"agent /tmp\n"
    r = sb.run("sleep 100", user="agent", timeout=1)
    assert r.timed_out and sb.run("id -un", user="agent").stdout == b"agent\n"
    assert sb.run("touch /root/x", user="agent").exit_code != 0  # really unprivileged


def test_unknown_user_is_a_clear_error(sb: Sandbox, base_image: str) -> None:
    with pytest.raises(UnknownUser) as info:
        sb.run("true", user="nosuchuser")
    msg = str(info.value)
    assert "'nosuchuser' does not exist" in msg and base_image in msg
    assert "useradd" in msg and "[agent] user" in msg
    assert isinstance(info.value, SandboxError)
    assert sb.run("echo still here").stdout == b"still here\n"
    # A user that exists but has no passwd name (a bare uid) is not refused.
    assert sb.run("id -u", user="4242").stdout == b"4242\n"
    with pytest.raises(UnknownUser, match="nosuchuser"):
        Sandbox(base_image, user="nosuchuser").start()


def test_named_sessions_keep_their_state_apart(sb: Sandbox) -> None:
    sb.run("f() { echo poisoned; }; export X=1; cd /tmp", session="agent")
    assert sb.run("echo $X; pwd", session="agent").stdout_text == "1\n/tmp\n"
    r = sb.run("type f >/dev/null 2>&1 && echo has-f; echo x$X; pwd")
    assert r.stdout_text == "x\n/root\n"
