"""What every command shares: consoles, errors, common options, table output, signals."""

from __future__ import annotations

import io
import json
import signal
import sys
import threading
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Not a terminal (a pipe, CI log): use a wide layout instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else 120
out = Console(width=_WIDTH)
err = Console(stderr=True, width=_WIDTH)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Trace store file (default $HARNESS_DB or .harness/traces.duckdb)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Output JSON.")]
AgentOptionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--agent-option",
        "-O",
        help="KEY=VALUE for the agent (any agent's option, e.g. a plug-in's; repeatable).",
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` to stderr; returns the Exit to raise."""
    err.print("[bold red]error:[/] ", end="", highlight=False)
    err.print(message, highlight=False, soft_wrap=True, markup=False)
    return typer.Exit(code)


def reward_text(value: float | None) -> str:
    """A reward as people read it: ``1``, ``0.5``, or ``none`` when there is none."""
    return "none" if value is None else f"{value:g}"


def say(message: str) -> None:
    """A progress line on stderr (plain text, never markup)."""
    err.print(message, highlight=False, markup=False, soft_wrap=True)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def handle_signals() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C does, so `with` blocks remove containers and
    flush the record. Decided here, at the edge; the libraries install no handlers."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)


def write_table(table: Any, fmt: str, output: str | None) -> None:
    """An Arrow table as a rich table, csv, json, jsonl or parquet, to stdout or a file."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        pq.write_table(table, output)
        return
    if fmt == "table":
        rich_table = Table(show_header=True, header_style="bold")
        for name in table.column_names:
            rich_table.add_column(Text(name), overflow="fold")
        rows = table.slice(0, 1000).to_pylist()
        for row in rows:
            # Values are data: shown literally, never read as markup.
            rich_table.add_row(*(Text("" if v is None else str(v)) for v in row.values()))
        target = Console(file=open(output, "w"), width=200) if output else out  # noqa: SIM115
        target.print(rich_table)
        if table.num_rows > len(rows):
            err.print(
                f"[dim]{table.num_rows - len(rows)} more rows not shown; use --format "
                "csv or a LIMIT[/]",
                highlight=False,
            )
        else:
            n = table.num_rows
            err.print(f"[dim]{n} row{'' if n == 1 else 's'}[/]", highlight=False)
        return
    stream = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        if fmt == "csv":
            buf = io.BytesIO()
            pacsv.write_csv(table, buf)
            stream.write(buf.getvalue().decode())
        else:
            rows = table.to_pylist()
            if fmt == "json":
                stream.write(json.dumps(rows, default=str, ensure_ascii=False) + "\n")
            else:
                for row in rows:
                    stream.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
    finally:
        if output:
            stream.close()
