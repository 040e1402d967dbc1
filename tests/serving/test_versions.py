"""Several versions behind one front: routing, x-model-version, mirror, fallback, run-time pools.

The server is the documented Python API (``Server(..., router=, on_ready=)``, ``front.add_version``)
run by ``two_versions.py`` in a real process on an ephemeral port.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from .conftest import HERE, metric

ROW = [1.0, 2.0, 3.0, 4.0]
V7 = [12.0, 1.0]  # Linear: x @ [[1,0],[0,1],[1,1],[2,-1]]
V8 = [12.0, -1.0]  # LinearV8: the second output negated


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("versions") / "server.log"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "two_versions.py"), str(sock.fileno())],
            pass_fds=[sock.fileno()],
            stderr=err,
        )
    sock.close()
    try:
        _until(lambda: _get(f"{url}/v2/models/linear").get("versions") == ["7", "8"], proc)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]


def _get(url: str) -> dict[str, Any]:
    try:
        r = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return {}
    return r.json() if r.status_code == 200 else {}


def _until(
    predicate: Callable[[], bool],
    proc: subprocess.Popen[bytes] | None = None,
    timeout_s: float = 90,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert proc is None or proc.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _predict(c: httpx.Client, arm: str | None = None) -> httpx.Response:
    headers = {"x-arm": arm} if arm else {}
    return c.post("/v1/models/linear:predict", json={"instances": [ROW]}, headers=headers)


def test_the_router_chooses_the_version_and_the_answer_says_which(front: str) -> None:
    with httpx.Client(base_url=front, timeout=30) as c:
        r = _predict(c)
        assert r.status_code == 200
        assert r.headers["x-model-version"] == "7"
        assert r.json()["predictions"] == [V7]
        r = _predict(c, "to:8")
        assert r.headers["x-model-version"] == "8"
        assert r.json()["predictions"] == [V8]
        v2 = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ROW}]}
        r = c.post("/v2/models/linear/infer", json=v2, headers={"x-arm": "to:8"})
        assert (r.headers["x-model-version"], r.json()["model_version"]) == ("8", "8")
        # a route naming the version bypasses the router (a preview route)
        r = c.post("/v2/models/linear/versions/8/infer", json=v2)
        assert r.json()["outputs"][0]["data"] == V8
        assert c.get("/v2/models/linear/versions/8/ready").json()["ready"] is True
        # a bad request is refused by, and labelled with, the version it was routed to
        bad = c.post(
            "/v1/models/linear:predict", json={"instances": [[1, 2]]}, headers={"x-arm": "to:8"}
        )
        assert (bad.status_code, bad.headers["x-model-version"]) == (400, "8")
        text = c.get("/metrics").text
    route = "/v1/models/{name}:predict"
    assert metric(text, "modelyard_requests_total", version="8", route=route, status="200") >= 1
    assert metric(text, "modelyard_requests_total", version="8", route=route, status="400") >= 1
    assert metric(text, "modelyard_workers_alive", version="8") == 1
    assert metric(text, "modelyard_ready", version="7") == 1


def test_a_mirrored_request_is_answered_by_stable_and_counted_on_the_mirror(front: str) -> None:
    with httpx.Client(base_url=front, timeout=30) as c:
        before = metric(c.get("/metrics").text, "modelyard_mirrored_requests_total", version="8")
        r = _predict(c, "mirror:8")
        assert (r.status_code, r.headers["x-model-version"]) == (200, "7")
        assert r.json()["predictions"] == [V7]
        _until(
            lambda: (
                metric(c.get("/metrics").text, "modelyard_mirrored_requests_total", version="8")
                == before + 1
            )
        )


def test_versions_come_and_go_at_run_time_and_a_failing_one_falls_back(front: str) -> None:
    with httpx.Client(base_url=front, timeout=60) as c:
        r = c.post("/test/versions", json={"op": "add", "class": "LinearBroken"})
        assert r.json() == {"added": "9"}
        assert c.get("/v2/models/linear").json()["versions"] == ["7", "8", "9"]
        # without a fallback the candidate's failure reaches the client, labelled 9
        r = _predict(c, "to:9")
        assert (r.status_code, r.headers["x-model-version"]) == (422, "9")
        assert "the candidate is broken" in r.json()["message"]
        # with one, stable answers instead and the failure is counted on 9
        r = _predict(c, "try:9")
        assert (r.status_code, r.headers["x-model-version"]) == (200, "7")
        assert r.json()["predictions"] == [V7]
        text = c.get("/metrics").text
        assert metric(text, "modelyard_retried_requests_total", version="9") == 1
        # the failed attempt is in 9's request counts (what Prometheus-based analysis reads)
        route = "/v1/models/{name}:predict"
        assert metric(text, "modelyard_requests_total", version="9", route=route, status="500") == 1
        # a request the input check refuses falls back too, but is no failure of 9
        bad = c.post(
            "/v1/models/linear:predict", json={"instances": [[1, 2]]}, headers={"x-arm": "try:9"}
        )
        assert (bad.status_code, bad.headers["x-model-version"]) == (400, "7")
        text = c.get("/metrics").text
        assert metric(text, "modelyard_requests_total", version="9", route=route, status="500") == 1
        assert metric(text, "modelyard_requests_total", version="9", route=route, status="400") == 1
        # the stable version cannot be removed; another can, and its routes go with it
        stable = c.post("/test/versions", json={"op": "remove", "version": "7"})
        assert stable.status_code == 409
        assert "stable" in stable.json()["message"]
        r = c.post("/test/versions", json={"op": "remove", "version": "9"})
        assert r.json() == {"removed": "9"}
        assert c.get("/v2/models/linear").json()["versions"] == ["7", "8"]
        gone = c.post("/v2/models/linear/versions/9/infer", json={"inputs": []})
        assert gone.status_code == 404
        assert "'7', '8'" in gone.json()["message"]
        # a route to a version no longer served is answered by the stable one
        r = _predict(c, "to:9")
        assert (r.status_code, r.headers["x-model-version"]) == (200, "7")
