"""`modelyard init`: a new project that trains, gates, registers and serves at once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("init")(init)


def init(
    folder: Annotated[
        Path, typer.Argument(help="the new project's folder (must not exist, or be empty)")
    ] = Path("."),
    name: Annotated[
        str | None, typer.Option("--name", help="project and model name (default: folder name)")
    ] = None,
) -> None:
    """Create a modelyard project: pipeline, data contract, gate, tests, README."""
    from modelyard.packaging.scaffold import init_project

    target = init_project(folder, name=name)
    shown = folder if not folder.is_absolute() else target
    typer.echo(f"created a modelyard project in {target}")
    typer.echo("next:")
    if target != Path.cwd().resolve():
        typer.echo(f"  cd {shown}")
    typer.echo("  modelyard run            # train, gate and register")
    typer.echo("  python -m pytest         # the project's tests")
    typer.echo("  (README.md lists the commands that follow)")
