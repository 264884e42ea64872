"""Claim: the HTML report of a 500-trial run (about 20 actions each) is one small file that
opens and becomes interactive in under 3 s in headless Chromium.

In one run: a synthetic run of 500 trials with about 20 actions each (a model call and a
command each, with varied output, diffs, resource samples, a verifier; written span by span
through the real recorder, no Docker: ``tests/reports/synthetic.py``), its report written with
``reports.write_html_report`` (timed: ``report_s``), then opened in a fresh tab of Debian's
headless Chromium (driven over the DevTools Protocol, ``tests/browser.py``) 7 times (3 with
--quick; always 500 trials). ``open_s`` is the median time from the navigation to the page's
``window.__harnessReady`` (set on the first frame after the task table is built, the moment
it can be sorted, filtered and clicked), ``expand_s`` the median time from a click on a trial
to its details rendered. Each open also checks that the page logged no error and requested
nothing but itself. The last line is one JSON object.
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

import reports  # noqa: E402
import traces  # noqa: E402
from tests.browser import Browser, install_chromium  # noqa: E402
from tests.reports.synthetic import synthetic_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 opens instead of 7")
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--actions", type=int, default=20)
    args = parser.parse_args()
    opens = 3 if args.quick else 7
    binary, what = install_chromium()
    if binary is None:
        raise SystemExit(f"error: no headless Chromium: {what}")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        store = traces.TraceStore(tmp / "traces.duckdb")
        started = time.perf_counter()
        run = synthetic_run(store, trials=args.trials, actions=args.actions)
        print(f"recorded {args.trials} trials in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        path = reports.write_html_report(store, run.run_id, tmp / "report.html")
        report_s = time.perf_counter() - started
        size_mb = path.stat().st_size / 1e6
        print(f"report: {size_mb:.2f} MB in {report_s:.1f} s", flush=True)
        url = path.resolve().as_uri()
        open_times, expand_times = [], []
        (tmp / "profile").mkdir()
        with Browser(binary, tmp / "profile", timeout=60) as browser:
            for i in range(opens):
                with browser.page() as page:
                    t0 = time.perf_counter()
                    page.goto(url, timeout=60)
                    page.wait_for("window.__harnessReady === true", timeout=60)
                    open_times.append(time.perf_counter() - t0)
                    # The first trial of the table (a failing task's).
                    t0 = time.perf_counter()
                    page.click("button.pill")
                    page.wait_for("document.querySelector('.trial')?.dataset.rendered", timeout=60)
                    expand_times.append(time.perf_counter() - t0)
                    if page.errors or page.requests != [url]:
                        raise SystemExit(
                            f"error: the page logged {page.errors}, asked {page.requests}"
                        )
                    print(f"open {i + 1}: {open_times[-1]:.3f} s, expand {expand_times[-1]:.3f} s")
    print(
        json.dumps(
            {
                "trials": args.trials,
                "file_mb": round(size_mb, 2),
                "open_s": round(statistics.median(open_times), 3),
                "open_s_max": round(max(open_times), 3),
                "expand_s": round(statistics.median(expand_times), 3),
                "report_s": round(report_s, 1),
                "opens": opens,
            }
        )
    )


if __name__ == "__main__":
    main()
