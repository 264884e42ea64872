"""The `harness` command line: a thin layer over the Python API, one module per command group.

The CLI presents; the library decides. Signal handling is decided here (``main``), never by
the libraries.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from .. import __version__
from . import _compare, _engine, _exec, _fork, _replay, _report, _run, _show, _store, _tasks
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
            help="Also send every recorded span to this OTLP/HTTP collector (base URL). "
            "Accepted before or after the command.",
        ),
    ] = None,
    otlp_content: Annotated[
        bool,
        typer.Option(
            help="Send model calls' messages and tool payloads to the OTLP collector "
            "(the GenAI conventions' opt-in attributes); --no-otlp-content for a backend "
            "that must not see them. The store keeps them either way.",
        ),
    ] = True,
) -> None:
    """Observability-first evaluation and replay harness for AI agents."""
    if otlp_endpoint:
        os.environ["HARNESS_OTLP_ENDPOINT"] = otlp_endpoint
    if not otlp_content:
        os.environ["HARNESS_OTLP_CONTENT"] = "0"


for _group in (_engine, _tasks, _exec, _run, _replay, _fork, _show, _compare, _report, _store):
    _group.register(app)


GLOBAL_VALUES = ("--otlp-endpoint",)  # global options with a value
GLOBAL_FLAGS = ("--otlp-content", "--no-otlp-content")


def global_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """Take the global options out of ``argv``, wherever they were given (``harness run ...
    --otlp-endpoint URL`` works like ``harness --otlp-endpoint URL run ...``): (the global
    options, the rest in order). Nothing after ``--`` is touched."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        name = token.partition("=")[0]
        if token == "--":
            rest.extend(argv[i:])
            break
        if name in GLOBAL_VALUES and "=" not in token:
            if i + 1 >= len(argv):
                raise ValueError(f"{token} needs a value")
            front += [token, argv[i + 1]]
            i += 2
            continue
        if name in GLOBAL_VALUES or token in GLOBAL_FLAGS:
            front.append(token)
        else:
            rest.append(token)
        i += 1
    return front, rest


def main() -> None:
    """The console script. The agents' own options of ``run`` (and ``fork``) are taken off the
    command line here and handed to the command through the context object."""
    import gc
    import sys

    handle_signals()
    # What is loaded by now lives as long as the process: keep the collector from scanning
    # it again and again (a full collection of it costs ~60 ms, mid-command).
    gc.freeze()
    try:
        front, argv = global_options(sys.argv[1:])
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    obj: dict[str, Any] = {}
    command = typer.main.get_command(app)
    i = _run.subcommand_index(argv)
    if i is not None and argv[i] in ("run", "fork"):  # the commands that take an agent
        try:
            rest, obj[_run.AGENT_OPTIONS] = _run.take_agent_options(argv[i + 1 :])
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        argv = [*argv[: i + 1], *rest]
        command.commands[argv[i]].epilog = _run.agent_options_help()  # type: ignore[attr-defined]
    command.main(args=[*front, *argv], prog_name="harness", obj=obj)
