"""The store's tables, the public views over them, and schema migrations.

Tables follow the OpenTelemetry data model (as the collector's ClickHouse exporter lays it out):
one row per span with its attributes as JSON, plus a few hot keys promoted to real columns so
common filters never parse JSON. The views are the public query surface: they name things the
way a user thinks of them (trials, commands, file changes) and are documented in the README.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

# Attribute key -> (column, SQL type). Promoted at ingest time; also kept in `attributes`.
PROMOTED: dict[str, tuple[str, str]] = {
    "harness.run.id": ("run_id", "VARCHAR"),
    "harness.task.id": ("task_id", "VARCHAR"),
    "harness.trial.id": ("trial_id", "VARCHAR"),
    "gen_ai.request.model": ("model", "VARCHAR"),
    "gen_ai.usage.input_tokens": ("input_tokens", "BIGINT"),
    "gen_ai.usage.output_tokens": ("output_tokens", "BIGINT"),
    "process.exit.code": ("exit_code", "BIGINT"),
}

SPAN_COLUMNS: list[tuple[str, str]] = [
    ("trace_id", "VARCHAR NOT NULL"),
    ("span_id", "VARCHAR NOT NULL"),
    ("parent_span_id", "VARCHAR"),
    ("name", "VARCHAR NOT NULL"),
    ("kind", "VARCHAR"),
    ("start_ns", "BIGINT"),
    ("end_ns", "BIGINT"),
    ("duration_ns", "BIGINT"),
    ("status_code", "VARCHAR"),
    ("status_message", "VARCHAR"),
    ("trace_state", "VARCHAR"),
    ("service_name", "VARCHAR"),
    ("scope_name", "VARCHAR"),
    ("scope_version", "VARCHAR"),
    ("resource_attributes", "JSON"),
    ("attributes", "JSON"),
    *[(col, typ) for col, typ in PROMOTED.values()],
]

EVENT_COLUMNS: list[tuple[str, str]] = [
    ("trace_id", "VARCHAR NOT NULL"),
    ("span_id", "VARCHAR NOT NULL"),
    ("seq", "INTEGER"),
    ("name", "VARCHAR"),
    ("time_ns", "BIGINT"),
    ("attributes", "JSON"),
]

LINK_COLUMNS: list[tuple[str, str]] = [
    ("trace_id", "VARCHAR NOT NULL"),
    ("span_id", "VARCHAR NOT NULL"),
    ("seq", "INTEGER"),
    ("linked_trace_id", "VARCHAR"),
    ("linked_span_id", "VARCHAR"),
    ("trace_state", "VARCHAR"),
    ("attributes", "JSON"),
]

BLOB_COLUMNS: list[tuple[str, str]] = [
    ("sha256", "VARCHAR NOT NULL"),
    ("size", "BIGINT"),
    ("encoding", "VARCHAR"),
    ("data", "BLOB"),
]

TABLES = {
    "spans": SPAN_COLUMNS,
    "span_events": EVENT_COLUMNS,
    "span_links": LINK_COLUMNS,
    "blobs": BLOB_COLUMNS,
}


def _table_ddl(name: str, columns: list[tuple[str, str]]) -> str:
    cols = ",\n  ".join(f"{c} {t}" for c, t in columns)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n  {cols}\n)"


def a(key: str, cast: str | None = None, src: str = "s") -> str:
    """SQL for one attribute of span alias ``src``, optionally cast."""
    expr = f"json_extract_string({src}.attributes, '$.\"{key}\"')"
    return f"TRY_CAST({expr} AS {cast})" if cast else expr


_TIME = "make_timestamp({0}.start_ns // 1000)"

# Trial context for any span: the root span of its trace.
_ROOT_JOIN = "LEFT JOIN spans r ON r.trace_id = s.trace_id AND r.parent_span_id IS NULL"
_CTX = (
    "coalesce(r.run_id, s.run_id) AS run_id, coalesce(r.trial_id, r.trace_id) AS trial_id, "
    "coalesce(r.task_id, s.task_id) AS task"
)

VIEWS: dict[str, str] = {
    "trials": f"""
