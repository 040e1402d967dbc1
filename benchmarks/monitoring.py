"""Monitoring benchmark: modelyard vs Evidently's DataDriftPreset on one 1,000,000 x 20 window.

Both read the SAME window from Parquet files in the request-log layout
(``requests/model=bench/version=1/hour=.../*.parquet``, 16 numeric + 4 categorical input
features, 3 of them drifted) and compare it with the same 100,000-row reference sample:

* modelyard: ``monitor_window`` on the typed request log through ``RequestLog`` (streamed in
  batches, binned into the version's reference profile, scored, live-quality columns read), its
  default configuration; the profile is built once, at training time, and not timed here.
* Evidently (latest release, in its own venv at ``benchmarks/.peers/evidently``, created on the
  first run): ``pyarrow.parquet.read_table(files).to_pandas()`` then
  ``Report([DataDriftPreset()]).run(current, reference)``, its documented usage (it has no
  speed options).

Each side runs in a fresh process; the time includes reading the Parquet files, and "peak
memory" is the process's peak RSS minus its RSS after imports and the reference were loaded
(the peak is ``VmHWM``, reset at that point: ``ru_maxrss`` would not do, see :func:`peak_mib`).
Then: the HTML report of the window (render time, size), and a 10,000,000-row window streamed
(peak memory should stay about that of 1M rows: memory is bounded by a batch, not the window).

Usage::

    python benchmarks/monitoring.py              # 1M rows, modelyard median of 3; 10M stream
    python benchmarks/monitoring.py --quick      # 100k rows, no 10M stream
    python benchmarks/monitoring.py --skip-peer
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import fmt, peer_python, print_table, ratio, save_results  # noqa: E402

SEED = 20261206
NUMERIC = [f"f{i}" for i in range(16)]
CATEGORICAL = [f"c{i}" for i in range(4)]
DRIFTED = ["f0", "f5", "c1"]
HOUR_S = 3600
T0_S = 1_780_000_000 // HOUR_S * HOUR_S


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> None:
    """Start the peak RSS over from the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def peak_mib() -> float:
    """This process's peak RSS since :func:`reset_peak` (``VmHWM``).

    Not ``getrusage().ru_maxrss``: Linux carries it over an exec, so a worker this script starts
    begins with the script's own peak; after writing the 10,000,000-row window that was 549 MiB
    above the worker's baseline, reported as the monitor's peak while the monitor's own was
    about 320 MiB.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (the benchmark needs Linux)")


# ------------------------------------------------------------------------------------------ data
def frame(rows: int, seed: int, *, drifted: bool) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        loc, scale = 10.0 * i, 1.0 + i % 5
        if drifted and name == "f0":
            loc += 0.5 * scale  # mean shift
        if drifted and name == "f5":
            scale *= 1.5  # variance only
        cols[name] = rng.normal(loc, scale, rows)
    for i, name in enumerate(CATEGORICAL):
        values = [f"v{j}" for j in range(5 + 3 * i)]
        p = np.linspace(2, 1, len(values))
        if drifted and name == "c1":
            p = p[::-1]
        cols[name] = rng.choice(values, rows, p=p / p.sum())
    return pd.DataFrame(cols)


def write_window(store_root: Path, rows: int, files: int, seed: int) -> list[str]:
    """The current window as request-log Parquet files; returns their paths."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = []
    per = rows // files
    for k in range(files):
        df = frame(per, seed + k, drifted=True)
        n = len(df)
        proba = 1 / (1 + np.exp(-(df["f1"].to_numpy() - 10) / 2))
        table = pa.table(
            {
                "request_id": pa.array([f"r{k}-{i}" for i in range(n)]),
                "instance": pa.array(np.zeros(n, np.int32)),
                "ts": pa.array(np.full(n, (T0_S + 60 + k) * 1000, np.int64)).cast(
                    pa.timestamp("ms", tz="UTC")
                ),
                "model": pa.array(["bench"] * n),
                "version": pa.array(["1"] * n),
                "status": pa.array(np.full(n, 200, np.int16)),
                "latency_ms": pa.array(np.ones(n, np.float32)),
                **{f"in__{c}": pa.array(df[c].to_numpy()) for c in df.columns},
                "out__prediction": pa.array((proba >= 0.5).astype(np.int64)),
                "out__proba__0": pa.array(1 - proba),
                "out__proba__1": pa.array(proba),
            }
        )
        hour = time.strftime("%Y-%m-%dT%H", time.gmtime(T0_S))
        folder = store_root / "named" / "requests" / "model=bench" / "version=1" / f"hour={hour}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{k:03d}.parquet"
        pq.write_table(table, path, row_group_size=131_072)
        paths.append(str(path))
        del table, df
    return paths


# ------------------------------------------------------------------------------------------ sides
def modelyard_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    import datetime as dt

    from modelyard.data.profile import Profile
    from modelyard.monitoring import MonitorPolicy, References, Window, monitor_window
    from modelyard.requestlog import RequestLog
    from modelyard.store.artifacts import ArtifactStore

    profile = Profile.from_bytes(Path(cfg["profile"]).read_bytes())
    store = ArtifactStore.open(cfg["store"])
    window = Window(
        dt.datetime.fromtimestamp(T0_S, dt.UTC), dt.datetime.fromtimestamp(T0_S + HOUR_S, dt.UTC)
    )
    # as on the Evidently side, pandas and pyarrow.parquet are imported before the clock starts;
    # what monitor_window imports on first use (polars) is timed
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    reset_peak()
    base = rss_mib()
    start = time.perf_counter()
    result = monitor_window(
        RequestLog(store, "bench", "1"),
        References(profile=profile),
        MonitorPolicy(),
        model="bench",
        version=1,
        window=window,
    )
    elapsed = time.perf_counter() - start
    out: dict[str, Any] = {
        "seconds": elapsed,
        "peak_mib": peak_mib() - base,
        "rows": result.rows,
        "verdict": result.verdict,
        "drifted": result.drift.drifted if result.drift else None,
    }
    if cfg.get("report"):
        from modelyard.monitoring import render_report

        render_report(result, profile)  # first render pays for importing matplotlib
        t = time.perf_counter()
        text = render_report(result, profile)
        out["report_s"] = time.perf_counter() - t
        out["report_bytes"] = len(text.encode())
    return out


