"""Recording: commands, file changes and resource samples land in the store as spans."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import traces
from sandbox import Limits, Recording, Sandbox
from traces.vocab import Span


class Rig:
    """A trace store, a recorder and a recording sandbox inside one trial span."""

    def __init__(self, tmp: Path, image: str, fast: bool, **sandbox_kw: object) -> None:
        self.store = traces.TraceStore(tmp / "t.duckdb")
        self.rec = traces.Recorder(self.store, schedule_delay=0.05)
        tracer = self.rec.tracer()
        self._trial = tracer.start_as_current_span(
            "invoke_agent test", attributes={"harness.run.id": "run-rec", "harness.task.id": "t"}
        )
        self._trial.__enter__()
        recording = Recording(
            tracer=tracer,
            blobs=self.rec,
            fast_paths=fast,
            resource_interval=0.2 if fast else None,
            output_cap=int(sandbox_kw.pop("output_cap", 64 << 20)),  # type: ignore[call-overload]
        )
        self.sb = Sandbox(image, record=recording, **sandbox_kw).start()  # type: ignore[arg-type]

    def changes(self, command_span: str | None = None) -> list[tuple[str, str, str]]:
        self.rec.flush()
        where = f"WHERE command_span_id = '{command_span}'" if command_span else ""
        df = self.store.sql(f"SELECT path, op, file_type FROM file_changes {where} ORDER BY path")
        return [tuple(r) for r in df.itertuples(index=False)]  # type: ignore[misc]

    def last_command_span(self) -> str:
        self.rec.flush()
        return str(
            self.store.sql("SELECT span_id FROM commands ORDER BY started_at DESC LIMIT 1").span_id[
                0
            ]
        )

    def close(self) -> None:
        if not self.sb.closed:
            self.sb.close()
            self._trial.__exit__(None, None, None)
            self.rec.shutdown()


@pytest.fixture(params=[True, False], ids=["fast-path", "docker-api"])
def rig(request: pytest.FixtureRequest, tmp_path: Path, base_image: str) -> Iterator[Rig]:
    r = Rig(tmp_path, base_image, fast=request.param)
    yield r
    r.close()


SCRIPT = (
    "mkdir -p /work && cd /work && echo hello > new.txt && echo more >> /etc/issue"
    " && rm /etc/debian_version && chmod 600 /etc/motd && head -c 4096 /dev/urandom > blob.bin"
    " && ln -s new.txt link && touch $'caf\\xe9' && echo x > /var/cache/apt/ignored"
)


def test_one_command_records_exactly_its_changes(rig: Rig) -> None:
    assert rig.sb.run(SCRIPT).exit_code == 0
    assert rig.changes() == [
        ("/etc/debian_version", "deleted", "file"),
        ("/etc/issue", "modified", "file"),
        ("/etc/motd", "mode", "file"),
        ("/work", "added", "dir"),
        ("/work/blob.bin", "added", "file"),
        ("/work/caf\\xe9", "added", "file"),
        ("/work/link", "added", "symlink"),
        ("/work/new.txt", "added", "file"),
    ]
    fc = rig.store.sql("SELECT * FROM file_changes")
    by = {r.path: r for r in fc.itertuples()}
    assert by["/work/link"].link_target == "new.txt"
    assert by["/etc/motd"].mode == "0600"
    raw = rig.store.sql("SELECT attributes FROM spans WHERE name = 'fs.change'").attributes
    assert any('"harness.fs.path.hex":"' + b"/work/caf\xe9".hex() + '"' in a for a in raw)
    diff = rig.store.blob_text(by["/etc/issue"].diff_sha256)
    assert diff.startswith("--- a/etc/issue\n+++ b/etc/issue") and "\n+more\n" in diff


def test_contents_reconstruct_byte_for_byte(rig: Rig) -> None:
    original_issue = rig.sb.read_file("/etc/issue")
    rig.sb.run(SCRIPT)
    rig.changes()  # flushes
    by = {r.path: r for r in rig.store.sql("SELECT * FROM file_changes").itertuples()}
    assert rig.store.blob(by["/work/blob.bin"].after_sha256) == rig.sb.read_file("/work/blob.bin")
    assert rig.store.blob(by["/etc/issue"].before_sha256) == original_issue
    assert rig.store.blob(by["/etc/issue"].after_sha256) == original_issue + b"more\n"
    assert rig.store.blob(by["/etc/debian_version"].before_sha256).startswith(b"12")


def test_each_command_sees_only_its_own_changes(rig: Rig) -> None:
    rig.sb.run("echo a > /tmp/a; echo b > /tmp/b")
    first = rig.last_command_span()
    rig.sb.run("echo again >> /tmp/a; rm /tmp/b; echo c > /tmp/c")
    second = rig.last_command_span()
    rig.sb.run("true")
    third = rig.last_command_span()
    assert rig.changes(first) == [("/tmp/a", "added", "file"), ("/tmp/b", "added", "file")]
    assert rig.changes(second) == [
        ("/tmp/a", "modified", "file"),
        ("/tmp/b", "deleted", "file"),
        ("/tmp/c", "added", "file"),
    ]
    assert rig.changes(third) == []


def test_change_restored_within_a_command_is_no_change(rig: Rig) -> None:
    rig.sb.run("cp /etc/hostname /tmp/keep")
    rig.sb.run(
        "cp /etc/issue /tmp/issue.bak && echo x >> /etc/issue && cp /tmp/issue.bak "
        "/etc/issue && rm /tmp/issue.bak && echo tmp > /tmp/t && rm /tmp/t"
    )
    assert rig.changes(rig.last_command_span()) == []


def test_command_span_fields_and_output_blobs(rig: Rig) -> None:
    r = rig.sb.run("printf 'out\\xff'; echo err >&2; exit 3")
    assert r.exit_code == 3
    rig.sb.run("cd /tmp")
    rig.rec.flush()
    cmds = rig.store.sql("SELECT * FROM commands ORDER BY started_at")
    c = cmds.iloc[0]
    assert (c.command, c.exit_code, c.cwd, c.status_code) == (
        "printf 'out\\xff'; echo err >&2; exit 3",
        3,
        "/root",
        "ERROR",
    )
    assert rig.store.blob(c.stdout_sha256) == b"out\xff"
    assert rig.store.blob_text(c.stderr_sha256) == "err\n"
    assert (c.stdout_bytes, c.stderr_bytes) == (4, 4)
    assert c.duration_ms > 0 and cmds.iloc[1].status_code == "UNSET"
    rig.close()  # the trial ends: its root span gives every command its run and task
    c = rig.store.sql("SELECT * FROM commands ORDER BY started_at").iloc[0]
    assert (c.task, c.run_id) == ("t", "run-rec")


def test_recorded_output_is_capped_separately_from_what_a_model_sees(
    tmp_path: Path, base_image: str
) -> None:
    r = Rig(tmp_path, base_image, fast=True, output_cap=5000, output_limit=100)
    try:
        res = r.sb.run("seq 1 10000")
        assert len(res.stdout) < 200 and res.truncated
        r.rec.flush()
        c = r.store.sql("SELECT * FROM commands").iloc[0]
        full = b"".join(b"%d\n" % i for i in range(1, 10001))
        assert r.store.blob(c.stdout_sha256) == full[:5000]
        assert c.stdout_bytes == len(full)
    finally:
        r.close()


def test_memory_hog_rises_in_samples_and_oom_is_recorded(tmp_path: Path, base_image: str) -> None:
    r = Rig(tmp_path, base_image, fast=True, limits=Limits(memory="256m"))
    try:
        r.sb.run("python3 -c \"import time; x = b'x' * (150 << 20); time.sleep(1.5)\"")
        hog = r.sb.run("python3 -c \"x = b'x' * (600 << 20)\"")
        assert hog.oom_killed
        r.rec.flush()
        mem = r.store.sql("SELECT max(memory_bytes) AS m FROM resource_samples").m[0]
        assert mem > 150 << 20
        rows = r.store.sql("SELECT oom_killed, peak_memory_bytes FROM commands ORDER BY started_at")
        assert list(rows.oom_killed) == [False, True]
        assert rows.peak_memory_bytes[0] > 150 << 20
        assert r.store.sql("SELECT count(*) AS n FROM resource_samples").n[0] >= 3
    finally:
        r.close()


def test_fast_path_is_chosen_automatically(tmp_path: Path, base_image: str) -> None:
    r = Rig(tmp_path, base_image, fast=True)
    try:
        assert r.sb.recorder is not None
        assert r.sb.recorder.fast_diff and r.sb.recorder.fast_resources
    finally:
        r.close()
    attrs = r.store.sql("SELECT attributes FROM spans WHERE name = 'sandbox.start'").attributes[0]
    assert '"harness.fast_path.file_changes":true' in attrs


def test_recording_off_costs_no_spans(tmp_path: Path, base_image: str) -> None:
    with Sandbox(base_image) as sb:
        assert sb.recorder is None
        assert sb.run("echo hi").stdout == b"hi\n"
    assert not os.path.exists(tmp_path / "t.duckdb")


def test_large_file_contents_are_hashed_not_stored(tmp_path: Path, base_image: str) -> None:
    store = traces.TraceStore(tmp_path / "t.duckdb")
    with (
        traces.Recorder(store) as rec,
        Sandbox(
            base_image,
            record=Recording(
                tracer=rec.tracer(), blobs=rec, file_content_cap=1000, resource_interval=None
            ),
        ) as sb,
    ):
        sb.run("head -c 5000 /dev/urandom > /tmp/big; head -c 500 /dev/urandom > /tmp/small")
        big, small = sb.read_file("/tmp/big"), sb.read_file("/tmp/small")
    rows = {r.path: r for r in store.sql("SELECT * FROM file_changes").itertuples()}
    assert rows["/tmp/big"].content_omitted and rows["/tmp/big"].size == 5000
    import hashlib

    assert rows["/tmp/big"].after_sha256 == "sha256:" + hashlib.sha256(big).hexdigest()
    with pytest.raises(KeyError):
        store.blob(rows["/tmp/big"].after_sha256)
    assert store.blob(rows["/tmp/small"].after_sha256) == small
    assert not rows["/tmp/small"].content_omitted


def test_stats_api_samples_when_fast_paths_are_off(tmp_path: Path, base_image: str) -> None:
    store = traces.TraceStore(tmp_path / "t.duckdb")
    with (
        traces.Recorder(store) as rec,
        Sandbox(
            base_image,
            record=Recording(
                tracer=rec.tracer(), blobs=rec, fast_paths=False, resource_interval=0.5
            ),
        ) as sb,
    ):
        assert sb.recorder is not None and not sb.recorder.fast_resources
        sb.run("sleep 2.5")
    samples = store.sql("SELECT * FROM resource_samples")
    assert len(samples) >= 1 and (samples.memory_bytes > 0).all()


def test_file_writes_are_recorded_with_their_changes(rig: Rig) -> None:
    rig.sb.write_file("/tmp/w/small.txt", "small\n")  # through the shell
    rig.sb.write_file("/tmp/w/big.bin", b"\x00" * (300 << 10))  # through the archive API
    rig.rec.flush()
    df = rig.store.sql(
        "SELECT json_extract_string(w.attributes, '$.\"harness.fs.path\"') AS written, "
        "f.path, f.op FROM spans w JOIN file_changes f ON f.command_span_id = w.span_id "
        "WHERE w.name = 'sandbox.write_file' ORDER BY f.path"
    )
    rows = [tuple(r) for r in df.itertuples(index=False)]
    assert ("/tmp/w/small.txt", "/tmp/w/small.txt", "added") in rows
    assert ("/tmp/w/big.bin", "/tmp/w/big.bin", "added") in rows
    assert rig.store.sql("SELECT count(*) AS n FROM commands").n[0] == 0  # not commands
    # What was written, and with which mode, is recorded: a replay can write it again.
    w = rig.store.sql(
        "SELECT json_extract_string(attributes, '$.\"harness.write.sha256\"') AS content, "
        "json_extract_string(attributes, '$.\"harness.fs.mode\"') AS mode "
        "FROM spans WHERE name = 'sandbox.write_file' ORDER BY start_ns"
    )
    assert rig.store.blob(w.content[0]) == b"small\n" and w["mode"][0] == "0644"
    assert rig.store.blob(w.content[1]) == b"\x00" * (300 << 10)


def test_command_bytes_timeout_and_caller_attributes_are_recorded_exactly(rig: Rig) -> None:
    line = b"printf '%s' caf\xe9 > /tmp/x"  # not UTF-8
    assert rig.sb.run(line, timeout=7.5, attributes={"harness.actor": "agent"}).exit_code == 0
    rig.rec.flush()
    c = rig.store.sql("SELECT command, command_hex, actor, timeout_s, user FROM commands").iloc[0]
    assert bytes.fromhex(c.command_hex) == line and c.command.startswith("printf")
    assert (c.actor, c.timeout_s) == ("agent", 7.5)


@pytest.mark.parametrize("override", [True, False], ids=["parent", "default"])
def test_sandbox_wide_spans_go_under_the_recording_parent(base_image: str, override: bool) -> None:
    """``sandbox.start`` goes under the context current at start(); resource samples and
    ``sandbox.stop`` under ``Recording.parent``, else under that same start context."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    root = tracer.start_span(Span.trial("test"))
    root_ctx = trace.set_span_in_context(root)
    recording = Recording(
        tracer=tracer,
        parent=root_ctx if override else None,
        resource_interval=0.05,
        file_changes=False,
    )
    with tracer.start_as_current_span(Span.SETUP, context=root_ctx) as setup:
        sb = Sandbox(base_image, record=recording).start()
    try:
        with tracer.start_as_current_span(Span.AGENT, context=root_ctx) as agent:
            sb.run("sleep 0.3")
    finally:
        sb.close()
    root.end()
    spans = exporter.get_finished_spans()

    def parents(name: str) -> set[int]:
        return {
            s.parent.span_id
            for s in spans
            if (s.name == name or (name == Span.EXEC and Span.is_exec(s.name)))
            and s.parent is not None
        }

    setup_id = setup.get_span_context().span_id
    wide_id = root.get_span_context().span_id if override else setup_id
    assert parents(Span.SANDBOX_START) == {setup_id}
    assert parents(Span.EXEC) == {agent.get_span_context().span_id}
    assert parents(Span.RESOURCES) == {wide_id}
    assert parents(Span.SANDBOX_STOP) == {wide_id}
    assert len([s for s in spans if s.name == Span.SANDBOX_STOP]) == 1


