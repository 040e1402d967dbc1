"""`modelyard ci github|gitlab [--check]`: CI workflows generated from the project's config."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class Provider(StrEnum):
    github = "github"
    gitlab = "gitlab"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("ci")(ci)


def ci(
    provider: Annotated[Provider, typer.Argument(help="github or gitlab")],
    check: Annotated[
        bool,
        typer.Option("--check", help="write nothing; fail if a committed file is out of date"),
    ] = False,
) -> None:
    """Write the CI workflows (tests, data tests, continuous training, release, deploy,
    monitoring) from [tool.modelyard]; regenerating gives the same bytes."""
    from modelyard.cli.state import state
    from modelyard.errors import ConflictError
    from modelyard.packaging._files import write_file
    from modelyard.packaging._project import require_project
    from modelyard.packaging.ci import github_workflows, gitlab_ci

    settings = state.settings()
    require_project(settings, "ci")
    files = github_workflows(settings) if provider is Provider.github else gitlab_ci(settings)
    root = settings.project_root
    if check:
        stale = [
            name
            for name, text in files.items()
            if not (root / name).is_file() or (root / name).read_text() != text
        ]
        if stale:
            raise ConflictError(
                f"{', '.join(stale)} differ from what [tool.modelyard] generates",
                hint=f"run `modelyard ci {provider.value}` and commit the result",
                files=stale,
            )
        typer.echo(f"{len(files)} {provider.value} CI files are up to date")
        return
    for name, text in files.items():
        changed = write_file(root / name, text)
        typer.echo(f"{'wrote' if changed else 'unchanged'} {name}")
