"""`harness show`: a trial told as a story, or a run's trials, failures first, from the store
alone (no Docker engine needed: an imported record shows like a local one).

The story itself is built by :mod:`reports` as plain data; this module only lays it out.
Every string that came from a container, a model or the store is printed as a ``Text`` (never
read as Rich markup, never highlighted), so output holding ``[/]`` or a file named ``[bold]x``
shows as it is.
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from ._common import DbOption, JsonOption, fail, out

if TYPE_CHECKING:
    import reports
    import traces

__all__ = ["register", "show"]


def register(app: typer.Typer) -> None:
    app.command()(show)


def show(
    ident: Annotated[
        str,
        typer.Argument(
            metavar="id", help="A trial id or a run id, or a unique prefix of one (`harness runs`)."
        ),
    ],
    step: Annotated[
        int | None,
        typer.Option("--step", metavar="N", help="Only step N of the trial, in full."),
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Tell a trial as a story: per step the model's message, the action, exit code, time,
    CPU and memory, output head and tail, the files changed with a short diff; then the
    verifier's output and the score. Given a run id, list its trials, failures first."""
    import reports
    import traces

    store = traces.open(db)
    try:
        found = reports.find(store, ident)
        if isinstance(found, traces.Run):
            if step is not None:
                raise fail(
                    f"{found.run_id} is a run; --step N shows a step of a trial "
                    f"(`harness show {found.run_id}` lists its trials)",
                    2,
                )
            story: reports.RunStory | reports.TrialStory = reports.run_story(store, found.run_id)
        else:
            story = reports.trial_story(store, found.trial_id, step=step)
    except (traces.StoreError, reports.NoSuchStep) as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        sys.stdout.write(json.dumps(story.to_json(), ensure_ascii=False) + "\n")
        return
    again = f" --db {shlex.quote(db)}" if db else ""
    if isinstance(story, reports.RunStory):
        _print_run(story, again)
    else:
        _print_trial(story, again)


# -- layout helpers --------------------------------------------------------------------------


def _line(*parts: str | tuple[str, str]) -> Text:
    """A line of plain strings and (string, style) pairs; no string is read as markup."""
    text = Text()
    for part in parts:
        if isinstance(part, tuple):
            text.append(part[0], style=part[1])
        else:
            text.append(part)
    return text


def _print(text: Text) -> None:
    out.print(text, highlight=False, soft_wrap=True)


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # unreachable


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _or_dash(value: object) -> str:
    """A value of the record as text safe to print ("-" when absent)."""
    from reports import printable

    return "-" if value is None or value == () else printable(str(value))


def _excerpt(
    label: str, ex: reports.Excerpt, indent: str, more: str | None, style: str = ""
) -> None:
    """An excerpt under a label: its head, what was left out, its tail."""
    if label:
        _print(
            _line(
                indent,
                (label, "bold"),
                f"  {_count(ex.lines, 'line')}, {_bytes(ex.bytes)}",
            )
        )
    pad = indent + "  "
    for text in ex.head:
        _print(_line(pad, (text, style)))
    if ex.omitted_lines:
        note = f"… {_count(ex.omitted_lines, 'line')} ({_bytes(ex.omitted_bytes)}) left out"
        _print(_line(pad, (note + (f"; {more} shows more" if more else ""), "dim")))
    for text in ex.tail:
        _print(_line(pad, (text, style)))
    notes = []
    if ex.cut_lines:
        notes.append(f"{_count(ex.cut_lines, 'long line')} cut")
    if ex.unrecorded_bytes:
        notes.append(f"{_bytes(ex.unrecorded_bytes)} more written than the record kept")
    if notes:
        hint = f"; {more} shows more" if more and ex.cut_lines and not ex.omitted_lines else ""
        _print(_line(pad, ("(" + ", ".join(notes) + hint + ")", "dim")))


# -- a trial ---------------------------------------------------------------------------------


