"""A model that answers from a record: the endpoint a model replay points the agent at.

The agent's own code runs again, unchanged, against an OpenAI-compatible server on
127.0.0.1 that answers its N-th request with the N-th recorded response, if, and only if,
the request is the one recorded. Anything else is a divergence, answered with an error so the
agent stops there; nothing is ever sent on to a live model. Normalizers apply to requests
as to outputs: a request that differs from the record only in what they cover (a duration
in a command's output the agent passed on) is the recorded one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._replay_compare import Normalizer, Texts, text_diff

__all__ = ["ModelDivergence", "RecordedModel", "RecordedTurn"]


@dataclass(frozen=True)
class RecordedTurn:
    """One recorded model call: the request as sent and the response body (None when the
    call got no answer)."""

    request: dict[str, Any] | None
    response: bytes | None


@dataclass(frozen=True)
class ModelDivergence:
    """The first request that was not the recorded one."""

    call: int  # 1-based
    reason: str
    diff: str  # recorded request vs replayed, as a unified diff of pretty JSON


def _pretty(body: Any) -> str:
    return json.dumps(body, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


class RecordedModel:
    """Serves recorded responses in order; use as a context manager for its ``base_url``."""

    def __init__(self, turns: list[RecordedTurn], norms: Sequence[Normalizer] = ()) -> None:
        self.turns = turns
        self.texts = Texts(norms)
        self.requests = 0  # requests received
        self.divergence: ModelDivergence | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> RecordedModel:
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server spelling
                size = int(self.headers.get("content-length") or 0)
                status, body = model.answer(self.path, self.rfile.read(size))
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="harness-replay-model"
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answer(self, path: str, raw: bytes) -> tuple[int, bytes]:
        """(HTTP status, body) for one request."""
        with self._lock:
            self.requests += 1
            n = self.requests
            if self.divergence is not None:
                return self._refuse("the replay already diverged")
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", errors="backslashreplace")
            if not path.rstrip("/").endswith(("/responses", "/chat/completions")):
                return self._diverge(n, f"the agent called {path}, which the record never did")
            if n > len(self.turns):
                return self._diverge(
                    n,
                    f"the agent made model call {n}; the record has {len(self.turns)}",
                    "",
                    _pretty(body),
                )
            turn = self.turns[n - 1]
            if turn.request is not None and not (
                body == turn.request or self.texts.same(_pretty(turn.request), _pretty(body))
            ):
                return self._diverge(
                    n,
                    f"model call {n} asked something else than the record",
                    _pretty(turn.request),
                    _pretty(body),
                )
            if turn.response is None:
                error = {"error": {"message": "the recorded call got no answer", "type": "server"}}
                return 500, json.dumps(error).encode()
            return 200, turn.response

    def _diverge(
        self, n: int, reason: str, recorded: str = "", replayed: str = ""
    ) -> tuple[int, bytes]:
        diff = text_diff(recorded, replayed, f"request {n}", max_lines=80)
        self.divergence = ModelDivergence(n, reason, diff)
        return self._refuse(reason)

    @staticmethod
    def _refuse(reason: str) -> tuple[int, bytes]:
        body = {
            "error": {
                "message": f"replay: {reason}",
                "type": "invalid_request_error",
                "code": "replay_divergence",
            }
        }
        return 400, json.dumps(body).encode()