# Image directories with files, symlinks and nested subdirectories (but no package caches).
DELETED_DIRS = ("/etc/apt/apt.conf.d", "/etc/systemd")
_TYPES = {"f": "file", "d": "dir", "l": "symlink"}


def _image_tree(sb: Sandbox, *roots: str) -> dict[str, tuple[str, str]]:
    """Every path at and below ``roots`` in the container: (type, symlink target)."""
    out = sb.run("find " + " ".join(roots) + " -printf '%p\\t%y\\t%l\\n'").stdout_text
    rows = (line.split("\t") for line in out.splitlines())
    return {path: (_TYPES[kind], target) for path, kind, target in rows}


def test_deleting_an_image_directory_records_every_path_below_it(rig: Rig) -> None:
    tree = _image_tree(rig.sb, *DELETED_DIRS)
    files = {p: rig.sb.read_file(p) for p, (kind, _) in tree.items() if kind == "file"}
    assert len(files) >= 2 and sum(k == "symlink" for k, _ in tree.values()) >= 5
    assert sum(k == "dir" for k, _ in tree.values()) >= 5
    assert rig.sb.run("rm -rf " + " ".join(DELETED_DIRS)).exit_code == 0
    span = rig.last_command_span()
    changes = [c for c in rig.changes(span) if c[0] not in ("/etc", "/etc/apt")]
    assert changes == sorted((p, "deleted", kind) for p, (kind, _) in tree.items())
    rows = rig.store.sql(
        "SELECT path, before_sha256, "
        "json_extract_string(s.attributes, '$.\"harness.fs.before.link_target\"') AS target "
        "FROM file_changes f JOIN spans s USING (span_id)"
    )
    by = {r.path: r for r in rows.itertuples()}
    for path, data in files.items():
        assert rig.store.blob(by[path].before_sha256) == data, path
    for path, (kind, target) in tree.items():
        if kind == "symlink":
            assert by[path].target == target, path
    # Once gone, they are not reported again.
    assert rig.sb.run("true").exit_code == 0
    assert rig.changes(rig.last_command_span()) == []


