"""Making a sandbox observable: commands, file changes and resources as OpenTelemetry spans.

Everything goes through the OpenTelemetry API (any backend can receive it); large payloads go
to a blob sink whose ``put_blob(bytes) -> "sha256:<hex>"`` the caller provides (the trace
store's Recorder is one). Without a sink, spans still carry the hashes.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode, Tracer

from traces.vocab import Attr, Span, blob_ref

from ._engine import is_local_engine
from ._fsdiff import DEFAULT_IGNORE, ApiDiffer, DiffConfig, Differ, FileChange, OverlayDiffer
from ._resources import Reader, StatsApiReader, host_reader

if TYPE_CHECKING:
    from ._capture import HeadTail
    from ._resources import DiskGuard
    from ._session import CommandResult


TRACER_NAME = "harness.sandbox"  # the instrumentation scope of the sandbox's spans


class BlobSink(Protocol):
    def put_blob(self, data: bytes) -> str: ...


@dataclass
class Recording:
    """What a sandbox records and where. Pass as ``Sandbox(record=Recording(...))``.

    Attributes:
        tracer: where spans go (default: the global tracer provider's ``harness.sandbox``).
        blobs: where outputs and file contents go; without it only hashes are recorded.
        output_cap: bytes of each command's stdout/stderr kept in the record (far above what
            a model is shown).
        file_content_cap: file contents above this are recorded as size and hash only.
        diff_cap: unified diffs for text files up to this size.
        ignore: container paths whose changes are not recorded.
        file_changes: record per-command file changes.
        resource_interval: seconds between periodic resource samples; a sample is also
            taken at the end of every command and when the sandbox closes, so even a short
            trial has its peak memory and CPU. None turns all resource sampling off.
        fast_paths: read the overlay upper dir and cgroup files on the host when the engine
            is local; False forces the Docker API paths.
        parent: the context the sandbox-wide spans (resource samples, ``sandbox.stop``)
            belong to; default: the context current when the sandbox starts.
            ``sandbox.start`` always goes under the context current at ``start()``.
    """

    tracer: Tracer | None = None
    blobs: BlobSink | None = None
    output_cap: int = 64 << 20
    file_content_cap: int = 16 << 20
    diff_cap: int = 1 << 20
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    file_changes: bool = True
    resource_interval: float | None = 0.5
    fast_paths: bool = True
    parent: Context | None = None


def _sha_ref(data: bytes) -> str:
    return blob_ref(hashlib.sha256(data).hexdigest())


def _text(path: bytes) -> tuple[str, str | None]:
    """A path as an attribute: text, plus hex of the exact bytes when not valid UTF-8."""
    try:
        return path.decode("utf-8"), None
    except UnicodeDecodeError:
        return path.decode("utf-8", errors="backslashreplace"), path.hex()


@dataclass
class CommandProbe:
    span: trace.Span
    ctx: Context
    cpu0: float | None
    cwd: str
    command_id: int = 0


class SessionRecorder:
    """The recording side of one sandbox: created after its container starts."""

    def __init__(
        self,
        cfg: Recording,
        api: Any,
        container_id: str,
        image: str,
        network: str,
        parent: Context,
    ) -> None:
        self.cfg = cfg
        self.api = api
        self.container_id = container_id
        self.tracer = cfg.tracer or trace.get_tracer(TRACER_NAME)
        # The OTel context of the sandbox-wide spans: the configured one, else the one the
        # sandbox was started in.
        self.parent = cfg.parent if cfg.parent is not None else parent
        info = api.inspect_container(container_id)
        self.image_id = info.get("Image", "")
        pid = int(info.get("State", {}).get("Pid") or 0)
        local = cfg.fast_paths and is_local_engine() and pid > 0 and os.geteuid() == 0
        self.reader: Reader = (host_reader(pid, network != "none") if local else None) or (
            StatsApiReader(api, container_id)
        )
        self.fast_resources = not isinstance(self.reader, StatsApiReader)
        self.differ: Differ | None = None
        self.fast_diff = False
        if cfg.file_changes:
            dcfg = DiffConfig(cfg.file_content_cap, cfg.diff_cap, cfg.ignore)
            gd = info.get("GraphDriver") or {}
            data = gd.get("Data") or {}
            upper = data.get("UpperDir")
            if local and gd.get("Name") == "overlay2" and upper and os.access(upper, os.R_OK):
                lowers = [p for p in (data.get("LowerDir") or "").split(":") if p]
                self.differ = OverlayDiffer(upper, lowers, dcfg)
                self.fast_diff = True
            else:
                self.differ = ApiDiffer(api, container_id, image, dcfg)
        self.last_diff_s = 0.0  # what finding the last command's file changes cost
        # The sandbox's disk guard in measured mode: its measure goes into the samples.
        self.disk: DiskGuard | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # wakes the sampler thread: sample now, or stop
        self._readings: deque[tuple[int, dict[str, Any]]] = deque()  # taken at command ends
        self._sample_now = False  # a command ended on the Docker API path: sample it
        self._sampler: threading.Thread | None = None
        if cfg.resource_interval:
            self._sampler = threading.Thread(
                target=self._sample_loop, daemon=True, name="harness-resources"
            )
            self._sampler.start()

    # -- payloads ------------------------------------------------------------------------

    def blob(self, data: bytes) -> str:
        if self.cfg.blobs is not None:
            return self.cfg.blobs.put_blob(data)
        return _sha_ref(data)

    # -- commands ------------------------------------------------------------------------

    def before(
        self, command: bytes, cwd: str, command_id: int, user: str | None = None
    ) -> CommandProbe:
        # The memory high-water mark restarts per command; the last command's peak is in
        # the sample taken when it ended.
        self.reader.reset_peak()
        cpu0 = self.reader.cpu_time()
        span = self.tracer.start_span(
            Span.EXEC,
            attributes={
                Attr.COMMAND_LINE: command.decode("utf-8", errors="backslashreplace"),
                Attr.CWD: cwd,
                Attr.COMMAND_ID: command_id,
                Attr.CONTAINER_ID: self.container_id,
                **({Attr.USER: user} if user else {}),
            },
        )
        return CommandProbe(span, trace.set_span_in_context(span), cpu0, cwd, command_id)

    def after(
        self, probe: CommandProbe, result: CommandResult, out: HeadTail, err: HeadTail
    ) -> None:
        t_end = time.time_ns()
        span = probe.span
        attrs: dict[str, Any] = {
            Attr.EXIT_CODE: result.exit_code,
            Attr.TIMED_OUT: result.timed_out,
            Attr.OOM_KILLED: result.oom_killed,
            Attr.SESSION_RESTARTED: result.session_restarted,
            Attr.CWD_AFTER: result.cwd,
        }
        for buf, blob_key, bytes_key, recorded_key in (
            (out, Attr.STDOUT_BLOB, Attr.STDOUT_BYTES, Attr.STDOUT_RECORDED),
            (err, Attr.STDERR_BLOB, Attr.STDERR_BYTES, Attr.STDERR_RECORDED),
        ):
            attrs[blob_key] = self.blob(bytes(buf.recorded))
            attrs[bytes_key] = buf.total
            if buf.total > len(buf.recorded):
                attrs[recorded_key] = len(buf.recorded)
        # On the fast path one reading of the cgroup files (a few preads, before the next
        # command restarts the peak) gives the command its CPU time and peak memory and the
        # sandbox its end-of-command resource sample; the sampler thread emits that span.
        reading: dict[str, Any] | None = None
        if self.fast_resources and self.cfg.resource_interval:
            with suppress(Exception):
                reading = self._reading()
        if reading is not None:
            cpu1, peak = (
                reading.get(Attr.CONTAINER_CPU_TIME),
                reading.get(Attr.CONTAINER_MEMORY_PEAK),
            )
            reading[Attr.COMMAND_ID] = probe.command_id
            self._readings.append((time.time_ns(), reading))  # emitted on the next tick
        else:
            cpu1 = self.reader.cpu_time()
            peak = self.reader.peak() if self.fast_resources else None
            if self.cfg.resource_interval:  # the Docker API path: a sample as soon as may be
                self._sample_now = True
                self._wake.set()
        if probe.cpu0 is not None and cpu1 is not None:
            attrs[Attr.CPU_TIME] = round(cpu1 - probe.cpu0, 6)
        if peak is not None:
            attrs[Attr.MEMORY_PEAK] = int(peak)
        if result.disk_exceeded:
            attrs[Attr.DISK_EXCEEDED] = True
            guard = self.disk
            span.add_event(
                Attr.DISK_EXCEEDED,
                {
                    Attr.CONTAINER_DISK_USAGE: (guard.last or 0) if guard else 0,
                    Attr.LIMITS_DISK: guard.limit if guard else 0,
                },
                timestamp=t_end,
            )
        span.set_attributes(attrs)
        if result.disk_exceeded:
            span.set_status(Status(StatusCode.ERROR, "disk limit exceeded"))
        elif result.timed_out:
            span.set_status(Status(StatusCode.ERROR, "timed out"))
        elif result.exit_code != 0:
            span.set_status(Status(StatusCode.ERROR, f"exit code {result.exit_code}"))
        self._diff_into(probe.ctx)
        span.end(end_time=t_end)

    def _diff_into(self, ctx: Context) -> None:
        """Emit the file changes since the last look as children of ``ctx``'s span."""
        if self.differ is None:
            return
        t = time.time_ns()
        changes = self.differ.changes()
        self.last_diff_s = (time.time_ns() - t) / 1e9
        for change in changes:
            self._emit_change(change, ctx, t)

    def before_write(self, path: str, size: int) -> CommandProbe:
        span = self.tracer.start_span(
            Span.WRITE_FILE,
            attributes={
                Attr.FS_PATH: path,
                Attr.FS_SIZE: size,
                Attr.CONTAINER_ID: self.container_id,
            },
        )
        return CommandProbe(span, trace.set_span_in_context(span), None, "")

    def after_write(self, probe: CommandProbe) -> None:
        self._diff_into(probe.ctx)
        probe.span.end()

    def _emit_change(self, c: FileChange, ctx: Context, t: int) -> None:
        path, path_hex = _text(c.path)
        attrs: dict[str, Any] = {Attr.FS_PATH: path, Attr.FS_OP: c.op}
        if path_hex:
            attrs[Attr.FS_PATH_HEX] = path_hex
        state = c.after or c.before
        assert state is not None
        attrs[Attr.FS_TYPE] = state.type
        attrs[Attr.FS_SIZE] = state.size
        attrs[Attr.FS_MODE] = f"{state.mode:04o}"
        if c.before is not None and c.after is not None and c.before.mode != c.after.mode:
            attrs[Attr.FS_BEFORE_MODE] = f"{c.before.mode:04o}"
        for st, blob_key, link_key in (
            (c.before, Attr.FS_BEFORE_BLOB, Attr.FS_BEFORE_LINK_TARGET),
            (c.after, Attr.FS_AFTER_BLOB, Attr.FS_LINK_TARGET),
        ):
            if st is None:
                continue
            if st.type == "file" and st.sha256:
                ref = self.blob(st.content) if st.content is not None else blob_ref(st.sha256)
                attrs[blob_key] = ref
                if st.content_omitted:
                    attrs[Attr.FS_CONTENT_OMITTED] = True
            if st.type == "symlink" and st.target is not None:
                attrs[link_key] = _text(st.target)[0]
        if c.old_path is not None:
            attrs[Attr.FS_OLD_PATH] = _text(c.old_path)[0]
        if c.diff is not None:
            attrs[Attr.FS_DIFF_BLOB] = self.blob(c.diff)
        self.tracer.start_span(Span.FS_CHANGE, context=ctx, attributes=attrs, start_time=t).end(
            end_time=t
        )

    # -- resources -----------------------------------------------------------------------

    def _reading(self) -> dict[str, Any]:
        attrs: dict[str, Any] = dict(self.reader.sample())
        guard = self.disk
        if guard is not None and guard.last is not None:
            attrs[Attr.CONTAINER_DISK_USAGE] = guard.last
        return attrs

    def _emit(self, t0: int, attrs: dict[str, Any]) -> None:
        """One ``sandbox.resources`` span under the sandbox-wide context."""
        self.tracer.start_span(
            Span.RESOURCES, context=self.parent, attributes=attrs, start_time=t0
        ).end(end_time=t0)

    def _sample(self) -> None:
        t0 = time.time_ns()
        self._emit(t0, self._reading())

    def _drain(self) -> None:
        """Emit the readings taken at the ends of commands."""
        while self._readings:
            self._emit(*self._readings.popleft())

    def _sample_loop(self) -> None:
        """Periodic samples; the spans of end-of-command readings; on the Docker API path a
        sample whenever a command ends (coalesced while one is being taken)."""
        interval = float(self.cfg.resource_interval or 0.5)
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._drain()
                now = time.monotonic()
                if now >= next_at or self._sample_now:
                    self._sample_now = False
                    self._sample()
                    if now >= next_at:
                        next_at = max(next_at + interval, time.monotonic())
            except Exception:  # noqa: BLE001 - the container may be going away
                if self._stop.is_set():
                    return
            self._wake.wait(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        """Stop sampling and take the last sample (the container still exists)."""
        self._stop.set()
        self._wake.set()
        if self._sampler is not None:
            self._sampler.join(timeout=5)
        if self.cfg.resource_interval:
            with suppress(Exception):
                self._drain()
                self._sample()
        if self.differ is not None:
            self.differ.close()
        self.reader.close()

    def span(
        self,
        name: str,
        attributes: dict[str, Any],
        start_ns: int,
        context: Context | None = None,
    ) -> None:
        """A span of the sandbox's own, under ``context`` (default: the sandbox-wide one)."""
        self.tracer.start_span(
            name,
            context=context if context is not None else self.parent,
            attributes=attributes,
            start_time=start_ns,
        ).end()


def current_context() -> Context:
    return otel_context.get_current()
