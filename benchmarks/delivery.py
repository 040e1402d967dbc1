"""Delivery benchmark: a 90/10 canary inside one `modelyard serve` vs nginx `split_clients`.

The MLP of the serving benchmark (256 -> 1024 -> 1024 -> 10, torch CPU), registered as versions
1 and 2 (identical) and 3 (fails once a file exists); wrk with 64 connections and the serving
benchmark's JSON body, for ``--duration`` seconds per row, on 127.0.0.1:

- (a) one version: ``modelyard serve mlp@production`` with its defaults (request log on);
- (b) the same server running a 90/10 canary of v2 (``modelyard deploy``, one process, one port);
- (c) the peer, the usual set-up without a mesh: nginx (Debian's package, started here, as its
  docs recommend for a proxy: ``worker_processes auto``, upstream keep-alive, access log off)
  with ``split_clients`` sending 10 % to a second ``modelyard serve`` process;
- shadow: (a)'s server mirroring 100 % of requests to v2, against shadow off, saturated (64
  connections) and under a light load (8 connections, each waiting 4 ms after each answer);
- time from a bad candidate's first errors (v3 at 10 %, its file created under load) to 100 %
  stable, against the analysis interval.

    python benchmarks/delivery.py                 # 10 s per row
    python benchmarks/delivery.py --duration 5 --skip-peer
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "src"), str(HERE), str(HERE / "serving")]

from bench import body_bytes, free_port, lua_script, run_wrk, wait_http  # noqa: E402
from delivery_model import MLPPackage  # noqa: E402

PYTHONPATH = os.pathsep.join([str(ROOT / "src"), str(HERE), str(HERE / "serving")])
INTERVAL_S = 5.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def register(home: Path) -> None:
    import numpy as np

    import modelyard.models
    from modelyard.config import load_settings
    from modelyard.registry.registry import Registry

    reg = Registry.from_settings(load_settings(start=home, home=str(home)))
    x = np.zeros((2, 256), dtype=np.float32)
    for i, model in enumerate(
        [MLPPackage(), MLPPackage(), MLPPackage(fail_when=str(home / "broken"))]
    ):
        aliases = ["production"] if i == 0 else []
        modelyard.models.register(model, reg, name="mlp", input_example=x, aliases=aliases)
    reg.metadata_store.dispose()


def serve(home: Path, ref: str, **env: str) -> Any:
    from modelyard.delivery.serving import rollout_hooks
    from modelyard.serving import launch

    return launch(
        ref,
        hooks=[rollout_hooks],  # what `modelyard serve` installs: the server runs rollouts
        home=home,
        cwd=home,
        ready_timeout_s=180,
        stderr=subprocess.DEVNULL,
        env={"PYTHONPATH": PYTHONPATH, **env},
    )


def wrk_row(
    wrk: str, url: str, script: Path, duration_s: int, *, connections: int = 64
) -> dict[str, Any]:
    run_wrk(wrk, url, script, connections, 2)  # warm-up
    res = run_wrk(wrk, url, script, connections, duration_s)
    res.pop("raw")
    res["load_avg"] = os.getloadavg()[0]
    return res


def version_counts(url: str, sample: str = "modelyard_requests_total") -> dict[str, float]:
    """Per version, the sum of a counter's samples (inference routes only for requests)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        routed = sample != "modelyard_requests_total" or "predict" in line
        if line.startswith(sample + "{") and routed:
            version = line.split('version="', 1)[1].split('"', 1)[0]
            counts[version] = counts.get(version, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def shadow_row(
    wrk: str, url: str, script: Path, duration_s: int, server: str, *, connections: int = 8
) -> dict[str, Any]:
    """A wrk row with a shadow on; ``candidate_share``: the requests it got a copy of (it
    takes copies only while one of its workers and 40 % of the CPU are idle)."""
    mirrored = "modelyard_mirrored_requests_total"
    before, copies = version_counts(server), version_counts(server, mirrored)
    row = wrk_row(wrk, url, script, duration_s, connections=connections)
    after, copied = version_counts(server), version_counts(server, mirrored)
    served = after.get("1", 0) - before.get("1", 0)
    row["candidate_share"] = (copied.get("2", 0) - copies.get("2", 0)) / max(served, 1)
    return row


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput (its latencies kept with it)."""
    return sorted(rows, key=lambda r: r["rps"])[len(rows) // 2]


def ours(wrk: str, script: Path, home: Path, duration_s: int, rounds: int) -> dict[str, Any]:
    from modelyard.delivery.client import RolloutClient

    runs: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("a", "b", "shadow", "shadow_off", "light_shadow", "light_off")
    }
    light = script.with_name("light.lua")  # each connection waits 4 ms after each answer
    light.write_text(script.read_text() + "function delay()\n  return 4\nend\n")
    # the rows measure routing, not the analysis: on a crowded 2-core machine a fresh pool at
    # 10 % is slower than stable's, and a latency rollback would end the canary mid-run
    handle = serve(
        home,
        "mlp@production",
        MODELYARD_DELIVERY__LOAD_TEST_S="0",
        MODELYARD_DELIVERY__MAX_LATENCY_RATIO="1000",
    )
    url = f"{handle.url}/v1/models/mlp:predict"
    client = RolloutClient(handle.url)
    out: dict[str, Any] = {}
    try:
        for i in range(rounds):  # alternate, so a change of the machine's load hits both
            log(f"round {i + 1}: (a) one version")
            runs["a"].append(wrk_row(wrk, url, script, duration_s))
            log(f"    {runs['a'][-1]}")
            log(f"round {i + 1}: (b) 90/10 canary in one modelyard serve")
            client.deploy(candidate=2, steps=[10, 100], interval_s=3600, manual=True)
            before = version_counts(handle.url)
            row = wrk_row(wrk, url, script, duration_s)
            after = version_counts(handle.url)
            got = {v: after.get(v, 0) - before.get(v, 0) for v in after}
            row["candidate_share"] = got.get("2", 0) / max(sum(got.values()), 1)
            state = client.status()
            if state["state"] != "progressing":
                log(f"    the canary ended during the run: {state['state']}: {state['reason']}")
            runs["b"].append(row)
            log(f"    {row}")
            client.abort()
            log(f"round {i + 1}: shadow 100 %")
            client.deploy(candidate=2, strategy="shadow", interval_s=3600, manual=True)
            runs["shadow"].append(
                shadow_row(wrk, url, script, duration_s, handle.url, connections=64)
            )
            log(f"    {runs['shadow'][-1]}")
            client.abort()
            log(f"round {i + 1}: shadow off")
            runs["shadow_off"].append(wrk_row(wrk, url, script, duration_s))
            log(f"    {runs['shadow_off'][-1]}")
            # off saturation: 8 connections, each request 4 ms after the previous answer
            log(f"round {i + 1}: shadow 100 %, light load")
            client.deploy(candidate=2, strategy="shadow", interval_s=3600, manual=True)
            runs["light_shadow"].append(shadow_row(wrk, url, light, duration_s, handle.url))
            log(f"    {runs['light_shadow'][-1]}")
            client.abort()
            log(f"round {i + 1}: shadow off, light load")
            runs["light_off"].append(wrk_row(wrk, url, light, duration_s, connections=8))
            log(f"    {runs['light_off'][-1]}")
        out = {k: median_row(v) for k, v in runs.items()}
        log("bad candidate at 10 %: time from its first errors to 100 % stable")
        out["to_stable_s"], out["to_stopped_s"] = time_to_stable(wrk, url, script, home, client)
        log(f"    {out['to_stable_s']:.2f} s to stable only, {out['to_stopped_s']:.2f} s stopped")
    finally:
        handle.stop()
    return out


def time_to_stable(
    wrk: str, url: str, script: Path, home: Path, client: Any
) -> tuple[float, float]:
    """Seconds from the bad candidate's first errors until stable has all the traffic
    (``rolling_back``: the route plan is switched first) and until its pool stopped."""
    client.deploy(candidate=3, steps=[10, 100], interval_s=INTERVAL_S)
    load = threading.Thread(target=run_wrk, args=(wrk, url, script, 64, 40), daemon=True)
    load.start()
    time.sleep(3)
    (home / "broken").touch()
    broke = time.time()
    while client.status()["state"] != "rolled_back":
        if time.time() - broke > 35:
            raise RuntimeError(f"not rolled back after 35 s: {client.status()['reason']}")
        time.sleep(0.05)
    moves = {e["to_state"]: e["at"] for e in client.status()["events"] if e["to_state"]}
    load.join()
    (home / "broken").unlink()
    return moves["rolling_back"] - broke, moves["rolled_back"] - broke


NGINX_CONF = """
worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream stable {{ server 127.0.0.1:{stable}; keepalive 64; }}
  upstream canary {{ server 127.0.0.1:{canary}; keepalive 64; }}
  split_clients "${{request_id}}" $backend {{ 10% canary; * stable; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://$backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def peer(wrk: str, script: Path, home: Path, duration_s: int, rounds: int) -> dict[str, Any]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        subprocess.run(["apt-get", "install", "-y", "nginx"], check=True, capture_output=True)
    stable = serve(home, "mlp:1")
    canary = serve(home, "mlp:2")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nginx-") as tmp:
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(tmp=tmp, stable=stable.port, canary=canary.port, port=port)
        )
        proc = subprocess.Popen(
            [nginx, "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}/v1/models/mlp:predict"
            wait_http(f"http://127.0.0.1:{port}/v2/health/ready", proc)
            rows = []
            for i in range(rounds):
                log(f"round {i + 1}: (c) nginx split_clients 90/10 over two modelyard serve")
                rows.append(wrk_row(wrk, url, script, duration_s))
                log(f"    {rows[-1]}")
            res = median_row(rows)
            c1, c2 = version_counts(stable.url), version_counts(canary.url)
            res["candidate_share"] = sum(c2.values()) / max(sum(c1.values()) + sum(c2.values()), 1)
            return res
        finally:
            proc.terminate()
            proc.wait(30)
            stable.stop()
            canary.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per row")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per row")
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
        wrk = shutil.which("wrk")
    assert wrk is not None
    with tempfile.TemporaryDirectory(prefix="modelyard-delivery-") as tmp:
        home = Path(tmp)
        (home / "pyproject.toml").write_text(f'[tool.modelyard]\nhome = "{home}"\n')
        register(home)
        script = lua_script(home, body_bytes())
        o = ours(wrk, script, home, args.duration, args.rounds)
        p = None
        if not args.skip_peer:
            p = peer(wrk, script, home, args.duration, args.rounds)
    a, b = o["a"], o["b"]
    print(
        f"\n64 connections, {args.duration} s per run, median of {args.rounds} alternating "
        f"rounds, 127.0.0.1, {os.cpu_count()} cores\n"
    )
    print("| workload | req/s | p50 ms | p99 ms | candidate share | load avg |")
    print("|---|---|---|---|---|---|")
    rows = [
        ("(a) one version, modelyard serve (default)", a),
        ("(b) 90/10 canary in one modelyard serve", b),
        ("(c) nginx split_clients 90/10, two modelyard serve", p),
        ("shadow 100 % (stable answers; share: requests copied)", o["shadow"]),
        ("shadow off", o["shadow_off"]),
        ("shadow 100 %, light load (8 connections, 4 ms between requests)", o["light_shadow"]),
        ("shadow off, light load", o["light_off"]),
    ]
    for name, r in rows:
        if r is None:
            continue
        share = f"{100 * r['candidate_share']:.1f} %" if "candidate_share" in r else "-"
        print(
            f"| {name} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {share} "
            f"| {r['load_avg']:.1f} |"
        )
    print()
    print(f"(b)/(a) throughput: {b['rps'] / a['rps']:.3f} (target >= 0.95); "
          f"p50 +{b['p50_ms'] - a['p50_ms']:.2f} ms (target <= 0.1)")  # fmt: skip
    if p is not None:
        print(
            f"(b)/(c): throughput {b['rps'] / p['rps']:.2f}x, p99 {p['p99_ms'] / b['p99_ms']:.2f}x"
        )
    print(
        f"shadow 100 % vs off: p99 {o['shadow']['p99_ms']:.2f} vs {o['shadow_off']['p99_ms']:.2f} ms"
        f" (saturated), {o['light_shadow']['p99_ms']:.2f} vs {o['light_off']['p99_ms']:.2f} ms"
        f" (light load, {100 * o['light_shadow']['candidate_share']:.0f} % copied)"
    )
    print(
        f"bad candidate: {o['to_stable_s']:.2f} s from its first errors to 100 % stable "
        f"(analysis interval {INTERVAL_S:g} s; target <= {2 * INTERVAL_S:g} s); its pool "
        f"stopped after {o['to_stopped_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
