"""Serving benchmark: modelyard vs mosec vs FastAPI, driven by wrk, in one run.

Serves the same CPU PyTorch MLP (256 -> 1024 -> 1024 -> 10, float32, one torch thread per
worker) with each server, drives it with ``wrk`` (64 connections, 127.0.0.1, a JSON body of 256
floats) for a fixed time, and prints throughput, p50/p99, the CPU time per request of the
server's whole process tree, the load average, and the single-connection latency (a lone
request); then the model's in-process ceiling at batch 1/8/32/64. The CPU is also split, exactly
(``schedstat``), between the server's root process and its children: for modelyard the front
(HTTP, batching) and the model workers, for mosec its Rust HTTP front and its Python workers,
for uvicorn its supervisor and the app processes; "idle cores" is the machine's idle CPU during
the loaded run (above 0: the server was not CPU-bound).

Rows (each labelled with its configuration):
- ``modelyard (default)``: the HEADLINE: ``modelyard serve`` as users run it (request log on
  at sampling 1.0 into a fresh artifact store, default batch settings and log level), plus the
  same server's first seconds after it turned ready (no warm-up).
- ``modelyard (no request log)`` and ``modelyard (1 worker, request log on)``: tuned
  variants (on a 2-core machine a light model is served faster by one worker beside the front
  than by one per core).
- ``mosec (tuned)``: mosec as its docs recommend for speed (orjson, ``np.asarray`` ->
  ``torch.from_numpy``), 1 and 2 workers; ``mosec (naive)``: its default JSON.
- ``fastapi (tuned)``: async endpoint, orjson, no per-request pydantic model, 2 uvicorn workers;
  ``fastapi (naive)``: sync endpoint validating a pydantic model.

Peers run in their own venvs under ``benchmarks/.peers/<peer>`` (created on first use, cached
after): the peer's packages are installed into the venv, and a ``.pth`` file appends THIS
interpreter's site-packages after them, so the peers import the same torch and numpy as
modelyard (PyPI has no CPU-only torch wheel; a CUDA torch per venv would be gigabytes) while
their own pins win.

    python benchmarks/serving/bench.py                      # everything, 15 s per run
    python benchmarks/serving/bench.py --only modelyard --only mosec --duration 10
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
    """benchmarks/.peers/<peer>: a venv with ``packages``, sharing this interpreter's torch.

    ``--system-site-packages`` is not used: run from inside a venv it exposes the BASE
    interpreter's packages, not this one's (so no torch). A ``.pth`` file listing this
    interpreter's site-packages is appended after the venv's own instead.
    """
    import sysconfig

    venv = PEERS / peer
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if not marker.exists() or marker.read_text() != " ".join(packages):
        log(f"creating {venv} and installing {packages}")
        PEERS.mkdir(parents=True, exist_ok=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
        marker.write_text(" ".join(packages))
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    shared = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "zz_modelyard_bench_shared.pth").write_text("\n".join(shared) + "\n")
    check = subprocess.run(
        [str(python), "-c", "import torch, numpy, orjson; print(torch.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        raise RuntimeError(
            f"the {peer} venv cannot import torch/numpy/orjson: {check.stderr[-500:]}; "
            "install modelyard's benchmark requirements (torch, numpy, orjson) in this interpreter"
        )
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


def on_cpu_seconds(pids: list[int]) -> float:
    """Exact on-CPU seconds of these processes so far (every thread's ``schedstat``)."""
    total = 0
    for pid in pids:
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[0])
        except OSError:
            continue
    return total / 1e9


