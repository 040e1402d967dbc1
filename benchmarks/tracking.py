"""Tracking and registry speed: modelyard against MLflow (latest release, SQLite backend).

Run from the repository root::

    python benchmarks/tracking.py            # full: 100 runs x 10 params x 100 steps, ...
    python benchmarks/tracking.py --quick    # small counts, a smoke test
    python benchmarks/tracking.py --skip-peer

Workloads (the same on both sides, each on a fresh SQLite file):

1. 100 runs x 10 params x 100 metric steps, one ``log_metric`` call per value through the fluent
   API (``modelyard.start_run`` / ``mlflow.start_run``): mean time per ``log_metric`` call, and
   the whole workload's time (runs started and ended, everything stored).
2. 100 model versions registered: modelyard ``Registry.register_version`` of files already in
   the artifact store vs MLflow ``MlflowClient.create_model_version`` (metadata pointing at a
   source URI); and, modelyard only, registering a 1 KiB package folder that is hashed and
   written (atomically, fsynced) as part of the call.
3. Alias resolution: ``Registry.resolve("bench@production")`` vs
   ``MlflowClient.get_model_version_by_alias``; median over many calls.
4. A search over 1,000 runs (params, tags, 3 metrics each) with a metric filter and ordering,
   100 results: ``metrics.auc > 0.8`` ordered by ``metrics.auc DESC``; median of repeats.
5. ``import modelyard`` vs ``import mlflow`` in a fresh interpreter, and the wall time of
   ``modelyard --help`` vs ``mlflow --version``; medians.

MLflow runs in its own venv (``benchmarks/.peers/mlflow``, created when missing) as a subprocess
executing the driver embedded below, which prints its results as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ROOT,
    fmt,
    median_import_s,
    median_process_s,
    peer_python,
    print_table,
    ratio,
    run_driver,
    save_results,
)

TARGETS = {
    "log_metric_us": 20.0,
    "register_ms": 2.0,
    "alias_ms": 0.2,
    "search_ms": 30.0,
    "help_s": 0.3,
    "import_s": 0.15,
}


def sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {
            "runs": 5,
            "params": 10,
            "steps": 20,
            "versions": 10,
            "alias_calls": 50,
            "search_runs": 100,
            "search_repeats": 5,
            "process_repeats": 2,
        }
    return {
        "runs": 100,
        "params": 10,
        "steps": 100,
        "versions": 100,
        "alias_calls": 1000,
        "search_runs": 1000,
        "search_repeats": 21,
        "process_repeats": 5,
    }


# ---------------------------------------------------------------------------- modelyard side
def bench_modelyard(n: dict[str, int], work: Path) -> dict[str, Any]:
    import modelyard
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.store.db import MetadataStore
    from modelyard.tracking import fluent
    from modelyard.tracking.client import TrackingClient

    out: dict[str, Any] = {}
    store = MetadataStore.open(f"sqlite:///{work / 'modelyard.db'}")
    artifacts = ArtifactStore.open(str(work / "artifacts"))
    client = TrackingClient(store, artifacts, project_root=ROOT)
    fluent.set_client(client)

    # 1. logging, one call per value
    per_call = 0.0
    calls = 0
    start = time.perf_counter()
    for r in range(n["runs"]):
        with modelyard.start_run(experiment="bench", name=f"run-{r}"):
            for p in range(n["params"]):
                modelyard.log_param(f"p{p}", p)
            for s in range(n["steps"]):
                t = time.perf_counter()
                modelyard.log_metric("loss", 1.0 / (s + 1), step=s)
                per_call += time.perf_counter() - t
                calls += 1
    out["log_total_s"] = time.perf_counter() - start
    out["log_metric_us"] = per_call / calls * 1e6
    stored = client.search_runs(experiment="bench", max_results=n["runs"])
    assert len(stored) == n["runs"], "not every run was stored"
    assert len(client.metric_history(stored[0].id, "loss")) == n["steps"]

    # 2-3. registry
    try:
        from modelyard.registry.registry import Registry
    except ImportError:
        out["register_ms"] = out["register_upload_ms"] = out["alias_ms"] = None
    else:
        reg = Registry(store, artifacts, user="bench")
        pkg = work / "pkg"
        pkg.mkdir()
        reg.create_model("bench")
        reg.register_version("bench", artifacts.put_dir(pkg_warm(work)))  # warm-up, untimed
        # (a) files already in the artifact store, as MLflow's version points at a source URI
        times = []
        for v in range(n["versions"]):
            (pkg / "model.bin").write_bytes(v.to_bytes(4, "little") * 256)
            refs = artifacts.put_dir(pkg)
            t = time.perf_counter()
            reg.register_version("bench", refs)
            times.append(time.perf_counter() - t)
        out["register_ms"] = statistics.mean(times) * 1e3
        # (b) the folder hashed and written (atomic, fsynced) as part of the registration
        times = []
        for v in range(n["versions"]):
            (pkg / "model.bin").write_bytes((v + 10**6).to_bytes(4, "little") * 256)
            t = time.perf_counter()
            reg.register_version("bench", pkg)
            times.append(time.perf_counter() - t)
        out["register_upload_ms"] = statistics.mean(times) * 1e3
        reg.set_alias("bench", "production", max(1, n["versions"] // 2))
        reg.resolve("bench@production")
        t = time.perf_counter()
        for _ in range(n["alias_calls"]):
            mv = reg.resolve("bench@production")
        out["alias_ms"] = (time.perf_counter() - t) / n["alias_calls"] * 1e3
        assert mv.version == max(1, n["versions"] // 2)

    # 4. search over many runs
    rng = random.Random(0)
    for i in range(n["search_runs"]):
        run = client.start_run(experiment="search", name=f"s{i}", capture_lineage=False)
        run.log_params({"lr": rng.choice(["0.1", "0.01", "0.001"]), "depth": rng.randint(2, 9)})
        run.set_tags({"team": rng.choice(["a", "b"]), "stage": "dev"})
        run.log_metrics({"auc": rng.random(), "loss": rng.random(), "acc": rng.random()})
        run.end()
    times = []
    for _ in range(n["search_repeats"]):
        t = time.perf_counter()
        page = client.search_runs(
            experiment="search",
            filter="metrics.auc > 0.8",
            order_by=["metrics.auc DESC"],
            max_results=100,
        )
        times.append(time.perf_counter() - t)
    out["search_ms"] = statistics.median(times) * 1e3
    out["search_best_ms"] = min(times) * 1e3
    out["search_hits"] = len(page)
    assert all(r.metrics["auc"] > 0.8 for r in page)
    fluent.set_client(None)
    return out


# ---------------------------------------------------------------------------- MLflow side
MLFLOW_DRIVER = r"""
import json, os, random, statistics, sys, time, logging
cfg = json.loads(sys.argv[1])
n = cfg["n"]
logging.disable(logging.WARNING)
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

