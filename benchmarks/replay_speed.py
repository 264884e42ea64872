"""Claim: replaying a recorded trial costs little more than re-running its commands.

One trial of a small task is recorded with the ``scripted`` agent taking 50 actions: a mix of
file writes through the shell, reads and greps, a little Python, a directory listing and
short sleeps (``ACTIONS``). Each round then replays it (environment replay: a fresh sandbox
from the recorded image, the 50 steps re-issued, each compared with the record, the verifier
run and the reward compared; recorded as a trial of its own) through the Python API, and
measures the floor in the same round: the sum of the recorded commands' durations (the
agent's and the verifier's) plus one container start (create and start of the same image
with the Docker SDK, and the first exec in it). A round's ratio is replay / floor; the last
line is one JSON object with the medians (``replay_s``, ``floor_s``, ``ratio``) and the
ratio's spread (``ratio_min``, ``ratio_max``).
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

import docker  # noqa: E402

import traces  # noqa: E402
from harness import RunConfig, load_task, replay_trial, run_suite  # noqa: E402

ACTIONS = [
    cmd
    for i in range(10)
    for cmd in (
        f"mkdir -p /work/d{i} && printf 'line %s\\n' $(seq 1 200) > /work/d{i}/f.txt",
        f"grep -c 'line 1' /work/d{i}/f.txt",
        f"python3 -c 'print(sum(range({i} * 1000)))'",
        "ls -la /work | head -20",
        "sleep 0.02",
    )
]


def small_task(root: Path) -> Path:
    d = root / "replayable"
    files = {
        "task.toml": "[agent]\ntimeout_sec = 300\n[verifier]\ntimeout_sec = 60\n"
        "[environment]\nallow_internet = false\n",
        "instruction.md": "Fill /work.",
        "environment/Dockerfile": "FROM harness-base:bookworm\n",
        "tests/test.sh": "#!/bin/bash\n[ -f /work/d9/f.txt ] && echo 1 > "
        "/logs/verifier/reward.txt || echo 0 > /logs/verifier/reward.txt\n",
    }
    for rel, text in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


def container_start(image: str) -> float:
    """Seconds to create and start a container and run the first command in it."""
    engine = docker.from_env(timeout=120)
    t = time.perf_counter()
    c = engine.containers.run(
        image, ["sleep", "infinity"], detach=True, network_mode="none", mem_limit="1g"
    )
    try:
        code, _ = c.exec_run(["true"])
        took = time.perf_counter() - t
        assert code == 0
    finally:
        c.remove(force=True)
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 rounds, for CI (under 60 s)")
    args = ap.parse_args()
    rounds = 2 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        script = root / "script.yaml"
        script.write_text(json.dumps({"commands": ACTIONS}))
        task, problems = load_task(small_task(root))
        assert task is not None, problems
        store = traces.TraceStore(root / "t.duckdb")
        cfg = RunConfig(tasks=[str(task.path)], agent="scripted", agent_options={"script": script})
        with traces.Recorder(store) as rec:
            (result,) = run_suite([task], cfg, rec, "run-replay-bench")
        assert result.outcome == "passed", result.error
        trial = store.trial(result.trial_id)
        recorded_s = sum(c.duration_ms for c in store.commands(trial.trial_id)) / 1000
        assert len(store.actions(trial.trial_id)) == len(ACTIONS)
        image = str(trial.image)
        replays, floors, ratios = [], [], []
        for _ in range(rounds):
            start = container_start(image)
            floor_s = recorded_s + start
            t = time.perf_counter()
            report = replay_trial(store, trial.trial_id)
            replay_s = time.perf_counter() - t
            assert report.identical, [s for s in report.steps if not s.same][:3]
            replays.append(replay_s)
            floors.append(floor_s)
            ratios.append(replay_s / floor_s)
            print(
                f"replay {replay_s:.3f} s, floor {floor_s:.3f} s (commands {recorded_s:.3f} s "
                f"+ start {start:.3f} s), ratio {replay_s / floor_s:.3f}",
                file=sys.stderr,
            )
    print(
        json.dumps(
            {
                "replay_s": round(statistics.median(replays), 3),
                "floor_s": round(statistics.median(floors), 3),
                "ratio": round(statistics.median(ratios), 3),
                "ratio_min": round(min(ratios), 3),
                "ratio_max": round(max(ratios), 3),
                "actions": len(ACTIONS),
                "rounds": rounds,
            }
        )
    )


if __name__ == "__main__":
    main()
