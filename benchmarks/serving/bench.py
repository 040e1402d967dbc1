"""Serving benchmark: modelyard vs mosec vs a plain FastAPI endpoint, driven by wrk.

Serves the same CPU PyTorch MLP (256 -> 1024 -> 1024 -> 10, float32, one torch thread per
worker) with each server, drives it with ``wrk`` (64 connections, 127.0.0.1, a JSON body of 256
floats) for a fixed time, and prints throughput, p50 and p99; then the single-connection latency
(p50 of back-to-back requests on one connection: a lone request) and the model's in-process
ceiling at batch 1/8/32/64.

Peers run in their own venvs under ``benchmarks/.peers/<peer>`` (created on first use with
``--system-site-packages`` so they share this environment's torch): mosec, fastapi + uvicorn.

    python benchmarks/serving/bench.py                      # everything, 15 s per run
    python benchmarks/serving/bench.py --only modelyard --duration 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PEERS = ROOT / "benchmarks" / ".peers"
RESULTS = ROOT / "benchmarks" / "results"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- setup
def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    log("installing wrk (apt-get)")
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
    path = shutil.which("wrk")
    if not path:
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
        path = shutil.which("wrk")
    assert path, "wrk is not installed"
    return path


def ensure_venv(peer: str, packages: list[str]) -> Path:
    """benchmarks/.peers/<peer>: a venv sharing this environment's torch, plus the peer."""
    venv = PEERS / peer
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists():
        return python
    log(f"creating {venv} and installing {packages}")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    marker.write_text(" ".join(packages))
    return python


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it answered {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------- wrk
def body_bytes() -> bytes:
    rng = random.Random(0)
    return json.dumps({"instances": [[round(rng.uniform(-1, 1), 6) for _ in range(256)]]}).encode()


def lua_script(tmp: Path, body: bytes) -> Path:
    path = tmp / "post.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{body.decode()}]==]\n"
    )
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(
    wrk: str, url: str, script: Path, connections: int, duration_s: int, *, threads: int = 1
) -> dict[str, Any]:
    out = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    res: dict[str, Any] = {"raw": out}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        res[f"p{pct}_ms"] = _ms(m.group(1)) if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    res["socket_errors"] = m.group(1).strip() if m else ""
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    return res


