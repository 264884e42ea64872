"""`harness show` on real trials: a run of three tasks (one passes, one fails, one runs out of
time after an OOM kill, a non-UTF-8 file name and output full of markup), told from the store,
and from an imported copy with no Docker engine reachable."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import traces
from tests.conftest import harness_cli

TEST_SH = (
    "echo 'verifier says [bold]hi[/]'\n"
    "test -f /tmp/done && echo 1 > /logs/verifier/reward.txt || "
    "echo 0 > /logs/verifier/reward.txt\n"
)
STORY = [
    # Markup, 40 lines to cut, an ANSI escape at the end and a line on stderr.
    "printf '[red]x[/red]\\n'; seq 1 40; printf '\\033[31mred\\n'; echo to-stderr >&2",
    "mkdir -p /app && cd /app && touch $'caf\\xe9' '[bold]x' && printf 'a\\nb\\n' > notes.txt",
    "cd /app && printf 'a\\nc\\n' > notes.txt",
    "python3 -c 'x = bytearray(1024 * 2**20)'",  # past the task's 256 MB
    "sleep 30",  # past the agent's 5 s
]


@dataclass(frozen=True)
class Recorded:
    db: Path
    run_id: str
    trials: dict[str, str]  # task -> trial id


def _task(suite: Path, name: str, toml: str) -> None:
    for rel, text in {
        "task.toml": toml,
        "instruction.md": "Do the thing.",
        "environment/Dockerfile": "FROM harness-base:bookworm\n",
        "solution/solve.sh": "true\n",
        "tests/test.sh": TEST_SH,
    }.items():
        (suite / name / rel).parent.mkdir(parents=True, exist_ok=True)
        (suite / name / rel).write_text(text)


@pytest.fixture(scope="module")
def recorded(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    tmp = tmp_path_factory.mktemp("show")
    suite = tmp / "suite"
    quick = "[agent]\ntimeout_sec = 30\n[verifier]\ntimeout_sec = 30\n"
    _task(suite, "ok", quick)
    _task(suite, "no", quick)
    _task(
        suite,
        "story",
        "[agent]\ntimeout_sec = 5\n[verifier]\ntimeout_sec = 30\n[environment]\nmemory_mb = 256\n",
    )
    script = tmp / "script.yaml"
    script.write_text(yaml.safe_dump({"tasks": {"ok": ["touch /tmp/done"], "story": STORY}}))
    db = tmp / "t.duckdb"
    res = harness_cli(
        "run", str(suite), "--agent", "scripted", "--script", str(script),
        "--concurrency", "3", "--db", str(db), "--json",
    )  # fmt: skip
    assert res.returncode == 1, res.stderr  # the story trial ends in agent_timeout
    run_id = json.loads(res.stdout.splitlines()[-1])["run_id"]
    trials = {t.task or "": t.trial_id for t in traces.TraceStore(db).trials(run_id)}
    assert sorted(trials) == ["no", "ok", "story"]
    return Recorded(db, run_id, trials)


def show(rec: Recorded, *args: str, db: Path | None = None) -> tuple[int, str, str]:
    # No Docker engine is reachable: show reads the store alone.
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    res = harness_cli("show", *args, "--db", str(db or rec.db), env=env, timeout=120)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, res.stdout, res.stderr


def steps_of(text: str) -> dict[int, str]:
    """The printed story cut into its steps' blocks, by step number."""
    blocks = re.split(r"\n(?=step \d+  )", text)
    return {int(m.group(1)): b for b in blocks if (m := re.match(r"step (\d+)  ", b)) is not None}


