"""Engine commands: setup, images, doctor, gc."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

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
    as_json: JsonOption = False,
) -> None:
    """Remove containers and temp images left by dead harness processes."""
    from sandbox import SandboxError
    from sandbox import gc as run_gc

    try:
        items = run_gc(dry_run=dry_run)
    except SandboxError as exc:
        raise fail(str(exc)) from None
    if as_json:
        verb = "would_remove" if dry_run else "removed"
        print(json.dumps({verb: [i.__dict__ for i in items]}))
        return
    verb = "would remove" if dry_run else "removed"
    for i in items:
        out.print(f"{verb} {i.kind} {i.name} (owner pid {i.owner_pid} gone)", highlight=False)
    out.print(f"{len(items)} {'item' if len(items) == 1 else 'items'} {verb}", highlight=False)


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
