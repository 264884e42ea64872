"""Claim: the trace store ingests spans far faster than the OTel SDK can create them, and answers
the usual queries on a million spans interactively.

In one run: (1) how fast the OpenTelemetry SDK creates finished spans shaped like command spans
(about 15 attributes, 1 event); (2) the same spans through the real DuckDBSpanExporter into
committed rows; (3) a naive baseline, one autocommitted INSERT per span; then on a store of
1,000,000 spans (100,000 with --quick) a GROUP BY over names, a filter on a promoted column and
a filter on a JSON attribute that is not promoted, each through ``TraceStore.sql`` (which opens
the file for the query, as every user query does). The last line is one JSON object.
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

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider  # noqa: E402

from traces import DuckDBSpanExporter, TraceStore  # noqa: E402
from traces.vocab import Attr, Span, blob_ref  # noqa: E402


class _Collect(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def make_spans(n: int) -> tuple[list[ReadableSpan], float]:
    """n command-shaped spans; returns them and the SDK's creation rate (spans/s)."""
    collect = _Collect()
    provider = TracerProvider()
    provider.add_span_processor(collect)
    tracer = provider.get_tracer("bench")
    t = time.perf_counter()
    with tracer.start_as_current_span(Span.trial("bench"), attributes={Attr.RUN_ID: "r"}):
        for i in range(n):
            with tracer.start_as_current_span(
                Span.EXEC,
                attributes={
                    Attr.COMMAND_LINE: f"grep -rn TODO src/module_{i % 97}.py",
                    Attr.EXIT_CODE: i % 3,
                    Attr.CWD: "/workspace/project",
                    Attr.TIMED_OUT: False,
                    Attr.OOM_KILLED: False,
                    Attr.STDOUT_BLOB: blob_ref(f"{i:064x}"),
                    Attr.STDERR_BLOB: blob_ref(f"{i + 1:064x}"),
                    Attr.STDOUT_BYTES: 1000 + i,
                    Attr.STDERR_BYTES: 0,
                    Attr.CPU_TIME: 0.013,
                    Attr.MEMORY_PEAK: 12_345_678,
                    Attr.COMMAND_ID: i,
                    Attr.RUN_ID: "run-bench",
                    Attr.TASK_ID: f"task-{i % 12}",
                    Attr.GEN_AI_TOOL_CALL_ID: f"call_{i}",
                },
            ) as span:
                span.add_event("exit", {Attr.EXIT_CODE: i % 3})
    dt = time.perf_counter() - t
    return collect.spans[:n], n / dt


def ingest_rate(spans: list[ReadableSpan], path: Path, batch: int) -> float:
    exporter = DuckDBSpanExporter(TraceStore(path))
    t = time.perf_counter()
    for i in range(0, len(spans), batch):
        exporter.export(spans[i : i + batch])
    exporter.force_flush()  # includes closing the file (checkpoint)
    dt = time.perf_counter() - t
    assert exporter.failed_batches == 0
    rows = TraceStore(path).sql("SELECT count(*) AS n FROM spans").n[0]
    assert rows == len(spans), rows
    return len(spans) / dt


def baseline_rate(spans: list[ReadableSpan], path: Path) -> float:
    """One INSERT statement (and commit) per span, converting each span on its own."""
    store = TraceStore(path)
    store.init()
    with store.connect(write=True) as con:
        t = time.perf_counter()
        for s in spans:
            ctx = s.context
            attrs = dict(s.attributes or {})
            con.execute(
                "INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, start_ns, "
                "end_ns, duration_ns, status_code, attributes, run_id, task_id, exit_code) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    format(ctx.trace_id, "032x"),
                    format(ctx.span_id, "016x"),
                    format(s.parent.span_id, "016x") if s.parent else None,
                    s.name,
                    s.kind.name,
                    s.start_time,
                    s.end_time,
                    (s.end_time or 0) - (s.start_time or 0),
                    s.status.status_code.name,
                    json.dumps(attrs),
                    attrs.get(Attr.RUN_ID),
                    attrs.get(Attr.TASK_ID),
                    attrs.get(Attr.EXIT_CODE),
                ],
            )
            for seq, e in enumerate(s.events):
                con.execute(
                    "INSERT INTO span_events VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        format(ctx.trace_id, "032x"),
                        format(ctx.span_id, "016x"),
                        seq,
                        e.name,
                        e.timestamp,
                        json.dumps(dict(e.attributes or {})),
                    ],
                )
        dt = time.perf_counter() - t
    return len(spans) / dt


