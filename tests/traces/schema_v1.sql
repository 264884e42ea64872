-- The trace store schema version 1 (harness before schema 2), as its ddl() created it.
-- Kept verbatim so migration tests start from a real version-1 store.
CREATE TABLE IF NOT EXISTS harness_meta (key VARCHAR, value VARCHAR);
CREATE TABLE IF NOT EXISTS spans (
  trace_id VARCHAR NOT NULL,
  span_id VARCHAR NOT NULL,
  parent_span_id VARCHAR,
  name VARCHAR NOT NULL,
  kind VARCHAR,
  start_ns BIGINT,
  end_ns BIGINT,
  duration_ns BIGINT,
  status_code VARCHAR,
  status_message VARCHAR,
  trace_state VARCHAR,
  service_name VARCHAR,
  scope_name VARCHAR,
  scope_version VARCHAR,
  resource_attributes JSON,
  attributes JSON,
  run_id VARCHAR,
  task_id VARCHAR,
  trial_id VARCHAR,
  model VARCHAR,
  input_tokens BIGINT,
  output_tokens BIGINT,
  exit_code BIGINT
);
CREATE TABLE IF NOT EXISTS span_events (
  trace_id VARCHAR NOT NULL,
  span_id VARCHAR NOT NULL,
  seq INTEGER,
  name VARCHAR,
  time_ns BIGINT,
  attributes JSON
);
CREATE TABLE IF NOT EXISTS span_links (
  trace_id VARCHAR NOT NULL,
  span_id VARCHAR NOT NULL,
  seq INTEGER,
  linked_trace_id VARCHAR,
  linked_span_id VARCHAR,
  trace_state VARCHAR,
  attributes JSON
);
CREATE TABLE IF NOT EXISTS blobs (
  sha256 VARCHAR NOT NULL,
  size BIGINT,
  encoding VARCHAR,
  data BLOB
);
CREATE OR REPLACE VIEW trials AS SELECT r.run_id, coalesce(r.trial_id, r.trace_id) AS trial_id, r.trace_id,
       r.task_id AS task, TRY_CAST(json_extract_string(r.attributes, '$."harness.trial.index"') AS INTEGER) AS trial_index,
       json_extract_string(r.attributes, '$."gen_ai.agent.name"') AS agent, r.model,
       json_extract_string(r.attributes, '$."harness.outcome"') AS outcome,
       coalesce(TRY_CAST(json_extract_string(r.attributes, '$."harness.passed"') AS BOOLEAN), json_extract_string(r.attributes, '$."harness.outcome"') = 'passed')
           AS passed,
       TRY_CAST(json_extract_string(r.attributes, '$."harness.reward"') AS DOUBLE) AS reward,
       coalesce(TRY_CAST(json_extract_string(r.attributes, '$."harness.steps"') AS INTEGER), u.llm_calls) AS steps,
       coalesce(u.input_tokens, r.input_tokens) AS input_tokens,
       coalesce(u.output_tokens, r.output_tokens) AS output_tokens,
       make_timestamp(r.start_ns // 1000) AS started_at, r.duration_ns / 1e9 AS duration_s,
       json_extract_string(r.attributes, '$."container.image.name"') AS image, r.status_code
FROM spans r
LEFT JOIN (
    SELECT trace_id, count(*) FILTER (WHERE s.name LIKE 'chat%') AS llm_calls,
           sum(s.input_tokens) AS input_tokens, sum(s.output_tokens) AS output_tokens
    FROM spans s WHERE s.parent_span_id IS NOT NULL GROUP BY trace_id
) u ON u.trace_id = r.trace_id
WHERE r.parent_span_id IS NULL AND r.run_id IS NOT NULL AND r.name LIKE 'invoke_agent%';
CREATE OR REPLACE VIEW runs AS SELECT run_id, min(started_at) AS started_at,
       max(started_at + to_microseconds(CAST(duration_s * 1e6 AS BIGINT))) AS ended_at,
       count(*) AS trials, count(*) FILTER (WHERE passed) AS passed,
       avg(CASE WHEN passed THEN 1.0 ELSE 0.0 END) AS pass_rate, avg(reward) AS mean_reward,
       count(*) FILTER (WHERE outcome NOT IN ('passed', 'failed')) AS errors,
       string_agg(DISTINCT agent, ', ') AS agents, string_agg(DISTINCT model, ', ') AS models,
       count(DISTINCT task) AS tasks, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens
FROM trials GROUP BY run_id;
CREATE OR REPLACE VIEW commands AS SELECT coalesce(r.run_id, s.run_id) AS run_id, coalesce(r.trial_id, r.trace_id) AS trial_id, coalesce(r.task_id, s.task_id) AS task, s.trace_id, s.span_id, s.parent_span_id,
       json_extract_string(s.attributes, '$."process.command_line"') AS command, s.exit_code,
       json_extract_string(s.attributes, '$."process.working_directory"') AS cwd, make_timestamp(s.start_ns // 1000) AS started_at,
       s.duration_ns / 1e6 AS duration_ms, TRY_CAST(json_extract_string(s.attributes, '$."harness.timed_out"') AS BOOLEAN) AS timed_out,
       TRY_CAST(json_extract_string(s.attributes, '$."harness.oom_killed"') AS BOOLEAN) AS oom_killed,
       json_extract_string(s.attributes, '$."harness.stdout.sha256"') AS stdout_sha256, TRY_CAST(json_extract_string(s.attributes, '$."harness.stdout.bytes"') AS BIGINT)
           AS stdout_bytes,
       json_extract_string(s.attributes, '$."harness.stderr.sha256"') AS stderr_sha256, TRY_CAST(json_extract_string(s.attributes, '$."harness.stderr.bytes"') AS BIGINT)
           AS stderr_bytes,
       TRY_CAST(json_extract_string(s.attributes, '$."process.cpu.time"') AS DOUBLE) AS cpu_s,
       TRY_CAST(json_extract_string(s.attributes, '$."harness.memory.peak"') AS BIGINT) AS peak_memory_bytes, s.status_code
FROM spans s LEFT JOIN spans r ON r.trace_id = s.trace_id AND r.parent_span_id IS NULL WHERE s.name = 'sandbox.exec';
CREATE OR REPLACE VIEW file_changes AS SELECT coalesce(r.run_id, s.run_id) AS run_id, coalesce(r.trial_id, r.trace_id) AS trial_id, coalesce(r.task_id, s.task_id) AS task, s.trace_id, s.span_id, s.parent_span_id AS command_span_id,
       json_extract_string(s.attributes, '$."harness.fs.path"') AS path, json_extract_string(s.attributes, '$."harness.fs.op"') AS op,
       json_extract_string(s.attributes, '$."harness.fs.type"') AS file_type, TRY_CAST(json_extract_string(s.attributes, '$."harness.fs.size"') AS BIGINT) AS size,
       json_extract_string(s.attributes, '$."harness.fs.mode"') AS mode, json_extract_string(s.attributes, '$."harness.fs.before.sha256"') AS before_sha256,
       json_extract_string(s.attributes, '$."harness.fs.after.sha256"') AS after_sha256, json_extract_string(s.attributes, '$."harness.fs.diff.sha256"') AS diff_sha256,
       json_extract_string(s.attributes, '$."harness.fs.link_target"') AS link_target, json_extract_string(s.attributes, '$."harness.fs.old_path"') AS old_path,
       coalesce(TRY_CAST(json_extract_string(s.attributes, '$."harness.fs.content_omitted"') AS BOOLEAN), false) AS content_omitted,
       make_timestamp(s.start_ns // 1000) AS changed_at
FROM spans s LEFT JOIN spans r ON r.trace_id = s.trace_id AND r.parent_span_id IS NULL WHERE s.name = 'fs.change';
CREATE OR REPLACE VIEW resource_samples AS SELECT coalesce(r.run_id, s.run_id) AS run_id, coalesce(r.trial_id, r.trace_id) AS trial_id, coalesce(r.task_id, s.task_id) AS task, s.trace_id, s.span_id, make_timestamp(s.start_ns // 1000) AS sampled_at,
       TRY_CAST(json_extract_string(s.attributes, '$."container.cpu.time"') AS DOUBLE) AS cpu_s,
       TRY_CAST(json_extract_string(s.attributes, '$."container.memory.usage"') AS BIGINT) AS memory_bytes,
       TRY_CAST(json_extract_string(s.attributes, '$."container.memory.peak"') AS BIGINT) AS memory_peak_bytes,
       TRY_CAST(json_extract_string(s.attributes, '$."container.pids"') AS BIGINT) AS pids,
       TRY_CAST(json_extract_string(s.attributes, '$."container.disk.io.read"') AS BIGINT) AS block_read_bytes,
       TRY_CAST(json_extract_string(s.attributes, '$."container.disk.io.write"') AS BIGINT) AS block_write_bytes,
       TRY_CAST(json_extract_string(s.attributes, '$."container.network.io.receive"') AS BIGINT) AS net_rx_bytes,
       TRY_CAST(json_extract_string(s.attributes, '$."container.network.io.transmit"') AS BIGINT) AS net_tx_bytes
FROM spans s LEFT JOIN spans r ON r.trace_id = s.trace_id AND r.parent_span_id IS NULL WHERE s.name = 'sandbox.resources';
CREATE OR REPLACE VIEW llm_calls AS SELECT coalesce(r.run_id, s.run_id) AS run_id, coalesce(r.trial_id, r.trace_id) AS trial_id, coalesce(r.task_id, s.task_id) AS task, s.trace_id, s.span_id, s.model,
       json_extract_string(s.attributes, '$."gen_ai.response.model"') AS response_model,
       json_extract_string(s.attributes, '$."gen_ai.response.id"') AS response_id,
       s.input_tokens, s.output_tokens,
       TRY_CAST(json_extract_string(s.attributes, '$."gen_ai.usage.cache_read.input_tokens"') AS BIGINT) AS cached_tokens,
       json_extract(s.attributes, '$."gen_ai.response.finish_reasons"') AS finish_reasons,
       make_timestamp(s.start_ns // 1000) AS started_at, s.duration_ns / 1e6 AS duration_ms,
       json_extract_string(s.attributes, '$."harness.request.sha256"') AS request_sha256,
       json_extract_string(s.attributes, '$."harness.response.sha256"') AS response_sha256, s.status_code, s.status_message
FROM spans s LEFT JOIN spans r ON r.trace_id = s.trace_id AND r.parent_span_id IS NULL
WHERE s.name LIKE 'chat%' OR json_extract_string(s.attributes, '$."gen_ai.operation.name"') = 'chat';
CREATE OR REPLACE VIEW tool_calls AS SELECT coalesce(r.run_id, s.run_id) AS run_id, coalesce(r.trial_id, r.trace_id) AS trial_id, coalesce(r.task_id, s.task_id) AS task, s.trace_id, s.span_id, json_extract_string(s.attributes, '$."gen_ai.tool.name"') AS tool_name,
       json_extract_string(s.attributes, '$."gen_ai.tool.call.id"') AS call_id,
       json_extract_string(s.attributes, '$."gen_ai.tool.call.arguments"') AS arguments,
       make_timestamp(s.start_ns // 1000) AS started_at, s.duration_ns / 1e6 AS duration_ms, s.status_code
FROM spans s LEFT JOIN spans r ON r.trace_id = s.trace_id AND r.parent_span_id IS NULL
WHERE s.name LIKE 'execute_tool%' OR json_extract_string(s.attributes, '$."gen_ai.operation.name"') = 'execute_tool';
CREATE OR REPLACE VIEW scores AS SELECT coalesce(r.run_id, s.run_id) AS run_id, coalesce(r.trial_id, r.trace_id) AS trial_id, coalesce(r.task_id, s.task_id) AS task, s.trace_id, s.span_id,
       CASE WHEN t.k = 'harness.reward' THEN 'reward' ELSE substr(t.k, 16) END AS key,
       TRY_CAST(json_extract_string(s.attributes, '$."' || t.k || '"') AS DOUBLE) AS value
FROM spans s
CROSS JOIN LATERAL (SELECT unnest(json_keys(s.attributes)) AS k) t
LEFT JOIN spans r ON r.trace_id = s.trace_id AND r.parent_span_id IS NULL
WHERE s.name = 'verify' AND (t.k = 'harness.reward' OR t.k LIKE 'harness.reward.%');
INSERT INTO harness_meta VALUES ('schema_version', '1');
