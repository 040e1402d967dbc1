"""The import contract of pyproject.toml (``[tool.importlinter]``): the layers of STYLE.md, web
libraries only where they belong, and no import cycles between the modules of a package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Cycles still in the code, each with the engineer fixing it (issue 8 item 7). A cycle found
#: that is not inside one of these fails the test; remove an entry when its cycle is gone.
KNOWN_CYCLES: dict[frozenset[str], str] = {
    frozenset({"data._checks", "data.contract"}): "corefix",
}


def _lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail("lint-imports is missing: pip install -c requirements/constraints.txt "
                    "'modelyard[dev]'")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(exe), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=src.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_code_keeps_the_import_contract() -> None:
    proc = _lint_imports(ROOT / "src")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "modelyard's layers KEPT" in proc.stdout


def test_the_contract_fails_on_an_upward_import_and_a_cycle_between_packages(
    tmp_path: Path,
) -> None:
    """A copy of the package with a lazy upward import (store -> workspace) and a cycle
    between two packages of one layer (tracking <-> registry) breaks the contract."""
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "modelyard",
        src / "modelyard",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (src / "modelyard" / "store" / "_upward.py").write_text(
        "def open_all():\n    from modelyard.workspace import Workspace\n\n    return Workspace\n"
    )
    (src / "modelyard" / "tracking" / "_sideways.py").write_text(
        "from modelyard.registry.registry import Registry\n"
    )
    proc = _lint_imports(src)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "modelyard's layers BROKEN" in proc.stdout
    assert "modelyard.store._upward -> modelyard.workspace" in proc.stdout
    assert "modelyard.tracking._sideways -> modelyard.registry.registry" in proc.stdout


def _cycles() -> list[set[str]]:
    """Strongly connected sets of modules (lazy and TYPE_CHECKING imports included; the root
    package's lazy re-exports left out)."""
    import grimp

    graph = grimp.build_graph("modelyard", cache_dir=None)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module) - {"modelyard"}:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top.removeprefix("modelyard."))
                if top == module:
                    break
            if len(component) > 1:
                found.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles_between_modules() -> None:
    unknown = [c for c in _cycles() if not any(c <= known for known in KNOWN_CYCLES)]
    assert not unknown, f"import cycles: {[sorted(c) for c in unknown]}"
