"""The record's vocabulary: span names, attribute keys, container labels, outcomes, blob refs.

Every layer writes or reads the same record, so every layer imports its words from here and
none spells a span name or attribute key of its own: a rename is one edit, and a writer and
its readers cannot drift apart. This module is a leaf (standard library and the
OpenTelemetry semantic-conventions package only), so the sandbox can use it without knowing
anything else of ``traces``.

Names follow the OpenTelemetry semantic conventions where one exists (``gen_ai.*``,
``process.*``, ``container.*``, ``error.type``); our own keys live under ``harness.*``.
"""

from __future__ import annotations

import re
from typing import Final

from opentelemetry.semconv._incubating.attributes import (
    container_attributes as _container_incubating,
)
from opentelemetry.semconv._incubating.attributes import (
    gen_ai_attributes as _gen_ai,
)
from opentelemetry.semconv._incubating.attributes import (
    openai_attributes as _openai,
)
from opentelemetry.semconv._incubating.attributes import (
    process_attributes as _process,
)
from opentelemetry.semconv._incubating.attributes import (
    session_attributes as _session,
)
from opentelemetry.semconv.attributes import (
    container_attributes as _container,
)
from opentelemetry.semconv.attributes import (
    error_attributes as _error,
)
from opentelemetry.semconv.attributes import (
    server_attributes as _server,
)

__all__ = [
    "Actor",
    "Attr",
    "BLOB_PREFIX",
    "Label",
    "OUTCOMES",
    "Outcome",
    "Span",
    "blob_ref",
    "blob_sha",
]


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PROGRAM = re.compile(r"[^A-Za-z0-9._+-]")


class Span:
    """Span names. A trial is one trace whose root is ``invoke_agent {agent}``."""

    TRIAL: Final = "invoke_agent"  # the trial root, named "invoke_agent {agent}"
    RUN: Final = "harness.run"  # a suite run's configuration, recorded before its trials
    SETUP: Final = "setup"  # phase: sandbox start, services, healthcheck
    AGENT: Final = "agent"  # phase: the agent acts (one per stage)
    VERIFY: Final = "verify"  # phase: the verifier scores (one per stage)
    CHAT: Final = "chat"  # one model call, named "chat {model}"
    EXECUTE_TOOL: Final = "execute_tool"  # one tool call, named "execute_tool {tool}"
    SANDBOX_START: Final = "sandbox.start"
    SANDBOX_STOP: Final = "sandbox.stop"
    EXEC: Final = "sandbox.exec"  # one command in the sandbox's shell
    WRITE_FILE: Final = "sandbox.write_file"  # a file written through the sandbox API
    RESOURCES: Final = "sandbox.resources"  # one resource sample of the container
    FS_CHANGE: Final = "fs.change"  # one path a command changed
    SNAPSHOT: Final = "sandbox.snapshot"  # the container committed as an image after a step

    PHASES: Final = (SETUP, AGENT, VERIFY)

    @staticmethod
    def trial(agent: str) -> str:
        return f"{Span.TRIAL} {agent}"

    @staticmethod
    def exec(command: str) -> str:
        """A command's span name, ``sandbox.exec {program}``: the program the command line
        starts with (after variable assignments), so a trace tree says what ran. The full
        line is the span's ``process.command_line``."""
        for word in command.split():
            if _ASSIGNMENT.match(word):
                continue
            program = _PROGRAM.sub("", word.lstrip("({!").rsplit("/", 1)[-1])[:40]
            return f"{Span.EXEC} {program}" if program else Span.EXEC
        return Span.EXEC

    @staticmethod
    def is_exec(name: str) -> bool:
        """Whether a span name is a command's (``sandbox.exec`` or ``sandbox.exec {program}``)."""
        return name == Span.EXEC or name.startswith(Span.EXEC + " ")

    @staticmethod
    def chat(model: str) -> str:
        return f"{Span.CHAT} {model}"

    @staticmethod
    def tool(name: str) -> str:
        return f"{Span.EXECUTE_TOOL} {name}"


