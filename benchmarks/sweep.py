"""Hyper-parameter sweep: modelyard's cached trials against Optuna + MLflow re-running the script.

Run from the repository root::

    python benchmarks/sweep.py                       # 50 trials, 2 at a time
    python benchmarks/sweep.py --quick               # a smoke run: 6 trials, a small file
    python benchmarks/sweep.py --skip-peer           # modelyard only

The workload: ``load`` reads a CSV file of 400,000 rows x 20 columns (about 1 s of parsing),
``features`` fits a Yeo-Johnson power transform per column (on 100,000 rows), applies it to all
rows and hands back a training and a test sample of 20,000 rows each (about 1 s), ``fit`` trains a logistic regression with the swept ``C`` (log scale) and
``class_weight``, ``evaluate`` logs the test accuracy. Neither ``load`` nor ``features`` takes a
swept parameter. Both sides run the same functions (``sweep_work.py``, written into a temporary
project) with Optuna's TPE sampler, the same number of trials and trials at once:

* **modelyard**: ``modelyard sweep sweep_flow:train --trials N --parallel K`` in a fresh
  project (SQLite store): every trial is a pipeline run; load and features come from the step
  cache after the first trial.
* **Optuna + MLflow**: the usual script: ``study.optimize(objective, n_trials=N, n_jobs=K)``
  (Optuna's threads) whose objective runs the whole training script (load, features, fit,
  evaluate) and logs the trial as a nested MLflow run with its params and metric, what
  ``MLflowCallback`` records (SQLite tracking store), in its own venv
  (``benchmarks/.peers/mlflow-optuna``: MLflow 3.17.2, Optuna 5.1.0; created when missing).

Each side is one fresh process, timed from exec to exit; the shared steps' run counts come from
the runs modelyard recorded and from a counter in the peer's script.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, fmt, peer_python, print_table, ratio, run_driver, save_results

WORK = '''
"""The work both sides do: the same functions, the same data."""
import numpy as np
import pandas as pd

FEATURES = [f"x{i}" for i in range(20)]


def make_csv(path, rows, seed=0):
    import pyarrow as pa
    import pyarrow.csv

    rng = np.random.default_rng(seed)
    x = rng.lognormal(0.0, 0.8, size=(rows, len(FEATURES)))
    logit = np.log(x[:, 0]) - 0.7 * np.log(x[:, 1]) + 0.4 * np.log(x[:, 2]) + rng.normal(0, 1, rows)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["label"] = (logit > 0).astype(int)
    pyarrow.csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), str(path))


def load(path):
    return pd.read_csv(path, dtype={c: "float64" for c in FEATURES})


def features(frame, sample=20000):
    from sklearn.preprocessing import PowerTransformer

    values = frame[FEATURES].to_numpy()
    fitted = PowerTransformer().fit(values[: 100_000])  # Yeo-Johnson: a search per column
    transformed = fitted.transform(values)
    out = pd.DataFrame(transformed, columns=FEATURES)
    out["label"] = frame["label"].to_numpy()
    picked = out.sample(n=min(2 * sample, len(out)), random_state=0)
    half = len(picked) // 2
    return picked.iloc[:half].reset_index(drop=True), picked.iloc[half:].reset_index(drop=True)


def fit(train, C, class_weight):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, class_weight=None if class_weight == "none" else class_weight,
                               max_iter=500)
    return model.fit(train[FEATURES], train["label"])


def accuracy(model, test):
    return float((model.predict(test[FEATURES]) == test["label"]).mean())
'''

FLOW = """
import pandas as pd

import modelyard
import sweep_work as work
from modelyard.pipelines import log_metric


@modelyard.step
def load(path: str) -> pd.DataFrame:
    return work.load(path)


@modelyard.step(outputs=2)
def features(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return work.features(frame)


@modelyard.step
def fit(train_frame: pd.DataFrame, C: float = 1.0, class_weight: str = "none"):
    return work.fit(train_frame, C, class_weight)


@modelyard.step
def evaluate(model, test_frame: pd.DataFrame) -> float:
    value = work.accuracy(model, test_frame)
    log_metric("accuracy", value)
    return value


@modelyard.pipeline
def train(path: str = "data.csv", C: float = 1.0, class_weight: str = "none"):
    train_frame, test_frame = features(load(path=path))
    return evaluate(fit(train_frame, C=C, class_weight=class_weight), test_frame)
"""

PEER = """
import json
import sys
import threading
import time

started = time.perf_counter()
import mlflow
import optuna

config = json.loads(sys.argv[1])
sys.path.insert(0, config["project"])
import sweep_work as work

mlflow.set_tracking_uri(config["tracking_uri"])
mlflow.set_experiment("sweep")
optuna.logging.set_verbosity(optuna.logging.WARNING)
counts = {"load": 0, "features": 0}
lock = threading.Lock()


def objective(trial, parent_id):
    C = trial.suggest_float("C", 1e-3, 10.0, log=True)
    class_weight = trial.suggest_categorical("class_weight", ["none", "balanced"])
    frame = work.load(config["data"])
    with lock:
        counts["load"] += 1
    train_frame, test_frame = work.features(frame)
    with lock:
        counts["features"] += 1
    model = work.fit(train_frame, C, class_weight)
    value = work.accuracy(model, test_frame)
    # what MLflowCallback records: a run per trial with its params and the objective
    with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True,
                          parent_run_id=parent_id):
        mlflow.log_params(trial.params)
        mlflow.log_metric("accuracy", value)
    return value


