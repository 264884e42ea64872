"""Claim: a suite run costs little more than the containers it needs.

40 trials of a trivial task with the oracle agent at concurrency 4, recording on (every
command, file change and resource sample into a real trace store), versus the floor measured
in the same run: the same number of containers from the same image created, one command
exec'd in each and removed, with the Docker SDK at the same concurrency. Each round measures
both, in alternating order (the floor first in even rounds, the suite first in odd ones), so
that drift in the machine's load falls on both sides; a round's ratio is suite / floor. The
last line is one JSON object: ``ratio`` is the median of the rounds' ratios (how many times
longer the suite took than the floor), ``ratio_min`` and ``ratio_max`` their spread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker  # noqa: E402

import traces  # noqa: E402
from harness import RunConfig, Task, load_task, run_suite, task_image  # noqa: E402


def trivial_task(root: Path) -> Path:
    d = root / "trivial"
    files = {
        # No network, as the floor has none (a trial with network also creates its own).
        "task.toml": "[agent]\ntimeout_sec = 60\n[verifier]\ntimeout_sec = 60\n"
        "[environment]\nallow_internet = false\n",
        "instruction.md": "Write hello to /tmp/out.",
        "environment/Dockerfile": "FROM harness-base:bookworm\n",
        "solution/solve.sh": "#!/bin/bash\necho hello > /tmp/out\n",
        "tests/test.sh": '#!/bin/bash\n[ "$(cat /tmp/out)" = hello ] && echo 1 > '
        "/logs/verifier/reward.txt || echo 0 > /logs/verifier/reward.txt\n",
    }
    for rel, text in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


def floor(image: str, n: int, concurrency: int) -> float:
    engine = docker.from_env(timeout=120)  # the floor talks to Docker directly

    def one(_: int) -> None:
        c = engine.containers.run(
            image,
            ["sleep", "infinity"],
            detach=True,
            network_mode="none",
            mem_limit="1g",
            nano_cpus=10**9,
        )
        try:
            code, _ = c.exec_run(["bash", "-c", "echo hello > /tmp/out && cat /tmp/out"])
            assert code == 0
        finally:
            c.remove(force=True)

    t = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - t


def suite(task: Task, n: int, conc: int, root: Path, rnd: int) -> float:
    cfg = RunConfig(tasks=[str(task.path)], agent="oracle", trials=n, concurrency=conc)
    with traces.Recorder(root / f"t{rnd}.duckdb") as rec:
        t = time.perf_counter()
        results = run_suite([task], cfg, rec, f"run-bench-{rnd}")
        rec.flush()
        took = time.perf_counter() - t
    assert all(r.passed for r in results), [r.error for r in results if not r.passed]
    rows = traces.TraceStore(root / f"t{rnd}.duckdb").sql("SELECT count(*) AS n FROM trials").n[0]
    assert rows == n
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="12 trials a round (about 60 s)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (at least 5)")
    args = ap.parse_args()
    n, conc = (12, 4) if args.quick else (40, 4)
    rounds = max(5, args.rounds)
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        root = Path(tmp)
        task, _ = load_task(trivial_task(root))
        assert task is not None
        image = task_image(task)  # built before the clock starts, as a cached image would be
        floor(image.tag, 4, conc)  # warm the engine's image and container paths
        floors, suites, ratios = [], [], []
        for rnd in range(rounds):
            if rnd % 2 == 0:
                floors.append(floor(image.tag, n, conc))
                suites.append(suite(task, n, conc, root, rnd))
            else:
                suites.append(suite(task, n, conc, root, rnd))
                floors.append(floor(image.tag, n, conc))
            ratios.append(suites[-1] / floors[-1])
        floor_s, suite_s = statistics.median(floors), statistics.median(suites)
    ratio = statistics.median(ratios)
    print(
        f"{n} trials at concurrency {conc}: suite {suite_s:.1f} s, floor {floor_s:.1f} s "
        f"(medians of {', '.join(f'{x:.1f}' for x in suites)} and "
        f"{', '.join(f'{x:.1f}' for x in floors)}); ratio {ratio:.3f} (median of {rounds} "
        f"rounds, {min(ratios):.3f}..{max(ratios):.3f})"
    )
    print(
        json.dumps(
            {
                "trials_per_min": round(n / suite_s * 60, 1),
                "floor_trials_per_min": round(n / floor_s * 60, 1),
                "ratio": round(ratio, 3),
                "ratio_min": round(min(ratios), 3),
                "ratio_max": round(max(ratios), 3),
                "rounds": rounds,
            }
        )
    )


if __name__ == "__main__":
    main()