def test_directory_deleted_and_recreated_records_what_it_lost(rig: Rig) -> None:
    tree = _image_tree(rig.sb, "/etc/systemd")
    r = rig.sb.run(
        "rm -rf /etc/systemd && mkdir -p /etc/systemd/system && echo x > /etc/systemd/new"
    )
    assert r.exit_code == 0
    changes = [c for c in rig.changes(rig.last_command_span()) if c[0] != "/etc"]
    kept = {"/etc/systemd", "/etc/systemd/system"}
    expected = [(p, "deleted", kind) for p, (kind, _) in tree.items() if p not in kept]
    assert changes == sorted([*expected, ("/etc/systemd/new", "added", "file")])


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "docker-api"])
def test_short_trial_has_its_peak_memory_and_cpu(
    tmp_path: Path, base_image: str, fast: bool
) -> None:
    """Periodic samples alone miss a short trial (one sample, taken before the work); the
    samples at the end of each command and at close do not."""
    store = traces.TraceStore(tmp_path / "t.duckdb")
    with traces.Recorder(store) as rec:
        recording = Recording(
            tracer=rec.tracer(), blobs=rec, fast_paths=fast, resource_interval=3600
        )
        with Sandbox(base_image, record=recording) as sb:
            r = sb.run("python3 -c \"x = b'x' * (48 << 20); sum(range(3_000_000))\"")
            assert r.exit_code == 0
    samples = store.sql("SELECT * FROM resource_samples ORDER BY sampled_at")
    assert samples.memory_peak_bytes.max() >= 48 << 20
    assert samples.cpu_s.iloc[-1] >= 0.05  # the interpreter's start and the sum, at least
    # When they were taken, against the command's end and the sandbox's stop.
    at = store.sql(
        "SELECT start_ns, "
        "json_extract(attributes, '$.\"harness.command.id\"')::INT AS command_id "
        "FROM spans WHERE name = 'sandbox.resources' ORDER BY start_ns"
    )
    stopped = store.sql("SELECT start_ns FROM spans WHERE name = 'sandbox.stop'").iloc[0, 0]
    ended = store.sql(
        "SELECT start_ns + duration_ns AS t FROM spans WHERE name LIKE 'sandbox.exec%'"
    ).t[0]
    assert at.start_ns.iloc[-1] >= ended  # the last, as the sandbox closed
    assert at.start_ns.iloc[-1] <= stopped + 1_000_000_000
    if fast:  # and one as the command ended, before the sandbox closed
        (end_sample,) = at[at.command_id == 1].itertuples()
        assert ended - 1_000_000 <= end_sample.start_ns < at.start_ns.iloc[-1]
        command = store.sql("SELECT * FROM commands").iloc[0]
        assert samples.cpu_s.iloc[-1] >= samples.cpu_s.iloc[0] + command.cpu_s * 0.9
