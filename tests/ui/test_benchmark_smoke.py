"""``benchmarks/ui.py`` keeps working: a small modelyard-only run exits 0 and prints its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._system_tools import require_tool

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ui_benchmark_runs_small_without_peer() -> None:
    require_tool("chromium", "chromium")
    require_tool("chromedriver", "chromium-driver")
    env = {k: v for k, v in os.environ.items() if k != "MODELYARD_TEST_POSTGRES_URL"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ui.py"), "--runs", "300", "--skip-peer"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| server time: sorted by metrics.m0 DESC | 300 |" in done.stdout
    assert "table visible in Chromium" in done.stdout
