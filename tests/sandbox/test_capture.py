"""Bounded capture and marker scanning, byte-exact, without a container."""

from __future__ import annotations

import os

import pytest

from sandbox._capture import HeadTail, MarkerScanner


@pytest.mark.parametrize("size", [0, 1, 99, 100])
def test_headtail_keeps_everything_up_to_the_limit(size: int) -> None:
    data = os.urandom(size)
    ht = HeadTail(100)
    for i in range(0, size, 7):
        ht.write(data[i : i + 7])
    assert ht.getvalue() == data
    assert ht.total == size
    assert not ht.truncated


def test_headtail_keeps_head_and_tail_with_marker() -> None:
    data = bytes(range(256)) * 1000
    ht = HeadTail(1000)
    for i in range(0, len(data), 333):
        ht.write(data[i : i + 333])
    value = ht.getvalue()
    assert ht.truncated and ht.total == len(data)
    assert value.startswith(data[:500])
    assert value.endswith(data[-500:])
    assert b"[... harness: %d bytes omitted ...]" % (len(data) - 1000) in value


def test_headtail_memory_stays_bounded() -> None:
    ht = HeadTail(1000)
    for _ in range(10_000):
        ht.write(b"x" * 4096)
    assert len(ht._tail) <= 2 * 500 + 4096
    assert ht.total == 10_000 * 4096


def _scan(chunks: list[bytes], markers: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    sinks = [HeadTail(1 << 20)]
    found: list[bytes] = []
    scanner = MarkerScanner(sinks[0])

    def on_found(trailer: bytes) -> None:
        found.append(trailer)
        sinks.append(HeadTail(1 << 20))
        scanner.sink = sinks[-1]

    for m in markers:
        scanner.expect(m, on_found)
    for c in chunks:
        scanner.feed(c)
    scanner.clear()
    return [s.getvalue() for s in sinks], found


@pytest.mark.parametrize("step", [1, 2, 3, 5, 1000])
def test_scanner_splits_at_markers_across_any_chunking(step: int) -> None:
    stream = b"out\x00put-MARK" + b"MARKAone\x00between MARKBtwo\x00after"
    chunks = [stream[i : i + step] for i in range(0, len(stream), step)]
    parts, trailers = _scan(chunks, [b"MARKA", b"MARKB"])
    assert trailers == [b"one", b"two"]
    assert parts == [b"out\x00put-MARK", b"between ", b"after"]


def test_scanner_without_expected_marker_passes_everything() -> None:
    parts, trailers = _scan([b"abc", b"MARKA\x00"], [])
    assert parts == [b"abcMARKA\x00"] and trailers == []