def _tree(pid: int) -> list[int]:
    """pid and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of these processes so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def check_answer(url: str, body: bytes) -> None:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        doc = json.loads(resp.read())
    preds = doc["predictions"]
    assert len(preds) == 1, doc
    assert len(preds[0]) == 10, doc


def measure(  # noqa: PLR0917
    name: str, wrk: str, url: str, script: Path, body: bytes, duration_s: int, pid: int
) -> dict[str, Any]:
    check_answer(url, body)
    run_wrk(wrk, url, script, 64, 2)  # warm-up
    pids = _tree(pid)
    cpu0 = cpu_seconds(pids)
    loaded = run_wrk(wrk, url, script, 64, duration_s)
    cpu_ms = (cpu_seconds(pids) - cpu0) * 1000 / max(loaded["requests"], 1)
    lone = run_wrk(wrk, url, script, 1, max(3, duration_s // 3))
    row = {
        "server": name,
        "rps": loaded["rps"],
        "p50_ms": loaded["p50_ms"],
        "p99_ms": loaded["p99_ms"],
        "non2xx": loaded["non2xx"],
        "socket_errors": loaded["socket_errors"],
        "lone_p50_ms": lone["p50_ms"],
        "lone_p99_ms": lone["p99_ms"],
        "cpu_ms_per_req": cpu_ms,
        "load_avg": os.getloadavg()[0],
    }
    log(f"{name}: {row}")
    return row


# ----------------------------------------------------------------------------- servers
def bench_modelyard(
    wrk: str, script: Path, body: bytes, duration_s: int, workers: int
) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "src"))
    from modelyard.serving import launch

    handle = launch(
        model_class="mlp:MLP",
        python_path=[str(HERE)],
        workers=workers,
        request_log=False,
        serving={"max_batch_size": 64, "max_wait_ms": 2, "queue_size": 4096},
        env={"MODELYARD_LOG_LEVEL": "WARNING"},
        ready_timeout_s=180,
    )
    try:
        url = f"{handle.url}/v1/models/mlp:predict"
        return measure(
            f"modelyard ({workers} workers)", wrk, url, script, body, duration_s, handle.pid
        )
    finally:
        handle.stop()


def bench_mosec(
    wrk: str, script: Path, body: bytes, duration_s: int, workers: int
) -> dict[str, Any]:
    python = ensure_venv("mosec", ["mosec"])
    port = free_port()
    env = {**os.environ, "MOSEC_WORKERS": str(workers)}
    proc = subprocess.Popen(
        [str(python), str(HERE / "peer_mosec.py"), "--port", str(port), "--log-level", "error"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/inference"
        wait_http(f"http://127.0.0.1:{port}/", proc)
        return measure(f"mosec ({workers} workers)", wrk, url, script, body, duration_s, proc.pid)
    finally:
        stop(proc)


def bench_fastapi(wrk: str, script: Path, body: bytes, duration_s: int) -> dict[str, Any]:
    python = ensure_venv("fastapi", ["fastapi", "uvicorn[standard]"])
    port = free_port()
    proc = subprocess.Popen(
        [
            str(python), "-m", "uvicorn", "peer_fastapi:app", "--port", str(port),
            "--log-level", "warning", "--no-access-log", "--app-dir", str(HERE),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        url = f"http://127.0.0.1:{port}/predict"
        return measure("fastapi (naive)", wrk, url, script, body, duration_s, proc.pid)
    finally:
        stop(proc)


def ceiling() -> list[dict[str, Any]]:
    """The model alone, in this process, one torch thread: samples/s by batch size."""
    sys.path.insert(0, str(HERE))
    import numpy as np
    import torch
    from mlp import MLP

    model = MLP()
    model.load()
    rows = []
    rng = np.random.default_rng(0)
    for batch in (1, 8, 32, 64):
        x = rng.standard_normal((batch, 256), dtype=np.float32)
        for _ in range(200):
            model.predict(x)
        n = max(50, 4000 // batch)
        t0 = time.perf_counter()
        for _ in range(n):
            model.predict(x)
        dt = time.perf_counter() - t0
        rows.append(
            {"batch": batch, "samples_per_s": n * batch / dt, "ms_per_batch": dt / n * 1000}
        )
    del torch
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds per loaded run")
    parser.add_argument(
        "--only", action="append", choices=["modelyard", "mosec", "fastapi", "ceiling"]
    )
    parser.add_argument(
        "--workers", type=int, nargs="*", default=[2, 1], help="modelyard worker counts"
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions")
    parser.add_argument("--mosec-workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run servers and wrk at this nice value (e.g. -10 on a busy shared machine: "
        "every server gets the same treatment; needs root for negative values)",
    )
    args = parser.parse_args()
    if args.nice:
        os.nice(args.nice)  # inherited by every server, worker and wrk started from here
    only = set(args.only or ["modelyard", "mosec", "fastapi", "ceiling"])
    wrk = ensure_wrk()
    body = body_bytes()
    results: dict[str, Any] = {"servers": [], "ceiling": []}
    with tempfile.TemporaryDirectory() as tmp:
        script = lua_script(Path(tmp), body)
        if "ceiling" in only:
            results["ceiling"] = ceiling()
        # rounds interleave the servers, so that a noisy neighbour hurts all of them alike
        for _ in range(args.rounds):
            if "modelyard" in only:
                for w in args.workers:
                    results["servers"].append(bench_modelyard(wrk, script, body, args.duration, w))
            if "mosec" in only:
                for w in args.mosec_workers:
                    results["servers"].append(bench_mosec(wrk, script, body, args.duration, w))
            if "fastapi" in only:
                results["servers"].append(bench_fastapi(wrk, script, body, args.duration))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(results, indent=2))
    print(
        f"\nMLP 256-1024-1024-10, torch CPU, 64 connections, {args.duration} s, "
        f"cores={os.cpu_count()}, nice={args.nice}"
    )
    print(
        f"{'server':<26}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'lone p50 ms':>13}"
        f"{'CPU ms/req':>12}{'load':>7}"
    )
    for r in results["servers"]:
        print(
            f"{r['server']:<26}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['non2xx']:>9}{r['lone_p50_ms']:>13.3f}{r['cpu_ms_per_req']:>12.3f}{r['load_avg']:>7.1f}"
        )
    if results["ceiling"]:
        print("\nin-process ceiling (one torch thread)")
        for c in results["ceiling"]:
            print(
                f"  batch {c['batch']:>3}: {c['samples_per_s']:>9.0f} samples/s  {c['ms_per_batch']:.3f} ms/batch"
            )


if __name__ == "__main__":
    main()
