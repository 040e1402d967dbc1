"""The benchmark scripts keep working: each runs its quick, modelyard-only mode and exits 0.

Timings are not asserted here (the machines are shared and noisy); the scripts print them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("script", ["tracking.py", "validation.py", "pipeline.py", "sweep.py"])
def test_benchmark_script_runs_quick_without_peer(script: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--skip-peer"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "modelyard" in result.stdout


@pytest.mark.slow
def test_serving_benchmark_runs_quick_without_peer(tmp_path: Path) -> None:
    from tests._system_tools import require_tool

    require_tool("wrk", "wrk")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "serving" / "bench.py"),
            "--quick",
            "--skip-peer",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # the headline row is the default configuration (request log on), the tuned one beside it
    assert "| modelyard (default) |" in result.stdout
    assert "| modelyard (no request log) |" in result.stdout
    assert "request log on / off:" in result.stdout
