"""Helpers shared by the benchmark scripts: peer virtualenvs, timing, the results table.

- ``peer_python(name, requirements)``: the python of ``benchmarks/.peers/<name>`` (a venv
  created with ``python -m venv`` + ``pip install`` when missing).
- ``run_driver(python, code, config)``: run ``code`` under another interpreter with ``config``
  as JSON in ``argv[1]``; the driver prints one JSON object as its last stdout line.
- ``median_process_s(argv)``: median wall time of a fresh process.
- ``print_table(rows)``: ``workload | modelyard | peer | ratio`` in Markdown.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / ".peers"
RESULTS = ROOT / "benchmarks" / "results"


def peer_python(name: str, requirements: Sequence[str]) -> Path:
    """The python executable of the peer venv ``name``, creating it when missing."""
    venv = PEERS / name
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    marker = venv / ".installed"
    if not marker.exists():
        print(f"creating peer venv {venv} ({' '.join(requirements)}) ...", file=sys.stderr)
        venv.parent.mkdir(parents=True, exist_ok=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *requirements],
            check=True,
        )
        marker.write_text(" ".join(requirements))
    return python


def run_driver(
    python: Path | str, code: str, config: dict[str, Any], *, timeout_s: float = 3600
) -> dict[str, Any]:
    """Run a driver script under ``python``; return the JSON object on its last stdout line."""
    proc = subprocess.run(
        [str(python), "-c", code, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"driver failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return dict(json.loads(lines[-1]))


def median_process_s(argv: Sequence[str], repeats: int, env: dict[str, str] | None = None) -> float:
    """Median wall-clock seconds of running ``argv`` to completion in a fresh process."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(list(argv), capture_output=True, check=True, env=env, timeout=300)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_import_s(python: Path | str, module: str, repeats: int) -> float:
    """Median seconds that ``import module`` takes in a fresh interpreter (startup excluded)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = []
    for _ in range(repeats):
        out = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, check=True, timeout=300
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def fmt(value: float | None, unit: str) -> str:
    """A number with its unit, or '-' when not measured."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    if value >= 10:
        return f"{value:.1f} {unit}"
    if value >= 1:
        return f"{value:.2f} {unit}"
    return f"{value:.3f} {unit}"


def ratio(ours: float | None, peer: float | None) -> str:
    """How many times faster we are (peer / ours), or '-'."""
    if ours is None or peer is None or ours <= 0:
        return "-"
    return f"{peer / ours:.1f}x"


def print_table(rows: Sequence[tuple[str, str, str, str]], peer: str) -> None:
    """Print ``workload | modelyard | <peer> | ratio`` as a Markdown table."""
    header = ("workload", "modelyard", peer, "ratio")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def save_results(name: str, data: dict[str, Any]) -> Path:
    """Write ``data`` to ``benchmarks/results/<name>.json`` (gitignored)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
