"""Helpers for the packaging tests: the CLI as a user runs it, in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT.parent / "shared" / "schemas"


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
    models.save(model, registry, name=name, input_example=x[:2], aliases=["production"])
    return root
