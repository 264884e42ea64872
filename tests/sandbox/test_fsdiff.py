"""The differ's pure pieces."""

from __future__ import annotations

import random
import re

from sandbox._fsdiff import unified_diff


def _apply(before: list[str], diff: str) -> list[str]:
    """Apply a unified diff strictly: every context and removed line must be where its hunk
    header says."""
    lines = diff.splitlines(keepends=True)
    assert lines[0].startswith("--- ") and lines[1].startswith("+++ "), lines[:2]
    out: list[str] = []
    pos = 0  # lines of ``before`` consumed
    i = 2
    while i < len(lines):
        m = re.fullmatch(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@\n", lines[i])
        assert m, lines[i]
        old_len = int(m[2]) if m[2] is not None else 1
        new_len = int(m[4]) if m[4] is not None else 1
        start = int(m[1]) - (1 if old_len else 0)
        assert start >= pos
        out += before[pos:start]
        pos = start
        i += 1
        seen_old = seen_new = 0
        while i < len(lines) and not lines[i].startswith("@@"):
            kind, text = lines[i][0], lines[i][1:]
            if i + 1 < len(lines) and lines[i + 1].startswith("\\"):
                text = text.rstrip("\n")  # "\ No newline at end of file"
            if kind in " -":
                assert before[pos] == text, (pos, before[pos], text)
                pos += 1
                seen_old += 1
            if kind in " +":
                out.append(text)
                seen_new += 1
            i += 2 if i + 1 < len(lines) and lines[i + 1].startswith("\\") else 1
        assert (seen_old, seen_new) == (old_len, new_len), lines
        assert len(out) == int(m[3]) - (1 if new_len else 0) + new_len
    return out + before[pos:]


def test_a_diff_turns_the_old_text_into_the_new_for_every_kind_of_edit() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        before = [f"line {rng.randrange(8)}\n" for _ in range(rng.randrange(40))]
        after = list(before)
        for _ in range(rng.randrange(1, 5)):
            op, at = rng.randrange(3), rng.randrange(len(after) + 1)
            if op == 0:
                after[at:at] = [f"new {rng.randrange(99)}\n"] * rng.randrange(1, 3)
            elif op == 1:
                del after[at : at + rng.randrange(1, 4)]
            else:
                after[at : at + 1] = [f"changed {rng.randrange(99)}\n"]
        if rng.random() < 0.2 and after:
            after[-1] = after[-1].rstrip("\n")  # no newline at the end
        a, b = "".join(before).encode(), "".join(after).encode()
        d = unified_diff(b"/w/f.txt", a, b)
        if a == b:
            assert d is None
            continue
        assert d is not None
        text = d.decode()
        assert text.startswith("--- a/w/f.txt\n+++ b/w/f.txt\n")
        got = _apply(a.decode().splitlines(keepends=True), text)
        assert "".join(got) == b.decode(), (before, after, text)


def test_an_append_to_a_long_file_is_one_hunk_at_its_end() -> None:
    before = b"".join(b"entry %d\n" % i for i in range(100_000))
    d = unified_diff(b"/log", before, before + b"entry new\n")
    assert d is not None
    assert d.splitlines()[2:] == [
        b"@@ -99998,3 +99998,4 @@",
        b" entry 99997",
        b" entry 99998",
        b" entry 99999",
        b"+entry new",
    ]