class Attr:
    """Span attribute keys."""

    # -- run, trial, stage ----------------------------------------------------------------
    RUN_ID: Final = "harness.run.id"
    RUN_CONFIG: Final = "harness.run.config"
    TASK_ID: Final = "harness.task.id"
    TASK_CONTENT_HASH: Final = "harness.task.content_hash"
    TRIAL_ID: Final = "harness.trial.id"
    TRIAL_INDEX: Final = "harness.trial.index"
    # A multi-step task's stage name (Harbor's [[steps]]), on its `agent`/`verify` spans and
    # its commands. Records before replay existed spelled it "harness.step" (STAGE_LEGACY).
    STAGE: Final = "harness.stage"
    STAGE_LEGACY: Final = "harness.step"
    OUTCOME: Final = "harness.outcome"
    PASSED: Final = "harness.passed"
    REWARD: Final = "harness.reward"  # also the prefix of named rewards: harness.reward.<key>
    STEPS: Final = "harness.steps"
    ERROR: Final = "harness.error"
    BUILD_LOG: Final = "harness.build_log.sha256"
    BUILD_CACHED: Final = "harness.build.cached"  # the task image was already built
    BUILD_SECONDS: Final = "harness.build.seconds"  # time this trial waited for its image
    INTERRUPTED: Final = "harness.interrupted"  # stopped by the user or an engine outage
    HINT: Final = "harness.hint"  # a likely cause shown beside the result, never instead
    EFFECTIVE_NETWORK: Final = "harness.task.network"  # the network policy the trial ran with
    REFUSED: Final = "harness.refused"  # event: an action refused (e.g. after the deadline)
    REFUSED_REASON: Final = "harness.refused.reason"

    # A run's trials share a session: backends group a session's traces.
    SESSION_ID: Final = _session.SESSION_ID
    ERROR_TYPE: Final = _error.ERROR_TYPE  # a trial's error outcome; a failed call's error

    # -- GenAI (OpenTelemetry semantic conventions) ---------------------------------------
    GEN_AI_OPERATION: Final = _gen_ai.GEN_AI_OPERATION_NAME
    GEN_AI_PROVIDER_NAME: Final = _gen_ai.GEN_AI_PROVIDER_NAME
    GEN_AI_AGENT_NAME: Final = _gen_ai.GEN_AI_AGENT_NAME
    GEN_AI_REQUEST_MODEL: Final = _gen_ai.GEN_AI_REQUEST_MODEL
    GEN_AI_REQUEST_TEMPERATURE: Final = _gen_ai.GEN_AI_REQUEST_TEMPERATURE
    GEN_AI_REQUEST_SEED: Final = _gen_ai.GEN_AI_REQUEST_SEED
    GEN_AI_RESPONSE_ID: Final = _gen_ai.GEN_AI_RESPONSE_ID
    GEN_AI_RESPONSE_MODEL: Final = _gen_ai.GEN_AI_RESPONSE_MODEL
    GEN_AI_FINISH_REASONS: Final = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
    GEN_AI_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
    GEN_AI_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
    GEN_AI_CACHED_TOKENS: Final = _gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
    GEN_AI_REASONING_TOKENS: Final = _gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
    GEN_AI_TOOL_NAME: Final = _gen_ai.GEN_AI_TOOL_NAME
    GEN_AI_TOOL_CALL_ID: Final = _gen_ai.GEN_AI_TOOL_CALL_ID
    GEN_AI_TOOL_CALL_ARGUMENTS: Final = _gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS
    GEN_AI_TOOL_CALL_RESULT: Final = _gen_ai.GEN_AI_TOOL_CALL_RESULT
    GEN_AI_TOOL_TYPE: Final = _gen_ai.GEN_AI_TOOL_TYPE
    GEN_AI_TOOL_DESCRIPTION: Final = _gen_ai.GEN_AI_TOOL_DESCRIPTION
    # Opt-in content: the conversation as the conventions' JSON, for OTel backends to render.
    # Sent over OTLP unless turned off; the store keeps the request and response blobs instead.
    GEN_AI_INPUT_MESSAGES: Final = _gen_ai.GEN_AI_INPUT_MESSAGES
    GEN_AI_OUTPUT_MESSAGES: Final = _gen_ai.GEN_AI_OUTPUT_MESSAGES
    GEN_AI_SYSTEM_INSTRUCTIONS: Final = _gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS
    GEN_AI_TOOL_DEFINITIONS: Final = _gen_ai.GEN_AI_TOOL_DEFINITIONS
    # How many of the oldest input messages were left out of GEN_AI_INPUT_MESSAGES to keep it
    # within its size cap (the request blob has them all).
    MESSAGES_OMITTED: Final = "harness.gen_ai.input.messages.omitted"
    OPENAI_API_TYPE: Final = _openai.OPENAI_API_TYPE  # responses | chat_completions
    SERVER_ADDRESS: Final = _server.SERVER_ADDRESS
    SERVER_PORT: Final = _server.SERVER_PORT
    SHELL_TOOL: Final = "harness.shell_tool"  # native | function: how the shell was offered
    # The response a stateful (store=true) request continued: the chain replay follows.
    PREVIOUS_RESPONSE_ID: Final = "harness.request.previous_response_id"
    REASONING_SUMMARY: Final = "harness.reasoning.summary"  # when summaries were requested
    REQUEST_BLOB: Final = "harness.request.sha256"
    RESPONSE_BLOB: Final = "harness.response.sha256"
    TOOL_ERROR: Final = "harness.tool.error"
    # Why an agent stopped, on its stage's `agent` span: done | max_steps | deadline | error.
    AGENT_STOP_REASON: Final = "harness.agent.stop_reason"
    RETRY_DELAY: Final = "harness.retry.delay_s"  # event "retry": seconds waited before it
    RETRY_AFTER: Final = "harness.retry.after_s"  # event "retry": the server's Retry-After

    # -- containers (OpenTelemetry semantic conventions, plus ours) ----------------------
    CONTAINER_ID: Final = _container.CONTAINER_ID
    IMAGE_NAME: Final = _container.CONTAINER_IMAGE_NAME
    IMAGE_ID: Final = _container_incubating.CONTAINER_IMAGE_ID
    NETWORK: Final = "harness.network"
    # whether the host's own services are out of the sandbox's reach (a firewall rule, or no
    # network at all)
    NETWORK_HOST_ISOLATED: Final = "harness.network.host_isolated"
    LIMITS_MEMORY: Final = "harness.limits.memory"
    LIMITS_CPUS: Final = "harness.limits.cpus"
    LIMITS_PIDS: Final = "harness.limits.pids"
    LIMITS_DISK: Final = "harness.limits.disk"  # bytes of writable layer allowed
    LIMITS_DISK_MODE: Final = "harness.limits.disk_mode"  # quota | measured | none
    FAST_PATH_FILES: Final = "harness.fast_path.file_changes"
    FAST_PATH_RESOURCES: Final = "harness.fast_path.resources"
    FAST_PATH_SHELLS: Final = "harness.fast_path.shells"  # started by PID 1, not docker exec

    # -- actions: who issued a command or file write, and the agent's step number ---------
    ACTOR: Final = "harness.actor"  # agent | verifier | harness (Actor)
    PHASE: Final = "harness.phase"  # setup | agent | verify: the phase it was issued in
    # An agent action's number: 1, 2, ... within the trial, in the order issued (a command
    # or a file write). Only the agent's actions are steps.
    STEP: Final = "harness.action.step"
    # On a `chat` span: the steps the model's turn caused (its tool calls' commands).
    CAUSED_STEPS: Final = "harness.caused_steps"
    TIMEOUT: Final = "harness.timeout_s"  # the timeout the command was issued with
    WRITE_BLOB: Final = "harness.write.sha256"  # the bytes a file write wrote
    # -- replay and fork -----------------------------------------------------------------
    REPLAY_OF: Final = "harness.replay.of"  # the trial id a replay re-ran
    REPLAY_MODE: Final = "harness.replay.mode"  # environment | model | regrade
    REPLAY_FIDELITY: Final = "harness.replay.fidelity"  # matching steps / steps
    REPLAY_DIVERGED_AT: Final = "harness.replay.diverged_at"  # the first step that differed
    FORK_OF: Final = "harness.fork.of"  # the trial id a fork continued
    FORK_AT: Final = "harness.fork.at"  # the step the new agent took over at
    # How many conversation items (input items, or messages) the new agent was handed.
    FORK_HISTORY: Final = "harness.fork.history_items"
    TASK_ARCHIVE: Final = "harness.task.archive.sha256"  # the task folder, as a tar blob
    SNAPSHOT_IMAGE: Final = "harness.snapshot.image"  # on sandbox.snapshot: the image id
    SNAPSHOT_BYTES: Final = "harness.snapshot.bytes"  # its own layer's size
    # On the trial root: how many snapshots it took, and what they cost in time and disk.
    SNAPSHOTS: Final = "harness.snapshots"
    SNAPSHOTS_SECONDS: Final = "harness.snapshots.seconds"
    SNAPSHOTS_BYTES: Final = "harness.snapshots.bytes"
    SOURCE_DATE_EPOCH: Final = "harness.source_date_epoch"  # the trial's SOURCE_DATE_EPOCH

    # -- commands ------------------------------------------------------------------------
    COMMAND_LINE: Final = _process.PROCESS_COMMAND_LINE
    COMMAND_LINE_HEX: Final = "harness.command_line.hex"  # the exact bytes, when not UTF-8
    CWD: Final = _process.PROCESS_WORKING_DIRECTORY
    EXIT_CODE: Final = _process.PROCESS_EXIT_CODE
    USER: Final = _process.PROCESS_USER_NAME
    CPU_TIME: Final = "process.cpu.time"
    COMMAND_ID: Final = "harness.command.id"
    CWD_AFTER: Final = "harness.cwd.after"
    TIMED_OUT: Final = "harness.timed_out"
    OOM_KILLED: Final = "harness.oom_killed"
    # The writable layer outgrew the disk limit (measured mode) and the sandbox's processes
    # were stopped: an attribute of the command and of sandbox.stop, and the event's name.
    DISK_EXCEEDED: Final = "harness.disk_exceeded"
    SESSION_RESTARTED: Final = "harness.session_restarted"
    MEMORY_PEAK: Final = "harness.memory.peak"
    STDOUT_BLOB: Final = "harness.stdout.sha256"
    STDOUT_BYTES: Final = "harness.stdout.bytes"
    STDOUT_RECORDED: Final = "harness.stdout.recorded_bytes"
    STDERR_BLOB: Final = "harness.stderr.sha256"
    STDERR_BYTES: Final = "harness.stderr.bytes"
    STDERR_RECORDED: Final = "harness.stderr.recorded_bytes"

    # -- file changes --------------------------------------------------------------------
    FS_PATH: Final = "harness.fs.path"
    FS_PATH_HEX: Final = "harness.fs.path.hex"  # the exact bytes of a non-UTF-8 path
    FS_OP: Final = "harness.fs.op"
    FS_TYPE: Final = "harness.fs.type"
    FS_SIZE: Final = "harness.fs.size"
    FS_MODE: Final = "harness.fs.mode"
    FS_BEFORE_MODE: Final = "harness.fs.before.mode"
    FS_BEFORE_BLOB: Final = "harness.fs.before.sha256"
    FS_AFTER_BLOB: Final = "harness.fs.after.sha256"
    FS_DIFF_BLOB: Final = "harness.fs.diff.sha256"
    FS_LINK_TARGET: Final = "harness.fs.link_target"
    FS_BEFORE_LINK_TARGET: Final = "harness.fs.before.link_target"
    FS_OLD_PATH: Final = "harness.fs.old_path"
    FS_CONTENT_OMITTED: Final = "harness.fs.content_omitted"

    # -- resource samples ----------------------------------------------------------------
    CONTAINER_CPU_TIME: Final = "container.cpu.time"
    CONTAINER_MEMORY: Final = "container.memory.usage"
    CONTAINER_MEMORY_PEAK: Final = "container.memory.peak"
    CONTAINER_PIDS: Final = "container.pids"
    CONTAINER_DISK_READ: Final = "container.disk.io.read"
    CONTAINER_DISK_WRITE: Final = "container.disk.io.write"
    CONTAINER_NET_RX: Final = "container.network.io.receive"
    CONTAINER_NET_TX: Final = "container.network.io.transmit"
    CONTAINER_DISK_USAGE: Final = "container.filesystem.usage"  # the writable layer, bytes

    # -- payloads moved to blobs by the recorder -----------------------------------------
    BLOB_SUFFIX: Final = ".sha256"  # "<key>.sha256": the blob ref of an oversized value
    BYTES_SUFFIX: Final = ".bytes"  # "<key>.bytes": its size

    @staticmethod
    def reward(key: str) -> str:
        """The attribute of a named reward (``reward.json``'s keys)."""
        return f"{Attr.REWARD}.{key}"


