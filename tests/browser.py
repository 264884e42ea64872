"""A headless Chromium for tests and benchmarks, driven over the Chrome DevTools Protocol.

Debian's ``chromium`` package is the browser (no browser download, no Playwright); the
protocol runs over a pipe (``--remote-debugging-pipe``: JSON messages ended by a NUL byte on
file descriptors 3 and 4), so there is no port to find or share and no websocket library to
install. A :class:`Page` records what a test asserts on: console errors (``console.error``,
uncaught exceptions, the browser's own error log, which includes Content-Security-Policy
violations) and every network request the page made.

Waiting is always for a condition with a deadline (an expression the page evaluates, an
event), never a sleep.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "Browser",
    "BrowserError",
    "Page",
    "browser_for_tests",
    "find_chromium",
    "install_chromium",
]

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Debian's /usr/bin/chromium is a shell wrapper that adds flags of its own (extensions,
# remote extensions); the browser itself is here.
DEBIAN_BINARY = Path("/usr/lib/chromium/chromium")


class BrowserError(RuntimeError):
    """The browser could not be started, answered with an error, or did not answer in time."""


def find_chromium() -> str | None:
    """The Chromium to drive: ``$HARNESS_CHROMIUM``, Debian's binary, or one on PATH."""
    explicit = os.environ.get("HARNESS_CHROMIUM")
    if explicit:
        return explicit
    if DEBIAN_BINARY.is_file() and os.access(DEBIAN_BINARY, os.X_OK):
        return str(DEBIAN_BINARY)
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def install_chromium(timeout: float = 900) -> tuple[str | None, str]:
    """Install Debian's ``chromium`` with apt when it is missing and this process may
    (root, apt-get present): (the browser or None, what happened)."""
    found = find_chromium()
    if found:
        return found, f"found {found}"
    if shutil.which("apt-get") is None:
        return None, "no chromium on PATH and no apt-get to install it with"
    if os.geteuid() != 0:
        return None, "no chromium on PATH, and installing it needs root (apt-get install chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:  # the package lists may be missing or stale
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=timeout)
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=timeout)
    found = find_chromium()
    if found:
        return found, f"installed {found}"
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return None, "apt-get install chromium failed: " + " / ".join(tail)


def browser_for_tests(profile: Path) -> Iterator[Browser]:
    """A browser for a test module's fixture (``yield from``): Debian's chromium, installed
    with apt when missing and possible. Where it cannot be had the tests are skipped, saying
    why, except under CI, where a missing browser fails them: CI must run them."""
    import pytest

    binary, what = install_chromium()
    if binary is None:
        message = f"no headless Chromium for the browser tests: {what}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: these tests must run there)", pytrace=False)
        pytest.skip(message)
    with Browser(binary, profile) as browser:
        yield browser