def _print_trial(story: reports.TrialStory, again: str) -> None:
    t = story.trial
    short = _or_dash(t.trial_id[:12])  # a prefix is enough to name it again
    _print_header(t, story)
    stages = {s.stage for s in story.steps}
    stage: str | None = None
    lim = story.limits
    for s in story.steps:
        if len(stages) > 1 and s.stage != stage:
            stage = s.stage
            _print(_line("── stage ", (_or_dash(stage), "bold"), " ──"))
        more = (
            None
            if story.only_step is not None
            else f"`harness show {short} --step {s.step}{again}`"
        )
        _print_step(s, lim, more)
    if story.only_step is None and not story.steps:
        _print(_line(("the agent took no steps", "dim")))
    if story.final_message is not None:
        _print(_line(("model", "bold magenta"), " (its last word)"))
        _excerpt("", story.final_message, "", None, "magenta")
        _print(Text())
    if story.only_step is not None:
        _print(
            _line(
                ("step ", "dim"),
                (f"{story.only_step} of {story.step_count}; ", "dim"),
                (f"`harness show {short}{again}` tells the whole trial", "dim"),
            )
        )
        return
    for run in story.verifier:
        _print_verifier(run)
    if not story.verifier:
        _print(_line(("the verifier did not run", "dim")))
    _print(_result(t))
    if t.error:
        _print(_line("  ", ("error: ", "bold red"), _or_dash(t.error)))


def _print_header(t: traces.Trial, story: reports.TrialStory) -> None:
    _print(
        _line(("trial ", "bold"), (_or_dash(t.trial_id), "bold cyan"), "  run ", _or_dash(t.run_id))
    )
    _print(
        _line(
            "task ",
            (_or_dash(t.task), "bold"),
            "  agent ",
            _or_dash(t.agent),
            "  model ",
            _or_dash(t.model),
            "  image ",
            _or_dash(t.image),
        )
    )
    tokens = "-"
    if t.input_tokens is not None or t.output_tokens is not None:
        tokens = f"{t.input_tokens or 0:,} in"
        if t.cached_tokens:
            tokens += f" ({t.cached_tokens:,} cached)"
        tokens += f", {t.output_tokens or 0:,} out"
        if t.reasoning_tokens:
            tokens += f" ({t.reasoning_tokens:,} reasoning)"
    cpu = "-" if t.cpu_s is None else f"{t.cpu_s:.2f} s"
    peak = "-" if t.peak_memory_bytes is None else _bytes(t.peak_memory_bytes)
    _print(
        _line(
            *_outcome(t),
            f"  duration {t.duration_s:.1f} s  steps {story.step_count}",
            f"  model calls {story.turns}" if story.turns else "",
            f"  tokens {tokens}  cpu {cpu}  peak memory {peak}",
            f"  started {t.started_at:%Y-%m-%d %H:%M:%S} UTC",
        )
    )
    if t.error:
        _print(_line(("error: ", "bold red"), _or_dash(t.error)))
    _print(Text())


def _outcome(t: traces.Trial) -> list[str | tuple[str, str]]:
    style = "bold green" if t.passed else "bold red"
    reward = "-" if t.reward is None else f"{t.reward:g}"
    outcome = t.outcome or "interrupted (no outcome)"
    return ["outcome ", (outcome, style), "  reward ", (reward, "bold")]


def _result(t: traces.Trial) -> Text:
    return _line(("result ", "bold"), *_outcome(t))


def _status(
    exit_code: int | None, timed_out: bool, oom_killed: bool, duration_ms: float
) -> list[str | tuple[str, str]]:
    from reports import duration_text

    code = "-" if exit_code is None else str(exit_code)
    parts: list[str | tuple[str, str]] = [
        "exit ",
        (code, "bold green" if exit_code == 0 else "bold red"),
        f"  {duration_text(duration_ms)}",
    ]
    if timed_out:
        parts += ["  ", ("timed out", "bold red")]
    if oom_killed:
        parts += ["  ", ("OOM killed", "bold red")]
    return parts


def _command_lines(action: str, limit: int | None) -> list[str]:
    lines = action.split("\n")
    if limit is not None and len(lines) > limit:
        return [*lines[:limit], f"… {_count(len(lines) - limit, 'more line')}"]
    return lines