def idle_seconds() -> float:
    """The machine's idle CPU seconds so far (all cores)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[4]) / os.sysconf("SC_CLK_TCK")


class Usage:
    """CPU of a server's root process and of its children over a run, and the machine's idle."""

    def __init__(self, pid: int) -> None:
        self.root = pid
        self.children = [p for p in _tree(pid) if p != pid]
        self.t0 = time.monotonic()
        self.start = self._now()

    def _now(self) -> tuple[float, float, float, float, list[float]]:
        pids = [self.root, *self.children]
        return (
            cpu_seconds(pids),
            on_cpu_seconds([self.root]),
            on_cpu_seconds(self.children),
            idle_seconds(),
            [on_cpu_seconds([p]) for p in pids],
        )

    def _names(self) -> list[str]:
        names = []
        for pid in [self.root, *self.children]:
            try:
                names.append(Path(f"/proc/{pid}/comm").read_text().strip())
            except OSError:
                names.append("?")
        return names

    def per_request(self, requests: int) -> dict[str, Any]:
        end = self._now()
        n = max(requests, 1)
        wall = time.monotonic() - self.t0
        per_process = [
            (name, round((b - a) * 1e6 / n, 1))
            for name, a, b in zip(self._names(), self.start[4], end[4], strict=True)
        ]
        log(f"on-CPU us per request by process (root first): {per_process}")
        return {
            "cpu_ms": (end[0] - self.start[0]) * 1000 / n,
            "root_us": (end[1] - self.start[1]) * 1e6 / n,
            "children_us": (end[2] - self.start[2]) * 1e6 / n,
            "idle_cores": (end[3] - self.start[3]) / wall,
            "by_process": per_process,
        }


def _row(
    name: str, loaded: dict[str, Any], cpu: dict[str, Any], lone: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "server": name,
        "rps": loaded["rps"],
        "p50_ms": loaded["p50_ms"],
        "p99_ms": loaded["p99_ms"],
        "non2xx": loaded["non2xx"],
        "socket_errors": loaded["socket_errors"],
        "lone_p50_ms": lone["p50_ms"] if lone else float("nan"),
        "lone_p99_ms": lone["p99_ms"] if lone else float("nan"),
        "cpu_ms_per_req": cpu["cpu_ms"],
        "root_us_per_req": cpu["root_us"],
        "children_us_per_req": cpu["children_us"],
        "idle_cores": cpu["idle_cores"],
        "cpu_us_by_process": cpu["by_process"],
        "load_avg": os.getloadavg()[0],
    }


def measure(  # noqa: PLR0917
    name: str,
    wrk: str,
    url: str,
    script: Path,
    body: bytes,
    duration_s: int,
    pid: int,
    cold_s: int = 0,
) -> list[dict[str, Any]]:
    """Loaded run (after a 2 s warm-up) and lone-request run; with ``cold_s`` first a run of
    that many seconds right after readiness, without warm-up (the first seconds of a server)."""
    check_answer(url, body)
    rows = []
    if cold_s:
        usage = Usage(pid)
        cold = run_wrk(wrk, url, script, 64, cold_s)
        rows.append(
            _row(f"{name}, first {cold_s} s", cold, usage.per_request(cold["requests"]), None)
        )
    run_wrk(wrk, url, script, 64, 2)  # warm-up
    usage = Usage(pid)
    loaded = run_wrk(wrk, url, script, 64, duration_s)
    cpu = usage.per_request(loaded["requests"])
    lone = run_wrk(wrk, url, script, 1, max(3, duration_s // 3))
    rows.insert(0, _row(name, loaded, cpu, lone))
    for r in rows:
        log(f"{r['server']}: {r}")
    return rows


# ----------------------------------------------------------------------------- servers
def bench_modelyard(
    wrk: str,
    script: Path,
    body: bytes,
    duration_s: int,
    *,
    request_log: bool,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """``modelyard serve`` with its defaults (workers per core, batch 64, wait 2 ms, INFO logs);
    the request log goes to a fresh artifact store (``--home`` in a temp folder). ``workers``:
    the tuned variant with that many model workers (request log on)."""
    sys.path.insert(0, str(ROOT / "src"))
    from modelyard.serving import launch

    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as home:
        # the server runs THIS checkout's modelyard (not whatever an installed copy points to)
        path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
        handle = launch(
            model_class="mlp:MLP",
            python_path=[str(HERE)],
            home=home,
            env={"PYTHONPATH": path},
            request_log=request_log,
            workers=workers,
            ready_timeout_s=180,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"{handle.url}/v1/models/mlp:predict"
            name = "modelyard (default)" if request_log else "modelyard (no request log)"
            if workers is not None:
                name = f"modelyard ({workers} worker{'s' if workers > 1 else ''}, request log on)"
            cold_s = 5 if request_log and workers is None else 0
            return measure(name, wrk, url, script, body, duration_s, handle.pid, cold_s=cold_s)
        finally:
            handle.stop()


def bench_mosec(
    wrk: str, script: Path, body: bytes, duration_s: int, *, workers: int, variant: str
) -> list[dict[str, Any]]:
    python = ensure_venv("mosec", ["mosec==0.9.8"])
    port = free_port()
    env = {**os.environ, "MOSEC_WORKERS": str(workers), "PEER_VARIANT": variant}
    proc = subprocess.Popen(
        [str(python), str(HERE / "peer_mosec.py"), "--port", str(port), "--log-level", "error"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/inference"
        wait_http(f"http://127.0.0.1:{port}/", proc)
        name = f"mosec ({variant}, {workers} worker{'s' if workers > 1 else ''})"
        return measure(name, wrk, url, script, body, duration_s, proc.pid)
    finally:
        stop(proc)


def bench_fastapi(
    wrk: str, script: Path, body: bytes, duration_s: int, variant: str
) -> list[dict[str, Any]]:
    python = ensure_venv("fastapi", ["fastapi==0.165.0", "uvicorn[standard]==0.55.0"])
    port = free_port()
    app = "peer_fastapi:app" if variant == "tuned" else "peer_fastapi:naive_app"
    workers = 2 if variant == "tuned" else 1
    proc = subprocess.Popen(
        [
            str(python), "-m", "uvicorn", app, "--port", str(port), "--workers", str(workers),
            "--log-level", "warning", "--no-access-log", "--app-dir", str(HERE),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        url = f"http://127.0.0.1:{port}/predict"
        name = f"fastapi ({variant}, {workers} worker{'s' if workers > 1 else ''})"
        return measure(name, wrk, url, script, body, duration_s, proc.pid)
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
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions")
    parser.add_argument("--mosec-workers", type=int, nargs="*", default=[2, 1])
    parser.add_argument("--no-naive", action="store_true", help="skip the naive peer variants")
    parser.add_argument("--quick", action="store_true", help="5 s runs, no naive variants")
    parser.add_argument("--skip-peer", action="store_true", help="modelyard and the ceiling only")
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
    if args.skip_peer:
        only -= {"mosec", "fastapi"}
    if args.quick:
        args.duration = min(args.duration, 5)
        args.no_naive = True
    wrk = ensure_wrk()
    body = body_bytes()
    results: dict[str, Any] = {"servers": [], "ceiling": [], "load_before": os.getloadavg()}
    servers = results["servers"]
    d = args.duration
    with tempfile.TemporaryDirectory() as tmp:
        script = lua_script(Path(tmp), body)
        if "ceiling" in only:
            results["ceiling"] = ceiling()
        # rounds interleave the servers, so that a noisy neighbour hurts all of them alike
        for _ in range(args.rounds):
            if "modelyard" in only:
                servers += bench_modelyard(wrk, script, body, d, request_log=True)
                servers += bench_modelyard(wrk, script, body, d, request_log=False)
                if (os.cpu_count() or 1) > 1:  # tuned: fewer workers than cores
                    servers += bench_modelyard(wrk, script, body, d, request_log=True, workers=1)
            if "mosec" in only:
                for w in args.mosec_workers:
                    servers += bench_mosec(wrk, script, body, d, workers=w, variant="tuned")
                if not args.no_naive:
                    servers += bench_mosec(
                        wrk, script, body, d, workers=max(args.mosec_workers), variant="naive"
                    )
            if "fastapi" in only:
                servers += bench_fastapi(wrk, script, body, d, "tuned")
                if not args.no_naive:
                    servers += bench_fastapi(wrk, script, body, d, "naive")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(results, indent=2))
    print(report(results, args.duration, args.nice))


def report(results: dict[str, Any], duration_s: int, nice: int) -> str:
    """The results as a Markdown table, with the headline's ratios to the best tuned mosec."""
    lines = [
        f"MLP 256-1024-1024-10, torch CPU, 64 connections, {duration_s} s per run, "
        f"cores={os.cpu_count()}, nice={nice}, load average before "
        f"{results['load_before'][0]:.1f}",
        "",
        "| server (configuration) | req/s | p50 ms | p99 ms | non-2xx | lone p50 ms "
        "| CPU ms/req | root us/req | children us/req | idle cores | load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["servers"]:
        lines.append(
            f"| {r['server']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['non2xx']} | {r['lone_p50_ms']:.3f} | {r['cpu_ms_per_req']:.3f} | "
            f"{r['root_us_per_req']:.1f} | {r['children_us_per_req']:.1f} | "
            f"{r['idle_cores']:.2f} | {r['load_avg']:.1f} |"
        )
    by_name = {r["server"]: r for r in results["servers"]}
    head = by_name.get("modelyard (default)")
    mosec = [r for r in results["servers"] if r["server"].startswith("mosec (tuned")]
    if head and mosec:
        best = max(mosec, key=lambda r: r["rps"])
        lines += [
            "",
            f"headline modelyard (default) / best {best['server']}: "
            f"{head['rps'] / best['rps']:.2f}x req/s, p99 {head['p99_ms']:.2f} vs "
            f"{best['p99_ms']:.2f} ms",
        ]
    tuned = by_name.get("modelyard (no request log)")
    if head and tuned:
        lines.append(
            f"request log on / off: {head['rps'] / tuned['rps']:.3f}x req/s, p99 "
            f"{head['p99_ms'] / tuned['p99_ms']:.2f}x"
        )
    if results["ceiling"]:
        lines += ["", "in-process ceiling (one torch thread)"]
        for c in results["ceiling"]:
            lines.append(
                f"  batch {c['batch']:>3}: {c['samples_per_s']:>9,.0f} samples/s  "
                f"{c['ms_per_batch']:.3f} ms/batch"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