def test_a_trial_story_shows_the_timeout_the_oom_and_the_odd_name(recorded: Recorded) -> None:
    code, out, err = show(recorded, recorded.trials["story"][:8])
    assert code == 0, err
    assert "task story" in out and "outcome agent_timeout" in out
    steps = steps_of(out)
    assert sorted(steps) == [1, 2, 3, 4, 5]
    # Step 1: markup in output printed as is; an ANSI escape spelled out, never sent.
    assert "$ printf '[red]x[/red]\\n'" in steps[1]
    assert "\n    [red]x[/red]\n" in steps[1]
    assert "\\x1b[31mred" in steps[1] and "\x1b" not in out
    assert "stdout  42 lines" in steps[1] and "to-stderr" in steps[1]
    assert "… 32 lines (91 B) left out" in steps[1]  # 5..36: 5 * 2 + 27 * 3 bytes
    assert f"--step 1 --db {recorded.db}` shows more" in steps[1]
    # Step 2: a file name that is not UTF-8, and one that looks like markup.
    assert "added    /app/caf\\xe9" in steps[2]
    assert "added    /app/[bold]x" in steps[2]
    assert "+a\n" in steps[2]  # the added text file's content
    # Step 3: the diff of the modified file.
    assert "modified /app/notes.txt" in steps[3]
    assert "\n      -b\n      +c\n" in steps[3]
    # Step 4: killed for memory, with its peak; step 5: out of time.
    assert "exit 137" in steps[4] and "OOM killed" in steps[4]
    peak = re.search(r"peak memory ([\d.]+) MiB", steps[4])
    assert peak is not None and float(peak.group(1)) > 200  # up to the 256 MB limit
    assert "timed out" not in steps[4]
    assert "exit 124" in steps[5] and "timed out" in steps[5] and "OOM" not in steps[5]
    # The verifier's output (markup again), then the score.
    assert "verifier  $ bash /tests/test.sh" in out
    assert "verifier says [bold]hi[/]" in out
    assert "result outcome agent_timeout  reward 0" in out


def test_json_is_one_document_with_the_steps(recorded: Recorded) -> None:
    code, out, err = show(recorded, recorded.trials["story"], "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["kind"] == "trial" and doc["trial"]["outcome"] == "agent_timeout"
    steps = doc["steps"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5] and doc["step_count"] == 5
    assert [s["oom_killed"] for s in steps] == [False, False, False, True, False]
    assert [s["timed_out"] for s in steps] == [False, False, False, False, True]
    assert "/app/caf\\xe9" in [c["path"] for c in steps[1]["changes"]]
    assert steps[0]["stdout"]["head"][0] == "[red]x[/red]"
    assert doc["verifier"][0]["command"] == "bash /tests/test.sh"


def test_one_step_in_full_and_a_step_that_is_not_there(recorded: Recorded) -> None:
    code, out, err = show(recorded, recorded.trials["story"], "--step", "1")
    assert code == 0, err
    assert list(steps_of(out)) == [1]
    lines = out.splitlines()
    assert all(f"    {i}" in lines for i in range(1, 41))  # every line of seq, none left out
    assert "left out" not in out and "verifier" not in out
    assert "step 1 of 5" in out
    code, out, err = show(recorded, recorded.trials["story"], "--step", "9")
    assert code == 2 and "no step 9: its steps are 1-5" in err and out == ""


def test_a_run_lists_its_trials_failures_first(recorded: Recorded) -> None:
    code, out, err = show(recorded, recorded.run_id)
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.startswith("│")]
    tasks = [row.split("│")[2].strip() for row in rows]
    assert tasks == ["no", "story", "ok"]  # failed, then an error, then passed
    assert "agent_timeout" in rows[1] and "the agent ran out of time" in rows[1]
    assert recorded.trials["no"][:12] in rows[0]
    assert "`harness show TRIAL_ID" in out and "for the story of one" in out
    code, out, err = show(recorded, recorded.run_id[:-3], "--json")  # a prefix
    assert code == 0, err
    doc = json.loads(out)
    assert doc["kind"] == "run" and [t["task"] for t in doc["trials"]] == ["no", "story", "ok"]


def test_a_bad_id_is_a_clear_error(recorded: Recorded) -> None:
    code, out, err = show(recorded, "no-such-id")
    assert code == 2 and out == ""
    assert "no trial 'no-such-id'" in err and "`harness runs` lists the runs" in err
    code, out, err = show(recorded, recorded.run_id, "--step", "1")
    assert code == 2 and "is a run; --step N shows a step of a trial" in err


def test_an_imported_record_tells_the_same_story(recorded: Recorded, tmp_path: Path) -> None:
    res = harness_cli(
        "export", "--run", recorded.run_id, "-o", str(tmp_path / "export"), "--db", str(recorded.db)
    )
    assert res.returncode == 0, res.stderr
    copy = tmp_path / "copy.duckdb"
    res = harness_cli("import", str(tmp_path / "export"), "--db", str(copy))
    assert res.returncode == 0, res.stderr
    trial = recorded.trials["story"]
    code, there, err = show(recorded, trial, "--json", db=copy)
    assert code == 0, err
    _, here, _ = show(recorded, trial, "--json")
    assert json.loads(there) == json.loads(here)
