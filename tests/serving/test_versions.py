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


def _share(
    c: httpx.Client, version: str | None, share: float = 0.0, *, mirror: bool = False
) -> bool:
    doc = {"op": "share", "version": version, "share": share, "mirror": mirror}
    r = c.post("/test/versions", json=doc)
    assert r.status_code == 200, r.text
    shared: bool = r.json()["shared"]
    return shared


def _answers(c: httpx.Client, arm: str, n: int = 240) -> list[tuple[int, str, Any]]:
    """``n`` requests on ``arm`` from 8 threads at once (so that batches form)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(_: int) -> tuple[int, str, Any]:
        r = _predict(c, arm)
        return r.status_code, r.headers["x-model-version"], r.json()

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def test_stable_lends_a_share_of_its_batches_and_takes_back_what_fails(front: str) -> None:
    """A canary split per batch: a ``shared`` request may ride in a batch stable lends to the
    other version, which then answers it (and says so); a lent request that fails there is
    answered by stable; requests routed without ``shared`` are never lent."""
    route = "/v1/models/{name}:predict"
    with httpx.Client(base_url=front, timeout=60) as c:
        # a version that decodes requests otherwise cannot take stable's batches
        assert c.post("/test/versions", json={"op": "add", "class": "LinearWide"}).json() == {
            "added": "10"
        }
        assert _share(c, "10", 0.5) is False
        assert c.post("/test/versions", json={"op": "remove", "version": "10"}).status_code == 200
        assert _share(c, "8", 0.0) is False  # nothing to share
        assert _share(c, "7", 0.5) is False  # stable itself

        assert _share(c, "8", 0.5) is True
        answers = _answers(c, "share")
        by_version = {v: [a for a in answers if a[1] == v] for v in ("7", "8")}
        assert {a[0] for a in answers} == {200}
        # each answer is the model of the version it names
        assert all(a[2]["predictions"] == [V7] for a in by_version["7"])
        assert all(a[2]["predictions"] == [V8] for a in by_version["8"])
        assert 0.1 < len(by_version["8"]) / len(answers) < 0.9, len(by_version["8"])
        # a route without ``shared`` (a pinned or versioned request) stays on stable
        assert {a[1] for a in _answers(c, "to:7", 120)} == {"7"}

        # a partner that fails: every request it was lent is answered by stable
        assert c.post("/test/versions", json={"op": "add", "class": "LinearBroken"}).json() == {
            "added": "9"
        }
        before = metric(c.get("/metrics").text, "modelyard_retried_requests_total", version="9")
        assert _share(c, "9", 0.5) is True
        answers = _answers(c, "share")
        assert {(a[0], a[1]) for a in answers} == {(200, "7")}
        assert all(a[2]["predictions"] == [V7] for a in answers)
        text = c.get("/metrics").text
        retried = metric(text, "modelyard_retried_requests_total", version="9") - before
        assert retried > 0  # it was lent requests, and each one's failure counts on 9
        # removing the partner ends the share: stable answers alone
        assert c.post("/test/versions", json={"op": "remove", "version": "9"}).status_code == 200
        answers = _answers(c, "share", 60)
        assert {(a[0], a[1]) for a in answers} == {(200, "7")}
        assert _share(c, None) is False
        assert metric(text, "modelyard_requests_total", version="9", route=route, status="500") > 0


def test_stable_sends_a_copy_of_its_batches_to_a_mirror(front: str) -> None:
    """A shadow split per batch: stable answers every request; an idle worker of the mirror
    gets a copy of stable's batch (the same rows, so batches as large as stable's); a batch
    not copied (no idle mirror worker) counts as skipped copies; nothing queues for it."""
    with httpx.Client(base_url=front, timeout=60) as c:

        def counts() -> dict[str, float]:
            text = c.get("/metrics").text
            return {
                "copied": metric(text, "modelyard_mirrored_requests_total", version="8"),
                "skipped": metric(text, "modelyard_mirror_skipped_requests_total", version="8"),
                "rows8": metric(text, "modelyard_batch_size_sum", version="8"),
                "batches8": metric(text, "modelyard_batch_size_count", version="8"),
                "batches7": metric(text, "modelyard_batch_size_count", version="7"),
            }

        assert _share(c, "8", 1.0, mirror=True) is True
        before = counts()
        answers = _answers(c, "share")
        assert {(a[0], a[1]) for a in answers} == {(200, "7")}
        assert all(a[2]["predictions"] == [V7] for a in answers)

        def settled() -> bool:
            now = counts()
            return now["copied"] + now["skipped"] - before["copied"] - before["skipped"] == 240

        _until(settled, timeout_s=30)
        after = counts()
        d = {k: after[k] - before[k] for k in after}
        assert d["copied"] > 0
        assert d["rows8"] == d["copied"]  # each copy ran once, in a copied batch
        assert d["batches8"] <= d["batches7"]  # no batches of its own: copies of stable's
        assert _share(c, None) is False


def test_a_share_counts_only_the_rows_stable_could_have_lent(front: str) -> None:
    """Pinned requests (never lent) and the retries of a failing partner (sent back to
    stable, not lent again) do not count towards the partner's share: at 25 % with as many
    pinned requests beside, the partner answers about a quarter of the shared ones; a partner
    that fails everything it is lent at 45 % is lent about 45 % of the requests, not the ~80 %
    its own retries would otherwise earn it."""
    with httpx.Client(base_url=front, timeout=60) as c:
        assert _share(c, "8", 0.25) is True
        versions = []
        for _ in range(40):
            assert _predict(c, "to:7").headers["x-model-version"] == "7"
            versions.append(_predict(c, "share").headers["x-model-version"])
        assert 0.15 <= versions.count("8") / len(versions) <= 0.35, versions.count("8")

        assert c.post("/test/versions", json={"op": "add", "class": "LinearBroken"}).json() == {
            "added": "9"
        }
        before = metric(c.get("/metrics").text, "modelyard_retried_requests_total", version="9")
        assert _share(c, "9", 0.45) is True
        v2 = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ROW}]}
        answers = []
        for _ in range(30):
            r = c.post("/v2/models/linear/infer", json=v2, headers={"x-arm": "share"})
            answers.append((r.status_code, r.headers["x-model-version"], r.json()["outputs"][0]))
            r = _predict(c, "share")
            answers.append((r.status_code, r.headers["x-model-version"], r.json()["predictions"]))
        assert {(a[0], a[1]) for a in answers} == {(200, "7")}
        assert all(a[2]["data"] == V7 for a in answers[::2])  # stable's model answered
        assert all(a[2] == [V7] for a in answers[1::2])
        lent = metric(c.get("/metrics").text, "modelyard_retried_requests_total", version="9")
        assert 0.3 <= (lent - before) / len(answers) <= 0.6, lent - before
        assert c.post("/test/versions", json={"op": "remove", "version": "9"}).status_code == 200
        assert _share(c, None) is False
