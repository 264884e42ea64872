"""Claim: recording every command, file change and resource sample costs almost nothing (at
most 10% on the median round, 15% on the worst), and finding a command's file changes costs
what the command changed, not what the container holds.

(1) What is measured: one script of 200 commands, run back to back in one session (the same
script in every session), after a setup command that makes a git repo of 20 three-line files
in /work. The script repeats this cycle of 9 (``i`` runs over 1..20):

    ls -la src | head -5                                    reads
    cat src/m{i}.py                                         reads
    grep -rn TODO src | wc -l                               reads
    sed -i 's/line a/line A/' src/m{i}.py                   rewrites a file (new inode)
    echo 'note {i}' >> notes.txt                            appends to a file
    python3 -c 'import sys; print(sum(range({i})))'          an interpreter start
    git status --short | head -3                            reads the repo (may touch .git)
    printf 'x = {i}\n' > src/new{i}.py                      creates (later: rewrites) a file
    wc -l src/m{i}.py                                       reads

so about a third of the commands change files, and each command's output is a few lines.
Recording on means: spans and blobs into a real trace store, file changes with contents
and diffs, a resource sample at every command's end and every 0.5 s. Off means no
recording at all. Each round runs eight sessions of the script, in the order off, on, on,
off, on, off, off, on, so that a drift in the machine's load within the round falls on both
sides equally; a round's ratio is the time the 200 commands took with recording on over
off (summed over its four sessions each: this machine's noise is several percent a
session). ``ratio`` is the median of the rounds' ratios, ``ratio_min`` and
``ratio_max`` their spread. The record is committed in the background as it goes; the
final commit when the trial ends is timed separately (``flush_ms``), since it happens once
per trial, not per command.
(2) In a container whose upper layer already holds 20,000 changed files, commands changing 0,
10, 1,000 and 10,000 files: the time to find and read those changes on the command's path
(``differ.changes()``; spans, blobs and diffs are made off it).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import traces  # noqa: E402
from sandbox import DEFAULT_IMAGE, Recording, Sandbox  # noqa: E402

SETUP = (
    "mkdir -p /work/src && cd /work && git init -q . && git config user.email b@x && "
    "git config user.name b && for i in $(seq 1 20); do printf 'line a\\nTODO %s\\nline c\\n' "
    "$i > src/m$i.py; done && git add -A && git commit -qm init"
)


# One round: four sessions a side, in an order whose drift cancels (ABBA BAAB).
ORDER = (False, True, True, False, True, False, False, True)
PER_SIDE = len(ORDER) // 2


def script(n: int) -> list[str]:
    cycle = [
        "ls -la src | head -5",
        "cat src/m{i}.py",
        "grep -rn TODO src | wc -l",
        "sed -i 's/line a/line A/' src/m{i}.py",
        "echo 'note {i}' >> notes.txt",
        "python3 -c 'import sys; print(sum(range({i})))'",
        "git status --short | head -3",
        "printf 'x = {i}\\n' > src/new{i}.py",
        "wc -l src/m{i}.py",
    ]
    return [cycle[k % len(cycle)].format(i=1 + k % 20) for k in range(n)]


def timed_session(
    image: str, commands: list[str], rec: traces.Recorder | None
) -> tuple[float, float]:
    """(seconds the 200 commands took, seconds to commit the record afterwards)."""
    recording = Recording(tracer=rec.tracer(), blobs=rec) if rec else None
    flush = 0.0
    before = _commands(rec) if rec is not None else 0
    with Sandbox(image, record=recording) as sb:
        sb.run(SETUP)
        t = time.perf_counter()
        for c in commands:
            r = sb.run(c)
            assert r.exit_code == 0, (c, r.stderr)
        dt = time.perf_counter() - t
        if rec is not None:
            t = time.perf_counter()
            rec.flush()  # once per trial, when it ends: reported on its own
            flush = time.perf_counter() - t
    if rec is not None:
        assert _commands(rec) - before == len(commands) + 1
    return dt, flush


def _commands(rec: traces.Recorder) -> int:
    rec.flush()
    return int(rec.store.sql("SELECT count(*) AS n FROM commands").n[0])


def diff_costs(image: str, tmp: Path, sizes: list[int]) -> dict[int, float]:
    with (
        traces.Recorder(tmp / "diff.duckdb") as rec,
        Sandbox(
            image, record=Recording(tracer=rec.tracer(), blobs=rec, resource_interval=None)
        ) as sb,
    ):
        assert sb.recorder is not None and sb.recorder.fast_diff, "needs the local fast path"
        r = sb.run("mkdir -p /bulk && cd /bulk && seq -f 'f%g' 20000 | xargs touch", timeout=600)
        assert r.exit_code == 0
        out: dict[int, float] = {}
        for n in sizes:
            samples = []
            for rep in range(3 if n <= 1000 else 1):
                cmd = (
                    "true"
                    if n == 0
                    else (
                        f"mkdir -p /c{n}_{rep} && cd /c{n}_{rep} && seq -f 'g%g' {n} | xargs touch"
                    )
                )
                assert sb.run(cmd, timeout=600).exit_code == 0
                samples.append(sb.recorder.last_diff_s * 1000)
                # Its spans are made off the command's path; not while the next one is timed.
                sb.recorder.wait_recorded()
            out[n] = round(statistics.median(samples), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="5 rounds, 3 diff sizes (about 90 s)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (at least 5; default 7)")
    ap.add_argument("--image", default=DEFAULT_IMAGE)
    args = ap.parse_args()
    rounds = max(5, args.rounds or (5 if args.quick else 7))
    commands = script(200)
    on, off, ratios, flushes = [], [], [], []
    with (
        tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp,
        # One store for the whole run, as `harness run` has: its sessions are its trials.
        traces.Recorder(Path(tmp) / "bench.duckdb") as rec,
    ):
        d = Path(tmp)
        # Not timed: one session a side pays what happens once a process (the image's
        # pages, imports, the store's first appends).
        timed_session(args.image, commands, None)
        timed_session(args.image, commands, rec)
        for _ in range(rounds):
            for record in ORDER:
                dt, flush = timed_session(args.image, commands, rec if record else None)
                if record:
                    on.append(dt)
                    flushes.append(flush)
                else:
                    off.append(dt)
            ratios.append(sum(on[-PER_SIDE:]) / sum(off[-PER_SIDE:]))
        on_ms, off_ms = statistics.median(on) * 1000, statistics.median(off) * 1000
        ratio = statistics.median(ratios)
        print("rounds off:", [round(x * 1000) for x in off], "on:", [round(x * 1000) for x in on])
        print("ratios:", [round(x, 3) for x in ratios])
        flush_ms = statistics.median(flushes) * 1000
        print(
            f"200 commands: recording off {off_ms:.0f} ms, on {on_ms:.0f} ms (medians); "
            f"ratio {ratio:.3f} (median of {rounds} rounds, {min(ratios):.3f}.."
            f"{max(ratios):.3f}); committing the record at trial end took {flush_ms:.0f} ms more"
        )
        sizes = [0, 10, 1000] if args.quick else [0, 10, 1000, 10000]
        costs = diff_costs(args.image, d, sizes)
        for n, ms in costs.items():
            print(
                f"diff of a command changing {n:>5} files in a 20,000-file upper layer: {ms:.2f} ms"
            )
    result = {
        "on_ms": round(on_ms, 1),
        "off_ms": round(off_ms, 1),
        "ratio": round(ratio, 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "rounds": rounds,
        "flush_ms": round(flush_ms, 1),
    }
    result.update({f"diff_ms_{n}": ms for n, ms in costs.items()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
