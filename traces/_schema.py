"""The store's tables, the public views over them, and schema migrations.

Tables follow the OpenTelemetry data model (as the collector's ClickHouse exporter lays it out):
one row per span with its attributes as JSON, plus a few hot keys promoted to real columns so
common filters never parse JSON. The views are the public query surface: they name things the
way a user thinks of them (trials, commands, file changes) and are documented in the README.
"""

from __future__ import annotations

from .vocab import BLOB_PREFIX, Attr, Outcome, Span

# 2: blobs carry their span-side ref and their text; trials, commands and file_changes show
#    errors, output and diffs as text; the spool log makes spooled batches apply exactly once.
SCHEMA_VERSION = 2

# Blobs of at most this many bytes that are valid UTF-8 (and hold no NUL byte) also keep their
# decoded text in `blobs.text`, so plain SQL can read output, diffs and errors. Larger or binary
# blobs have NULL there; their bytes are in `data` as always (TraceStore.blob reads them).
BLOB_TEXT_CAP = 1 << 20

# Attribute key -> (column, SQL type). Promoted at ingest time; also kept in `attributes`.
PROMOTED: dict[str, tuple[str, str]] = {
    Attr.RUN_ID: ("run_id", "VARCHAR"),
    Attr.TASK_ID: ("task_id", "VARCHAR"),
    Attr.TRIAL_ID: ("trial_id", "VARCHAR"),
    Attr.GEN_AI_REQUEST_MODEL: ("model", "VARCHAR"),
    Attr.GEN_AI_INPUT_TOKENS: ("input_tokens", "BIGINT"),
    Attr.GEN_AI_OUTPUT_TOKENS: ("output_tokens", "BIGINT"),
    Attr.EXIT_CODE: ("exit_code", "BIGINT"),
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
    ("ref", "VARCHAR"),  # what spans carry: BLOB_PREFIX + sha256
    ("text", "VARCHAR"),  # the decoded text, for UTF-8 blobs up to BLOB_TEXT_CAP; else NULL
]

# Spooled batches (see traces._spool) already applied: a batch whose name is here is never
# applied again, even if the writer died before removing its files.
SPOOL_LOG = "harness_spool_applied"
SPOOL_LOG_COLUMNS: list[tuple[str, str]] = [
    ("batch", "VARCHAR NOT NULL"),
    ("spans", "BIGINT"),
    ("applied_at", "TIMESTAMP"),
]

TABLES = {
    "spans": SPAN_COLUMNS,
    "span_events": EVENT_COLUMNS,
    "span_links": LINK_COLUMNS,
    "blobs": BLOB_COLUMNS,
}


def table_ddl(name: str, columns: list[tuple[str, str]]) -> str:
    cols = ",\n  ".join(f"{c} {t}" for c, t in columns)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n  {cols}\n)"


def a(key: str, cast: str | None = None, src: str = "s") -> str:
    """SQL for one attribute of span alias ``src``, optionally cast."""
    expr = f"json_extract_string({src}.attributes, '$.\"{key}\"')"
    return f"TRY_CAST({expr} AS {cast})" if cast else expr


def _attrs(keys: tuple[str, ...]) -> str:
    """SQL for several attributes of an unaliased span at once, as a list of strings: the
    JSON is parsed once per span instead of once per key."""
    paths = ", ".join(f"'$.\"{k}\"'" for k in keys)
    return f"json_extract_string(attributes, [{paths}])"


# A trial's resource totals, from its resource samples and its commands (in this order:
# _attrs(...)[1..5] in the trials view).
_RESOURCE_KEYS = (
    Attr.CONTAINER_MEMORY_PEAK,
    Attr.CONTAINER_MEMORY,
    Attr.MEMORY_PEAK,
    Attr.CONTAINER_CPU_TIME,
    Attr.CPU_TIME,
)

_TIME = "make_timestamp({0}.start_ns // 1000)"