mlflow.set_tracking_uri(cfg["uri"])
exp = mlflow.set_experiment("bench")  # creates the database (migrations): not timed
out = {"version": mlflow.__version__}

per_call = 0.0
calls = 0
start = time.perf_counter()
for r in range(n["runs"]):
    with mlflow.start_run(run_name=f"run-{r}"):
        for p in range(n["params"]):
            mlflow.log_param(f"p{p}", p)
        for s in range(n["steps"]):
            t = time.perf_counter()
            mlflow.log_metric("loss", 1.0 / (s + 1), step=s)
            per_call += time.perf_counter() - t
            calls += 1
out["log_total_s"] = time.perf_counter() - start
out["log_metric_us"] = per_call / calls * 1e6

client = MlflowClient()
client.create_registered_model("bench")
pkg = os.path.join(cfg["work"], "pkg")
os.makedirs(pkg, exist_ok=True)
client.create_model_version("bench", source=pkg)  # warm-up, untimed
times = []
for v in range(n["versions"]):
    with open(os.path.join(pkg, "model.bin"), "wb") as fh:
        fh.write(v.to_bytes(4, "little") * 256)
    t = time.perf_counter()
    client.create_model_version("bench", source=pkg)
    times.append(time.perf_counter() - t)
out["register_ms"] = statistics.mean(times) * 1e3
target = str(max(1, n["versions"] // 2))
client.set_registered_model_alias("bench", "production", target)
client.get_model_version_by_alias("bench", "production")
t = time.perf_counter()
for _ in range(n["alias_calls"]):
    mv = client.get_model_version_by_alias("bench", "production")
out["alias_ms"] = (time.perf_counter() - t) / n["alias_calls"] * 1e3
assert mv.version == target or str(mv.version) == target

rng = random.Random(0)
exp_id = client.create_experiment("search")
for i in range(n["search_runs"]):
    run = client.create_run(exp_id, run_name=f"s{i}")
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, rng.random(), now, 0) for k in ("auc", "loss", "acc")],
        params=[Param("lr", rng.choice(["0.1", "0.01", "0.001"])), Param("depth", str(rng.randint(2, 9)))],
        tags=[RunTag("team", rng.choice(["a", "b"])), RunTag("stage", "dev")],
    )
    client.set_terminated(run.info.run_id)
times = []
for _ in range(n["search_repeats"]):
    t = time.perf_counter()
    page = client.search_runs([exp_id], "metrics.auc > 0.8", order_by=["metrics.auc DESC"], max_results=100)
    times.append(time.perf_counter() - t)
