"""Claim: a command through a live session's run() is at least 25x faster than docker exec.

Measured in one run on one container: the median round trip of `true` through
``Sandbox.run()`` versus the Docker SDK's ``container.exec_run(["true"])``; and the time from
nothing to the first command's result, ``Sandbox`` versus ``docker run -d`` + one exec_run.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker  # noqa: E402

from sandbox import DEFAULT_IMAGE, Sandbox  # noqa: E402


def ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer samples (under 30 s)")
    ap.add_argument("--image", default=DEFAULT_IMAGE)
    args = ap.parse_args()
    n_run, n_exec, n_start = (300, 30, 3) if args.quick else (3000, 200, 10)
    engine = docker.from_env(timeout=120)  # the baseline talks to Docker directly

    with Sandbox(args.image) as sb:
        for _ in range(20):  # warm up
            sb.run("true")
        run_s = []
        for _ in range(n_run):
            t = time.perf_counter()
            r = sb.run("true")
            run_s.append(time.perf_counter() - t)
            assert r.exit_code == 0
        container = engine.containers.get(sb.container_id)
        exec_s = []
        for _ in range(n_exec):
            t = time.perf_counter()
            code, _ = container.exec_run(["true"])
            exec_s.append(time.perf_counter() - t)
            assert code == 0
    print(f"run('true'):        median {ms(run_s):8.3f} ms over {n_run}")
    print(f"exec_run(['true']): median {ms(exec_s):8.3f} ms over {n_exec}")

    start_s, docker_start_s = [], []
    for _ in range(n_start):
        t = time.perf_counter()
        with Sandbox(args.image) as sb:
            sb.run("true")
            start_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        c = engine.containers.run(
            args.image, ["sleep", "infinity"], detach=True, network_mode="none"
        )
        try:
            c.exec_run(["true"])
            docker_start_s.append(time.perf_counter() - t)
        finally:
            c.remove(force=True)
    print(
        f"start to first result: Sandbox {ms(start_s):.1f} ms, "
        f"docker run -d + exec_run {ms(docker_start_s):.1f} ms (median of {n_start})"
    )

    result = {
        "run_ms": ms(run_s),
        "exec_run_ms": ms(exec_s),
        "speedup": round(statistics.median(exec_s) / statistics.median(run_s), 1),
        "start_ms": ms(start_s),
        "docker_start_ms": ms(docker_start_s),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
