"""Store commands: query with SQL, export a run, import a record."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import DbOption, fail, out, write_table

FORMATS = ("table", "csv", "json", "jsonl", "parquet")


def register(app: typer.Typer) -> None:
    app.command()(sql)
    app.command("export")(export)
    app.command("import")(import_)


def sql(
    query: Annotated[str, typer.Argument(help="SQL over the views (runs, trials, commands...).")],
    db: DbOption = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table, csv, json, jsonl or parquet.")
    ] = "table",
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
) -> None:
    """Query the trace store with SQL (read-only); tables for people, csv/json/parquet for
    pipelines. Ctrl-C stops a long query (exit 130)."""
    import traces

    if fmt not in FORMATS:
        raise fail(f"--format {fmt!r}: use table, csv, json, jsonl or parquet", 2)
    if fmt == "parquet" and not output:
        raise fail("--format parquet needs --output FILE", 2)
    try:
        # The store stops the query when Ctrl-C arrives (TraceStore.sql runs it so that
        # KeyboardInterrupt interrupts DuckDB); here it only becomes the exit status.
        table = traces.open(db).arrow(query)
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None
    except traces.QueryError as exc:
        views = ", ".join(exc.views)
        if exc.refused:
            raise fail(
                f"harness sql only reads the store: {exc.refused} statements are refused. "
                "Query the views with SELECT; to change a store, use Python "
                "(traces.open(path).sql(query, write=True)).",
                2,
            ) from None
        raise fail(
            f"{exc}\nviews you can query: {views} (tables: spans, span_events, span_links, blobs)",
            2,
        ) from None
    except traces.StoreError as exc:
        raise fail(str(exc), 2) from None
    write_table(table, fmt, output)


def export(
    run: Annotated[str, typer.Option("--run", help="The run id to export.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Folder (parquet) or file.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet or otlp-json.")] = "parquet",
    db: DbOption = None,
) -> None:
    """Export a run: parquet (everything, blobs included) or OTLP JSON (spans)."""
    import traces

    try:
        counts = traces.export_run(traces.open(db), run, fmt, output)
    except traces.StoreError as exc:
        raise fail(str(exc), 2) from None
    out.print(
        f"exported run {run} to {output}: " + ", ".join(f"{v} {k}" for k, v in counts.items()),
        highlight=False,
        markup=False,
    )


def import_(
    path: Annotated[str, typer.Argument(help="A parquet export folder or an OTLP JSON file.")],
    db: DbOption = None,
) -> None:
    """Import a parquet export or OTLP JSON into the store (all or nothing)."""
    import traces

    try:
        r = traces.import_path(traces.open(db), path)
    except traces.StoreError as exc:
        raise fail(str(exc), 2) from None
    out.print(
        f"imported {r.spans} spans, {r.events} events, {r.links} links, {r.blobs} blobs"
        + (f" ({r.skipped_spans} spans were already there)" if r.skipped_spans else ""),
        highlight=False,
    )