class Label:
    """Container and image labels: who owns a container, so `harness gc` can clean up."""

    MANAGED: Final = "harness.managed"
    OWNER_PID: Final = "harness.owner.pid"
    OWNER_HOST: Final = "harness.owner.host"
    OWNER_START: Final = "harness.owner.start"
    RUN_ID: Final = Attr.RUN_ID  # one key for the run, on containers and spans alike
    TEMP: Final = "harness.temp"  # an image that may be removed when its owner is gone
    RECIPE: Final = "harness.recipe"  # what the base image was built from
    TASK: Final = "harness.task"
    TASK_ENV: Final = "harness.task.env"
    # A snapshot image (the container after one of the agent's steps): kept until
    # `harness gc` finds its run gone from the store, or `--snapshots --older-than` prunes it.
    SNAPSHOT: Final = "harness.snapshot"
    TRIAL_ID: Final = Attr.TRIAL_ID
    STEP: Final = Attr.STEP
    STORE: Final = "harness.store"  # the trace store (absolute path) whose run it belongs to


class Actor:
    """Who issued a command or file write (``harness.actor``)."""

    AGENT: Final = "agent"  # the agent's actions: the steps replay re-issues
    VERIFIER: Final = "verifier"  # the task's tests
    HARNESS: Final = "harness"  # setup, services, healthchecks, reading the reward


