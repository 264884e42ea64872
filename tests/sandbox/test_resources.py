"""Resource readings: the cgroup v1 layout on this host's engine, v2 from a file tree laid out
as the kernel lays it out, and the Docker stats API fallback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import docker

from sandbox import Sandbox
from sandbox._resources import CgroupReader, StatsApiReader


def test_cgroup_v2_layout(tmp_path: Path) -> None:
    (tmp_path / "proc/42/net").mkdir(parents=True)
    (tmp_path / "proc/42/cgroup").write_text("0::/system.slice/docker-abc.scope\n")
    (tmp_path / "proc/42/net/dev").write_text(
        "Inter-|   Receive\n face |bytes\n"
        "    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n"
        "  eth0: 2000 5 0 0 0 0 0 0 300 4 0 0 0 0 0 0\n"
    )
    cg = tmp_path / "cg/system.slice/docker-abc.scope"
    cg.mkdir(parents=True)
    (cg / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    (cg / "memory.current").write_text("104857600\n")
    (cg / "memory.peak").write_text("209715200\n")
    (cg / "pids.current").write_text("7\n")
    (cg / "io.stat").write_text(
        "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n8:16 rbytes=1 wbytes=2 rios=1 wios=1\n"
    )
    r = CgroupReader(42, network=True, proc=tmp_path / "proc", cgroup_root=tmp_path / "cg")
    assert r.v2
    assert r.sample() == {
        "container.cpu.time": 2.5,
        "container.memory.usage": 104857600,
        "container.memory.peak": 209715200,
        "container.pids": 7,
        "container.disk.io.read": 4097,
        "container.disk.io.write": 8194,
        "container.network.io.receive": 2000,
        "container.network.io.transmit": 300,
    }
    assert r.cpu_time() == 2.5 and r.peak() == 209715200
    assert r.reset_peak()  # a write to memory.peak, as kernels >= 6.12 accept
    assert (cg / "memory.peak").read_text().startswith("0")  # what the kernel was sent


def test_cgroup_v1_on_this_engine(base_image: str) -> None:
    with Sandbox(base_image) as sb:
        pid = docker.from_env().api.inspect_container(sb.container_id)["State"]["Pid"]
        r = CgroupReader(pid, network=False)
        before = r.sample()
        sb.run("python3 -c \"x = b'x' * (64 << 20); sum(range(3_000_000))\"")
        after = r.sample()
    assert not r.v2
    assert after["container.cpu.time"] > before["container.cpu.time"]
    assert after["container.memory.peak"] >= 64 << 20
    assert after["container.pids"] >= 2


def test_stats_api_fallback(base_image: str) -> None:
    with Sandbox(base_image) as sb:
        sb.run("python3 -c \"x = b'x' * (32 << 20); import time; time.sleep(3)\" &")
        sb.run("sleep 1")
        s = StatsApiReader(docker.from_env().api, sb.container_id).sample()
    assert s["container.memory.usage"] >= 32 << 20
    assert s["container.pids"] >= 2 and s["container.cpu.time"] > 0


def _walked(root: Path) -> int:
    """Bytes allocated below ``root``, each inode once: what UpperDirSize must agree with."""
    seen: dict[int, int] = {}
    for p in root.rglob("*"):
        st = p.lstat()
        seen[st.st_ino] = st.st_blocks * 512
    return sum(seen.values())


def test_upper_dir_size_follows_writes_links_renames_and_deletions(tmp_path: Path) -> None:
    from sandbox._resources import UpperDirSize

    size = UpperDirSize(str(tmp_path))
    try:
        assert size.size() == 0
        (tmp_path / "a/b").mkdir(parents=True)
        (tmp_path / "a/b/f").write_bytes(b"x" * (3 << 20))
        (tmp_path / "a/g").write_bytes(b"y" * 5000)
        assert size.size() == _walked(tmp_path) >= 3 << 20
        os.link(tmp_path / "a/b/f", tmp_path / "a/hard")  # one inode, counted once
        with open(tmp_path / "a/g", "ab") as f:
            f.write(b"z" * (1 << 20))
        assert size.size() == _walked(tmp_path)
        (tmp_path / "a").rename(tmp_path / "moved")
        assert size.size() == _walked(tmp_path)
        shutil.rmtree(tmp_path / "moved/b")
        assert size.size() == _walked(tmp_path) >= 3 << 20  # the hard link keeps the inode
        (tmp_path / "moved/hard").unlink()
        (tmp_path / "moved/g").unlink()
        assert size.size() == _walked(tmp_path) < 1 << 20
    finally:
        size.close()
