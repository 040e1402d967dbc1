"""`modelyard analyze` against a real Prometheus scraping two real `modelyard serve` processes."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelyard.serving import ServerHandle, launch
from tests._system_tools import require_tool
from tests.delivery.test_serving import BODY, PYTHONPATH, cli
from tests.delivery.test_serving import project as project  # noqa: PLC0414 (the fixture)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def servers(project: Path) -> Iterator[dict[str, ServerHandle]]:
    handles: dict[str, ServerHandle] = {}
    try:
        for version in ("1", "2", "3"):
            with (project / f"serve-{version}.log").open("ab") as err:
                handles[version] = launch(
                    f"churn:{version}",
                    workers=1,
                    cwd=project,
                    stderr=err,
                    request_log=False,
                    env={"PYTHONPATH": PYTHONPATH},
                )
        yield handles
    finally:
        for h in handles.values():
            h.stop(grace_s=30)


@pytest.fixture
def prometheus(project: Path, servers: dict[str, ServerHandle]) -> Iterator[str]:
    binary = require_tool("prometheus", "prometheus")
    port = _free_port()
    targets = [f"127.0.0.1:{h.port}" for h in servers.values()]
    config = project / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "modelyard", "static_configs": [{"targets": targets}]}
                ],
            }
        )
    )
    with (project / "prometheus.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={project / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (project / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "prometheus did not get ready"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def _traffic(h: ServerHandle, n: int) -> None:
    with httpx.Client() as client:
        for _ in range(n):
            client.post(f"{h.url}/v1/models/churn:predict", json=BODY)


def _scraped(url: str, version: str, at_least: int) -> None:
    query = (
        f'sum(modelyard_requests_total{{model="churn",version="{version}",route=~".*predict.*"}})'
    )
    deadline = time.monotonic() + 60
    while True:
        r = httpx.get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}").json()
        result = r["data"]["result"]
        if result and float(result[0]["value"][1]) >= at_least:
            return
        assert time.monotonic() < deadline, f"prometheus has not scraped version {version}: {r}"
        time.sleep(0.5)


def test_analyze_passes_fails_and_is_inconclusive_from_prometheus(
    project: Path, servers: dict[str, ServerHandle], prometheus: str
) -> None:
    # each server scraped before the traffic, so increase() sees its counters start
    deadline = time.monotonic() + 60
    while True:
        up = httpx.get(f"{prometheus}/api/v1/query", params={"query": "sum(up)"}).json()
        if up["data"]["result"] and float(up["data"]["result"][0]["value"][1]) == len(servers):
            break
        assert time.monotonic() < deadline, up
        time.sleep(0.3)
    (project / "broken").touch()  # v3 now refuses every request
    # a counter series is born with its first request: scrape it small, so increase() counts
    for h in servers.values():
        _traffic(h, 5)
    for v in servers:
        _scraped(prometheus, v, 5)
    for h in servers.values():
        _traffic(h, 300)
    for v in servers:
        _scraped(prometheus, v, 305)
    time.sleep(1.5)  # one more scrape after the last request
    args = ("analyze", "churn", "--prometheus", prometheus, "--window", "5m", "--no-feedback")
    same = cli(project, *args, "--candidate", "2", "--json")
    assert same.returncode == 0, same.stdout + same.stderr
    doc = json.loads(same.stdout)
    assert doc["outcome"] == "pass"
    assert doc["candidate"]["requests"] >= 300
    broken = cli(project, *args, "--candidate", "3")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "fail: invalid_rate" in broken.stdout
    silent = cli(project, *args, "--candidate", "4", "--json")  # v4 is not served: no samples
    assert silent.returncode == 2, silent.stdout + silent.stderr
    assert json.loads(silent.stdout)["outcome"] == "insufficient_data"