with mlflow.start_run(run_name="study") as parent:
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0, constant_liar=True))
    study.optimize(lambda t: objective(t, parent.info.run_id), n_trials=config["trials"],
                   n_jobs=config["parallel"])
print(json.dumps({"best": study.best_value, "counts": counts,
                  "inner_s": time.perf_counter() - started}))
"""


PEER_REQUIREMENTS = ["mlflow==3.17.2", "optuna==5.1.0", "scikit-learn", "pandas", "numpy"]


def write_project(folder: Path, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep_work.py").write_text(textwrap.dedent(WORK))
    (folder / "sweep_flow.py").write_text(textwrap.dedent(FLOW))
    (folder / "pyproject.toml").write_text('[tool.modelyard]\nhome = ".modelyard"\n')
    data = folder / "data.csv"
    sys.path.insert(0, str(folder))
    import sweep_work

    sweep_work.make_csv(data, rows)
    return data


def bench_modelyard(project: Path, data: Path, trials: int, parallel: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(project)])}
    env.pop("MODELYARD_HOME", None)
    env.pop("MODELYARD_DB_URL", None)
    env.pop("MODELYARD_ARTIFACT_URL", None)
    argv = [
        sys.executable, "-m", "modelyard.cli", "sweep", "sweep_flow:train",
        "-s", "C=float:0.001:10:log", "-s", "class_weight=choice:none,balanced",
        "-p", f"path={data}", "--trials", str(trials), "--parallel", str(parallel),
        "--metric", "accuracy", "--sampler", "tpe", "--seed", "0", "--json",
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"modelyard sweep failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    summary = json.loads(proc.stdout)
    return {
        "wall_s": wall,
        "best": summary["best"]["value"],
        "step_runs": summary["step_runs"],
        "trials": summary["trials"],
        "mode": summary["mode"],
    }


def bench_peer(python: Path, project: Path, data: Path, trials: int, parallel: int) -> dict:
    config = {
        "project": str(project),
        "data": str(data),
        "trials": trials,
        "parallel": parallel,
        "tracking_uri": f"sqlite:///{project / 'mlflow.db'}",
    }
    start = time.perf_counter()
    out = run_driver(python, PEER, config)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "best": out["best"], "step_runs": out["counts"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None, help="trials per side (default 50)")
    parser.add_argument("--parallel", type=int, default=2, help="trials at once (default 2)")
    parser.add_argument("--rows", type=int, default=None, help="rows of the CSV file")
    parser.add_argument("--quick", action="store_true", help="6 trials on a small file (smoke)")
    parser.add_argument("--skip-peer", action="store_true", help="do not run Optuna + MLflow")
    args = parser.parse_args()
    rows = args.rows or (20_000 if args.quick else 400_000)
    args.trials = args.trials or (6 if args.quick else 50)
    if args.trials < 1 or args.parallel < 1:
        parser.error("--trials and --parallel must be at least 1")

    python = None
    if not args.skip_peer:
        python = peer_python("mlflow-optuna", PEER_REQUIREMENTS)
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-sweep-") as tmp:
        data = write_project(Path(tmp) / "data", rows)
        print(f"modelyard sweep, {args.trials} trials ...", file=sys.stderr)
        ours = bench_modelyard(Path(tmp) / "data", data, args.trials, args.parallel)
        peer: dict = {}
        if python is not None:
            print(f"Optuna + MLflow, {args.trials} trials ...", file=sys.stderr)
            peer_dir = Path(tmp) / "peer"
            peer_dir.mkdir()
            (peer_dir / "sweep_work.py").write_text(textwrap.dedent(WORK))
            peer = bench_peer(python, peer_dir, data, args.trials, args.parallel)

    def counts(side: dict) -> str:
        runs = side.get("step_runs") or {}
        return ", ".join(f"{s} {runs.get(s, 0)}x" for s in ("load", "features")) if runs else "-"

    shared_ours = sum(ours["step_runs"].get(s, 0) for s in ("load", "features"))  # type: ignore[union-attr]
    shared_peer = sum(peer.get("step_runs", {}).values()) if peer else None
    rows_out = [
        (
            f"{args.trials} trials, {args.parallel} at once: wall time",
            fmt(float(ours["wall_s"]), "s"),  # type: ignore[arg-type]
            fmt(peer.get("wall_s"), "s"),
            ratio(float(ours["wall_s"]), peer.get("wall_s")),  # type: ignore[arg-type]
        ),
        (
            "times the shared steps ran (load, features)",
            counts(ours),
            counts(peer),
            ratio(shared_ours, shared_peer) if shared_ours else "-",
        ),
        (
            "best accuracy",
            f"{ours['best']:.4f}",
            f"{peer['best']:.4f}" if peer else "-",
            "-",
        ),
    ]
    print(f"data: {rows:,} rows x 20 features (CSV); trials in {ours['mode']}")
    print_table(rows_out, "optuna + mlflow")
    save_results(
        "sweep",
        {"trials": args.trials, "parallel": args.parallel, "rows": rows, "modelyard": ours,
         "peer": peer},
    )  # fmt: skip


if __name__ == "__main__":
    main()
