"""The `harness` command line: a thin layer over the Python API, one module per command group.

The CLI presents; the library decides. Signal handling is decided here (``main``), never by
the libraries.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from .. import __version__
from . import _engine, _exec, _run, _store, _tasks
from ._common import handle_signals, out

__all__ = ["app", "main"]

app = typer.Typer(
    name="harness",
    help="Observability-first evaluation and replay harness for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"max_content_width": 100, "terminal_width": 100},
)


def _version(value: bool) -> None:
    if value:
        out.print(f"harness {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            "--otlp-endpoint",
            metavar="URL",
            help="Also send every recorded span to this OTLP/HTTP collector (base URL).",
        ),
    ] = None,
) -> None:
    """Observability-first evaluation and replay harness for AI agents."""
    if otlp_endpoint:
        os.environ["HARNESS_OTLP_ENDPOINT"] = otlp_endpoint


for _group in (_engine, _tasks, _exec, _run, _store):
    _group.register(app)


def main() -> None:
    """The console script. The agents' own options of ``run`` are taken off the command line
    here and handed to ``run`` through the context object."""
    import sys

    handle_signals()
    argv = sys.argv[1:]
    obj: dict[str, Any] = {}
    command = typer.main.get_command(app)
    i = _run.subcommand_index(argv)
    if i is not None and argv[i] == "run":
        try:
            rest, obj[_run.AGENT_OPTIONS] = _run.take_agent_options(argv[i + 1 :])
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        argv = [*argv[: i + 1], *rest]
        command.commands["run"].epilog = _run.agent_options_help()  # type: ignore[attr-defined]
    command.main(args=argv, prog_name="harness", obj=obj)