class Outcome:
    """How a trial ended. Only ``passed`` and ``failed`` are scores; the rest are errors."""

    PASSED: Final = "passed"
    FAILED: Final = "failed"
    AGENT_TIMEOUT: Final = "agent_timeout"
    VERIFIER_TIMEOUT: Final = "verifier_timeout"
    VERIFIER_ERROR: Final = "verifier_error"
    BUILD_ERROR: Final = "build_error"
    STORAGE_EXCEEDED: Final = "storage_exceeded"  # the agent wrote past the task's disk limit
    INFRA_ERROR: Final = "infra_error"

    SCORED: Final = (PASSED, FAILED)

    @staticmethod
    def is_error(outcome: str | None) -> bool:
        return outcome not in Outcome.SCORED


OUTCOMES: Final = (
    Outcome.PASSED,
    Outcome.FAILED,
    Outcome.AGENT_TIMEOUT,
    Outcome.VERIFIER_TIMEOUT,
    Outcome.VERIFIER_ERROR,
    Outcome.BUILD_ERROR,
    Outcome.STORAGE_EXCEEDED,
    Outcome.INFRA_ERROR,
)

# A blob ref as spans carry it: "sha256:<hex>"; the blobs table keys by the bare hex.
BLOB_PREFIX: Final = "sha256:"


def blob_ref(sha_hex: str) -> str:
    """The span attribute value for a blob with this sha256 hex digest."""
    return BLOB_PREFIX + sha_hex


def blob_sha(ref: str) -> str:
    """The sha256 hex digest of a blob ref (a bare digest is returned as is)."""
    return ref[len(BLOB_PREFIX) :] if ref.startswith(BLOB_PREFIX) else ref