class Browser:
    """One headless Chromium process; :meth:`page` opens a fresh tab.

    Args:
        binary: the browser executable (:func:`find_chromium`).
        profile: an empty folder for the browser's profile.
        timeout: default seconds to wait for any answer.
    """

    def __init__(self, binary: str, profile: Path, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._answers: dict[int, dict[str, Any]] = {}
        self._pages: dict[str, Page] = {}
        self._closed = False
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds() -> None:  # the pipe's ends where Chromium looks for them
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        args = [
            binary,
            "--headless",
            "--remote-debugging-pipe",
            "--no-sandbox",  # root, in a container
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--mute-audio",
            "--hide-scrollbars",
            "--window-size=1280,900",
            "about:blank",
        ]
        self._log = open(profile / "chromium.log", "wb")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                pass_fds=(to_browser_r, from_browser_w, 3, 4),
                preexec_fn=fds,
            )
        except OSError as exc:
            self._log.close()
            raise BrowserError(f"cannot start {binary}: {exc}") from None
        finally:
            os.close(to_browser_r)
            os.close(from_browser_w)
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()
        self.version = self.call("Browser.getVersion")["product"]

    # -- the protocol ----------------------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                data = os.read(self._from_browser, 1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            buffer += data
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                with self._lock:
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        page = self._pages.get(message.get("sessionId", ""))
                        if page is not None:
                            page._event(message)
                    self._lock.notify_all()
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send a command and wait for its answer; its ``result``.

        Raises:
            BrowserError: the browser answered with an error, closed, or took too long.
        """
        msg_id = next(self._ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._lock:
            while msg_id not in self._answers:
                left = deadline - time.monotonic()
                if self._closed:
                    raise BrowserError(f"the browser closed while answering {method}")
                if left <= 0:
                    raise BrowserError(f"no answer to {method} in {timeout or self.timeout} s")
                self._lock.wait(left)
            answer = self._answers.pop(msg_id)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error'].get('message')}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    # -- pages -----------------------------------------------------------------------------

    @contextmanager
    def page(self, width: int = 1280, height: int = 900) -> Iterator[Page]:
        """A fresh tab that records console errors and network requests; closed after."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session)
        with self._lock:
            self._pages[session] = page
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                page.call(f"{domain}.enable")
            page.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            yield page
        finally:
            with self._lock:
                self._pages.pop(session, None)
            if not self._closed:
                self.call("Target.closeTarget", {"targetId": target})

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.call("Browser.close", timeout=10)
            except BrowserError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        os.close(self._to_browser)
        self._reader.join(timeout=10)
        os.close(self._from_browser)
        self._log.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    """One tab: navigate, evaluate, click, screenshot; and what it logged and requested.

    ``errors`` are console errors, uncaught exceptions and the browser's error log entries;
    ``requests`` every URL the page asked for (its own document included).
    """

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.events: list[str] = []

    def _event(self, message: dict[str, Any]) -> None:  # under the browser's lock
        method, params = message["method"], message.get("params", {})
        self.events.append(method)
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            self.errors.append(
                "console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in args)
            )
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.errors.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(
                f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}"
            )
        elif method == "Network.requestWillBeSent":
            self.requests.append(params.get("request", {}).get("url", ""))

    def call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        return self.browser.call(method, params, self.session, timeout)

    def wait_event(self, method: str, seen: int, timeout: float = 30.0) -> None:
        """Wait until the page has had more than ``seen`` events named ``method``."""
        deadline = time.monotonic() + timeout
        lock = self.browser._lock
        with lock:
            while self.events.count(method) <= seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"no {method} in {timeout} s")
                lock.wait(left)

    def goto(self, url: str, timeout: float = 30.0) -> None:
        """Navigate and wait for the page's load event."""
        with self.browser._lock:
            loads = self.events.count("Page.loadEventFired")
        answer = self.call("Page.navigate", {"url": url}, timeout=timeout)
        if answer.get("errorText"):
            raise BrowserError(f"cannot open {url}: {answer['errorText']}")
        self.wait_event("Page.loadEventFired", loads, timeout)

    def evaluate(self, expression: str, timeout: float | None = None) -> Any:
        """The value of a JavaScript expression (awaited when it is a promise).

        Raises:
            BrowserError: the expression threw (the message has the exception).
        """
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{expression[:80]!r} threw: {text}")
        return result.get("result", {}).get("value")

    def wait_for(self, condition: str, timeout: float = 10.0) -> Any:
        """Wait until ``condition`` (a JavaScript expression) is truthy in the page; its value.
        The page checks it every 10 ms, so this answers as soon as it holds."""
        script = f"""new Promise((resolve, reject) => {{
            const stop = performance.now() + {timeout * 1000};
            const check = () => {{
                let value;
                try {{ value = ({condition}); }} catch (e) {{ value = undefined; }}
                if (value) return resolve(value);
                if (performance.now() > stop) return reject(new Error("timed out"));
                setTimeout(check, 10);
            }};
            check();
        }})"""
        try:
            return self.evaluate(script, timeout=timeout + 10)
        except BrowserError as exc:
            raise BrowserError(f"{condition!r} did not hold within {timeout} s ({exc})") from None

    def box(self, selector: str) -> dict[str, float]:
        """The element's box in page coordinates (scrolled into view first).

        Raises:
            BrowserError: no element matches.
        """
        found = self.evaluate(
            f"""(() => {{
                const e = document.querySelector({json.dumps(selector)});
                if (!e) return null;
                e.scrollIntoView({{block: "center"}});
                const r = e.getBoundingClientRect();
                return {{x: r.left, y: r.top, width: r.width, height: r.height,
                         sx: window.scrollX, sy: window.scrollY}};
            }})()"""
        )
        if not found:
            raise BrowserError(f"no element matches {selector!r}")
        return dict(found)

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the middle of the element."""
        b = self.box(selector)
        x, y = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            params: dict[str, Any] = {"type": kind, "x": x, "y": y}
            if kind != "mouseMoved":
                params.update(button="left", clickCount=1)
            self.call("Input.dispatchMouseEvent", params)

    def type_text(self, selector: str, text: str) -> None:
        """Focus the element and type ``text`` as key presses would."""
        self.click(selector)
        self.call("Input.insertText", {"text": text})

    def screenshot(
        self, path: Path, selector: str | None = None, max_height: float = 8000.0
    ) -> Path:
        """A PNG at ``path`` of the element (its first ``max_height`` pixels), or of the
        viewport."""
        params: dict[str, Any] = {"format": "png"}
        if selector is not None:
            b = self.box(selector)
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": b["x"] + b["sx"],
                "y": b["y"] + b["sy"],
                "width": max(1.0, b["width"]),
                "height": max(1.0, min(b["height"], max_height)),
                "scale": 1,
            }
        data = self.call("Page.captureScreenshot", params, timeout=60)["data"]
        path.write_bytes(base64.b64decode(data))
        return path
