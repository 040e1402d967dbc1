"""Batch scoring: `modelyard score` beside MLflow's batch paths and the bare model.

The same Parquet input (N rows x 20 float features, 1M-row row groups) is scored with the same
scikit-learn ``HistGradientBoostingClassifier`` by:

- **modelyard** (headline: the default configuration, contract checks on): the `modelyard score`
  command, one whole process, a thread per core; wall time includes start-up, fingerprinting the
  input and writing the Parquet output with the ids kept;
- **MLflow pyfunc**: ``mlflow.pyfunc.load_model(...).predict`` over the same Parquet in 1M-row
  chunks (MLflow's documented batch path in Python; in the ``benchmarks/.peers/mlflow`` venv the
  tracking and UI benchmarks share, on a SQLite tracking store);
- **MLflow CLI**: ``mlflow models predict --env-manager local`` on a CSV of the first
  ``--cli-rows`` rows (its input is CSV or JSON, so it gets a smaller file; rows/s compare);
- **bare model**: ``predict_proba`` on the same chunks in one process: the floor of one process.

Peak memory is the largest total resident set of the process tree (sampled every 50 ms from
/proc), so worker processes count. Run: ``python benchmarks/scoring.py [--rows 10000000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, peer_python, save_results

N_FEATURES = 20
CHUNK = 1_000_000


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _tree_rss_bytes(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
        todo.extend(_children(p))
    return total


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak tree RSS and stdout of ``argv``."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss_bytes(proc.pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    stop.set()
    sampler.join()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, peak, out


def make_data(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return
    rng = np.random.default_rng(0)
    schema = pa.schema([("id", pa.int64())] + [(f"f{i}", pa.float64()) for i in range(N_FEATURES)])
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            cols = {"id": np.arange(start, start + n, dtype=np.int64)}
            for i in range(N_FEATURES):
                cols[f"f{i}"] = rng.uniform(-3, 3, n)
            writer.write_table(pa.table(cols, schema=schema), row_group_size=CHUNK)
    tmp.replace(path)


TRAIN = r"""
import json, sys
import numpy as np, pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
cfg = json.loads(sys.argv[1])
rng = np.random.default_rng(1)
X = pd.DataFrame(rng.uniform(-3, 3, (100_000, 20)), columns=[f"f{i}" for i in range(20)])
X.iloc[0, :] = -3.0
X.iloc[1, :] = 3.0
y = ((X["f0"] + X["f1"] * X["f2"] + rng.normal(0, 0.5, len(X))) > 0).astype(int)
model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(X, y)
"""

MODELYARD_SETUP = (
    TRAIN
    + r"""
from modelyard import models
from modelyard.config import load_settings
from modelyard.data import infer_contract
from modelyard.workspace import Workspace
ws = Workspace.open(load_settings(start=cfg["project"]))
v = models.register(model, ws.registry, name="bench", input_example=X.head(5),
                    contract=infer_contract(X), aliases=["production"])
print(json.dumps({"version": v.version}))
"""
)

MLFLOW_SETUP = (
    TRAIN
    + r"""
import mlflow, mlflow.sklearn
mlflow.set_tracking_uri("sqlite:///" + cfg["work"] + "/mlflow.db")
# artifacts beside the database, not in ./mlruns of whatever folder the benchmark runs from
experiment = mlflow.create_experiment(
    "scoring", artifact_location="file://" + cfg["work"] + "/mlflow-artifacts"
)
with mlflow.start_run(experiment_id=experiment):
    # MLflow 3.17 saves with skops and refuses the tree nodes' type unless trusted, as we do
    info = mlflow.sklearn.log_model(
        model, name="model", input_example=X.head(5),
        skops_trusted_types=["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"],
    )
print(json.dumps({"uri": info.model_uri, "version": mlflow.__version__}))
"""
)

MLFLOW_PYFUNC = r"""
import json, sys, time
import pyarrow.parquet as pq
import mlflow
cfg = json.loads(sys.argv[1])
mlflow.set_tracking_uri("sqlite:///" + cfg["work"] + "/mlflow.db")
model = mlflow.pyfunc.load_model(cfg["uri"])
pf = pq.ParquetFile(cfg["input"])
rows = 0
for i in range(pf.num_row_groups):
    frame = pf.read_row_group(i).to_pandas()
    pred = model.predict(frame[[f"f{j}" for j in range(20)]])
    rows += len(pred)
print(json.dumps({"rows": rows}))
"""

BARE = (
    TRAIN
    + r"""
