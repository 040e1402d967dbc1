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
