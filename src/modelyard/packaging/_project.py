"""What the generators need to know about the project: that it is one, its name and version."""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING, Any

from modelyard.errors import ConfigError

if TYPE_CHECKING:
    from modelyard.config import Settings

__all__ = ["project_image", "project_metadata", "require_project"]


def require_project(settings: Settings, command: str) -> None:
    """Raise unless the settings came from a project with a ``[tool.modelyard]`` table.

    Raises:
        ConfigError: no ``pyproject.toml`` (or ``modelyard.toml``) with ``[tool.modelyard]`` in
            the current folder or above it.
    """
    if settings.source_of("project_root") == "discovered":
        raise ConfigError(
            f"`modelyard {command}` needs a modelyard project, and no pyproject.toml with a "
            f"[tool.modelyard] table (or modelyard.toml) was found in {settings.project_root} "
            "or above it",
            hint="run it inside a project, add [tool.modelyard] to pyproject.toml, or start "
            "one with `modelyard init DIR`",
            folder=str(settings.project_root),
        )


def project_metadata(settings: Settings) -> dict[str, Any]:
    """The ``[project]`` table of the project's ``pyproject.toml`` (empty when none)."""
    path = settings.project_root / "pyproject.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        table = tomllib.load(fh).get("project", {})
    return dict(table) if isinstance(table, dict) else {}


def project_image(settings: Settings, image: str | None = None) -> str:
    """The serving image with its tag: ``image`` as given, else ``packaging.image`` (default the
    project's name) tagged with the project's version."""
    if image:
        return image
    meta = project_metadata(settings)
    repository = settings.packaging.image or str(meta.get("name") or settings.project_root.name)
    last = repository.rsplit("/", 1)[-1]
    if ":" in last or "@" in last:
        return repository
    return f"{repository}:{meta.get('version', 'latest')}"
