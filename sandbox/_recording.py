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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from ._engine import is_local_engine
from ._fsdiff import DEFAULT_IGNORE, ApiDiffer, DiffConfig, Differ, FileChange, OverlayDiffer
from ._resources import Reader, StatsApiReader, host_reader

if TYPE_CHECKING:
    from ._capture import HeadTail
    from ._session import CommandResult


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
        resource_interval: seconds between resource samples; None turns sampling off.
        fast_paths: read the overlay upper dir and cgroup files on the host when the engine
            is local; False forces the Docker API paths.
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


def _sha_ref(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _text(path: bytes) -> tuple[str, str | None]:
    """A path as an attribute: text, plus hex of the exact bytes when not valid UTF-8."""
    try:
        return path.decode("utf-8"), None
    except UnicodeDecodeError:
        return path.decode("utf-8", errors="backslashreplace"), path.hex()


@dataclass
class CommandProbe:
    span: Span
    ctx: Any
    cpu0: float | None
    cwd: str


class SessionRecorder:
    """The recording side of one sandbox: created after its container starts."""

    def __init__(
        self, cfg: Recording, api: Any, container_id: str, image: str, network: str, parent: Any
    ) -> None:
        self.cfg = cfg
        self.api = api
        self.container_id = container_id
        self.tracer = cfg.tracer or trace.get_tracer("harness.sandbox")
        self.parent = parent  # OTel context the sandbox was started in
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
        self._stop = threading.Event()
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
        self.reader.reset_peak()
        cpu0 = self.reader.cpu_time()
        span = self.tracer.start_span(
            "sandbox.exec",
            attributes={
                "process.command_line": command.decode("utf-8", errors="backslashreplace"),
                "process.working_directory": cwd,
                "harness.command.id": command_id,
                "container.id": self.container_id,
                **({"process.user.name": user} if user else {}),
            },
        )
        return CommandProbe(span, trace.set_span_in_context(span), cpu0, cwd)

    def after(
        self, probe: CommandProbe, result: CommandResult, out: HeadTail, err: HeadTail
    ) -> None:
        t_end = time.time_ns()
        span = probe.span
        attrs: dict[str, Any] = {
            "process.exit.code": result.exit_code,
            "harness.timed_out": result.timed_out,
            "harness.oom_killed": result.oom_killed,
            "harness.session_restarted": result.session_restarted,
            "harness.cwd.after": result.cwd,
        }
        for name, buf in (("stdout", out), ("stderr", err)):
            attrs[f"harness.{name}.sha256"] = self.blob(bytes(buf.recorded))
            attrs[f"harness.{name}.bytes"] = buf.total
            if buf.total > len(buf.recorded):
                attrs[f"harness.{name}.recorded_bytes"] = len(buf.recorded)
        cpu1 = self.reader.cpu_time()
        if probe.cpu0 is not None and cpu1 is not None:
            attrs["process.cpu.time"] = round(cpu1 - probe.cpu0, 6)
        peak = self.reader.peak() if self.fast_resources else None
        if peak is not None:
            attrs["harness.memory.peak"] = peak
        span.set_attributes(attrs)
        if result.timed_out:
            span.set_status(Status(StatusCode.ERROR, "timed out"))
        elif result.exit_code != 0:
            span.set_status(Status(StatusCode.ERROR, f"exit code {result.exit_code}"))
        self._diff_into(probe.ctx)
        span.end(end_time=t_end)

    def _diff_into(self, ctx: Any) -> None:
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
            "sandbox.write_file",
            attributes={
                "harness.fs.path": path,
                "harness.fs.size": size,
                "container.id": self.container_id,
            },
        )
        return CommandProbe(span, trace.set_span_in_context(span), None, "")

    def after_write(self, probe: CommandProbe) -> None:
        self._diff_into(probe.ctx)
        probe.span.end()

    def _emit_change(self, c: FileChange, ctx: Any, t: int) -> None:
        path, path_hex = _text(c.path)
        attrs: dict[str, Any] = {"harness.fs.path": path, "harness.fs.op": c.op}
        if path_hex:
            attrs["harness.fs.path.hex"] = path_hex
        state = c.after or c.before
        assert state is not None
        attrs["harness.fs.type"] = state.type
        attrs["harness.fs.size"] = state.size
        attrs["harness.fs.mode"] = f"{state.mode:04o}"
        if c.before is not None and c.after is not None and c.before.mode != c.after.mode:
            attrs["harness.fs.before.mode"] = f"{c.before.mode:04o}"
        for side, st in (("before", c.before), ("after", c.after)):
            if st is None:
                continue
            if st.type == "file" and st.sha256:
                ref = self.blob(st.content) if st.content is not None else f"sha256:{st.sha256}"
                attrs[f"harness.fs.{side}.sha256"] = ref
                if st.content_omitted:
                    attrs["harness.fs.content_omitted"] = True
            if st.type == "symlink" and st.target is not None:
                attrs[
                    "harness.fs.link_target" if side == "after" else "harness.fs.before.link_target"
                ] = _text(st.target)[0]
        if c.old_path is not None:
            attrs["harness.fs.old_path"] = _text(c.old_path)[0]
        if c.diff is not None:
            attrs["harness.fs.diff.sha256"] = self.blob(c.diff)
        self.tracer.start_span("fs.change", context=ctx, attributes=attrs, start_time=t).end(
            end_time=t
        )

    # -- resources -----------------------------------------------------------------------

    def _sample_loop(self) -> None:
        interval = float(self.cfg.resource_interval or 0.5)
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                t0 = time.time_ns()
                sample = self.reader.sample()
                span = self.tracer.start_span(
                    "sandbox.resources", context=self.parent, attributes=sample, start_time=t0
                )
                span.end()
            except Exception:  # noqa: BLE001 - the container may be going away
                if self._stop.is_set():
                    return
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=5)
        if self.differ is not None:
            self.differ.close()
        self.reader.close()

    def span(self, name: str, attributes: dict[str, Any], start_ns: int) -> None:
        self.tracer.start_span(
            name, context=self.parent, attributes=attributes, start_time=start_ns
        ).end()


def current_context() -> Any:
    return otel_context.get_current()
