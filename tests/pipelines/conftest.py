"""Fixtures for pipeline tests: project modules written to a temp project and imported."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest


class ProjectModules:
    """Write Python modules into a project folder and import (or re-import) them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.names: list[str] = []

    def write(self, stem: str, source: str) -> ModuleType:
        """Write ``<root>/<stem>_<unique>.py`` and import it; returns the module."""
        name = f"{stem}_{uuid.uuid4().hex[:8]}"
        (self.root / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        self.names.append(name)
        return importlib.import_module(name)

    def write_named(self, name: str, source: str) -> None:
        """Write a helper module with an exact name (imported by other modules)."""
        (self.root / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        self.names.append(name)

    def rewrite(self, module: ModuleType, source: str) -> ModuleType:
        """Replace a module's source and reload it."""
        Path(str(module.__file__)).write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return importlib.reload(module)

    def rewrite_named(self, name: str, source: str) -> None:
        """Replace a helper module's source and reload it if imported."""
        (self.root / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        if name in sys.modules:
            importlib.reload(sys.modules[name])


@pytest.fixture
def project_modules(sqlite_settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProjectModules]:  # type: ignore[no-untyped-def]
    """Modules in the sqlite_settings project, importable for the test's duration."""
    root = Path(sqlite_settings.project_root)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # rewrites within a second must show
    mods = ProjectModules(root)
    yield mods
    for name in mods.names:
        sys.modules.pop(name, None)


@pytest.fixture
def counter_file(tmp_path: Path) -> Callable[[str], Path]:
    """A file per name whose length counts how many times a step ran (across processes)."""

    def make(name: str) -> Path:
        path = tmp_path / f"count-{name}"
        path.touch()
        return path

    return make
