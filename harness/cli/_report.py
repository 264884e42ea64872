"""`harness report`: a run as one offline HTML file, optionally compared with a baseline.

The page is :func:`reports.write_html_report`; this module reads the arguments, picks the
output path and says where the file is. Anything that stops the report (no such run, a
baseline that cannot be read or compared, a file that cannot be written) is one line on
stderr and exit status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import DbOption, fail, out, say

__all__ = ["register", "report"]


def register(app: typer.Typer) -> None:
    app.command()(report)


def default_path(run_id: str) -> Path:
    """Where a report goes when no ``-o`` is given: beside the default store."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    return Path(".harness") / f"report-{safe}.html"


def report(
    run_id: Annotated[str, typer.Argument(help="The run (or a unique prefix of its id).")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the report here (default .harness/report-RUN_ID.html).",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--compare",
            metavar="BASELINE",
            help="Compare with this run id or results file, as `harness compare` does: its "
            "per-task deltas and verdicts join the report.",
        ),
    ] = None,
    alpha: Annotated[
        float, typer.Option(help="With --compare: the significance level of the tests.")
    ] = 0.05,
    min_delta: Annotated[
        float,
        typer.Option(help="With --compare: the smallest pass-rate change that counts, 0..1."),
    ] = 0.0,
    prices: Annotated[
        Path | None,
        typer.Option(
            "--prices",
            metavar="FILE",
            help="A TOML price list (USD per million tokens) extending the built-in one.",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Write a run as one self-contained HTML file that opens anywhere, with no network: the
    summary (pass rate with its 95% interval, pass@k, outcomes, tokens and cost, time), a
    sortable, filterable table of tasks with failing ones first, and each trial expanding in
    place (timeline, CPU and memory, every step with its output and diffs, the model's
    messages, the verifier). Prints the file's path."""
    import reports
    import traces

    store = traces.open(db)
    try:
        table = reports.load_prices(prices)
        run = reports.find_run(store, run_id)
        path = output if output is not None else default_path(run)
        say(f"writing the report of {run} ...")
        written = reports.write_html_report(
            store, run, path, baseline, prices=table, alpha=alpha, min_delta=min_delta
        )
    except reports.CompareError as exc:
        raise fail(f"cannot compare: {exc}", 2) from None
    except (traces.StoreError, reports.ResultsError, reports.PricesError, ValueError) as exc:
        raise fail(str(exc), 2) from None
    except OSError as exc:
        raise fail(f"cannot write the report: {exc.strerror or exc}", 2) from None
    size = written.stat().st_size
    say(f"wrote {written} ({size / 2**20:.1f} MiB); open it in a browser")
    out.print(str(written), highlight=False, markup=False, soft_wrap=True)