def _print_step(s: reports.StoryStep, lim: reports.Limits, more: str | None) -> None:
    from reports import duration_text

    if s.message is not None:
        _print(_line(("model", "bold magenta"), f" (turn {s.turn})"))
        _excerpt("", s.message, "", more, "magenta")
    sign = "$ " if s.kind == "command" else ""
    first, *rest = _command_lines(s.action, lim.command_lines)
    _print(_line((f"step {s.step}", "bold cyan"), "  ", (sign + first, "bold")))
    for text in rest:
        _print(_line("        ", (text, "bold")))
    facts: list[str | tuple[str, str]] = ["  "]
    if s.kind == "command":
        facts += _status(s.exit_code, s.timed_out, s.oom_killed, s.duration_ms)
    else:
        facts.append(duration_text(s.duration_ms))
    if s.cpu_s is not None:
        facts.append(f"  cpu {s.cpu_s:.2f} s")
    if s.peak_memory_bytes is not None:
        facts.append(f"  peak memory {_bytes(s.peak_memory_bytes)}")
    _print(_line(*facts))
    if s.stdout is not None:
        _excerpt("stdout", s.stdout, "  ", more)
    if s.stderr is not None:
        _excerpt("stderr", s.stderr, "  ", more, "yellow")
    if s.changes:
        _print(_line("  ", ("files", "bold"), f"  {_count(len(s.changes), 'change')}"))
    for ch in s.changes:
        what = ch.path
        if ch.old_path:
            what = f"{ch.old_path} -> {ch.path}"
        if ch.link_target:
            what += f" -> {ch.link_target}"
        kind = "" if ch.file_type in (None, "file") else f" ({ch.file_type})"
        style = {"added": "green", "deleted": "red"}.get(ch.op, "yellow")
        _print(_line("    ", (f"{ch.op:<9}", style), what, kind))
        if ch.diff is not None:
            _excerpt("", ch.diff, "    ", more, "")
        elif ch.content_omitted:
            _print(_line("      ", ("(content too large to keep)", "dim")))
    _print(Text())


def _print_verifier(run: reports.VerifierRun) -> None:
    stage = f" ({run.stage})" if run.stage and run.stage != "main" else ""
    _print(_line(("verifier", "bold"), stage, "  ", ("$ " + run.command, "bold")))
    _print(_line("  ", *_status(run.exit_code, run.timed_out, run.oom_killed, run.duration_ms)))
    if run.stdout is not None:
        _excerpt("stdout", run.stdout, "  ", None)
    if run.stderr is not None:
        _excerpt("stderr", run.stderr, "  ", None, "yellow")
    if run.stdout is None and run.stderr is None:
        _print(_line("  ", ("(no output)", "dim")))
    _print(Text())


# -- a run -----------------------------------------------------------------------------------


def _print_run(story: reports.RunStory, again: str) -> None:
    r = story.run
    _print(
        _line(
            ("run ", "bold"),
            (_or_dash(r.run_id), "bold cyan"),
            f"  started {r.started_at:%Y-%m-%d %H:%M:%S} UTC",
            "  agent ",
            _or_dash(", ".join(r.agents) or None),
            "  model ",
            _or_dash(", ".join(r.models) or None),
        )
    )
    _print(
        _line(
            f"{_count(r.trials, 'trial')}, {r.passed} passed ({r.pass_rate:.0%})",
            f", {_count(r.errors, 'error')}" if r.errors else "",
        )
    )
    table = Table(header_style="bold")
    for col in ("trial", "task", "#", "outcome", "reward", "steps", "duration", "error"):
        table.add_column(col, overflow="fold")
    for t in story.trials:
        outcome = t.outcome or "interrupted"
        if t.superseded and t.outcome is not None:
            outcome += " (run again)"
        table.add_row(
            Text(_or_dash(t.trial_id[:12])),
            Text(_or_dash(t.task)),
            Text(_or_dash(t.trial_index)),
            Text(outcome, style="green" if t.passed else "red"),
            Text("-" if t.reward is None else f"{t.reward:g}"),
            Text(_or_dash(t.steps)),
            Text(f"{t.duration_s:.1f} s"),
            Text(_error_head(t.error)),
        )
    out.print(table, highlight=False)
    _print(_line(("`harness show TRIAL_ID" + again + "` for the story of one", "dim")))


def _error_head(error: str | None, width: int = 60) -> str:
    """The first line of an error, cut to ``width``."""
    lines = (error or "").strip().splitlines()
    first = _or_dash(lines[0]) if lines else ""
    return first if len(first) <= width else first[: width - 1] + "…"