def build_big_store(path: Path, n: int) -> TraceStore:
    """n spans generated inside DuckDB in the store's schema (fast to build, same shape)."""
    store = TraceStore(path)
    store.init()
    names = (
        "['sandbox.exec','sandbox.exec','sandbox.exec','fs.change','sandbox.resources',"
        "'chat gpt-x','execute_tool shell']"
    )
    with store.connect(write=True) as con:
        con.execute(f"""
            INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns,
                duration_ns, status_code, attributes, run_id, task_id, exit_code)
            SELECT printf('%032x', i // 500), printf('%016x', i), printf('%016x', i // 500),
                   {names}[1 + i % 7], 'INTERNAL', 1_700_000_000_000_000_000 + i * 1000,
                   1_700_000_000_000_000_000 + i * 1000 + (i % 1000) * 1000, (i % 1000) * 1000,
                   'UNSET',
                   json_object('process.command_line', 'grep -rn TODO src/m' || (i % 97) || '.py',
                               'process.exit.code', i % 3, 'harness.command.id', i,
                               'process.working_directory', '/workspace/project',
                               'harness.stdout.sha256', 'sha256:' || md5(i::VARCHAR),
                               'harness.stdout.bytes', 1000 + i, 'harness.timed_out', false,
                               'harness.memory.peak', 12345678, 'process.cpu.time', 0.013,
                               'harness.task.id', 'task-' || (i % 12),
                               'harness.run.id', 'run-' || (i // 100000),
                               'gen_ai.tool.call.id', 'call_' || i),
                   'run-' || (i // 100000), 'task-' || (i % 12), i % 3
            FROM range({n}) t(i)""")
    return store


def timed(store: TraceStore, query: str, reps: int = 5) -> float:
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        store.sql(query)
        samples.append(time.perf_counter() - t)
    return round(statistics.median(samples), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (under 30 s)")
    args = ap.parse_args()
    n_spans, n_base, n_big = (131_072, 300, 100_000) if args.quick else (262_144, 1_000, 1_000_000)

    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        d = Path(tmp)
        spans, sdk_rate = make_spans(n_spans)
        print(f"OTel SDK creates {sdk_rate:,.0f} spans/s ({n_spans} spans)")
        # This machine is noisy: the median of three ingests, each into a fresh store.
        rates = [ingest_rate(spans, d / f"ingest{i}.duckdb", batch=131_072) for i in range(3)]
        rate = statistics.median(rates)
        print(
            f"exporter ingests {rate:,.0f} spans/s into committed rows "
            f"(median of {', '.join(f'{r:,.0f}' for r in rates)})"
        )
        base = baseline_rate(spans[:n_base], d / "baseline.duckdb")
        print(f"baseline, one INSERT per span: {base:,.0f} spans/s ({n_base} spans)")

        store = build_big_store(d / "big.duckdb", n_big)
        group_by = timed(store, "SELECT name, count(*), avg(duration_ns) FROM spans GROUP BY name")
        filt = timed(store, "SELECT count(*) FROM spans WHERE exit_code = 2 AND task_id = 'task-3'")
        json_filt = timed(
            store,
            "SELECT count(*) FROM spans "
            "WHERE json_extract_string(attributes, '$.\"gen_ai.tool.call.id\"') = 'call_77'",
        )
        print(
            f"on {n_big:,} spans: group by {group_by * 1000:.1f} ms, promoted filter "
            f"{filt * 1000:.1f} ms, JSON attribute filter {json_filt * 1000:.1f} ms"
        )

    print(
        json.dumps(
            {
                "spans_per_s": round(rate),
                "baseline_spans_per_s": round(base),
                "speedup": round(rate / base, 1),
                "sdk_create_spans_per_s": round(sdk_rate),
                "headroom": round(rate / sdk_rate, 2),
                "group_by_s": group_by,
                "filter_s": filt,
                "json_filter_s": json_filt,
                "store_spans": n_big,
            }
        )
    )


if __name__ == "__main__":
    main()
