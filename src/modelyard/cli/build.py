"""`modelyard build` (the serving image's Dockerfile) and `modelyard fetch` (a registered
version's files into a folder: what the image's init container runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("fetch")(fetch)


def fetch(
    model: Annotated[str, typer.Argument(help="NAME@alias or NAME:version")],
    out: Annotated[Path, typer.Option("--out", help="the folder to write the package into")],
) -> None:
    """Write a registered version's package files into a folder, each checked by its hash."""
    import shutil
    import tempfile

    from modelyard.cli.state import state
    from modelyard.errors import ConflictError
    from modelyard.registry.registry import Registry

    registry = Registry.from_settings(state.settings())
    version = registry.resolve(model)
    if out.exists() and any(out.iterdir()):
        raise ConflictError(
            f"{out} is not empty; nothing was fetched",
            hint="fetch into a new or empty folder",
            folder=str(out),
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        registry.download(version, staging)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    typer.echo(f"fetched {version.name}:{version.version} into {out}")