SELECT r.run_id, coalesce(r.trial_id, r.trace_id) AS trial_id, r.trace_id,
       r.task_id AS task, {a("harness.trial.index", "INTEGER", "r")} AS trial_index,
       {a("gen_ai.agent.name", src="r")} AS agent, r.model,
       {a("harness.outcome", src="r")} AS outcome,
       coalesce({a("harness.passed", "BOOLEAN", "r")}, {a("harness.outcome", src="r")} = 'passed')
           AS passed,
       {a("harness.reward", "DOUBLE", "r")} AS reward,
       coalesce({a("harness.steps", "INTEGER", "r")}, u.llm_calls) AS steps,
       coalesce(u.input_tokens, r.input_tokens) AS input_tokens,
       coalesce(u.output_tokens, r.output_tokens) AS output_tokens,
       {_TIME.format("r")} AS started_at, r.duration_ns / 1e9 AS duration_s,
       {a("container.image.name", src="r")} AS image, r.status_code
FROM spans r
LEFT JOIN (
    SELECT trace_id, count(*) FILTER (WHERE s.name LIKE 'chat%') AS llm_calls,
           sum(s.input_tokens) AS input_tokens, sum(s.output_tokens) AS output_tokens
    FROM spans s WHERE s.parent_span_id IS NOT NULL GROUP BY trace_id
) u ON u.trace_id = r.trace_id
WHERE r.parent_span_id IS NULL AND r.run_id IS NOT NULL AND r.name LIKE 'invoke_agent%'""",
    "runs": """
SELECT run_id, min(started_at) AS started_at,
       max(started_at + to_microseconds(CAST(duration_s * 1e6 AS BIGINT))) AS ended_at,
       count(*) AS trials, count(*) FILTER (WHERE passed) AS passed,
       avg(CASE WHEN passed THEN 1.0 ELSE 0.0 END) AS pass_rate, avg(reward) AS mean_reward,
       count(*) FILTER (WHERE outcome NOT IN ('passed', 'failed')) AS errors,
       string_agg(DISTINCT agent, ', ') AS agents, string_agg(DISTINCT model, ', ') AS models,
       count(DISTINCT task) AS tasks, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens
FROM trials GROUP BY run_id""",
    "commands": f"""
SELECT {_CTX}, s.trace_id, s.span_id, s.parent_span_id,
       {a("process.command_line")} AS command, s.exit_code,
       {a("process.working_directory")} AS cwd, {_TIME.format("s")} AS started_at,
       s.duration_ns / 1e6 AS duration_ms, {a("harness.timed_out", "BOOLEAN")} AS timed_out,
       {a("harness.oom_killed", "BOOLEAN")} AS oom_killed,
       {a("harness.stdout.sha256")} AS stdout_sha256, {a("harness.stdout.bytes", "BIGINT")}
           AS stdout_bytes,
       {a("harness.stderr.sha256")} AS stderr_sha256, {a("harness.stderr.bytes", "BIGINT")}
           AS stderr_bytes,
       {a("process.cpu.time", "DOUBLE")} AS cpu_s,
       {a("harness.memory.peak", "BIGINT")} AS peak_memory_bytes, s.status_code
FROM spans s {_ROOT_JOIN} WHERE s.name = 'sandbox.exec'""",
    "file_changes": f"""
SELECT {_CTX}, s.trace_id, s.span_id, s.parent_span_id AS command_span_id,
       {a("harness.fs.path")} AS path, {a("harness.fs.op")} AS op,
       {a("harness.fs.type")} AS file_type, {a("harness.fs.size", "BIGINT")} AS size,
       {a("harness.fs.mode")} AS mode, {a("harness.fs.before.sha256")} AS before_sha256,
       {a("harness.fs.after.sha256")} AS after_sha256, {a("harness.fs.diff.sha256")} AS diff_sha256,
       {a("harness.fs.link_target")} AS link_target, {a("harness.fs.old_path")} AS old_path,
       coalesce({a("harness.fs.content_omitted", "BOOLEAN")}, false) AS content_omitted,
       {_TIME.format("s")} AS changed_at
FROM spans s {_ROOT_JOIN} WHERE s.name = 'fs.change'""",
    "resource_samples": f"""