import time
import pyarrow.parquet as pq
t = time.perf_counter()
pf = pq.ParquetFile(cfg["input"])
rows = 0
for i in range(pf.num_row_groups):
    frame = pf.read_row_group(i).to_pandas()
    rows += len(model.predict_proba(frame[[f"f{j}" for j in range(20)]]))
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t}))
"""
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--cli-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()

    data_dir = ROOT / "benchmarks" / ".data"
    data_dir.mkdir(parents=True, exist_ok=True)
    src = data_dir / f"scoring_{args.rows}.parquet"
    print(f"writing {args.rows:,} x {N_FEATURES} rows to {src} ...", file=sys.stderr)
    make_data(src, args.rows)
    res: dict[str, Any] = {"rows": args.rows, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        project = work / "project"
        project.mkdir()
        (project / "pyproject.toml").write_text(f'[tool.modelyard]\nhome = "{work / "home"}"\n')
        setup = subprocess.run(
            [sys.executable, "-c", MODELYARD_SETUP, json.dumps({"project": str(project)})],
            capture_output=True, text=True, cwd=project, check=False,
        )  # fmt: skip
        if setup.returncode != 0:
            raise RuntimeError(f"registering the model failed:\n{setup.stderr[-3000:]}")
        modelyard = str(Path(sys.executable).parent / "modelyard")
        env = {**os.environ, "MODELYARD_LOG_LEVEL": "WARNING"}
        argv = [modelyard, "--home", str(work / "home"), "score", "bench@production", str(src),
                "--out", str(work / "out"), "--json",
                "--trust-type", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                ]  # fmt: skip
        seconds, peak, out = run_measured(argv, env)
        assert json.loads(out)["rows_scored"] == args.rows, out
        res["modelyard"] = {"seconds": seconds, "peak_bytes": peak}
        print(f"modelyard score: {seconds:.1f} s, peak {peak / 2**20:.0f} MiB", file=sys.stderr)

        seconds, peak, out = run_measured(
            [sys.executable, "-c", BARE, json.dumps({"input": str(src)})]
        )
        res["bare"] = {"seconds": seconds, "predict_s": json.loads(out.splitlines()[-1])["seconds"],
                       "peak_bytes": peak}  # fmt: skip
        if not args.skip_peer:
            # the venv the tracking and UI benchmarks share (mlflow brings pyarrow, pandas and
            # scikit-learn with it)
            py = peer_python("mlflow", ["mlflow"])
            setup = subprocess.run(
                [str(py), "-c", MLFLOW_SETUP, json.dumps({"work": str(work)})],
                check=False, capture_output=True, text=True, cwd=work,
            )  # fmt: skip
            if setup.returncode != 0:
                raise RuntimeError(f"MLflow's setup failed:\n{setup.stderr[-3000:]}")
            meta = json.loads(setup.stdout.strip().splitlines()[-1])
            res["mlflow_version"] = meta["version"]
            cfg = {"work": str(work), "uri": meta["uri"], "input": str(src)}
            seconds, peak, _ = run_measured([str(py), "-c", MLFLOW_PYFUNC, json.dumps(cfg)])
            res["pyfunc"] = {"seconds": seconds, "peak_bytes": peak}
            import pyarrow.parquet as pq

            csv = work / "cli.csv"
            head = pq.ParquetFile(src).read_row_group(0).slice(0, args.cli_rows).to_pandas()
            head[[f"f{j}" for j in range(N_FEATURES)]].to_csv(csv, index=False)
            mlflow_cli = str(py.parent / "mlflow")
            cli_env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db"}
            seconds, peak, _ = run_measured(
                [mlflow_cli, "models", "predict", "-m", meta["uri"], "-i", str(csv), "-t", "csv",
                 "-o", str(work / "cli_out.json"), "--env-manager", "local"], cli_env,
            )  # fmt: skip
            res["cli"] = {"seconds": seconds, "peak_bytes": peak, "rows": len(head)}
    res["load_after"] = os.getloadavg()
    save_results("scoring", res)

    def rate(part: dict[str, Any], rows: int) -> float:
        return rows / part["seconds"]

    ours = rate(res["modelyard"], args.rows)
    print(f"\n{args.rows:,} rows x {N_FEATURES} features, HistGradientBoostingClassifier, "
          f"{os.cpu_count()} cores, load average {res['load_before'][0]:.1f} -> "
          f"{res['load_after'][0]:.1f}\n")  # fmt: skip
    print("| path | rows/s | peak memory | modelyard's ratio |")
    print("|---|---|---|---|")

    def row(label: str, part: dict[str, Any] | None, rows: int) -> None:
        if part is None:
            return
        r = rate(part, rows)
        print(f"| {label} | {r:,.0f} | {part['peak_bytes'] / 2**30:.2f} GiB | {ours / r:.2f}x |")

    row(
        "**modelyard score** (default: contract checks on, a thread per core)",
        res["modelyard"],
        args.rows,
    )
    row("MLflow pyfunc, 1M-row chunks", res.get("pyfunc"), args.rows)
    row(
        f"MLflow CLI `mlflow models predict` ({args.cli_rows:,} rows of CSV)",
        res.get("cli"),
        args.cli_rows,
    )
    row("bare model, `predict_proba` on the same chunks, one process", res["bare"], args.rows)


if __name__ == "__main__":
    main()
