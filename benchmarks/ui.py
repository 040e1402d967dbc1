"""The web UI at 100,000 runs: ``modelyard ui`` against the MLflow UI server (SQLite backend).

Run from the repository root::

    python benchmarks/ui.py                   # 10,000 and 100,000 runs x 10 params x 10 metrics
    python benchmarks/ui.py --runs 2000       # a smoke test
    python benchmarks/ui.py --skip-peer

Both stores hold the same runs (one experiment; the same names, start times, params ``p0..p9``
and metrics ``m0..m9``, drawn from one seeded generator that both interpreters run). They are
filled with bulk SQL inserts into each tool's own schema, created first by the tool itself
(``MetadataStore.open`` / MLflow's ``create_experiment``): the rows are what each tool writes for a
finished run with 10 params and 10 metrics logged at step 0 (MLflow: ``runs``, ``params``,
``metrics``, ``latest_metrics`` and the ``mlflow.runName`` tag; modelyard: ``runs``, ``params``,
``metrics``, ``latest_metrics``). Logging 100,000 runs through either API would take far longer
and measure the logging, not the UI. SQLite files are not ``ANALYZE``d (neither tool does it);
the PostgreSQL database is, as autovacuum would.

Measured, each server in its default configuration started as users start it (``modelyard ui``,
``mlflow server``), on loopback, with a keep-alive client:

1. server time of the first runs page, of the filtered search ``metrics.m0 > 0.5`` and of the
   runs sorted by ``metrics.m0 DESC``, 50 runs a page: modelyard's whole HTML page
   (``GET /runs``), MLflow's ``POST /ajax-api/2.0/mlflow/runs/search`` (the JSON its UI asks for).
   Median of 5 after a warm-up; a query that does not answer within ``--peer-timeout-s`` is
   reported as "> N s";
2. the time until the table is visible in headless Chromium (a fresh browser session each time):
   from ``driver.get`` until the newest run's name is rendered text on the page; median of 3.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, fmt, peer_python, ratio, run_driver, save_results

PAGE = 50
QUERIES = {
    "first page": {"filter": None, "order": None},
    "filter metrics.m0 > 0.5": {"filter": "metrics.m0 > 0.5", "order": None},
    "sorted by metrics.m0 DESC": {"filter": None, "order": "metrics.m0 DESC"},
}

# The same rows on both sides: executed here and inside the MLflow venv's driver.
GENERATOR = r'''
import random, uuid

def generate(n, seed=0):
    """Yield (run_id, name, start_s, params, metrics) for n runs, oldest first."""
    rng = random.Random(seed)
    base = 1_700_000_000.0
    for i in range(n):
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex
        params = [(f"p{p}", str(rng.randint(0, 100))) for p in range(10)]
        metrics = [(f"m{m}", rng.random()) for m in range(10)]
        yield run_id, f"run-{i}", base + i, params, metrics
'''

MLFLOW_FILL = (
    GENERATOR
    + r"""
import json, sqlite3, sys, time
cfg = json.loads(sys.argv[1])
import mlflow
from mlflow import MlflowClient
mlflow.set_tracking_uri(cfg["uri"])
client = MlflowClient()
exp_id = client.create_experiment("bench")   # the schema, made by MLflow itself
# what MLflow 3's UI reads to open the experiment on its runs table (model training)
client.set_experiment_tag(exp_id, "mlflow.experimentKind", "custom_model_development")
con = sqlite3.connect(cfg["path"])
runs, params, metrics, tags = [], [], [], []
for run_id, name, start, ps, ms in generate(cfg["n"]):
    start_ms = int(start * 1000)
    runs.append((run_id, name, "LOCAL", "", "", "bench", "FINISHED", start_ms, start_ms + 5000,
                 "", "active", f"{cfg['artifacts']}/{run_id}/artifacts", int(exp_id)))
    tags.append(("mlflow.runName", name, run_id))
    tags.append(("mlflow.user", "bench", run_id))
    params += [(k, v, run_id) for k, v in ps]
    metrics += [(k, v, start_ms, run_id, 0, 0) for k, v in ms]
con.executemany(
    "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id,"
    " status, start_time, end_time, source_version, lifecycle_stage, artifact_uri,"
    " experiment_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", runs)
