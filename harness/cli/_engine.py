"""Engine commands: setup, images, doctor, gc."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from traces.vocab import Label

from ._common import JsonOption, err, fail, out, say


def register(app: typer.Typer) -> None:
    images_app = typer.Typer(help="Build and inspect sandbox images.", no_args_is_help=True)
    app.add_typer(images_app, name="images")
    app.command()(setup)
    images_app.command("build")(images_build)
    app.command()(gc)
    app.command()(doctor)


def setup(
    image: Annotated[str | None, typer.Option(help="Base image name to ensure.")] = None,
) -> None:
    """Start (or install) the Docker engine and build the base image."""
    from sandbox import DEFAULT_IMAGE, SandboxError, build_base_image, ensure_engine, image_exists

    name = image or DEFAULT_IMAGE
    try:
        ensure_engine(say=say)
        if image_exists(name):
            say(f"engine ready; base image {name} present")
            return
        with err.status(f"building {name}") as status:
            build_base_image(name, progress=lambda m: status.update(f"building {name}: {m}"))
        say(f"built {name}")
    except SandboxError as exc:
        raise fail(str(exc)) from None


def images_build(
    name: Annotated[
        str | None, typer.Option(help="Image name (default harness-base:bookworm).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if the image exists.")] = False,
    mirror: Annotated[str | None, typer.Option(help="Debian mirror URL.")] = None,
) -> None:
    """Build the base image from Debian's mirror (no registry needed)."""
    from sandbox import DEFAULT_IMAGE, DEFAULT_MIRROR, SandboxError, build_base_image, image_exists

    name = name or DEFAULT_IMAGE
    try:
        if image_exists(name) and not force:
            out.print(f"{name} already exists (use --force to rebuild)", highlight=False)
            return
        with err.status(f"building {name}") as status:
            image_id = build_base_image(
                name,
                force=force,
                mirror=mirror or DEFAULT_MIRROR,
                progress=lambda m: status.update(f"building {name}: {m}"),
            )
        out.print(f"built {name} {image_id}", highlight=False)
    except SandboxError as exc:
        raise fail(str(exc)) from None


def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, do not remove.")] = False,
    snapshots: Annotated[
        bool,
        typer.Option("--snapshots", help="Prune snapshots (`harness run --snapshot`) instead."),
    ] = False,
    older_than: Annotated[
        str | None,
        typer.Option(help="With --snapshots: those older than this (e.g. 7d, 12h, 30m)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Remove what dead harness processes left, and snapshots of deleted runs.

    Containers, temporary images and networks whose owning process is gone; snapshots
    (`harness run --snapshot`) whose run is no longer in its store. With --snapshots
    --older-than AGE, snapshots older than AGE instead."""
    from sandbox import SandboxError, remove_snapshots
    from sandbox import gc as run_gc

    if older_than is not None and not snapshots:
        raise fail("--older-than goes with --snapshots", 2)
    age = _duration_s(older_than) if older_than is not None else None
    if snapshots and age is None:
        raise fail(
            "--snapshots needs --older-than AGE (e.g. 7d); snapshots of runs no longer in "
            "the store go with a plain `harness gc`",
            2,
        )
    try:
        items = [] if snapshots else run_gc(dry_run=dry_run)
        if snapshots:
            snaps = remove_snapshots(older_than_s=age, dry_run=dry_run)
        else:
            snaps = remove_snapshots(orphaned=_run_gone(), dry_run=dry_run)
    except SandboxError as exc:
        raise fail(str(exc)) from None
    if as_json:
        verb = "would_remove" if dry_run else "removed"
        gone = [i.__dict__ for i in items] + [
            {
                "kind": "snapshot",
                "id": s.image_id,
                "run_id": s.run_id,
                "trial_id": s.trial_id,
                "step": s.step,
                "bytes": s.size,
            }
            for s in snaps
        ]
        print(json.dumps({verb: gone}))
        return
    verb = "would remove" if dry_run else "removed"
    for i in items:
        out.print(f"{verb} {i.kind} {i.name} (owner pid {i.owner_pid} gone)", highlight=False)
    for s in snaps:
        why = "older than " + str(older_than) if snapshots else f"run {s.run_id} not in the store"
        out.print(
            f"{verb} snapshot {s.image_id[7:19]} (trial {s.trial_id[:8]} step {s.step}; {why})",
            highlight=False,
            markup=False,
        )
    n = len(items) + len(snaps)
    out.print(f"{n} {'item' if n == 1 else 'items'} {verb}", highlight=False)


def _run_gone() -> Any:
    """Whether a snapshot's run is gone: its store deleted, or the run not in it. A store
    that cannot be read now (a writer holds it) keeps its snapshots."""
    import traces

    runs: dict[str, set[str] | None] = {}

    def gone(snap: Any) -> bool:
        store = snap.labels.get(Label.STORE, "")
        if not store:
            return False  # not ours to judge
        if store not in runs:
            try:
                runs[store] = (
                    {r.run_id for r in traces.open(store).runs()} if Path(store).exists() else set()
                )
            except traces.StoreError:
                runs[store] = None
        known = runs[store]
        return known is not None and snap.run_id not in known

    return gone


def _duration_s(text: str) -> float:
    """Seconds in ``7d``, ``12h``, ``30m`` or ``45s``; exits 2 with the form for anything else."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    number, unit = text[:-1], text[-1:].lower()
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or value < 0:
        raise fail(f"--older-than {text!r}: use a number and a unit, e.g. 7d, 12h, 30m", 2)
    return value * units[unit]


def doctor(
    image: Annotated[str | None, typer.Option(help="Base image to check.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Check the engine, base image and fast paths; say how to fix problems."""
    from sandbox import DEFAULT_IMAGE, run_checks

    checks = run_checks(image or DEFAULT_IMAGE)
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        print(json.dumps({"ok": not failed, "checks": [c.as_dict() for c in checks]}))
    else:
        table = Table(show_header=True, header_style="bold")
        for col in ("check", "status", "detail", "fix"):
            table.add_column(col, overflow="fold")
        colors = {"ok": "green", "warn": "yellow", "fail": "red"}
        for c in checks:
            table.add_row(c.name, f"[{colors[c.status]}]{c.status}[/]", c.detail, c.fix)
        out.print(table)
    if failed:
        raise typer.Exit(1)
