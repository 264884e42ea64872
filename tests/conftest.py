"""Shared fixtures. Tests talk to a real Docker engine; without one they fail, never skip."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sandbox import DEFAULT_IMAGE, Sandbox, engine_answers


@pytest.fixture(scope="session")
def engine() -> None:
    if not engine_answers(timeout=10):
        pytest.fail(
            "no Docker engine answers: run the suite with `make test`, which starts one "
            f"(DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}, CI={os.environ.get('CI')})",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def base_image(engine: None) -> str:
    from sandbox import image_exists

    if not image_exists(DEFAULT_IMAGE):
        pytest.fail(
            f"{DEFAULT_IMAGE} is not built: run `make test` or `harness setup`", pytrace=False
        )
    return DEFAULT_IMAGE


@pytest.fixture
def sb(base_image: str) -> Iterator[Sandbox]:
    with Sandbox(base_image, timeout=60) as box:
        yield box


def harbor_fixtures() -> Path:
    """The real Harbor task folders in the shared fixtures, beside this checkout."""
    here = Path(__file__).resolve().parents[1]
    for base in (here.parent, *here.parents):
        candidate = base / "shared" / "fixtures" / "harbor-examples"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"shared/fixtures/harbor-examples not found beside {here} or above it; the tests need "
        "the shared fixtures next to the checkout"
    )


ROOT = Path(__file__).resolve().parents[1]


def harness_cli(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The `harness` command line as a user runs it: a separate process, text output."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector: it parses every export request as the protobuf it must be."""

    received: list[ExportTraceServiceRequest] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        type(self).received.append(req)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """A local OTLP collector: its base URL, and the export requests it received."""
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Collector.received
    server.shutdown()


def otlp_spans(received: list[ExportTraceServiceRequest]) -> list[Any]:
    """Every span a collector received."""
    return [
        s
        for req in received
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
