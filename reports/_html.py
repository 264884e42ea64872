"""A run as one offline HTML file: what ``harness report`` writes.

People look at results more than they read them, and a report has to open wherever it lands:
a CI artifact, an email, a laptop with no network. So the page is one self-contained file: its
CSS and JavaScript are inlined, its charts are inline SVG drawn by that script, and a Content
Security Policy forbids every request (no CDN, no font, no image, no fetch), so nothing it
shows can make one either.

It stays fast at 500 trials because most of it is never rendered unless asked for. The summary
is HTML written here; the task table is built by the script from a small index; each trial's
details (timeline, resources, steps with their output and diffs, the model's messages, the
verifier) are a separate gzip-compressed JSON document, base64 in the page, decompressed by
the browser's ``DecompressionStream`` and rendered only when the trial is expanded.

Everything that came from a container or a model (output, file names, diffs, messages, task
names) reaches the page as data, never as markup: the summary's text is HTML-escaped here,
and the script puts every string in the page as a text node. Control characters are spelled
out (``\\x1b``) as in ``harness show``, and an injected ``<script>`` would not run anyway: the
page's policy lets only its own scripts, by a nonce made for each report, execute.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import math
import os
import secrets
import statistics
from collections import Counter
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import traces
from traces.vocab import Actor, Outcome, Span

from ._compare import Comparison, Verdict, compare
from ._cost import Price, load_prices
from ._results import Results, load_results, run_results
from ._story import (
    _ADDED_TEXT_CAP,
    _rank,
    _steps,
    _verifier_commands,
    duration_text,
    printable,
)
from ._summary import effective_trials, summarize

__all__ = [
    "OUTPUT_CAP",
    "html_report",
    "outcome_kind",
    "report_data",
    "trial_detail",
    "write_html_report",
]

# Each output, diff or message is kept whole in the report up to this many bytes; past it,
# its first and last halves are kept and the page says how much lies between (`harness show
# TRIAL --step N`, or SQL on the store, has the rest).
OUTPUT_CAP = 256 * 1024
# Trials whose blobs are read from the store at a time (bounds the memory a big run needs).
_BATCH = 50

KINDS = ("passed", "failed", "timeouts", "errors")


def outcome_kind(outcome: str | None) -> str:
    """The kind the summary counts an outcome under: passed, failed, timeouts (the agent's
    or the verifier's) or errors (everything else, an interrupted trial too)."""
    if outcome == Outcome.PASSED:
        return "passed"
    if outcome == Outcome.FAILED:
        return "failed"
    if outcome in (Outcome.AGENT_TIMEOUT, Outcome.VERIFIER_TIMEOUT):
        return "timeouts"
    return "errors"


# -- text as the page shows it ---------------------------------------------------------------


def _text(data: bytes, total: int | None = None, cap: int = OUTPUT_CAP) -> dict[str, Any]:
    """A recorded text as the page shows it: ``t`` the text made printable (newlines and
    tabs kept), ``n`` its lines and ``b`` its bytes as recorded; when it is over ``cap``,
    only its head and tail are in ``t`` and ``gap`` says where the rest was cut (``at``: the
    line of ``t`` it falls before; ``lines``, ``bytes``: what is left out); ``more`` is output
    the command wrote beyond what the record kept."""
    n = data.count(b"\n") + (bool(data) and not data.endswith(b"\n"))
    out: dict[str, Any] = {"n": n, "b": len(data)}
    if len(data) > cap:
        head_end = data.rfind(b"\n", 0, cap // 2) + 1 or cap // 2
        tail_start = data.find(b"\n", len(data) - cap // 2) + 1 or len(data) - cap // 2
        head, tail = data[:head_end], data[tail_start:]
        left = data[head_end:tail_start]
        cut_line = not head.endswith(b"\n")  # one line longer than half the cap: cut in it
        out["gap"] = {
            "at": head.count(b"\n") + cut_line,
            "lines": left.count(b"\n"),
            "bytes": len(left),
        }
        out["t"] = _printable(head) + ("\n" if cut_line else "") + _printable(tail)
    else:
        out["t"] = _printable(data)
    if total is not None and total > len(data):
        out["more"] = total - len(data)
    return out


def _printable(data: bytes) -> str:
    """Bytes as text safe to show: CRLF line ends as LF, undecodable bytes and control
    characters (but newline and tab) spelled as backslash escapes."""
    text = data.replace(b"\r\n", b"\n").decode("utf-8", "surrogateescape")
    return printable(text, newlines=True)


def _utf8_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _lines_as(data: bytes, sign: str) -> bytes:
    """A file's content as the added (``+``) or deleted (``-``) lines of a diff."""
    body = data[:-1] if data.endswith(b"\n") else data
    prefix = sign.encode()
    return b"\n".join(prefix + line for line in body.split(b"\n")) + b"\n"


# -- one trial -------------------------------------------------------------------------------


def _ms_since(t0: datetime, t: datetime) -> float:
    return round((t - t0).total_seconds() * 1000, 3)


def _blob_refs(rec: traces.TrialRecord) -> list[str]:
    """Every blob a trial's details show: outputs, diffs, small files' contents."""
    refs: list[str | None] = []
    for a in rec.actions:
        refs += [a.stdout_ref, a.stderr_ref]
    for c in rec.commands:
        if c.actor == Actor.VERIFIER or (c.actor is None and c.phase == Span.VERIFY):
            refs += [c.stdout_ref, c.stderr_ref]
    for ch in rec.file_changes:
        if ch.diff_ref:
            refs.append(ch.diff_ref)
        elif _small_file(ch):
            refs.append(ch.after_ref if ch.op != "deleted" else ch.before_ref)
    return [r for r in refs if r]


def _small_file(ch: traces.FileChange) -> bool:
    """A file whose content the page shows as its diff: added or deleted, small."""
    return (
        ch.op in ("added", "deleted")
        and ch.file_type == "file"
        and ch.size is not None
        and 0 < ch.size <= _ADDED_TEXT_CAP
        and not ch.content_omitted
    )


def _change(ch: traces.FileChange, blobs: dict[str, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "op": ch.op or "?",
        "path": printable(ch.path or ""),
        "type": ch.file_type,
        "size": ch.size,
    }
    if ch.old_path:
        out["old"] = printable(ch.old_path)
    if ch.link_target:
        out["link"] = printable(ch.link_target)
    if ch.diff_ref and ch.diff_ref in blobs:
        out["diff"] = _text(blobs[ch.diff_ref])
    elif ch.file_type != "file":
        pass
    elif ch.content_omitted:
        out["note"] = "content too large to keep"
    elif _small_file(ch):
        ref = ch.after_ref if ch.op != "deleted" else ch.before_ref
        content = blobs.get(ref or "")
        if content is None:
            out["note"] = "content not in the record"
        elif _utf8_text(content):
            out["diff"] = _text(_lines_as(content, "-" if ch.op == "deleted" else "+"))
        else:
            out["binary"] = True
    elif ch.op == "modified" and ch.before_ref and ch.after_ref and (ch.size or 0) <= 1 << 20:
        # A text file of this size would have a diff: one side is not text.
        out["binary"] = True
    elif ch.size:
        out["note"] = f"{ch.size:,} bytes, content not shown"
    return out


def trial_detail(rec: traces.TrialRecord, blobs: dict[str, bytes]) -> dict[str, Any]:
    """One trial's details as the page renders them when the trial is expanded: its header,
    a timeline (phases, model calls, actions, verifier and harness commands as bars in ms
    from the trial's start), resource samples with the sandbox's limits, each step with its
    output and file changes, the model's turns, and the verifier's runs.

    ``blobs`` holds the contents :func:`_blob_refs` names (read in one go for many trials).
    Every text is made printable and capped at :data:`OUTPUT_CAP`.
    """
    t = rec.trial
    t0 = t.started_at
    steps = _steps(list(rec.actions), list(rec.commands))
    changes: dict[str | None, list[traces.FileChange]] = {}
    for ch in rec.file_changes:
        changes.setdefault(ch.step_span_id, []).append(ch)
    turn_of = {n: turn for turn in rec.model_turns for n in turn.caused_steps}

    def output(ref: str | None, total: int | None) -> dict[str, Any] | None:
        data = blobs.get(ref, b"") if ref else b""
        if not data and not total:
            return None
        return _text(data, total)

    bars: list[list[Any]] = []
    for p in rec.phases:
        if p.name in Span.PHASES:
            label = p.name + (f" ({p.stage})" if p.stage and p.stage != "main" else "")
            bars.append(["phase", _ms_since(t0, p.started_at), p.duration_ms, p.name, label, None])
    for turn in rec.model_turns:
        kind = "fail" if turn.failed else "model"
        tokens = f"{turn.input_tokens or 0:,} in, {turn.output_tokens or 0:,} out"
        label = f"model turn {turn.index} ({printable(turn.model or '?')}, {tokens})"
        first = min(turn.caused_steps) if turn.caused_steps else None
        bars.append(["model", _ms_since(t0, turn.started_at), turn.duration_ms, kind, label, first])
    story_steps = []
    for s in steps:
        c = s.command
        timed_out = s.timed_out
        oom = bool(c and c.oom_killed)
        if s.kind == "write":
            kind = "write"
        elif timed_out:
            kind = "timeout"
        elif s.exit_code == 0:
            kind = "ok"
        else:
            kind = "fail"
        status = "" if s.exit_code is None else f", exit {s.exit_code}"
        first_line = printable(s.text.split("\n", 1)[0])[:120]
        label = f"step {s.number}: {first_line} ({duration_text(s.duration_ms)}{status})"
        bars.append(["agent", _ms_since(t0, s.started_at), s.duration_ms, kind, label, s.number])
        caused_by = turn_of.get(s.number)
        story_steps.append(
            {
                "n": s.number,
                "kind": s.kind,
                "action": printable(s.text, newlines=True),
                "stage": s.stage,
                "t": _ms_since(t0, s.started_at),
                "ms": round(s.duration_ms, 3),
                "exit": s.exit_code,
                "timeout": timed_out,
                "oom": oom,
                "cpu": c.cpu_s if c else None,
                "mem": c.peak_memory_bytes if c else None,
                "out": output(s.stdout_ref, c.stdout_bytes if c else None),
                "err": output(s.stderr_ref, c.stderr_bytes if c else None),
                "files": [_change(ch, blobs) for ch in changes.get(s.span_id, [])],
                "turn": caused_by.index if caused_by is not None else None,
            }
        )
    verifier = []
    for c in _verifier_commands(list(rec.commands)):
        kind = "timeout" if c.timed_out else ("ok" if c.exit_code == 0 else "fail")
        cmd = printable(c.command or "", newlines=True)
        took = duration_text(c.duration_ms)
        label = f"verifier: {cmd.split(chr(10), 1)[0][:120]} ({took}, exit {c.exit_code})"
        bars.append(["verifier", _ms_since(t0, c.started_at), c.duration_ms, kind, label, None])
        verifier.append(
            {
                "cmd": cmd,
                "stage": c.stage,
                "t": _ms_since(t0, c.started_at),
                "ms": round(c.duration_ms, 3),
                "exit": c.exit_code,
                "timeout": c.timed_out,
                "oom": c.oom_killed,
                "out": output(c.stdout_ref, c.stdout_bytes),
                "err": output(c.stderr_ref, c.stderr_bytes),
            }
        )
    for c in rec.commands:
        if c.actor == Actor.HARNESS:
            kind = "ok" if c.exit_code in (0, None) else "fail"
            first_line = printable((c.command or "").split("\n", 1)[0])[:120]
            bars.append(
                ["harness", _ms_since(t0, c.started_at), c.duration_ms, kind, first_line, None]
            )
    turns = [
        {
            "i": turn.index,
            "model": printable(turn.model or ""),
            "t": _ms_since(t0, turn.started_at),
            "ms": round(turn.duration_ms, 3),
            "in": turn.input_tokens,
            "out": turn.output_tokens,
            "steps": list(turn.caused_steps),
            "failed": turn.failed,
            "msg": _text(turn.message.encode("utf-8", "surrogatepass")) if turn.message else None,
            "why": _text(turn.reasoning.encode("utf-8", "surrogatepass"))
            if turn.reasoning
            else None,
        }
        for turn in rec.model_turns
    ]
    return {
        "trial": _trial_header(t),
        "duration_ms": round(t.duration_s * 1000, 3),
        "bars": bars,
        "resources": _resources(rec, t0),
        "steps": story_steps,
        "turns": turns,
        "verifier": verifier,
    }


def _trial_header(t: traces.Trial) -> dict[str, Any]:
    return {
        "id": t.trial_id,
        "run": printable(t.run_id),
        "task": printable(t.task or ""),
        "index": t.trial_index,
        "agent": printable(t.agent or ""),
        "model": printable(t.model or ""),
        "outcome": t.outcome,
        "kind": outcome_kind(t.outcome),
        "passed": t.passed,
        "reward": t.reward,
        "steps": t.steps,
        "duration_s": t.duration_s,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cached_tokens": t.cached_tokens,
        "reasoning_tokens": t.reasoning_tokens,
        "cpu_s": t.cpu_s,
        "peak_memory_bytes": t.peak_memory_bytes,
        "image": printable(t.image or ""),
        "error": printable(t.error, newlines=True) if t.error else None,
        "started_at": t.started_at.isoformat(),
        "superseded": t.superseded,
    }


def _resources(rec: traces.TrialRecord, t0: datetime) -> dict[str, Any]:
    """Samples as [ms, CPU cores in use, memory bytes]: cores from the cumulative CPU time
    over the time between samples (at least 50 ms apart, so two reads of one moment do not
    make a spike)."""
    points: list[list[float | None]] = []
    last_t: float | None = None
    last_cpu: float | None = None
    for s in rec.resource_samples:
        at = _ms_since(t0, s.sampled_at)
        cores = None
        if s.cpu_s is not None and last_cpu is not None and last_t is not None:
            if at - last_t < 50:
                if points and s.memory_bytes is not None:
                    points[-1][2] = max(points[-1][2] or 0, s.memory_bytes)
                continue
            cores = round(max(0.0, (s.cpu_s - last_cpu) / ((at - last_t) / 1000)), 4)
        if s.cpu_s is not None:
            last_t, last_cpu = at, s.cpu_s
        points.append([at, cores, s.memory_bytes])
    return {
        "points": points,
        "memory_limit": rec.memory_limit_bytes,
        "cpu_limit": rec.cpu_limit,
    }


# -- the run ---------------------------------------------------------------------------------


def _chunk(doc: Any) -> str:
    """A JSON document as the page embeds it: gzip, then base64 (which holds no character
    HTML gives a meaning to, so no output can close the script element it sits in)."""
    raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    packed = gzip.compress(raw.encode("utf-8", "surrogatepass"), compresslevel=6, mtime=0)
    return base64.b64encode(packed).decode("ascii")


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def report_data(
    store: traces.TraceStore,
    run_id: str,
    baseline: str | Results | None = None,
    *,
    prices: dict[str, Price] | None = None,
    alpha: float = 0.05,
    min_delta: float = 0.0,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """What the page shows: (the summary's figures, the task table's index, each trial's
    details as an embedded chunk in the index's trial order).

    Raises:
        traces.StoreError: no run has that id.
        ResultsError: ``baseline`` names neither a results file nor a run.
        CompareError: the baseline has no task this run can be compared on.
    """
    table = load_prices() if prices is None else prices
    run = store.run(run_id)
    records = traces.trial_records(store, run_id)
    counted = effective_trials([r.trial for r in records])
    per_task = Counter(t.task or "" for t in counted)
    k = max(per_task.values(), default=1)
    summary = summarize(store, run_id, trials=k)
    comparison: Comparison | None = None
    if baseline is not None:
        base = baseline if isinstance(baseline, Results) else load_results(baseline, store, table)
        comparison = compare(
            base, run_results(store, run_id, table), alpha=alpha, min_delta=min_delta
        )
    durations = [t.duration_s for t in counted]
    kinds = Counter(outcome_kind(t.outcome) for t in counted)
    summary.update(
        {
            "run": {
                "run_id": run.run_id,
                "started_at": run.started_at.isoformat(),
                "ended_at": run.ended_at.isoformat(),
                "agents": list(run.agents),
                "models": list(run.models),
            },
            "k": k,
            "tasks_count": len(per_task),
            "kinds": {kind: kinds.get(kind, 0) for kind in KINDS},
            "outcomes": dict(Counter(str(t.outcome) for t in counted)),
            "total_s": sum(durations),
            "median_s": statistics.median(durations) if durations else None,
            "wall_s": (run.ended_at - run.started_at).total_seconds(),
            "not_counted": len(records) - len(counted),
        }
    )
    # Trials in the table's order: failed, errors, passed, then those run again; by start.
    order = sorted(
        range(len(records)),
        key=lambda i: (
            _rank(records[i].trial),
            records[i].trial.started_at,
            records[i].trial.trial_id,
        ),
    )
    ordered = [records[i] for i in order]
    chunks: list[str] = []
    for start in range(0, len(ordered), _BATCH):
        batch = ordered[start : start + _BATCH]
        blobs = store.blobs(r for rec in batch for r in _blob_refs(rec))
        chunks += [_chunk(trial_detail(rec, blobs)) for rec in batch]
    index = _index(ordered, table, comparison)
    if comparison is not None:
        summary["compare"] = _comparison_summary(comparison)
    return summary, index, chunks


def _index(
    records: list[traces.TrialRecord],
    prices: dict[str, Price],
    comparison: Comparison | None,
) -> dict[str, Any]:
    """The task table: a row per task with its figures (and the comparison's), and the
    trials as [id, task, index, outcome, kind, reward, seconds, steps, tokens, error,
    counted]; a trial's position is its chunk's."""
    from ._cost import cost_usd

    trials: list[list[Any]] = []
    by_task: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        t = rec.trial
        task = printable(t.task or "")
        by_task.setdefault(task, []).append(i)
        error = (t.error or "").strip().split("\n", 1)[0]
        trials.append(
            [
                t.trial_id,
                task,
                t.trial_index,
                t.outcome,
                outcome_kind(t.outcome),
                t.reward,
                round(t.duration_s, 3),
                t.steps,
                (t.input_tokens or 0) + (t.output_tokens or 0),
                printable(error)[:200],
                not t.superseded,
                cost_usd(t.model, t.input_tokens, t.output_tokens, t.cached_tokens, prices),
            ]
        )
    verdicts = {printable(c.task): c for c in comparison.tasks} if comparison else {}
    rows = []
    for task in sorted(set(by_task) | set(verdicts)):
        # A task's trials in the order of their index (a resumed one after the one it redid).
        idx = sorted(
            by_task.get(task, []),
            key=lambda i: (records[i].trial.trial_index or 0, records[i].trial.started_at),
        )
        counted = [trials[i] for i in idx if trials[i][10]]
        n = len(counted)
        passed = sum(1 for tr in counted if tr[4] == "passed")
        rewards = [tr[5] for tr in counted if tr[5] is not None]
        costs = [tr[11] for tr in counted if tr[11] is not None]
        row: dict[str, Any] = {
            "task": task,
            "trials": idx,
            "n": n,
            "passed": passed,
            "rate": passed / n if n else None,
            "reward": sum(rewards) / len(rewards) if rewards else None,
            "kinds": dict(Counter(tr[4] for tr in counted)),
            "mean_s": sum(tr[6] for tr in counted) / n if n else None,
            "tokens": sum(tr[8] for tr in counted),
            "cost": sum(costs) if costs else None,
        }
        c = verdicts.get(task)
        if c is not None:
            row["cmp"] = {
                "verdict": c.verdict,
                "reason": printable(c.reason) if c.reason else None,
                "base_passed": c.baseline.passed if c.baseline else None,
                "base_n": c.baseline.trials if c.baseline else None,
                "base_rate": c.baseline.pass_rate if c.baseline else None,
                "delta": c.delta,
                "p": _finite(c.p_value),
            }
        rows.append(row)
    return {"trials": trials, "tasks": rows, "compare": comparison is not None}


def _comparison_summary(c: Comparison) -> dict[str, Any]:
    s = c.suite
    return {
        "baseline": printable(c.baseline.source),
        "baseline_label": printable(c.baseline.label),
        "tasks": s.tasks,
        "baseline_pass_rate": s.baseline_pass_rate,
        "candidate_pass_rate": s.candidate_pass_rate,
        "delta": s.delta,
        "ci95": list(s.ci95),
        "p_value": s.p_value,
        "test": s.test,
        "verdict": s.verdict,
        "counts": {v: len(c.by_verdict(v)) for v in Verdict.ALL},
        "alpha": c.alpha,
        "notes": [printable(n) for n in c.notes],
    }


# -- the page --------------------------------------------------------------------------------


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{int(m)} min {s:.0f} s"
    h, m = divmod(m, 60)
    return f"{int(h)} h {int(m)} min"


def _stat(name: str, value: float | int | None, shown: str) -> str:
    """A figure with its exact value in ``data-value`` (what tests and scripts read)."""
    raw = "" if value is None else repr(value)
    return f'<span class="v" data-stat="{_e(name)}" data-value="{_e(raw)}">{_e(shown)}</span>'


def _kv(label: str, name: str, value: float | int | None, shown: str) -> str:
    return f"<div><dt>{_e(label)}</dt><dd>{_stat(name, value, shown)}</dd></div>"


def _count(n: int) -> str:
    return f"{n:,}"


def _summary_html(s: dict[str, Any]) -> str:
    run = s["run"]
    lo, hi = s["pass_rate_ci95"]
    k_items = "".join(
        _kv(f"pass@{k}", f"pass@{k}", s[f"pass@{k}"], f"{s[f'pass@{k}']:.3f}")
        for k in range(1, s["k"] + 1)
        if f"pass@{k}" in s
    )
    kinds = s["kinds"]
    chips = "".join(
        f'<span class="chip o-{kind}">{kind} {_stat(kind, kinds[kind], str(kinds[kind]))}</span>'
        for kind in KINDS
    )
    detail = ", ".join(f"{_e(o)} {n}" for o, n in sorted(s["outcomes"].items()))
    cost = s.get("cost_usd")
    cost_shown = "n/a" if cost is None else f"${cost:,.4f}"
    price_note = (
        f'<p class="note">prices: {_e(s["price_error"])}</p>' if s.get("price_error") else ""
    )
    not_counted = (
        f'<p class="note">{s["not_counted"]} trial(s) interrupted or run again by a resume '
        "are listed but not counted.</p>"
        if s["not_counted"]
        else ""
    )
    rate = _stat("pass_rate", s["pass_rate"], _pct(s["pass_rate"]))
    parts = [
        '<section id="summary" class="summary">',
        f'<div class="card"><h2>pass rate</h2><p class="big">{rate}</p>',
        f"<p>95% interval {_stat('ci_low', lo, _pct(lo))} to {_stat('ci_high', hi, _pct(hi))}"
        " (Wilson)</p>",
        f"<p>{_stat('passed', s['passed'], str(s['passed']))} of "
        f"{_stat('trials', s['trials'], str(s['trials']))} trials, "
        f"{_stat('tasks', s['tasks_count'], str(s['tasks_count']))} tasks</p>",
        f'<dl class="kv">{k_items}</dl></div>',
        f'<div class="card"><h2>outcomes</h2><p>{chips}</p><p class="note">{detail}</p></div>',
        '<div class="card"><h2>tokens and cost</h2><dl class="kv">',
        _kv("input", "input_tokens", s["input_tokens"], _count(s["input_tokens"])),
        _kv("cached", "cached_tokens", s["cached_tokens"], _count(s["cached_tokens"])),
        _kv("output", "output_tokens", s["output_tokens"], _count(s["output_tokens"])),
        _kv("reasoning", "reasoning_tokens", s["reasoning_tokens"], _count(s["reasoning_tokens"])),
        _kv("cost", "cost_usd", cost, cost_shown),
        f"</dl>{price_note}</div>",
        '<div class="card"><h2>time</h2><dl class="kv">',
        _kv("total (trials)", "total_s", s["total_s"], _dur(s["total_s"])),
        _kv("median trial", "median_s", s["median_s"], _dur(s["median_s"])),
        _kv("wall clock", "wall_s", s["wall_s"], _dur(s["wall_s"])),
        f"</dl>{not_counted}</div>",
        "</section>",
    ]
    cmp = s.get("compare")
    if cmp is not None:
        lo, hi = cmp["ci95"]
        counts = ", ".join(f"{n} {_e(v)}" for v, n in cmp["counts"].items() if n)
        notes = "".join(f'<p class="note">{_e(n)}</p>' for n in cmp["notes"])
        verdict = cmp["verdict"]
        base = _stat("base_rate", cmp["baseline_pass_rate"], _pct(cmp["baseline_pass_rate"]))
        cand = _stat("cand_rate", cmp["candidate_pass_rate"], _pct(cmp["candidate_pass_rate"]))
        delta = _stat("delta", cmp["delta"], f"{cmp['delta'] * 100:+.1f} pp")
        p_value = _stat("p_value", cmp["p_value"], f"{cmp['p_value']:.4f}")
        parts += [
            '<section id="compare" class="card wide">',
            f'<h2>compared with the baseline</h2><p class="meta">{_e(cmp["baseline"])}</p>',
            f"<p>suite pass rate {base} → {cand} ({delta}, 95% CI {lo * 100:+.1f} to "
            f"{hi * 100:+.1f} pp) over {cmp['tasks']} tasks; {_e(cmp['test'])}: p = {p_value}"
            f' → <b class="verdict v-{_e(verdict.replace(" ", "-"))}" data-stat="verdict">'
            f"{_e(verdict)}</b></p>",
            f"<p>tasks: {counts} (alpha {cmp['alpha']:g}; per task: Fisher's exact test)</p>",
            notes,
            "</section>",
        ]
    agents = ", ".join(printable(a) for a in run["agents"]) or "-"
    models = ", ".join(printable(m) for m in run["models"]) or "-"
    started = run["started_at"][:19].replace("T", " ")
    header = (
        f'<header><h1>run <span id="run-id">{_e(printable(run["run_id"]))}</span></h1>'
        f'<p class="meta">started {_e(started)} UTC · agent {_e(agents)} · model '
        f"{_e(models)}</p></header>"
    )
    return header + "".join(parts)


def html_report(
    store: traces.TraceStore,
    run_id: str,
    baseline: str | Results | None = None,
    *,
    prices: dict[str, Price] | None = None,
    alpha: float = 0.05,
    min_delta: float = 0.0,
) -> str:
    """A run as one self-contained HTML page: the summary (pass rate with its 95% interval,
    pass@k, outcomes by kind, tokens and cost, time), the task table (sortable, filterable,
    failing tasks first) and every trial's details, rendered when expanded.

    Args:
        store: the trace store holding the run.
        run_id: the run's exact id (:func:`reports.find_run` resolves a prefix).
        baseline: compare with this run id or results file (or loaded results), as
            ``harness compare`` does: its verdicts join the summary and the table.
        prices: the price list (default: :func:`reports.load_prices`).
        alpha: the comparison's significance level.
        min_delta: the smallest pass-rate change the comparison counts.

    Raises:
        traces.StoreError: no run has that id.
        ResultsError: ``baseline`` names neither a results file nor a run.
        CompareError: the baseline has no task this run can be compared on.
    """
    summary, index, chunks = report_data(
        store, run_id, baseline, prices=prices, alpha=alpha, min_delta=min_delta
    )
    nonce = secrets.token_urlsafe(18)
    policy = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    title = f"harness report · {printable(run_id)}"
    trials_json = json.dumps(chunks, separators=(",", ":"))
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="generator" content="harness report">',
            '<link rel="icon" href="data:,">',
            f"<title>{_e(title)}</title>",
            f'<style nonce="{nonce}">{_asset("report.css")}</style></head><body>',
            '<main id="page">',
            _summary_html(summary),
            '<section id="tasks" class="tasks"><h2>tasks</h2>',
            '<div class="filters"><input id="filter-task" type="search" '
            'placeholder="filter tasks by name" aria-label="task name filter">',
            '<select id="filter-outcome" aria-label="outcome filter"></select>',
            '<span id="shown"></span></div>',
            '<table id="task-table"><thead></thead></table>',
            '<p id="loading" class="note">loading the task table…</p></section>',
            "</main>",
            f'<script id="harness-index" type="application/octet-stream">{_chunk(index)}</script>',
            f'<script id="harness-trials" type="application/json">{trials_json}</script>',
            f'<script nonce="{nonce}">{_asset("report.js")}</script>',
            "</body></html>\n",
        ]
    )


def write_html_report(
    store: traces.TraceStore,
    run_id: str,
    path: str | os.PathLike[str],
    baseline: str | Results | None = None,
    **options: Any,
) -> Path:
    """Write :func:`html_report` to ``path`` (its folder made if missing); returns the path.

    Raises:
        OSError: the file cannot be written; and what :func:`html_report` raises.
    """
    page = html_report(store, run_id, baseline, **options)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
