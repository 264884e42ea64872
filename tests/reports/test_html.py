"""The offline HTML report on synthetic runs (no Docker): what the page carries, that its
figures are the store's, that text from a container or a model is data and never markup, and,
in a real headless Chromium, that the model's messages and long outputs render as they should.
A report of real trials through ``harness report`` is tested in tests/harness/test_report.py.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import reports
import traces
from tests.browser import Browser, browser_for_tests
from tests.reports.synthetic import Synthetic, synthetic_run

EVIL = "<script>window.__pwned=1</script></body><!--"
LONG_LINES = 40_000  # about 600 KB of output: over the report's cap per output


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    yield from browser_for_tests(tmp_path_factory.mktemp("chromium"))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[traces.TraceStore, Synthetic]:
    store = traces.TraceStore(tmp_path_factory.mktemp("html") / "t.duckdb")
    long = b"".join(b"line %d of a long output\n" % i for i in range(LONG_LINES))
    names = [f"alpha {EVIL}", "beta", "gamma", "delta"]
    evil_output = EVIL.encode() + b"\n\x1b[31mred\r\nnot utf-8: \xe9\n"
    syn = synthetic_run(
        store, trials=12, actions=5, names=names, seed=11, agent=f"agent {EVIL}",
        extra_output={0: evil_output, 1: long},
    )  # fmt: skip
    return store, syn


def _index(page: str) -> dict[str, Any]:
    found = re.search(r'<script id="harness-index" type="application/octet-stream">([^<]*)<', page)
    assert found is not None
    data: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(found.group(1))))
    return data


def _chunks(page: str) -> list[dict[str, Any]]:
    found = re.search(r'<script id="harness-trials" type="application/json">([^<]*)<', page)
    assert found is not None
    return [json.loads(gzip.decompress(base64.b64decode(c))) for c in json.loads(found.group(1))]


def _stats(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-stat="([^"]+)" data-value="([^"]*)"', page))


def test_the_summary_is_the_stores(run: tuple[traces.TraceStore, Synthetic]) -> None:
    store, syn = run
    page = reports.html_report(store, syn.run_id)
    stats = _stats(page)
    expected = reports.summarize(store, syn.run_id, trials=3)  # 12 trials of 4 tasks
    assert float(stats["pass_rate"]) == expected["pass_rate"]
    assert [float(stats["ci_low"]), float(stats["ci_high"])] == expected["pass_rate_ci95"]
    assert int(stats["trials"]) == expected["trials"] == 12
    assert int(stats["passed"]) == expected["passed"]
    for k in (1, 2, 3):
        assert float(stats[f"pass@{k}"]) == expected[f"pass@{k}"]
    for key in ("input_tokens", "output_tokens", "cached_tokens"):
        assert int(stats[key]) == expected[key]
    assert float(stats["cost_usd"]) == pytest.approx(expected["cost_usd"])
    outcomes = [t.outcome for t in store.trials(syn.run_id)]
    kinds = {k: sum(reports.outcome_kind(o) == k for o in outcomes) for k in
             ("passed", "failed", "timeouts", "errors")}  # fmt: skip
    assert {k: int(stats[k]) for k in kinds} == kinds
    durations = sorted(t.duration_s for t in store.trials(syn.run_id))
    assert float(stats["total_s"]) == pytest.approx(sum(durations))
    assert float(stats["median_s"]) == pytest.approx((durations[5] + durations[6]) / 2)


def test_the_page_is_self_contained_and_container_text_is_data(
    run: tuple[traces.TraceStore, Synthetic],
) -> None:
    store, syn = run
    page = reports.html_report(store, syn.run_id)
    # Nothing to fetch: no src or href but the data: icon, no CSS import or url(), and a
    # policy that forbids every request.
    assert re.findall(r"""\s(?:src|href)=["']?([^"'\s>]*)""", page) == ["data:,"]
    assert "@import" not in page and "url(" not in page
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy is not None and "default-src 'none'" in policy.group(1)
    # The page's own three scripts, one body: the evil task name and output changed neither.
    assert len(re.findall(r"<script\b", page)) == 3
    assert page.count("</body>") == 1
    assert "agent agent &lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;/body&gt;" in page
    index = _index(page)
    assert f"alpha {EVIL}" in [t["task"] for t in index["tasks"]]
    # The first trial's first output, as the page will show it: control characters and
    # undecodable bytes spelled out, CRLF a plain line end.
    details = _chunks(page)
    first = next(d for d in details if d["trial"]["id"] == syn.trials[f"alpha {EVIL}"][0])
    assert first["steps"][0]["out"]["t"] == EVIL + "\n\\x1b[31mred\nnot utf-8: \\xe9\n"


def test_a_long_output_keeps_its_head_and_tail(run: tuple[traces.TraceStore, Synthetic]) -> None:
    store, syn = run
    trial = syn.trials["beta"][0]  # trial 1: the long output
    (rec,) = traces.trial_records(store, syn.run_id, [trial])
    blobs = store.blobs(a.stdout_ref or "" for a in rec.actions)
    out = reports.trial_detail(rec, blobs)["steps"][0]["out"]
    assert out["n"] == LONG_LINES and out["b"] > reports.OUTPUT_CAP
    gap = out["gap"]
    shown = out["t"].split("\n")[:-1]
    assert len(shown) + gap["lines"] == LONG_LINES
    assert (
        shown[0] == "line 0 of a long output"
        and shown[-1] == f"line {LONG_LINES - 1} of a long output"
    )
    assert shown[gap["at"] - 1] == f"line {gap['at'] - 1} of a long output"
    assert shown[gap["at"]] == f"line {gap['at'] + gap['lines']} of a long output"
    assert len(out["t"].encode()) + gap["bytes"] == out["b"]


def test_file_changes_modified_added_and_binary(run: tuple[traces.TraceStore, Synthetic]) -> None:
    store, syn = run
    details = _chunks(reports.html_report(store, syn.run_id))
    changes = [c for d in details for s in d["steps"] for c in s["files"]]
    modified = [c for c in changes if c["op"] == "modified"]
    added = [c for c in changes if c["op"] == "added" and not c.get("binary")]
    assert modified and all(c["diff"]["t"].startswith("--- a/app/src/") for c in modified)
    assert added and all(
        line.startswith("+") for c in added for line in c["diff"]["t"].splitlines()
    )
    binary = [c for c in changes if c.get("binary")]
    assert binary and all("diff" not in c and c["path"].endswith(".o") for c in binary)


def test_in_a_browser_the_model_speaks_and_outputs_unfold(
    run: tuple[traces.TraceStore, Synthetic], browser: Browser, tmp_path: Path
) -> None:
    store, syn = run
    path = reports.write_html_report(store, syn.run_id, tmp_path / "report.html")
    url = path.resolve().as_uri()
    with browser.page() as page:
        page.goto(url)
        page.wait_for("window.__harnessReady === true")
        trial = syn.trials["beta"][0]
        page.click(f'button.pill[data-trial="{trial}"]')
        page.wait_for(f"document.querySelector('.trial[data-trial=\"{trial}\"]')?.dataset.rendered")
        turns = store.model_turns(trial)
        said = page.evaluate(
            f"[...document.querySelectorAll('.trial[data-trial=\"{trial}\"] .said pre')]"
            ".map(e => e.textContent)"
        )
        assert said == [t.message + "\n" for t in turns if t.caused_steps]
        box = f'.trial[data-trial="{trial}"]'
        count = page.evaluate(f"document.querySelectorAll('{box} details.turns .turn').length")
        assert count == len(turns)
        # The long output: head and tail, then all of it (but the part the report left out).
        first = f'#step-{trial}-1 .tb[data-part="stdout"] pre'
        assert (
            page.evaluate(f"document.querySelector('{first}').textContent.split('\\n').length") < 30
        )
        page.click(f"{first} button.more")
        text = page.evaluate(f"document.querySelector('{first}').textContent")
        assert "line 0 of a long output" in text and f"line {LONG_LINES - 1} of" in text
        assert "are not in this report" in text
        # The evil output of the first trial is text, and ran nothing.
        evil_trial = syn.trials[f"alpha {EVIL}"][0]
        page.click(f'button.pill[data-trial="{evil_trial}"]')
        page.wait_for(
            f"document.querySelector('.trial[data-trial=\"{evil_trial}\"]')?.dataset.rendered"
        )
        shown = page.evaluate(
            f"document.querySelector('#step-{evil_trial}-1 [data-part=stdout] pre').textContent"
        )
        assert shown.startswith(EVIL + "\n\\x1b[31mred\n")
        assert page.evaluate("window.__pwned === undefined && document.scripts.length === 3")
        assert page.errors == []
        assert page.requests == [url]
        page.screenshot(tmp_path / "model.png", f'.trial[data-trial="{trial}"]', 1200)
    assert (tmp_path / "model.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A link to one trial of the report opens the page with that trial expanded.
    with browser.page() as page:
        page.goto(f"{url}#trial={trial}")
        page.wait_for(f"document.querySelector('.trial[data-trial=\"{trial}\"]')?.dataset.rendered")
        assert page.evaluate("document.querySelectorAll('.trial').length") == 1
        assert page.errors == []
