"""Where the CPU of one served request goes: front, model workers, wrk, kernel, idle.

Serves the benchmark's MLP with ``modelyard serve`` as users run it (request log on), drives it
with ``wrk`` (64 connections, the benchmark's body) and reads ``/proc`` before and after: CPU
microseconds per request of the front process, of the model workers together and of wrk (each
split user / system), the machine's softirq and idle time per request, and the front's share of
one core. With ``--py-spy`` it also samples the front and each worker with py-spy (native frames
included) and prints the functions where each spends its own time.

    python benchmarks/serving/cpu_profile.py --duration 5
    python benchmarks/serving/cpu_profile.py --duration 5 --py-spy --no-request-log
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from bench import _tree, body_bytes, ensure_wrk, lua_script  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> tuple[float, float, float]:
    """(user, system, on-CPU) seconds of one process: user and system from ``stat`` (clock
    ticks, sampled), on-CPU from every thread's ``schedstat`` (nanoseconds, exact)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        run_ns = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            run_ns += int((task / "schedstat").read_text().split()[0])
    except OSError:
        return 0.0, 0.0, 0.0
    return int(fields[11]) / TICK, int(fields[12]) / TICK, run_ns / 1e9


def _machine() -> dict[str, float]:
    """Machine-wide CPU seconds by kind (all cores together)."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {n: int(v) / TICK for n, v in zip(names, parts, strict=False)}


def _sum_cpu(pids: list[int]) -> tuple[float, float, float]:
    cpu = [_proc_cpu(p) for p in pids]
    return sum(c[0] for c in cpu), sum(c[1] for c in cpu), sum(c[2] for c in cpu)


def _reuseport_fronts(n: int, home: str, path: str, request_log: bool) -> tuple[int, list[Any]]:
    """``n`` servers, each a ``modelyard serve`` child with its own workers (cores / n) and
    home, listening on one port with SO_REUSEPORT (the kernel spreads the connections)."""
    from modelyard.serving import ServerHandle

    port = 0
    handles = []
    workers = max(1, (os.cpu_count() or 1) // n)
    for i in range(n):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(2048)
        port = sock.getsockname()[1]
        options = {
            "model": None, "model_class": "mlp:MLP", "python_path": [str(HERE)], "name": None,
            "version": None, "contract": None, "home": f"{home}/{i}", "request_log": request_log,
            "trust_pickle": False, "listen_fd": sock.fileno(), "hooks": [],
        }  # fmt: skip
        env = {**os.environ, "PYTHONPATH": path, "MODELYARD_SERVING__WORKERS": str(workers)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelyard.serving._launch", json.dumps(options)],
            pass_fds=[sock.fileno()], env=env, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        sock.close()
        handles.append(ServerHandle(proc, "127.0.0.1", port))
    for h in handles:
        h.wait_ready(180)
    return port, handles


def _batch_sizes(url: str) -> float:
    """Mean instances per batch, from ``modelyard_batch_size`` (sum / count)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("modelyard_batch_size_sum"):
            total += float(line.split()[-1])
        elif line.startswith("modelyard_batch_size_count"):
            count += float(line.split()[-1])
    return total / max(count, 1.0)