con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", tags)
con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", params)
con.executemany(
    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?,?,?,?,?,?)",
    metrics)
con.executemany(
    "INSERT INTO latest_metrics (key, value, timestamp, run_uuid, step, is_nan)"
    " VALUES (?,?,?,?,?,?)", metrics)
con.commit()
print(json.dumps({"version": mlflow.__version__, "experiment_id": exp_id}))
"""
)


def _generate(
    n: int,
) -> Iterator[tuple[str, str, float, list[tuple[str, str]], list[tuple[str, float]]]]:
    scope: dict[str, Any] = {}
    exec(GENERATOR, scope)
    yield from scope["generate"](n)


# ---------------------------------------------------------------- filling
def fill_modelyard_sqlite(path: Path, n: int) -> str:
    import sqlite3

    from modelyard.store.db import MetadataStore

    url = f"sqlite:///{path}"
    MetadataStore.open(url)  # the schema, made by modelyard itself
    con = sqlite3.connect(path)
    con.execute("INSERT INTO experiments (name, created_at) VALUES ('bench', 0)")
    (exp_id,) = con.execute("SELECT id FROM experiments WHERE name = 'bench'").fetchone()
    runs, params, metrics = [], [], []
    for run_id, name, start, ps, ms in _generate(n):
        runs.append((run_id, exp_id, name, "run", "FINISHED", start, start + 5.0, "bench"))
        params += [(run_id, k, v) for k, v in ps]
        metrics += [(run_id, k, v, 0, start) for k, v in ms]
    con.executemany(
        "INSERT INTO runs (id, experiment_id, name, kind, status, start_time, end_time, user)"
        " VALUES (?,?,?,?,?,?,?,?)",
        runs,
    )
    con.executemany("INSERT INTO params (run_id, key, value) VALUES (?,?,?)", params)
    con.executemany(
        "INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES (?,?,?,?,?)", metrics
    )
    con.executemany(
        "INSERT INTO latest_metrics (run_id, key, value, step, timestamp) VALUES (?,?,?,?,?)",
        metrics,
    )
    con.commit()
    con.close()
    return url


def fill_modelyard_postgres(admin_url: str, n: int) -> tuple[str, str]:
    """A fresh database on the server of ``admin_url``, filled with COPY; (url, db name)."""
    import psycopg
    import sqlalchemy as sa

    from modelyard.store.db import MetadataStore

    name = f"modelyard_uibench_{os.getpid()}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    MetadataStore.open(url)
    plain = (
        sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    with psycopg.connect(plain) as con:
        row = con.execute(
            "INSERT INTO experiments (name, created_at) VALUES ('bench', 0) RETURNING id"
        ).fetchone()
        assert row is not None
        exp_id = row[0]
        rows = list(_generate(n))
        with con.cursor() as cur:
            with cur.copy(
                'COPY runs (id, experiment_id, name, kind, status, start_time, end_time, "user")'
                " FROM STDIN"
            ) as cp:
                for run_id, rname, start, _ps, _ms in rows:
                    cp.write_row(
                        (run_id, exp_id, rname, "run", "FINISHED", start, start + 5.0, "bench")
                    )
            with cur.copy("COPY params (run_id, key, value) FROM STDIN") as cp:
                for run_id, _n, _s, ps, _ms in rows:
                    for k, v in ps:
                        cp.write_row((run_id, k, v))
            for table in ("metrics", "latest_metrics"):
                with cur.copy(
                    f"COPY {table} (run_id, key, value, step, timestamp) FROM STDIN"
                ) as cp:
                    for run_id, _n, start, _ps, ms in rows:
                        for k, v in ms:
                            cp.write_row((run_id, k, v, 0, start))
        con.commit()
        con.execute("ANALYZE")
    return url, name


def drop_postgres(admin_url: str, name: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# ---------------------------------------------------------------- servers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=5.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout_s} s")
        time.sleep(0.2)


@contextlib.contextmanager
def serve(argv: list[str], url: str, health: str, env: dict[str, str], log: Path) -> Iterator[str]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out, start_new_session=True)
        try:
            _wait_http(url + health, 180.0)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def modelyard_server(db_url: str, work: Path) -> contextlib.AbstractContextManager[str]:
    port = _free_port()
    env = {**os.environ, "MODELYARD_DB_URL": db_url, "MODELYARD_ARTIFACT_URL": str(work / "art")}
    env.pop("MODELYARD_UI__ADMIN_TOKEN", None)
    argv = [sys.executable, "-m", "modelyard.cli", "ui", "--port", str(port)]
    return serve(
        argv, f"http://127.0.0.1:{port}", "/static/app.css", env, work / "modelyard-ui.log"
    )


def mlflow_server(
    python: Path, db_path: Path, work: Path
) -> contextlib.AbstractContextManager[str]:
    port = _free_port()
    mlflow = str(python.parent / "mlflow")
    argv = [
        mlflow, "server", "--backend-store-uri", f"sqlite:///{db_path}",
        "--default-artifact-root", str(work / "mlartifacts"),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    return serve(argv, f"http://127.0.0.1:{port}", "/health", dict(os.environ), work / "mlflow.log")


# ---------------------------------------------------------------- measuring
def _timed(call: Any, timeout_s: float) -> float | None:
    import httpx

    start = time.perf_counter()
    try:
        response = call(timeout_s)
    except httpx.TimeoutException:
        return None
    except httpx.TransportError as exc:  # e.g. the server closed the connection unanswered
        print(f"  no answer: {exc!r}", file=sys.stderr)
        return None
    response.raise_for_status()
    return time.perf_counter() - start


def query_times(kind: str, url: str, exp_id: str, timeout_s: float) -> dict[str, Any]:
    """Median seconds of each query (None: no answer within ``timeout_s``)."""
    import httpx

    out: dict[str, Any] = {}
    with httpx.Client(timeout=timeout_s) as client:
        for label, q in QUERIES.items():

            def call(t: float, q: dict[str, Any] = q) -> httpx.Response:
                if kind == "modelyard":
                    params = {"experiment": "bench"}
                    if q["filter"]:
                        params["filter"] = q["filter"]
                    if q["order"]:
                        params["order"] = q["order"]
                    return client.get(url + "/runs", params=params, timeout=t)
                body: dict[str, Any] = {"experiment_ids": [exp_id], "max_results": PAGE}
                if q["filter"]:
                    body["filter"] = q["filter"]
                if q["order"]:
                    body["order_by"] = [q["order"]]
                return client.post(url + "/ajax-api/2.0/mlflow/runs/search", json=body, timeout=t)

            first = _timed(call, timeout_s)  # warm-up
            if first is None:
                out[label] = None
                print(f"  {kind} {label}: no answer (limit {timeout_s:.0f} s)", file=sys.stderr)
                continue
            times = (
                [first]
                if first > 10
                else [t for t in (_timed(call, timeout_s) for _ in range(5)) if t]
            )
            out[label] = statistics.median(times)
            print(f"  {kind} {label}: {out[label] * 1000:.1f} ms", file=sys.stderr)
    return out


_SHOWN = "return document.body ? document.body.innerText.includes(arguments[0]) : false;"


def visible_table_s(
    page_url: str, newest: str, repeats: int = 3, timeout_s: float = 60.0
) -> float | None:
    """Median seconds from ``driver.get`` until ``newest`` is rendered text (fresh sessions)."""
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        print(
            "  chromium/chromedriver missing: apt-get install chromium chromium-driver",
            file=sys.stderr,
        )
        return None
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    times = []
    for _ in range(repeats):
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
        ):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            start = time.perf_counter()
            driver.get(page_url)
            try:
                WebDriverWait(driver, timeout_s, poll_frequency=0.01).until(
                    lambda d: d.execute_script(_SHOWN, newest)
                )
            except TimeoutException:
                shown = driver.execute_script("return document.body.innerText")[-200:]
                print(f"  no table within {timeout_s:.0f} s; the page: {shown!r}", file=sys.stderr)
                return None
            times.append(time.perf_counter() - start)
        finally:
            driver.quit()
    return statistics.median(times)


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="10000,100000", help="run counts, comma-separated")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--postgres", default=os.environ.get("MODELYARD_TEST_POSTGRES_URL"),
                        help="an admin URL of a PostgreSQL server (default $MODELYARD_TEST_POSTGRES_URL)")  # fmt: skip
    parser.add_argument("--peer-timeout-s", type=float, default=120.0)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.runs.split(",")]
    results: dict[str, Any] = {}
    work_root = Path(tempfile.mkdtemp(prefix="modelyard-uibench-"))
    python = None if args.skip_peer else peer_python("mlflow", ["mlflow"])
    try:
        for n in sizes:
            work = work_root / str(n)
            work.mkdir()
            newest = f"run-{n - 1}"
            res: dict[str, Any] = {}
            print(f"{n:,} runs: filling ...", file=sys.stderr)
            t = time.perf_counter()
            url = fill_modelyard_sqlite(work / "modelyard.db", n)
            res["fill_modelyard_s"] = time.perf_counter() - t
            with modelyard_server(url, work) as base:
                res["modelyard_sqlite"] = query_times("modelyard", base, "", 60.0)
                res["modelyard_sqlite"]["visible"] = visible_table_s(
                    base + "/runs?experiment=bench", newest
                )
            if args.postgres and n == max(sizes):
                pg_url, pg_name = fill_modelyard_postgres(args.postgres, n)
                try:
                    with modelyard_server(pg_url, work) as base:
                        res["modelyard_postgres"] = query_times("modelyard", base, "", 60.0)
                        res["modelyard_postgres"]["visible"] = visible_table_s(
                            base + "/runs?experiment=bench", newest
                        )
                finally:
                    drop_postgres(args.postgres, pg_name)
            if python is not None:
                db = work / "mlflow.db"
                t = time.perf_counter()
                meta = run_driver(
                    python,
                    MLFLOW_FILL,
                    {
                        "uri": f"sqlite:///{db}",
                        "path": str(db),
                        "n": n,
                        "artifacts": str(work / "mlartifacts"),
                    },
                )
                res["fill_mlflow_s"] = time.perf_counter() - t
                res["mlflow_version"] = meta["version"]
                with mlflow_server(python, db, work) as base:
                    exp = str(meta["experiment_id"])
                    # the browser first: a timed-out sort keeps the server busy afterwards
                    visible = visible_table_s(f"{base}/#/experiments/{exp}/runs", newest)
                    res["mlflow"] = query_times("mlflow", base, exp, args.peer_timeout_s)
                    res["mlflow"]["visible"] = visible
            results[str(n)] = res
    finally:
        shutil.rmtree(work_root, ignore_errors=True)

    def cell(value: float | None, timeout: float | None = None) -> str:
        if value is None:
            return f"> {timeout:.0f} s" if timeout else "-"
        return fmt(value * 1000, "ms") if value < 1 else fmt(value, "s")

    peer = "mlflow " + next(
        (r["mlflow_version"] for r in results.values() if "mlflow_version" in r), ""
    )
    print()
    print(
        f"| workload | runs | modelyard (SQLite) | modelyard (PostgreSQL) | {peer} (SQLite) | ratio (SQLite) |"
    )
    print("|---|---|---|---|---|---|")
    for n, res in results.items():
        ours = res["modelyard_sqlite"]
        pg = res.get("modelyard_postgres", {})
        theirs = res.get("mlflow", {})
        for label in [*QUERIES, "visible"]:
            name = f"server time: {label}" if label != "visible" else "table visible in Chromium"
            peer_value = theirs.get(label)
            timeout = args.peer_timeout_s if "mlflow" in res and label in QUERIES else None
            shown_ratio = ratio(ours.get(label), peer_value)
            if peer_value is None and timeout:
                shown_ratio = (
                    f"> {args.peer_timeout_s / ours[label]:,.0f}x" if ours.get(label) else "-"
                )
            print(
                f"| {name} | {int(n):,} | {cell(ours.get(label))} | {cell(pg.get(label)) if pg else '-'} "
                f"| {cell(peer_value, timeout) if 'mlflow' in res else '-'} | {shown_ratio} |"
            )
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"\nload average (1, 5, 15 min): {load}; {os.cpu_count()} CPUs; medians")
    for n, res in results.items():
        fills = f"modelyard {res['fill_modelyard_s']:.0f} s"
        if "fill_mlflow_s" in res:
            fills += f", mlflow {res['fill_mlflow_s']:.0f} s"
        print(f"bulk fill of {int(n):,} runs: {fills}")
    save_results("ui", {"results": results, "load_average": load, "root": str(ROOT)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
