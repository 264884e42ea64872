"""`harness report` on real trials, looked at in a real headless Chromium: a suite of three
tasks (one passes; one fails; one fails after output, file names, a diff and verifier output
full of ``<script>`` and ``</body>``, a binary file and a long output), and the same suite run
again as a baseline to compare with."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import reports
import traces
from tests.browser import Browser, Page, browser_for_tests
from tests.conftest import ROOT, harness_cli

TEST_SH = (
    "echo 'verifier says <b>hi</b></body><script>window.__pwned=3</script>'\n"
    "test -f /tmp/done && echo 1 > /logs/verifier/reward.txt || "
    "echo 0 > /logs/verifier/reward.txt\n"
)
XSS = [
    "printf '<script>window.__pwned=1</script>\\n</body>\\n'; seq 1 60; echo '</body>' >&2",
    "mkdir -p /app && cd /app && printf 'a\\nb\\n' > notes.txt && echo x > '<script>x=1<'",
    "cd /app && printf 'a\\n</script><script>window.__pwned=2</script>\\n' > notes.txt",
    "head -c 64 /dev/urandom > /app/blob.bin && printf '\\0' >> /app/blob.bin",
    "printf 'more\\0' >> /app/blob.bin",
]


@dataclass(frozen=True)
class Runs:
    db: Path
    run_id: str
    baseline: str


def _task(suite: Path, name: str) -> None:
    for rel, text in {
        "task.toml": "[agent]\ntimeout_sec = 30\n[verifier]\ntimeout_sec = 30\n",
        "instruction.md": "Do the thing.",
        "environment/Dockerfile": "FROM harness-base:bookworm\n",
        "solution/solve.sh": "true\n",
        "tests/test.sh": TEST_SH,
    }.items():
        (suite / name / rel).parent.mkdir(parents=True, exist_ok=True)
        (suite / name / rel).write_text(text)


def _run(suite: Path, db: Path, script: dict[str, list[str]], tmp: Path) -> str:
    path = tmp / f"script-{len(list(tmp.glob('script-*')))}.yaml"
    path.write_text(yaml.safe_dump({"tasks": script}))
    res = harness_cli(
        "run", str(suite), "--agent", "scripted", "--script", str(path),
        "--concurrency", "3", "--db", str(db), "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    run_id: str = json.loads(res.stdout.splitlines()[-1])["run_id"]
    return run_id


@pytest.fixture(scope="module")
def runs(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    tmp = tmp_path_factory.mktemp("report")
    suite = tmp / "suite"
    for name in ("ok", "no", "xss"):
        _task(suite, name)
    db = tmp / "t.duckdb"
    baseline = _run(suite, db, {"no": ["touch /tmp/done"]}, tmp)
    run_id = _run(suite, db, {"ok": ["touch /tmp/done"], "xss": XSS}, tmp)
    return Runs(db, run_id, baseline)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    yield from browser_for_tests(tmp_path_factory.mktemp("chromium"))


def report(runs: Runs, *args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    # No Docker engine is reachable: the report reads the store alone.
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    res = harness_cli("report", *args, "--db", str(runs.db), env=env, timeout=120, cwd=cwd or ROOT)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, res.stdout, res.stderr


def _open(browser: Browser, page: Page, path: Path) -> str:
    url = path.resolve().as_uri()
    page.goto(url)
    page.wait_for("window.__harnessReady === true")
    return url


def _set(page: Page, element: str, value: str, event: str) -> None:
    """Set a form control's value as a user's choice would, with the event it fires."""
    page.evaluate(
        f"(() => {{ const e = document.getElementById({json.dumps(element)}); "
        f"e.value = {json.dumps(value)}; e.dispatchEvent(new Event({json.dumps(event)})); }})()"
    )


def _tasks_shown(page: Page) -> list[str]:
    value = page.evaluate(
        "[...document.querySelectorAll('#task-table tbody')].filter(b => !b.hidden)"
        ".map(b => b.rows[0].dataset.task)"
    )
    return list(value)


def test_report_writes_one_file_and_prints_its_path(runs: Runs, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    code, stdout, stderr = report(runs, runs.run_id[:-2], "-o", str(out))  # a prefix
    assert code == 0, stderr
    assert stdout.strip().splitlines()[-1] == str(out)
    assert out.stat().st_size > 10_000 and f"wrote {out}" in stderr
    # Without -o: beside the default store, named after the run.
    code, stdout, stderr = report(runs, runs.run_id, cwd=tmp_path)
    assert code == 0, stderr
    default = Path(".harness") / f"report-{runs.run_id}.html"
    assert stdout.strip().splitlines()[-1] == str(default)
    assert (tmp_path / default).is_file()


def test_report_errors_are_one_line_and_exit_2(runs: Runs, tmp_path: Path) -> None:
    code, stdout, stderr = report(runs, "no-such-run", "-o", str(tmp_path / "x.html"))
    assert code == 2 and "no run 'no-such-run'" in stderr and stdout == ""
    code, _, stderr = report(runs, runs.run_id, "--compare", str(tmp_path / "nope.json"))
    assert code == 2 and "no results file" in stderr
    (tmp_path / "blocker").write_text("a file, not a folder")
    code, _, stderr = report(runs, runs.run_id, "-o", str(tmp_path / "blocker" / "r.html"))
    assert code == 2 and "cannot write the report" in stderr
    assert not (tmp_path / "x.html").exists()


def test_the_report_in_a_browser(runs: Runs, browser: Browser, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    code, _, stderr = report(runs, runs.run_id, "-o", str(out))
    assert code == 0, stderr
    store = traces.TraceStore(runs.db)
    trials = {t.task: t for t in store.trials(runs.run_id)}
    with browser.page() as page:
        url = _open(browser, page, out)

        # The summary is the store's.
        stats = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('[data-stat]')]"
            ".map(e => [e.dataset.stat, e.dataset.value]))"
        )
        expected = reports.summarize(store, runs.run_id, trials=1)
        assert float(stats["pass_rate"]) == expected["pass_rate"] == 1 / 3
        assert [float(stats["ci_low"]), float(stats["ci_high"])] == expected["pass_rate_ci95"]
        assert float(stats["pass@1"]) == expected["pass@1"]
        assert (int(stats["passed"]), int(stats["trials"])) == (1, 3)
        assert [int(stats[k]) for k in ("passed", "failed", "timeouts", "errors")] == [1, 2, 0, 0]
        assert float(stats["total_s"]) == pytest.approx(sum(t.duration_s for t in trials.values()))

        # Failing tasks first; sortable by name both ways; filterable by name and outcome.
        assert _tasks_shown(page)[-1] == "ok"
        page.click('th[data-key="task"]')
        assert _tasks_shown(page) == ["no", "ok", "xss"]
        page.click('th[data-key="task"]')
        assert _tasks_shown(page) == ["xss", "ok", "no"]
        page.type_text("#filter-task", "xs")
        assert _tasks_shown(page) == ["xss"]
        _set(page, "filter-task", "", "input")
        _set(page, "filter-outcome", "kind:passed", "change")
        assert _tasks_shown(page) == ["ok"]
        _set(page, "filter-outcome", "failing", "change")
        assert sorted(_tasks_shown(page)) == ["no", "xss"]
        assert page.evaluate("document.getElementById('shown').textContent") == (
            "showing 2 of 3 tasks"
        )
        _set(page, "filter-outcome", "", "change")

        # A click on the xss trial expands it in place: timeline, resources, steps, diffs.
        tid = trials["xss"].trial_id
        box = f'.trial[data-trial="{tid}"]'
        page.click(f'button.pill[data-trial="{tid}"]')
        assert page.wait_for(f"document.querySelector('{box}')?.dataset.rendered") == "1"
        assert page.evaluate(
            f"document.querySelector('{box}').closest('tr').previousElementSibling.dataset.task"
        ) == "xss"  # right under its task's row  # fmt: skip
        bars = page.evaluate(
            f"[...document.querySelectorAll('{box} svg.timeline rect.bar')]"
            ".map(r => r.getAttribute('class'))"
        )
        assert sum("b-agent" in b for b in bars) == len(XSS)
        assert sum("b-verifier" in b for b in bars) == 1
        assert any("b-phase k-setup" in b for b in bars) and any("k-verify" in b for b in bars)
        assert page.evaluate(f"document.querySelectorAll('{box} .res.mem line.limit').length") == 1
        assert page.evaluate(f"document.querySelectorAll('{box} .res.cpu polyline').length") == 1

        def text(selector: str) -> str:
            return str(page.evaluate(f"document.querySelector('{selector}').textContent"))

        stdout = f'#step-{tid}-1 [data-part="stdout"] pre'
        assert text(stdout).startswith("<script>window.__pwned=1</script>\n</body>\n1\n2\n")
        assert "\n60\n" in text(stdout) and "\n30\n" not in text(stdout)  # head and tail
        page.click(f"{stdout} button.more")
        assert "\n30\n" in text(stdout) and "show all" not in text(stdout)
        assert text(f'#step-{tid}-1 [data-part="stderr"] pre') == "</body>\n"
        assert "<script>x=1<" in text(f"#step-{tid}-2 .files")
        assert "added" in text(f"#step-{tid}-2 .files")
        diff = text(f'#step-{tid}-3 [data-part="diff"] pre')
        assert "-b\n+</script><script>window.__pwned=2</script>\n" in diff
        assert page.evaluate(
            f"document.querySelectorAll('#step-{tid}-3 pre.diff span.da').length"
        ) >= 1  # fmt: skip
        assert "binary" in text(f"#step-{tid}-4 .files") and "added" in text(
            f"#step-{tid}-4 .files"
        )
        assert "binary" in text(f"#step-{tid}-5 .files") and "modified" in text(
            f"#step-{tid}-5 .files"
        )
        verifier = text(f"{box} .step.verifier")
        assert "verifier says <b>hi</b></body><script>window.__pwned=3</script>" in verifier
        assert text(f"{box} .result") == "result failed reward 0"
        # All of it text: no script ran, no element was made of it, the body is whole.
        assert page.evaluate(
            "window.__pwned === undefined && document.scripts.length === 3"
            f" && document.querySelectorAll('{box} pre b, {box} pre script').length === 0"
            " && document.body.contains(document.querySelector('#task-table'))"
        )
        shot = page.screenshot(tmp_path / "trial.png", box, 2000)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

        # A click on a timeline bar brings its step into view.
        page.click(f'{box} svg.timeline rect.b-agent[data-step="3"]')
        page.wait_for(f"document.querySelector('#step-{tid}-3.flash')")

        # Clicked again, the trial folds away.
        page.click(f'button.pill[data-trial="{tid}"]')
        assert page.evaluate(f"document.querySelector('{box}') === null")
        assert page.errors == []
        assert page.requests == [url]  # the file itself, and nothing else


def test_the_report_compared_with_a_baseline(runs: Runs, browser: Browser, tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    code, _, stderr = report(runs, runs.run_id, "--compare", runs.baseline, "-o", str(out))
    assert code == 0, stderr
    res = harness_cli("compare", runs.baseline, runs.run_id, "--json", "--db", str(runs.db))
    assert res.returncode == 0, res.stderr
    expected = json.loads(res.stdout)
    with browser.page() as page:
        url = _open(browser, page, out)
        rows = page.evaluate(
            "[...document.querySelectorAll('#task-table tbody tr.task-row')].map(r =>"
            " [r.dataset.task, r.cells[8].textContent, r.cells[9].textContent,"
            "  r.cells[10].textContent, r.querySelector('td.verdict').firstChild.textContent])"
        )
        by_task = {t["task"]: t for t in expected["tasks"]}
        assert sorted(r[0] for r in rows) == sorted(by_task)
        for task, base, delta, p, verdict in rows:
            want = by_task[task]
            b = want["baseline"]
            assert base == f"{b['passed']}/{b['trials']} ({b['pass_rate'] * 100:.1f}%)"
            assert delta == f"{want['delta'] * 100:+.1f} pp"
            assert p == f"{want['p_value']:.4f}"
            assert verdict == want["verdict"]
        suite = expected["suite"]
        assert (
            page.evaluate("document.querySelector('[data-stat=verdict]').textContent")
            == (suite["verdict"])
        )
        delta = page.evaluate("document.querySelector('[data-stat=delta]').dataset.value")
        assert float(delta) == pytest.approx(suite["delta"])
        assert page.errors == [] and page.requests == [url]