# Trial context for any span: the root span of its trace.
_ROOT_JOIN = "LEFT JOIN spans r ON r.trace_id = s.trace_id AND r.parent_span_id IS NULL"
_CTX = (
    "coalesce(r.run_id, s.run_id) AS run_id, coalesce(r.trial_id, r.trace_id) AS trial_id, "
    "coalesce(r.task_id, s.task_id) AS task"
)


def _str(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


# A command's span: "sandbox.exec {program}" (or a bare "sandbox.exec", as older records have).
_EXEC = f"({{0}} = '{Span.EXEC}' OR starts_with({{0}}, '{Span.EXEC} '))"
_PASSED = _str(Outcome.PASSED)
_SCORED = ", ".join(map(_str, Outcome.SCORED))
# A named reward is Attr.reward(key) = Attr.REWARD + "." + key; substr() counts from 1.
_REWARD_KEY_AT = len(Attr.REWARD) + 2

VIEWS: dict[str, str] = {
    "trials": f"""
SELECT *,
       -- Counts in no summary: interrupted (no outcome), or run again later (a resume).
       outcome IS NULL OR row_number() OVER (
           PARTITION BY run_id, task, trial_index
           ORDER BY outcome IS NOT NULL DESC, started_at DESC, trial_id
       ) > 1 AS superseded
FROM (
SELECT r.run_id, coalesce(r.trial_id, r.trace_id) AS trial_id, r.trace_id,
       r.task_id AS task, {a(Attr.TRIAL_INDEX, "INTEGER", "r")} AS trial_index,
       {a(Attr.GEN_AI_AGENT_NAME, src="r")} AS agent, r.model,
       {a(Attr.OUTCOME, src="r")} AS outcome,
       coalesce({a(Attr.PASSED, "BOOLEAN", "r")}, {a(Attr.OUTCOME, src="r")} = {_PASSED})
           AS passed,
       {a(Attr.REWARD, "DOUBLE", "r")} AS reward,
       coalesce({a(Attr.STEPS, "INTEGER", "r")}, u.llm_calls) AS steps,
       coalesce(u.input_tokens, r.input_tokens) AS input_tokens,
       coalesce(u.output_tokens, r.output_tokens) AS output_tokens,
       u.cached_tokens, u.reasoning_tokens,
       {_TIME.format("r")} AS started_at, r.duration_ns / 1e9 AS duration_s,
       {a(Attr.IMAGE_NAME, src="r")} AS image, r.status_code,
       {a(Attr.REPLAY_OF, src="r")} AS replay_of,
       {a(Attr.REPLAY_FIDELITY, "DOUBLE", src="r")} AS replay_fidelity,
       {a(Attr.FORK_OF, src="r")} AS fork_of, {a(Attr.FORK_AT, "INTEGER", src="r")} AS fork_at,
       {a(Attr.ERROR, src="r")} AS error,
       {a(Attr.TASK_CONTENT_HASH, src="r")} AS content_hash,
       m.peak_memory_bytes, coalesce(m.sampled_cpu_s, m.command_cpu_s) AS cpu_s
FROM spans r
LEFT JOIN (
    SELECT trace_id, count(*) FILTER (WHERE s.name LIKE '{Span.CHAT}%') AS llm_calls,
           sum(s.input_tokens) AS input_tokens, sum(s.output_tokens) AS output_tokens,
           -- (only model calls' attributes are parsed: CASE evaluates lazily)
           sum(CASE WHEN s.input_tokens IS NOT NULL
                    THEN {a(Attr.GEN_AI_CACHED_TOKENS, "BIGINT", "s")} END) AS cached_tokens,
           sum(CASE WHEN s.input_tokens IS NOT NULL
                    THEN {a(Attr.GEN_AI_REASONING_TOKENS, "BIGINT", "s")} END) AS reasoning_tokens
    FROM spans s WHERE s.parent_span_id IS NOT NULL GROUP BY trace_id
) u ON u.trace_id = r.trace_id
LEFT JOIN (
    SELECT trace_id,
           max(greatest(TRY_CAST(v[1] AS BIGINT), TRY_CAST(v[2] AS BIGINT),
                        TRY_CAST(v[3] AS BIGINT))) AS peak_memory_bytes,
           arg_max(TRY_CAST(v[4] AS DOUBLE), start_ns)
               FILTER (WHERE name = '{Span.RESOURCES}' AND TRY_CAST(v[4] AS DOUBLE) IS NOT NULL)
               AS sampled_cpu_s,
           sum(TRY_CAST(v[5] AS DOUBLE)) FILTER (WHERE name <> '{Span.RESOURCES}')
               AS command_cpu_s
    FROM (
        SELECT trace_id, name, start_ns, {_attrs(_RESOURCE_KEYS)} AS v
        FROM spans WHERE name = '{Span.RESOURCES}' OR {_EXEC.format("name")}
    ) GROUP BY trace_id
) m ON m.trace_id = r.trace_id
WHERE r.parent_span_id IS NULL AND r.run_id IS NOT NULL AND r.name LIKE '{Span.TRIAL}%'
)""",
    "runs": f"""
SELECT run_id, min(started_at) AS started_at,
       max(started_at + to_microseconds(CAST(duration_s * 1e6 AS BIGINT))) AS ended_at,
       count(*) FILTER (WHERE NOT superseded) AS trials,
       count(*) FILTER (WHERE passed AND NOT superseded) AS passed,
       avg(CASE WHEN passed THEN 1.0 ELSE 0.0 END) FILTER (WHERE NOT superseded) AS pass_rate,
       avg(reward) FILTER (WHERE NOT superseded) AS mean_reward,
       count(*) FILTER (WHERE outcome NOT IN ({_SCORED}) AND NOT superseded) AS errors,
       string_agg(DISTINCT agent, ', ') AS agents, string_agg(DISTINCT model, ', ') AS models,
       count(DISTINCT task) AS tasks, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, sum(cached_tokens) AS cached_tokens,
       sum(reasoning_tokens) AS reasoning_tokens,
       count(*) FILTER (WHERE superseded) AS superseded
FROM trials GROUP BY run_id""",
    "commands": f"""
SELECT {_CTX}, s.trace_id, s.span_id, s.parent_span_id,
       {a(Attr.COMMAND_LINE)} AS command, s.exit_code,
       {a(Attr.ACTOR)} AS actor, {a(Attr.STEP, "INTEGER")} AS step,
       {a(Attr.PHASE)} AS phase, {a(Attr.STAGE)} AS stage, {a(Attr.USER)} AS user,
       {a(Attr.TIMEOUT, "DOUBLE")} AS timeout_s, {a(Attr.COMMAND_LINE_HEX)} AS command_hex,
       {a(Attr.CWD)} AS cwd, {_TIME.format("s")} AS started_at,
       s.duration_ns / 1e6 AS duration_ms, {a(Attr.TIMED_OUT, "BOOLEAN")} AS timed_out,
       {a(Attr.OOM_KILLED, "BOOLEAN")} AS oom_killed,
       {a(Attr.STDOUT_BLOB)} AS stdout_sha256, {a(Attr.STDOUT_BYTES, "BIGINT")}
           AS stdout_bytes,
       {a(Attr.STDERR_BLOB)} AS stderr_sha256, {a(Attr.STDERR_BYTES, "BIGINT")}
           AS stderr_bytes,
       {a(Attr.CPU_TIME, "DOUBLE")} AS cpu_s,
       {a(Attr.MEMORY_PEAK, "BIGINT")} AS peak_memory_bytes, s.status_code,
       bo.text AS stdout, be.text AS stderr
FROM spans s {_ROOT_JOIN}
LEFT JOIN blobs bo ON bo.ref = {a(Attr.STDOUT_BLOB)}
LEFT JOIN blobs be ON be.ref = {a(Attr.STDERR_BLOB)}
WHERE {_EXEC.format("s.name")}""",
    "file_changes": f"""
SELECT {_CTX}, s.trace_id, s.span_id, s.parent_span_id AS command_span_id,
       {a(Attr.FS_PATH)} AS path, {a(Attr.FS_OP)} AS op,
       {a(Attr.FS_TYPE)} AS file_type, {a(Attr.FS_SIZE, "BIGINT")} AS size,
       {a(Attr.FS_MODE)} AS mode, {a(Attr.FS_BEFORE_BLOB)} AS before_sha256,
       {a(Attr.FS_AFTER_BLOB)} AS after_sha256, {a(Attr.FS_DIFF_BLOB)} AS diff_sha256,
       {a(Attr.FS_LINK_TARGET)} AS link_target, {a(Attr.FS_OLD_PATH)} AS old_path,
       coalesce({a(Attr.FS_CONTENT_OMITTED, "BOOLEAN")}, false) AS content_omitted,
       {_TIME.format("s")} AS changed_at, bd.text AS diff
FROM spans s {_ROOT_JOIN}
LEFT JOIN blobs bd ON bd.ref = {a(Attr.FS_DIFF_BLOB)}
WHERE s.name = '{Span.FS_CHANGE}'""",
    "resource_samples": f"""
SELECT {_CTX}, s.trace_id, s.span_id, {_TIME.format("s")} AS sampled_at,
       {a(Attr.CONTAINER_CPU_TIME, "DOUBLE")} AS cpu_s,
       {a(Attr.CONTAINER_MEMORY, "BIGINT")} AS memory_bytes,
       {a(Attr.CONTAINER_MEMORY_PEAK, "BIGINT")} AS memory_peak_bytes,
       {a(Attr.CONTAINER_PIDS, "BIGINT")} AS pids,
       {a(Attr.CONTAINER_DISK_READ, "BIGINT")} AS block_read_bytes,
       {a(Attr.CONTAINER_DISK_WRITE, "BIGINT")} AS block_write_bytes,
       {a(Attr.CONTAINER_NET_RX, "BIGINT")} AS net_rx_bytes,
       {a(Attr.CONTAINER_NET_TX, "BIGINT")} AS net_tx_bytes
FROM spans s {_ROOT_JOIN} WHERE s.name = '{Span.RESOURCES}'""",
    "llm_calls": f"""
SELECT {_CTX}, s.trace_id, s.span_id, s.model,
       {a(Attr.GEN_AI_RESPONSE_MODEL)} AS response_model,
       {a(Attr.GEN_AI_RESPONSE_ID)} AS response_id,
       s.input_tokens, s.output_tokens,
       {a(Attr.GEN_AI_CACHED_TOKENS, "BIGINT")} AS cached_tokens,
       {a(Attr.GEN_AI_REASONING_TOKENS, "BIGINT")} AS reasoning_tokens,
       {a(Attr.PREVIOUS_RESPONSE_ID)} AS previous_response_id,
       json_extract(s.attributes, '$."{Attr.CAUSED_STEPS}"') AS caused_steps,
       json_extract(s.attributes, '$."{Attr.GEN_AI_FINISH_REASONS}"') AS finish_reasons,
       {_TIME.format("s")} AS started_at, s.duration_ns / 1e6 AS duration_ms,
       {a(Attr.REQUEST_BLOB)} AS request_sha256,
       {a(Attr.RESPONSE_BLOB)} AS response_sha256, s.status_code, s.status_message
FROM spans s {_ROOT_JOIN}
WHERE s.name LIKE '{Span.CHAT}%' OR {a(Attr.GEN_AI_OPERATION)} = '{Span.CHAT}'""",
    "tool_calls": f"""
SELECT {_CTX}, s.trace_id, s.span_id, {a(Attr.GEN_AI_TOOL_NAME)} AS tool_name,
       {a(Attr.GEN_AI_TOOL_CALL_ID)} AS call_id,
       {a(Attr.GEN_AI_TOOL_CALL_ARGUMENTS)} AS arguments,
       coalesce({a(Attr.GEN_AI_TOOL_CALL_RESULT)}, br.text) AS result,
       {_TIME.format("s")} AS started_at, s.duration_ns / 1e6 AS duration_ms, s.status_code
FROM spans s {_ROOT_JOIN}
LEFT JOIN blobs br ON br.ref = {a(Attr.GEN_AI_TOOL_CALL_RESULT + Attr.BLOB_SUFFIX)}
WHERE s.name LIKE '{Span.EXECUTE_TOOL}%' OR {a(Attr.GEN_AI_OPERATION)} = '{Span.EXECUTE_TOOL}'""",
    "scores": f"""
SELECT {_CTX}, s.trace_id, s.span_id,
       CASE WHEN t.k = '{Attr.REWARD}' THEN 'reward' ELSE substr(t.k, {_REWARD_KEY_AT}) END AS key,
       TRY_CAST(json_extract_string(s.attributes, '$."' || t.k || '"') AS DOUBLE) AS value
FROM spans s
CROSS JOIN LATERAL (SELECT unnest(json_keys(s.attributes)) AS k) t
{_ROOT_JOIN}
WHERE s.name = '{Span.VERIFY}' AND (t.k = '{Attr.REWARD}' OR t.k LIKE '{Attr.REWARD}.%')""",
}

VIEW_DOCS: dict[str, str] = {
    "runs": "one row per suite run: trials, passed, pass rate, mean reward, errors, tokens",
    "trials": "one row per trial (a trace): task, agent, model, outcome, reward, tokens, time, "
    "superseded (interrupted or run again: counted nowhere), "
    "error, peak memory, cpu, the task's content hash (content_hash: trials of different "
    "task content are not compared), and for a replay or fork the trial it came from "
    "(replay_of, replay_fidelity, fork_of, fork_at)",
    "commands": "one row per sandbox command: command line, exit code, who issued it (actor: "
    "agent, verifier, harness), the agent's step number, phase, stage, user, timeout, "
    "output refs and text, cost",
    "file_changes": "one row per path a command changed: op, type, hashes, diff ref and text",
    "resource_samples": "periodic container samples: cpu, memory, pids, block and network IO",
    "llm_calls": "one row per model call: model, tokens (cached, reasoning), finish reason, "
    "response id and the one it continued, the steps it caused, request/response refs",
    "tool_calls": "one row per tool call: tool, call id, arguments, result",
    "scores": "one row per reward key of a trial's verifier",
}


def views_hash() -> str:
    """A fingerprint of the views' definitions: a store whose views were defined by another
    harness gets them redefined before it is read (see TraceStore.connect)."""
    import hashlib

    return hashlib.sha256("\n".join(VIEWS.values()).encode()).hexdigest()[:16]


def ddl() -> list[str]:
    """Statements that create the current schema on an empty database (idempotent)."""
    stmts = ["CREATE TABLE IF NOT EXISTS harness_meta (key VARCHAR, value VARCHAR)"]
    stmts += [table_ddl(name, cols) for name, cols in TABLES.items()]
    stmts.append(table_ddl(SPOOL_LOG, SPOOL_LOG_COLUMNS))
    # trials before runs: runs is defined over trials.
    stmts += [f"CREATE OR REPLACE VIEW {name} AS {sql.strip()}" for name, sql in VIEWS.items()]
    return stmts


# Migrations from version N to N+1, in order; each runs before ddl() (which then creates
# what is new and redefines the views). What SQL alone cannot do (decoding zlib blobs into
# `blobs.text`) is done by the store after these statements (TraceStore._migrate).
MIGRATIONS: dict[int, list[str]] = {
    1: [
        "ALTER TABLE blobs ADD COLUMN ref VARCHAR",
        "ALTER TABLE blobs ADD COLUMN text VARCHAR",
        f"UPDATE blobs SET ref = '{BLOB_PREFIX}' || sha256",
    ],
}
