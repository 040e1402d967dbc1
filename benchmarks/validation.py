"""Validation benchmark: modelyard data contracts vs pandera, plus profile and drift timings.

One run prints ``workload | modelyard | pandera | ratio`` for validating 1,000,000 rows x 20
columns (clean, and with 1% bad rows, every violation collected: pandera ``lazy=True``), then
the time to build a reference profile of 1M x 20 and to score another 1M x 20 against it.

pandera runs in its own venv at ``benchmarks/.peers/pandera`` (created on first use), as a
subprocess of that venv's python running this same file with ``--peer-worker``: it generates
the same data from the same seed (numpy + pandas only) and answers JSON timings.

Usage::

    python benchmarks/validation.py            # 1M rows, best and median of 7
    python benchmarks/validation.py --quick    # 100k rows, of 3
    python benchmarks/validation.py --skip-peer

The timed call is the whole validation, examples included; data generation is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"
SEED = 20240601
CATEGORIES = [f"cat_{i:02d}" for i in range(20)]
FLOATS = [f"f{i}" for i in range(10)]
INTS = [f"i{i}" for i in range(4)]
CATS = [f"c{i}" for i in range(3)]
T0 = "2020-01-01"
T_SPAN_S = 4 * 365 * 86400


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# the data (numpy + pandas only: this part also runs in the peer's venv)


def make_frame(n: int, seed: int, bad_fraction: float = 0.0, shift: bool = False) -> Any:
    """1 id + 10 float + 4 int + 3 categorical + 1 bool + 1 datetime = 20 columns."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {"id": np.arange(n, dtype=np.int64)}
    for i, name in enumerate(FLOATS):
        scale = 1.5 if (shift and i == 0) else 1.0
        loc = 0.5 if (shift and i == 1) else 0.0
        cols[name] = np.clip(rng.normal(loc, scale, n), -9.0, 9.0)
    for name in INTS:
        cols[name] = rng.integers(0, 1000, n, dtype=np.int64)
    cats = np.array(CATEGORIES, dtype=object)
    for name in CATS:
        cols[name] = cats[rng.integers(0, len(CATEGORIES), n)]
    cols["flag"] = rng.random(n) < 0.5
    cols["ts"] = np.datetime64(T0, "ns") + rng.integers(0, T_SPAN_S, n).astype("timedelta64[s]")
    df = pd.DataFrame(cols)
    for name in CATS:
        df[name] = df[name].astype(str)
    if bad_fraction > 0:
        bad = rng.choice(n, int(n * bad_fraction), replace=False)
        parts = np.array_split(bad, 5)
        df.loc[parts[0], "f0"] = 100.0  # out of range
        df.loc[parts[1], "i0"] = -1  # below min
        df.loc[parts[2], "c0"] = "unknown"  # unknown category
        df.loc[parts[3], "f1"] = np.nan  # null where not nullable
        df.loc[parts[4], "id"] = 0  # duplicates
    return df


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Run ``fn`` ``repeats`` times; (best, median) in seconds and the last result.

    On a shared, noisy machine the best of N is the figure to compare (as timeit does); the
    median is printed beside it.
    """
    times = []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return [min(times), statistics.median(times)], result


# ------------------------------------------------------------------------------------------
# pandera side (runs inside benchmarks/.peers/pandera)


def pandera_worker(rows: int, repeats: int) -> dict[str, Any]:
    from importlib.metadata import version

    import pandas as pd

    try:
        import pandera.pandas as pa
    except ImportError:  # older pandera
        import pandera as pa  # type: ignore[no-redef]

    columns: dict[str, Any] = {"id": pa.Column(int, unique=True, nullable=False)}
    for name in FLOATS:
        columns[name] = pa.Column(float, pa.Check.in_range(-10.0, 10.0), nullable=False)
    for name in INTS:
        columns[name] = pa.Column(int, pa.Check.in_range(0, 999), nullable=False)
    for name in CATS:
        columns[name] = pa.Column(str, pa.Check.isin(CATEGORIES), nullable=False)
    columns["flag"] = pa.Column(bool, nullable=False)
    columns["ts"] = pa.Column(
        pa.DateTime,
        [
            pa.Check.ge(pd.Timestamp(T0)),
            pa.Check.le(pd.Timestamp(T0) + pd.Timedelta(seconds=T_SPAN_S)),
        ],
        nullable=False,
    )
    schema = pa.DataFrameSchema(columns, strict=True)

    out: dict[str, Any] = {
        "versions": {"pandera": version("pandera"), "pandas": pd.__version__},
    }
    clean = make_frame(rows, SEED)
    t, _ = median_time(lambda: schema.validate(clean, lazy=True), repeats)
    out["clean_s"] = t

    bad = make_frame(rows, SEED, bad_fraction=0.01)

    def run_bad() -> int:
        try:
            schema.validate(bad, lazy=True)
        except pa.errors.SchemaErrors as exc:
            return len(exc.failure_cases)
        return 0

    t, failures = median_time(run_bad, repeats)
    out["bad_s"] = t
    out["bad_failure_cases"] = failures
    return out


def ensure_pandera() -> Path:
    venv = PEERS / "pandera"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists():
        return python
    log(f"creating {venv} and installing pandera")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "pandera", "pandas", "numpy"],
        check=True,
    )
    marker.write_text("pandera\n")
    return python


def run_peer(rows: int, repeats: int) -> dict[str, Any] | None:
    try:
        python = ensure_pandera()
    except (subprocess.CalledProcessError, OSError) as exc:
        log(f"pandera venv could not be created: {exc}")
        return None
    proc = subprocess.run(
        [
            str(python),
            str(Path(__file__).resolve()),
            "--peer-worker",
            "--rows",
            str(rows),
            "--repeats",
            str(repeats),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if proc.returncode != 0:
        log(f"pandera worker failed:\n{proc.stderr[-3000:]}")
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------------------------
# modelyard side


def modelyard_contract() -> Any:
    import datetime as dt

    from modelyard.data.contract import ColumnSpec, Contract

    specs = [ColumnSpec("id", "int", nullable=False, unique=True)]
    specs += [ColumnSpec(n, "float", nullable=False, min=-10.0, max=10.0) for n in FLOATS]
    specs += [ColumnSpec(n, "int", nullable=False, min=0, max=999) for n in INTS]
    specs += [ColumnSpec(n, "string", nullable=False, categories=tuple(CATEGORIES)) for n in CATS]
    specs += [ColumnSpec("flag", "bool", nullable=False)]
    t0 = dt.datetime.fromisoformat(T0)
    specs += [
        ColumnSpec(
            "ts", "datetime", nullable=False, min=t0, max=t0 + dt.timedelta(seconds=T_SPAN_S)
        )
    ]
    return Contract(columns={s.name: s for s in specs}, name="bench")


def run_modelyard(rows: int, repeats: int) -> dict[str, Any]:
    import polars as pl

    from modelyard.data.profile import build_profile

    contract = modelyard_contract()
    out: dict[str, Any] = {}
    clean = make_frame(rows, SEED)
    t, report = median_time(lambda: contract.validate(clean), repeats)
    if not report.ok:
        raise SystemExit(f"clean data failed its contract:\n{report.to_text()}")
    out["clean_s"] = t
    bad = make_frame(rows, SEED, bad_fraction=0.01)
    t, report = median_time(lambda: contract.validate(bad), repeats)
    out["bad_s"] = t
    out["bad_violations"] = [(v.column, v.rule, v.count) for v in report.violations]
    out["bad_rows_flagged"] = sum(v.count for v in report.violations)

    clean_pl, bad_pl = pl.from_pandas(clean), pl.from_pandas(bad)
    out["clean_polars_s"], _ = median_time(lambda: contract.validate(clean_pl), repeats)
    out["bad_polars_s"], _ = median_time(lambda: contract.validate(bad_pl), repeats)

    t, profile = median_time(lambda: build_profile(clean), repeats)
    out["profile_build_s"] = t
    out["profile_bytes"] = len(profile.to_bytes())
    current = make_frame(rows, SEED + 1, shift=True)
    t, drift = median_time(lambda: profile.score(current), repeats)
    out["drift_score_s"] = t
    out["drifted"] = drift.drifted
    same = make_frame(rows, SEED + 2)
    out["drifted_same"] = profile.score(same).drifted
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k rows, 3 repeats")
    parser.add_argument("--skip-peer", action="store_true", help="do not run pandera")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--peer-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    repeats = args.repeats or (3 if args.quick else 7)
    if args.peer_worker:
        print(json.dumps(pandera_worker(rows, repeats)))
        return 0

    log(f"modelyard: {rows:,} rows x 20 columns, best and median of {repeats}")
    mine = run_modelyard(rows, repeats)
    peer = None
    if not args.skip_peer:
        log("pandera (own venv)")
        peer = run_peer(rows, repeats)

    def fmt(v: list[float] | None) -> str:
        return "-" if v is None else f"{v[0]:.3f} s (median {v[1]:.3f})"

    def ratio(a: list[float], b: list[float] | None) -> str:
        return "-" if b is None else f"{b[0] / a[0]:.1f}x faster"

    label = f"{rows // 1000}k" if rows < 1_000_000 else f"{rows / 1e6:g}M"
    lines = [
        ("workload", "modelyard", "pandera", "ratio"),
        (
            f"validate {label} x 20, clean",
            fmt(mine["clean_s"]),
            fmt(peer and peer["clean_s"]),
            ratio(mine["clean_s"], peer and peer["clean_s"]),
        ),
        (
            f"validate {label} x 20, 1% bad rows, all violations",
            fmt(mine["bad_s"]),
            fmt(peer and peer["bad_s"]),
            ratio(mine["bad_s"], peer and peer["bad_s"]),
        ),
        (f"validate {label} x 20, clean, polars frame", fmt(mine["clean_polars_s"]), "-", "-"),
        (f"validate {label} x 20, 1% bad, polars frame", fmt(mine["bad_polars_s"]), "-", "-"),
        (f"build reference profile {label} x 20", fmt(mine["profile_build_s"]), "-", "-"),
        (f"score drift {label} x 20 vs profile", fmt(mine["drift_score_s"]), "-", "-"),
    ]
    widths = [max(len(r[i]) for r in lines) for i in range(4)]
    for r in lines:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"times: best of {repeats} (median); load average at the end: {load:.1f}")
    print(f"modelyard violations (1% bad): {mine['bad_violations']}")
    if peer:
        print(
            f"pandera failure cases (1% bad): {peer['bad_failure_cases']}; "
            f"versions {peer['versions']}"
        )
    print(
        f"profile: {mine['profile_bytes']} bytes; drifted (f0 sd x1.5, f1 +0.5 sd): "
        f"{mine['drifted']}; drifted on a fresh sample of the same distribution: "
        f"{mine['drifted_same']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
