"""Making a sandbox observable: commands, file changes and resources as OpenTelemetry spans.

Everything goes through the OpenTelemetry API (any backend can receive it); large payloads go
to a blob sink whose ``put_blob(bytes) -> "sha256:<hex>"`` the caller provides (the trace
store's Recorder is one). Without a sink, spans still carry the hashes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, Tracer

from traces.vocab import Attr, Span, blob_ref

from ._ended import EndedSpans, Parent
from ._engine import is_local_engine
from ._fsdiff import DEFAULT_IGNORE, ApiDiffer, DiffConfig, Differ, FileChange, OverlayDiffer
from ._resources import CgroupReader, RawReading, Reader, StatsApiReader, host_reader

if TYPE_CHECKING:
    from ._capture import HeadTail
    from ._resources import DiskGuard
    from ._session import CommandResult


logger = logging.getLogger(__name__)

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
    """What is known of a command (or a file write) when it starts. Its span is made when
    it ends, with this start time, under the context that was current at its start."""

    name: str
    attrs: dict[str, Any]
    parent: Context
    start_ns: int
    cpu0: float | None = None
    command_id: int = 0
    content: bytes | None = None  # a file write's bytes, to record (up to the content cap)
    # A command's line: its span's name and text attributes are made from it on the record
    # thread (``name`` is empty until then).
    command: bytes | None = None


@dataclass
class _Ended:
    """What must be exact when a command ends, taken on the command's thread: the rest of
    the record (hashes, blobs, diffs, parsing, spans) is made from it on the record thread."""

    probe: CommandProbe
    end_ns: int
    attrs: dict[str, Any]
    # (recorded, total) of stdout and stderr; or a file write's (content, -1)
    outputs: tuple[tuple[bytes, int], ...] | None = None
    status: str | None = None  # an error description, or None for an unset status
    event: dict[str, Any] | None = None  # the disk limit was exceeded: its measure
    raw: RawReading | None = None  # the cgroup files at the command's end (fast path)
    read_ns: int = 0
    disk_usage: int | None = None  # the disk guard's latest measure then
    changes: list[FileChange] = field(default_factory=list)
    diff_ns: int = 0


_OUTPUT_KEYS = (
    (Attr.STDOUT_BLOB, Attr.STDOUT_BYTES, Attr.STDOUT_RECORDED),
    (Attr.STDERR_BLOB, Attr.STDERR_BYTES, Attr.STDERR_RECORDED),
)


class SessionRecorder:
    """The recording side of one sandbox: created after its container starts.

    A command's thread only takes what must be exact at its end (the output bytes, the file
    change set, one pread of each cgroup file) and hands it over; the record thread turns
    that into blobs and spans, in order, while the next command runs. With a sink that
    can wait for it (the trace store's Recorder: flushing it waits for what was handed
    over), this takes recording off the command's path; with any other sink the record is
    made on the command's thread, so its spans have ended when ``run()`` returns.
    """

    # Records handed over but not made yet, at most: beyond it a command waits (a burst of
    # huge changes must not pile up file contents in memory).
    MAX_PENDING = 64
    # Records are made in batches (the code stays warm: a batch costs a fraction of making
    # each record on its own), when a command has just started (its thread waits for the
    # shell then, rather than for the interpreter's lock) and BATCH records wait, or the
    # oldest has waited MAX_WAIT_S; a flush or close makes them at once.
    BATCH = 8
    MAX_WAIT_S = 0.05

    def __init__(
        self,
        cfg: Recording,
        api: Any,
        container_id: str,
        image: str,
        network: str,
        parent: Context,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.api = api
        self.container_id = container_id
        self.tracer = cfg.tracer or trace.get_tracer(TRACER_NAME)
        # Records are spans that have ended before they are made: straight to the SDK's
        # processors when the tracer allows it (a tenth of the cost of start_span).
        self._ended = EndedSpans.of(self.tracer)
        # The OTel context of the sandbox-wide spans: the configured one, else the one the
        # sandbox was started in.
        self.parent = cfg.parent if cfg.parent is not None else parent
        if not info:  # the container's inspection, unless the caller has it
            info = api.inspect_container(container_id)
        self.image_id = info.get("Image", "")
        pid = int(info.get("State", {}).get("Pid") or 0)
        local = cfg.fast_paths and is_local_engine() and pid > 0 and os.geteuid() == 0
        self.reader: Reader = (host_reader(pid, network != "none") if local else None) or (
            StatsApiReader(api, container_id)
        )
        self.fast_resources = isinstance(self.reader, CgroupReader)
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
        self.failed = 0  # records that could not be made (logged)
        # The sandbox's disk guard in measured mode: its measure goes into the samples.
        self.disk: DiskGuard | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # wakes the sampler thread: sample now, or stop
        self._sample_now = False  # a command ended on the Docker API path: sample it
        self._sampler: threading.Thread | None = None
        if cfg.resource_interval:
            self._sampler = threading.Thread(
                target=self._sample_loop, daemon=True, name="harness-resources"
            )
            self._sampler.start()
        # The record thread, where the sink can wait for it.
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[_Ended] = deque()
        self._oldest = 0.0  # time.monotonic() when the oldest pending record was handed over
        self._handed = 0  # records handed over so far
        self._made = 0  # of which made (or failed)
        self._closing = False
        self._go = False  # make what is pending now: a command runs, or a flush waits
        self._unregister: Callable[[], None] | None = None
        self._worker: threading.Thread | None = None
        add_producer = getattr(cfg.blobs, "add_producer", None)
        if callable(add_producer):
            self._worker = threading.Thread(
                target=self._record_loop, daemon=True, name="harness-record"
            )
            self._worker.start()
            self._unregister = add_producer(self.wait_recorded)

    # -- payloads ------------------------------------------------------------------------

    def blob(self, data: bytes) -> str:
        if self.cfg.blobs is not None:
            return self.cfg.blobs.put_blob(data)
        return _sha_ref(data)

    # -- commands ------------------------------------------------------------------------

    def before(
        self,
        command: bytes,
        cwd: str,
        command_id: int,
        user: str | None = None,
        timeout: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> CommandProbe:
        # The memory high-water mark restarts per command; the last command's peak is in
        # the sample taken when it ended.
        self.reader.reset_peak()
        cpu0 = self.reader.cpu_time()
        attrs: dict[str, Any] = {
            Attr.CWD: cwd,
            Attr.COMMAND_ID: command_id,
            Attr.CONTAINER_ID: self.container_id,
        }
        if user:
            attrs[Attr.USER] = user
        if timeout is not None:
            attrs[Attr.TIMEOUT] = timeout
        if extra:
            attrs.update(extra)
        return CommandProbe(
            "", attrs, otel_context.get_current(), time.time_ns(), cpu0, command_id, None, command
        )

    def after(
        self, probe: CommandProbe, result: CommandResult, out: HeadTail, err: HeadTail
    ) -> None:
        end_ns = time.time_ns()
        ended = _Ended(
            probe,
            end_ns,
            {
                Attr.EXIT_CODE: result.exit_code,
                Attr.TIMED_OUT: result.timed_out,
                Attr.OOM_KILLED: result.oom_killed,
                Attr.SESSION_RESTARTED: result.session_restarted,
                Attr.CWD_AFTER: result.cwd,
            },
            ((bytes(out.recorded), out.total), (bytes(err.recorded), err.total)),
        )
        if result.disk_exceeded:
            guard = self.disk
            ended.attrs[Attr.DISK_EXCEEDED] = True
            ended.event = {
                Attr.CONTAINER_DISK_USAGE: (guard.last or 0) if guard else 0,
                Attr.LIMITS_DISK: guard.limit if guard else 0,
            }
            ended.status = "disk limit exceeded"
        elif result.timed_out:
            ended.status = "timed out"
        elif result.exit_code != 0:
            ended.status = f"exit code {result.exit_code}"
        # On the fast path one reading of the cgroup files (a few preads, before the next
        # command restarts the peak) gives the command its CPU time and peak memory and the
        # sandbox its end-of-command resource sample.
        reader = self.reader
        if isinstance(reader, CgroupReader) and self.cfg.resource_interval:
            with suppress(Exception):
                ended.raw = reader.read_raw()
                ended.read_ns = time.time_ns()
                ended.disk_usage = self.disk.last if self.disk is not None else None
        if ended.raw is None:
            cpu1 = reader.cpu_time()
            peak = reader.peak() if self.fast_resources else None
            if probe.cpu0 is not None and cpu1 is not None:
                ended.attrs[Attr.CPU_TIME] = round(cpu1 - probe.cpu0, 6)
            if peak is not None:
                ended.attrs[Attr.MEMORY_PEAK] = int(peak)
            if self.cfg.resource_interval:  # the Docker API path: a sample as soon as may be
                self._sample_now = True
                self._wake.set()
        self._find_changes(ended)
        self._hand_over(ended)

    def before_write(
        self,
        path: str,
        size: int,
        mode: int = 0o644,
        content: bytes | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> CommandProbe:
        attrs: dict[str, Any] = {
            Attr.FS_PATH: path,
            Attr.FS_SIZE: size,
            Attr.FS_MODE: f"{mode:04o}",
            Attr.CONTAINER_ID: self.container_id,
        }
        if extra:
            attrs.update(extra)
        probe = CommandProbe(Span.WRITE_FILE, attrs, otel_context.get_current(), time.time_ns())
        if content is not None and len(content) <= self.cfg.file_content_cap:
            probe.content = content
        return probe

    def after_write(self, probe: CommandProbe) -> None:
        ended = _Ended(probe, 0, {})
        if probe.content is not None:
            ended.outputs = ((probe.content, -1),)  # its blob is made on the record thread
        self._find_changes(ended)
        ended.end_ns = time.time_ns()
        self._hand_over(ended)

    def _find_changes(self, ended: _Ended) -> None:
        """The file changes since the last look: they must be read before the next command
        can change the files again."""
        if self.differ is None:
            return
        t = time.time_ns()
        ended.changes = self.differ.changes()
        ended.diff_ns = t
        self.last_diff_s = (time.time_ns() - t) / 1e9

    # -- the record thread ---------------------------------------------------------------

    def _hand_over(self, ended: _Ended) -> None:
        if self._worker is None:
            self._make(ended)  # no one could wait for a record thread: make it here
            return
        with self._cond:
            while (
                self._handed - self._made >= self.MAX_PENDING
                and self._worker.is_alive()
                and not self._closing
            ):
                self._go = True
                self._cond.notify_all()
                self._cond.wait(1.0)
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.append(ended)
            self._handed += 1

    def running(self) -> None:
        """A command was just sent to the shell: a good moment to make a batch of records."""
        pending = len(self._pending)
        if pending and (
            pending >= self.BATCH or time.monotonic() - self._oldest >= self.MAX_WAIT_S
        ):
            with self._cond:
                self._go = True
                self._cond.notify_all()

    def _record_loop(self) -> None:
        while True:
            with self._cond:
                # Woken for a batch, a flush or close; else a look now and then, so that a
                # record is made soon after its command even if no other command follows.
                while not (self._go or self._closing):
                    if self._pending and time.monotonic() - self._oldest >= self.MAX_WAIT_S:
                        break
                    self._cond.wait(self.MAX_WAIT_S)
                if not self._pending and self._closing:
                    return  # everything handed over is made
                self._go = False
                batch = list(self._pending)
                self._pending.clear()
            for ended in batch:
                self._make_logged(ended)
                # Let a waiting thread have the interpreter between records: the session's
                # reader must not wait out a batch to see its command end.
                time.sleep(0)
            with self._cond:
                self._made += len(batch)
                self._cond.notify_all()

    def _make_logged(self, ended: _Ended) -> None:
        try:
            self._make(ended)
        except Exception:  # noqa: BLE001 - one bad record must not stop the others
            self.failed += 1
            logger.exception("could not record %s of %s", ended.probe.name, self.container_id)

    def wait_recorded(self, timeout: float = 60.0) -> bool:
        """Wait until everything handed over so far has ended as spans (a flush of the
        sink calls this first). True when it has."""
        worker = self._worker
        if worker is None or threading.current_thread() is worker:
            return True
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._handed
            self._go = True
            self._cond.notify_all()
            while self._made < target:
                left = deadline - time.monotonic()
                if left <= 0 or not worker.is_alive():
                    return False
                self._cond.wait(left)
        return True

    def _make(self, ended: _Ended) -> None:
        """The spans of one ended command (or file write): the command's own, its file
        changes as its children, and its end-of-command resource sample."""
        probe, attrs = ended.probe, ended.attrs
        if probe.command is not None:
            line, line_hex = _text(probe.command)
            probe.name = Span.exec(line)
            attrs[Attr.COMMAND_LINE] = line
            if line_hex:
                attrs[Attr.COMMAND_LINE_HEX] = line_hex
        if ended.outputs is not None and ended.outputs[0][1] < 0:
            attrs[Attr.WRITE_BLOB] = self.blob(ended.outputs[0][0])
        elif ended.outputs is not None:
            for (data, total), (blob_key, bytes_key, recorded_key) in zip(
                ended.outputs, _OUTPUT_KEYS, strict=True
            ):
                attrs[blob_key] = self.blob(data)
                attrs[bytes_key] = total
                if total > len(data):
                    attrs[recorded_key] = len(data)
        reading: dict[str, Any] | None = None
        if ended.raw is not None and isinstance(self.reader, CgroupReader):
            reading = dict(self.reader.parse(ended.raw))
            if ended.disk_usage is not None:
                reading[Attr.CONTAINER_DISK_USAGE] = ended.disk_usage
            cpu1 = reading.get(Attr.CONTAINER_CPU_TIME)
            peak = reading.get(Attr.CONTAINER_MEMORY_PEAK)
            if probe.cpu0 is not None and cpu1 is not None:
                attrs[Attr.CPU_TIME] = round(cpu1 - probe.cpu0, 6)
            if peak is not None:
                attrs[Attr.MEMORY_PEAK] = int(peak)
        context = self._ended_span(
            probe.name,
            probe.parent,
            {**probe.attrs, **attrs},
            probe.start_ns,
            ended.end_ns,
            None if ended.event is None else (Attr.DISK_EXCEEDED, ended.event),
            None if ended.status is None else Status(StatusCode.ERROR, ended.status),
        )
        if ended.changes and context is not None:
            for change in ended.changes:
                self._emit_change(change, context, ended.diff_ns)
        if reading is not None:
            reading[Attr.COMMAND_ID] = probe.command_id
            self._emit(ended.read_ns, reading)

    def _ended_span(
        self,
        name: str,
        parent: Parent,
        attributes: dict[str, Any],
        start_ns: int,
        end_ns: int,
        event: tuple[str, dict[str, Any]] | None = None,
        status: Status | None = None,
    ) -> Parent:
        """One span that is already over; returns the parent for its children (None when
        the tracer's sampler leaves it out)."""
        if self._ended is not None:
            return self._ended.emit(
                name,
                parent,
                attributes,
                start_ns,
                end_ns,
                () if event is None else (Event(event[0], event[1], end_ns),),
                status or Status(),
            )
        context = parent if isinstance(parent, Context) else None
        if isinstance(parent, SpanContext):
            context = trace.set_span_in_context(NonRecordingSpan(parent))
        span = self.tracer.start_span(
            name, context=context, attributes=attributes, start_time=start_ns
        )
        if event is not None:
            span.add_event(event[0], event[1], timestamp=end_ns)
        if status is not None:
            span.set_status(status)
        span.end(end_time=end_ns)
        return trace.set_span_in_context(span)

    def _emit_change(self, c: FileChange, ctx: Parent, t: int) -> None:
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
        self._ended_span(Span.FS_CHANGE, ctx, attrs, t, t)

    # -- resources -----------------------------------------------------------------------

    def _reading(self) -> dict[str, Any]:
        attrs: dict[str, Any] = dict(self.reader.sample())
        guard = self.disk
        if guard is not None and guard.last is not None:
            attrs[Attr.CONTAINER_DISK_USAGE] = guard.last
        return attrs

    def _emit(self, t0: int, attrs: dict[str, Any]) -> None:
        """One ``sandbox.resources`` span under the sandbox-wide context."""
        self._ended_span(Span.RESOURCES, self.parent, attrs, t0, t0)

    def _sample(self) -> None:
        t0 = time.time_ns()
        self._emit(t0, self._reading())

    def _sample_loop(self) -> None:
        """Periodic samples; on the Docker API path a sample whenever a command ends
        (coalesced while one is being taken)."""
        interval = float(self.cfg.resource_interval or 0.5)
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._wake.clear()
            try:
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
        """Make every record handed over, stop sampling and take the last sample (the
        container still exists)."""
        self._stop.set()
        self._wake.set()
        if self._sampler is not None:
            self._sampler.join(timeout=5)
        if self._worker is not None:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            # Nothing handed over is dropped: the thread ends once all of it is made.
            self._worker.join(timeout=120)
            if self._unregister is not None:
                self._unregister()
        if self.cfg.resource_interval:
            with suppress(Exception):
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
