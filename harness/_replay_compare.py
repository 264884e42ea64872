"""Comparing a replayed step with its record: verdicts, normalizers and diffs.

Pure pieces: what to compare is handed in (two observations and a way to read a blob), so
every rule here is testable without a sandbox. A step is the *same* when its exit code,
timeout, stdout, stderr and file changes (the set of paths with their op, and the content
each changed file ended with) match the record, after normalizers; anything else is named.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from traces import Observation, PathChange

__all__ = [
    "PRESETS",
    "Normalizer",
    "StepVerdict",
    "compare_step",
    "normalizers",
    "text_diff",
]

# Named normalizers for what differs from run to run by nature (README, "Determinism").
PRESETS: dict[str, str] = {
    # ISO dates and times, `date`'s default format, epoch seconds/ms/us/ns
    "timestamps": (
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?"
        r"|\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
        r" +\d{1,2} \d{2}:\d{2}:\d{2}( [A-Z]{2,5})? \d{4}"
        r"|\b\d{10}(\d{3}|\d{6}|\d{9})?\b"
    ),
    # 1.23s, 12 ms, 0m0.004s (as `time` prints it)
    "durations": r"\b\d+m\d+(\.\d+)?s\b|\b\d+(\.\d+)? ?(ns|us|µs|ms|s|sec|seconds|min)\b",
    "pids": r"\b(pid|PID|process)[ =:]*\d+\b|\[\d+\]",
    # mktemp and Python's tempfile names
    "temp-names": r"\btmp(\.[A-Za-z0-9]{6,}|[a-z0-9_]{8})\b",
    "hex-addresses": r"\b0x[0-9a-fA-F]{6,16}\b",
}


@dataclass(frozen=True)
class Normalizer:
    """A pattern whose matches are replaced by ``<name>`` before texts are compared."""

    name: str
    pattern: re.Pattern[str]

    def apply(self, text: str) -> str:
        token = f"<{self.name}>"
        return self.pattern.sub(lambda _m: token, text)


def normalizers(specs: Iterable[str]) -> list[Normalizer]:
    """Normalizers from ``--normalize`` values: a preset's name, or a regular expression.

    Raises:
        ValueError: a value that is neither, with the presets listed.
    """
    out = []
    for spec in specs:
        if spec in PRESETS:
            out.append(Normalizer(spec, re.compile(PRESETS[spec])))
            continue
        try:
            out.append(Normalizer(f"re:{spec}", re.compile(spec)))
        except re.error as exc:
            raise ValueError(
                f"--normalize {spec!r} is neither a preset ({', '.join(PRESETS)}) nor a valid "
                f"regular expression: {exc}"
            ) from None
    return out


@dataclass
class StepVerdict:
    """How one step's replay compared with its record.

    ``verdict`` is ``same``, ``differs``, ``missing`` (recorded, not replayed) or ``extra``
    (replayed, not in the record). ``differences`` names what differs; ``diff`` shows the
    first of them; ``normalized_by`` lists the normalizers that made a difference vanish.
    """

    step: int
    action: str
    verdict: str
    differences: list[str] = field(default_factory=list)
    diff: str = ""
    normalized_by: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.verdict == "same"


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace")


def text_diff(recorded: str, replayed: str, label: str, max_lines: int = 40) -> str:
    """A unified diff, recorded first, cut to ``max_lines`` lines."""
    lines = list(
        difflib.unified_diff(
            recorded.splitlines(keepends=True),
            replayed.splitlines(keepends=True),
            f"recorded {label}",
            f"replayed {label}",
            n=2,
        )
    )
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"... ({len(lines) - max_lines} more diff lines)\n"]
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


class Texts:
    """Compares texts with normalizers, noting which ones made a difference vanish."""

    def __init__(self, norms: Sequence[Normalizer]) -> None:
        self.norms = norms
        self.used: set[str] = set()

    def normalize(self, text: str) -> str:
        for n in self.norms:
            text = n.apply(text)
        return text

    def same(self, a: str, b: str) -> bool:
        if a == b:
            return True
        na, nb = self.normalize(a), self.normalize(b)
        if na != nb:
            return False
        self.used.update(n.name for n in self.norms if n.apply(a) != a or n.apply(b) != b)
        return True


def compare_step(
    step: int,
    action: str,
    recorded: Observation | None,
    replayed: Observation | None,
    blob: Callable[[str], bytes | None],
    norms: Sequence[Normalizer] = (),
) -> StepVerdict:
    """The verdict on one step. ``blob`` reads a blob ref (None when the store lacks it)."""
    if replayed is None:
        return StepVerdict(step, action, "missing", ["not replayed"])
    if recorded is None:
        return StepVerdict(step, action, "extra", ["not in the record"])
    texts = Texts(norms)
    v = StepVerdict(step, action, "same")

    def differ(what: str, diff: str = "") -> None:
        v.differences.append(what)
        if diff and not v.diff:
            v.diff = diff

    if recorded.exit_code != replayed.exit_code:
        differ(f"exit code {recorded.exit_code} -> {replayed.exit_code}")
    if recorded.timed_out != replayed.timed_out:
        differ("timed out" if replayed.timed_out else "no longer timed out")
    for name, a_ref, b_ref in (
        ("stdout", recorded.stdout_ref, replayed.stdout_ref),
        ("stderr", recorded.stderr_ref, replayed.stderr_ref),
    ):
        if a_ref == b_ref:
            continue
        a, b = (
            _decode(blob(a_ref) or b"") if a_ref else "",
            _decode(blob(b_ref) or b"") if b_ref else "",
        )
        if not texts.same(a, b):
            differ(name, text_diff(a, b, name))
    _compare_changes(recorded.changes, replayed.changes, texts, blob, differ)
    v.verdict = "differs" if v.differences else "same"
    v.normalized_by = sorted(texts.used)
    return v


def _compare_changes(
    recorded: Sequence[PathChange],
    replayed: Sequence[PathChange],
    texts: Texts,
    blob: Callable[[str], bytes | None],
    differ: Callable[[str, str], None],
) -> None:
    """The set of changed paths (op included) and each changed file's content after."""

    def keyed(changes: Sequence[PathChange]) -> dict[str, PathChange]:
        return {texts.normalize(_decode(c.path)): c for c in changes}

    a, b = keyed(recorded), keyed(replayed)
    gone = sorted(set(a) - set(b))
    new = sorted(set(b) - set(a))
    if gone or new:
        listed = [f"-{p}" for p in gone[:5]] + [f"+{p}" for p in new[:5]]
        more = len(gone) + len(new) - len(listed)
        differ(
            "files changed: " + ", ".join(listed) + (f" (+{more} more)" if more > 0 else ""),
            "".join(f"- {p}\n" for p in gone) + "".join(f"+ {p}\n" for p in new),
        )
    for path in sorted(set(a) & set(b)):
        x, y = a[path], b[path]
        if x.op != y.op:
            differ(f"{path}: {x.op} -> {y.op}", "")
            continue
        if x.link_target != y.link_target:
            differ(f"{path}: link to {x.link_target!r} -> {y.link_target!r}", "")
            continue
        if x.after_ref == y.after_ref:
            continue
        before = blob(x.after_ref) if x.after_ref else None
        after = blob(y.after_ref) if y.after_ref else None
        if before is None or after is None:
            differ(f"{path}: content", "")  # one side's content was not kept: hashes differ
            continue
        if _binary(before) or _binary(after):
            if before != after:
                differ(
                    f"{path}: content",
                    f"binary {path}: recorded {len(before)} bytes, replayed {len(after)} bytes\n",
                )
            continue
        if not texts.same(_decode(before), _decode(after)):
            differ(f"{path}: content", text_diff(_decode(before), _decode(after), path))


def _binary(data: bytes) -> bool:
    """Not text: a NUL byte, or not UTF-8 (such content is compared as bytes, never diffed)."""
    if b"\0" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