out["search_ms"] = statistics.median(times) * 1e3
out["search_best_ms"] = min(times) * 1e3
out["search_hits"] = len(page)
print(json.dumps(out))
"""


def pkg_warm(work: Path) -> Path:
    """A one-file package for the untimed warm-up registration."""
    folder = work / "pkg-warm"
    folder.mkdir(exist_ok=True)
    (folder / "model.bin").write_bytes(b"warm" * 256)
    return folder


def bench_mlflow(n: dict[str, int], work: Path) -> dict[str, Any]:
    python = peer_python("mlflow", ["mlflow"])
    work.mkdir(parents=True, exist_ok=True)
    config = {"n": n, "uri": f"sqlite:///{work / 'mlflow.db'}", "work": str(work)}
    return run_driver(python, MLFLOW_DRIVER, config)


# ---------------------------------------------------------------------------- processes
def bench_processes(repeats: int, skip_peer: bool) -> dict[str, Any]:
    bindir = Path(sys.executable).parent
    modelyard_cli = shutil.which("modelyard", path=str(bindir)) or shutil.which("modelyard")
    out: dict[str, Any] = {
        "import_s": median_import_s(sys.executable, "modelyard", repeats),
        "help_s": (
            median_process_s([modelyard_cli, "--help"], repeats)
            if modelyard_cli
            else median_process_s([sys.executable, "-m", "modelyard.cli", "--help"], repeats)
        ),
    }
    if not skip_peer:
        python = peer_python("mlflow", ["mlflow"])
        out["mlflow_import_s"] = median_import_s(python, "mlflow", repeats)
        out["mlflow_version_s"] = median_process_s(
            [str(python.parent / "mlflow"), "--version"], repeats
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small counts (smoke test)")
    parser.add_argument("--skip-peer", action="store_true", help="do not run MLflow")
    args = parser.parse_args(argv)
    n = sizes(args.quick)
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as tmp:
        work = Path(tmp)
        (work / "modelyard").mkdir()
        ours = bench_modelyard(n, work / "modelyard")
        peer: dict[str, Any] = {}
        if not args.skip_peer:
            peer = bench_mlflow(n, work / "mlflow")
    procs = bench_processes(n["process_repeats"], args.skip_peer)

    label = f"mlflow {peer['version']}" if peer else "mlflow"
    calls = n["runs"] * n["steps"]
    rows = [
        (
            f"log_metric, per call ({n['runs']} runs x {n['params']} params x {n['steps']} steps)",
            fmt(ours["log_metric_us"], "us"),
            fmt(peer.get("log_metric_us"), "us"),
            ratio(ours["log_metric_us"], peer.get("log_metric_us")),
        ),
        (
            f"same workload, total ({calls:,} log_metric calls)",
            fmt(ours["log_total_s"], "s"),
            fmt(peer.get("log_total_s"), "s"),
            ratio(ours["log_total_s"], peer.get("log_total_s")),
        ),
        (
            f"register a model version, files already stored (mean of {n['versions']})",
            fmt(ours["register_ms"], "ms"),
            fmt(peer.get("register_ms"), "ms"),
            ratio(ours["register_ms"], peer.get("register_ms")),
        ),
        (
            "register a version with its 1 KiB package written (hash, fsync, rename)",
            fmt(ours["register_upload_ms"], "ms"),
            "-",
            "",
        ),
        (
            "resolve an alias (per call)",
            fmt(ours["alias_ms"], "ms"),
            fmt(peer.get("alias_ms"), "ms"),
            ratio(ours["alias_ms"], peer.get("alias_ms")),
        ),
        (
            f"search {n['search_runs']:,} runs, metric filter, 100 results",
            fmt(ours["search_ms"], "ms"),
            fmt(peer.get("search_ms"), "ms"),
            ratio(ours["search_ms"], peer.get("search_ms")),
        ),
        (
            "import modelyard / import mlflow",
            fmt(procs["import_s"], "s"),
            fmt(procs.get("mlflow_import_s"), "s"),
            ratio(procs["import_s"], procs.get("mlflow_import_s")),
        ),
        (
            "modelyard --help / mlflow --version",
            fmt(procs["help_s"], "s"),
            fmt(procs.get("mlflow_version_s"), "s"),
            ratio(procs["help_s"], procs.get("mlflow_version_s")),
        ),
    ]
    print_table(rows, label)
    if hasattr(os, "getloadavg"):
        print(f"\nload average (1, 5, 15 min): {os.getloadavg()}; medians, noisy on a shared box")
    checks = [
        ("log_metric <= 20 us", ours["log_metric_us"], TARGETS["log_metric_us"]),
        ("register <= 2 ms", ours["register_ms"], TARGETS["register_ms"]),
        ("alias <= 0.2 ms", ours["alias_ms"], TARGETS["alias_ms"]),
        ("search <= 30 ms", ours["search_ms"], TARGETS["search_ms"]),
        ("modelyard --help < 0.3 s", procs["help_s"], TARGETS["help_s"]),
        ("import modelyard < 0.15 s", procs["import_s"], TARGETS["import_s"]),
    ]
    print()
    for name, value, limit in checks:
        verdict = "n/a" if value is None else ("met" if value <= limit else "MISSED")
        print(f"target {name}: {verdict}")
    path = save_results(
        "tracking",
        {"sizes": n, "modelyard": {**ours, **procs}, "mlflow": peer, "targets": TARGETS},
    )
    print(f"\nresults: {path}")
    print(json.dumps({"quick": args.quick, "skip_peer": args.skip_peer}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