EVIDENTLY_DRIVER = r"""
import json, os, sys, time
cfg = json.loads(sys.argv[1])
import pandas as pd, pyarrow.parquet as pq
from evidently import Report
from evidently.presets import DataDriftPreset
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
def peak():  # VmHWM since the reset below, as the modelyard side measures it
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024
reference = pd.read_parquet(cfg["reference"])
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
base = rss()
start = time.perf_counter()
table = pq.read_table(cfg["files"], columns=["in__" + c for c in cfg["columns"]], partitioning=None)
current = table.to_pandas().rename(columns=lambda c: c[4:])
del table
snapshot = Report([DataDriftPreset()]).run(current, reference)
result = snapshot.dict()
elapsed = time.perf_counter() - start
drifted = []
for m in result.get("metrics", []):
    name = str(m.get("metric_name", m.get("metric_id", "")))
    if "ValueDrift" in name:
        value = m.get("value")
        cfgm = m.get("config", {})
        thr = cfgm.get("threshold")
        col = cfgm.get("column")
        method = str(cfgm.get("method", ""))
        if value is not None and thr is not None:
            is_p = "p_value" in method or "test" in method.lower()
            if (value < thr) if is_p else (value >= thr):
                drifted.append(col)
import evidently
print(json.dumps({"seconds": elapsed,
    "peak_mib": peak() - base,
    "rows": len(current), "drifted": sorted(drifted), "version": evidently.__version__}))
"""


def run_self(cfg: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(cfg)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-4000:])
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(modelyard_worker(json.loads(args.worker))))
        return
    rows = 100_000 if args.quick else 1_000_000
    from modelyard.data.profile import build_profile

    with tempfile.TemporaryDirectory(prefix="modelyard-bench-monitor-") as tmp:
        root = Path(tmp)
        log(f"writing a {rows:,} x 20 window and a 100,000-row reference ...")
        reference = frame(100_000, SEED, drifted=False)
        reference.to_parquet(root / "reference.parquet")
        t = time.perf_counter()
        profile = build_profile(reference)
        build_s = time.perf_counter() - t
        (root / "profile.json").write_bytes(profile.to_bytes())
        files = write_window(root / "store", rows, 4, SEED + 1)
        cfg = {"profile": str(root / "profile.json"), "store": str(root / "store")}
        runs = [run_self({**cfg, "report": i == 0}) for i in range(args.repeats)]
        ours = {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "peak_mib": statistics.median(r["peak_mib"] for r in runs),
        }
        log(f"modelyard: {runs}")
        peer: dict[str, Any] | None = None
        if not args.skip_peer:
            # evidently 0.7 imports pandas internals that pandas 3 removed
            python = peer_python("evidently", ["evidently", "pandas<3", "pyarrow"])
            log("evidently: running (minutes) ...")
            from _common import run_driver

            peer = run_driver(
                python,
                EVIDENTLY_DRIVER,
                {
                    "reference": str(root / "reference.parquet"),
                    "files": files,
                    "columns": NUMERIC + CATEGORICAL,
                },
            )
            log(f"evidently: {peer}")
        big: dict[str, Any] | None = None
        if not args.quick:
            log("writing a 10,000,000-row window ...")
            for path in files:
                Path(path).unlink()
            write_window(root / "store", 10_000_000, 10, SEED + 100)
            big = run_self(cfg)
            log(f"10M: {big}")
    load = os.getloadavg()
    table = [
        (
            f"drift of {rows:,} x 20 from Parquet (incl. read)",
            fmt(ours["seconds"], "s"),
            fmt(peer["seconds"], "s") if peer else "-",
            ratio(ours["seconds"], peer["seconds"] if peer else None),
        ),
        (
            "peak memory above baseline",
            fmt(ours["peak_mib"], "MiB"),
            fmt(peer["peak_mib"], "MiB") if peer else "-",
            ratio(ours["peak_mib"], peer["peak_mib"] if peer else None),
        ),
        (
            "drifted features found (3 injected)",
            ", ".join(runs[0]["drifted"] or []),
            ", ".join(peer["drifted"]) if peer else "-",
            "",
        ),
        ("HTML report render", fmt(runs[0].get("report_s"), "s"), "-", ""),
        ("HTML report size", fmt(runs[0].get("report_bytes", 0) / 1024, "KiB"), "-", ""),
        ("reference profile of 100,000 rows (once)", fmt(build_s, "s"), "-", ""),
    ]
    if big:
        table.append(
            (
                "10,000,000-row window streamed",
                f"{fmt(big['seconds'], 's')}, peak +{fmt(big['peak_mib'], 'MiB')}",
                "-",
                "",
            )
        )
    peer_name = f"evidently {peer['version']}" if peer else "evidently"
    print_table(table, peer_name)
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    save_results(
        "monitoring",
        {"modelyard": runs, "evidently": peer, "ten_million": big, "load": load, "rows": rows},
    )


if __name__ == "__main__":
    main()