SELECT {_CTX}, s.trace_id, s.span_id, {_TIME.format("s")} AS sampled_at,
       {a("container.cpu.time", "DOUBLE")} AS cpu_s,
       {a("container.memory.usage", "BIGINT")} AS memory_bytes,
       {a("container.memory.peak", "BIGINT")} AS memory_peak_bytes,
       {a("container.pids", "BIGINT")} AS pids,
       {a("container.disk.io.read", "BIGINT")} AS block_read_bytes,
       {a("container.disk.io.write", "BIGINT")} AS block_write_bytes,
       {a("container.network.io.receive", "BIGINT")} AS net_rx_bytes,
       {a("container.network.io.transmit", "BIGINT")} AS net_tx_bytes
FROM spans s {_ROOT_JOIN} WHERE s.name = 'sandbox.resources'""",
    "llm_calls": f"""
SELECT {_CTX}, s.trace_id, s.span_id, s.model,
       {a("gen_ai.response.model")} AS response_model, {a("gen_ai.response.id")} AS response_id,
       s.input_tokens, s.output_tokens,
       {a("gen_ai.usage.cache_read.input_tokens", "BIGINT")} AS cached_tokens,
       json_extract(s.attributes, '$."gen_ai.response.finish_reasons"') AS finish_reasons,
       {_TIME.format("s")} AS started_at, s.duration_ns / 1e6 AS duration_ms,
       {a("harness.request.sha256")} AS request_sha256,
       {a("harness.response.sha256")} AS response_sha256, s.status_code, s.status_message
FROM spans s {_ROOT_JOIN}
WHERE s.name LIKE 'chat%' OR {a("gen_ai.operation.name")} = 'chat'""",
    "tool_calls": f"""
SELECT {_CTX}, s.trace_id, s.span_id, {a("gen_ai.tool.name")} AS tool_name,
       {a("gen_ai.tool.call.id")} AS call_id, {a("gen_ai.tool.call.arguments")} AS arguments,
       {_TIME.format("s")} AS started_at, s.duration_ns / 1e6 AS duration_ms, s.status_code
FROM spans s {_ROOT_JOIN}
WHERE s.name LIKE 'execute_tool%' OR {a("gen_ai.operation.name")} = 'execute_tool'""",
    "scores": f"""
SELECT {_CTX}, s.trace_id, s.span_id,
       CASE WHEN t.k = 'harness.reward' THEN 'reward' ELSE substr(t.k, 16) END AS key,
       TRY_CAST(json_extract_string(s.attributes, '$."' || t.k || '"') AS DOUBLE) AS value
FROM spans s
CROSS JOIN LATERAL (SELECT unnest(json_keys(s.attributes)) AS k) t
{_ROOT_JOIN}
WHERE s.name = 'verify' AND (t.k = 'harness.reward' OR t.k LIKE 'harness.reward.%')""",
}

VIEW_DOCS: dict[str, str] = {
    "runs": "one row per suite run: trials, passed, pass rate, mean reward, errors, tokens",
    "trials": "one row per trial (a trace): task, agent, model, outcome, reward, tokens, time",
    "commands": "one row per sandbox command: command line, exit code, output refs, cost",
    "file_changes": "one row per path a command changed: op, type, hashes, diff ref",
    "resource_samples": "periodic container samples: cpu, memory, pids, block and network IO",
    "llm_calls": "one row per model call: model, tokens, finish reason, request/response refs",
    "tool_calls": "one row per tool call: tool, call id, arguments",
    "scores": "one row per reward key of a trial's verifier",
}


def ddl() -> list[str]:
    """Statements that create the current schema on an empty database (idempotent)."""
    stmts = ["CREATE TABLE IF NOT EXISTS harness_meta (key VARCHAR, value VARCHAR)"]
    stmts += [_table_ddl(name, cols) for name, cols in TABLES.items()]
    # trials before runs: runs is defined over trials.
    stmts += [f"CREATE OR REPLACE VIEW {name} AS {sql.strip()}" for name, sql in VIEWS.items()]
    return stmts


# Migrations from version N to N+1, in order. Version 1 is the first schema.
MIGRATIONS: dict[int, list[str]] = {}