def _top(collapsed: Path, n: int = 25) -> list[tuple[float, str]]:
    """The functions with the most self samples in a py-spy ``raw`` (collapsed) file."""
    self_time: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        self_time[frames[-1]] += int(count)
        total += int(count)
    return [(c * 100.0 / max(total, 1), f) for f, c in self_time.most_common(n)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--no-request-log", action="store_true")
    parser.add_argument(
        "--py-spy", action="store_true", help="sample the front and workers with py-spy"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="model workers (default: per core)"
    )
    parser.add_argument(
        "--src",
        default=str(ROOT / "src"),
        help="the modelyard source tree the server runs (another checkout's, to compare)",
    )
    parser.add_argument(
        "--fronts",
        type=int,
        default=1,
        help="an experiment: N independent servers on one port (SO_REUSEPORT), each with "
        "cores/N workers: what several front processes could give",
    )
    args = parser.parse_args()
    sys.path.insert(0, args.src)
    from modelyard.serving import launch

    wrk = ensure_wrk()
    body = body_bytes()
    with tempfile.TemporaryDirectory(prefix="modelyard-profile-") as home:
        script = lua_script(Path(home), body)
        path = os.pathsep.join(filter(None, [args.src, os.environ.get("PYTHONPATH")]))
        if args.fronts == 1:
            handles = [
                launch(
                    model_class="mlp:MLP",
                    python_path=[str(HERE)],
                    home=home,
                    env={"PYTHONPATH": path},
                    request_log=not args.no_request_log,
                    workers=args.workers,
                    ready_timeout_s=180,
                    stderr=subprocess.DEVNULL,
                )
            ]
            port = handles[0].port
        else:
            port, handles = _reuseport_fronts(args.fronts, home, path, not args.no_request_log)
        try:
            url = f"http://127.0.0.1:{port}/v1/models/mlp:predict"
            warm = [wrk, "-t1", f"-c{args.connections}", "-d2s", "-s", str(script), url]
            subprocess.run(warm, check=True, capture_output=True)
            fronts = [h.pid for h in handles]
            front = fronts[0]
            workers = [p for f in fronts for p in _tree(f) if p not in fronts]
            spies = []
            if args.py_spy:  # the front and each worker, for the run's duration
                for pid in [front, *workers]:
                    out = Path(home) / f"spy-{pid}.txt"
                    spy = subprocess.Popen(
                        ["py-spy", "record", "--native", "-r", "100", "-f", "raw",
                         "-d", str(args.duration), "-p", str(pid), "-o", str(out)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                    spies.append((pid, out, spy))
            cmd = [
                wrk,
                "-t1",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                "--latency",
                "-s",
                str(script),
            ]
            m0 = _machine()
            f0 = _sum_cpu(fronts)
            w0 = [_proc_cpu(p) for p in workers]
            t0 = time.monotonic()
            proc = subprocess.Popen([*cmd, url], stdout=subprocess.PIPE, text=True)
            k0 = _proc_cpu(proc.pid)
            k1 = k0
            while proc.poll() is None:  # wrk's own CPU, read while it still exists
                k1 = _proc_cpu(proc.pid) if proc.poll() is None else k1
                time.sleep(0.05)
            wall = time.monotonic() - t0
            out_text = proc.stdout.read() if proc.stdout else ""
            batches = _batch_sizes(f"http://127.0.0.1:{port}/metrics")
            f1 = _sum_cpu(fronts)
            w1 = [_proc_cpu(p) for p in workers]
            m1 = _machine()
            for _, _, spy in spies:
                spy.wait(60)
        finally:
            for h in handles:
                h.stop()
        requests = 0
        for line in out_text.splitlines():
            if "requests in" in line:
                requests = int(line.split()[0])
        rps = requests / wall
        us = 1e6 / max(requests, 1)
        print(f"{requests} requests in {wall:.1f} s: {rps:,.0f} req/s "
              f"(request log {'off' if args.no_request_log else 'on'})")  # fmt: skip
        print(
            f"{'process':<14}{'user us/req':>12}{'sys us/req':>12}{'on-CPU us/req':>15}{'cores':>7}"
        )
        rows = [(f"front{'s' if len(fronts) > 1 else ''}", f0, f1)]
        rows += [(f"worker {i}", a, b) for i, (a, b) in enumerate(zip(w0, w1, strict=True))]
        rows.append(("wrk", k0, k1))
        for name, a, b in rows:
            user, sys_, run = b[0] - a[0], b[1] - a[1], b[2] - a[2]
            print(
                f"{name:<14}{user * us:>12.1f}{sys_ * us:>12.1f}{run * us:>15.1f}{run / wall:>7.2f}"
            )
        d = {k: m1[k] - m0[k] for k in m0}
        for k in ("user", "system", "softirq", "idle"):
            print(f"machine {k:<14}{d[k] * us:>12.1f} us/req{d[k] / wall:>8.2f} cores")
        print(f"mean batch size since start (one front's /metrics): {batches:.1f}")
        print(
            "\n" + "\n".join(line for line in out_text.splitlines() if "%" in line or "Lat" in line)
        )
        for pid, out, _ in spies:
            if not out.exists():
                continue
            who = "front" if pid == front else f"worker pid {pid}"
            print(f"\n{who}, self time (py-spy, native frames included):")
            for pct, frame in _top(out):
                print(f"{pct:6.1f}%  {frame[:150]}")


if __name__ == "__main__":
    main()
