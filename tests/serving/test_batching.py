"""Dynamic batching: lone requests do not wait, batches respect the limit, answers match."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from modelyard.serving import ServerHandle

from .conftest import metric


def test_every_request_gets_its_own_rows_and_batches_respect_the_limit(
    server_factory: Callable[..., ServerHandle],
) -> None:
    h = server_factory(
        "BatchProbe",
        workers=2,
        serving={"max_batch_size": 8, "max_wait_ms": 5},
        env={"PROBE_SLEEP_MS": "20"},
    )
    url = f"{h.url}/v1/models/probe:predict"

    def call(i: int) -> tuple[int, list[list[float]]]:
        rows = [[i * 10 + k] for k in range(1 + i % 3)]
        with httpx.Client(timeout=60) as c:
            r = c.post(url, json={"instances": rows})
        assert r.status_code == 200, r.text
        return i, r.json()["predictions"]

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(call, range(120)))
    sizes = []
    pids = set()
    for i, preds in results:
        assert [p[1] for p in preds] == [i * 10 + k for k in range(1 + i % 3)]
        sizes += [p[0] for p in preds]
        pids |= {p[2] for p in preds}
    assert max(sizes) <= 8
    assert max(sizes) > 1, "concurrent requests were never batched together"
    assert len(pids) == 2, "both workers should have served"
    metrics = httpx.get(f"{h.url}/metrics").text
    assert metric(metrics, "modelyard_batch_size_sum") == sum(1 + i % 3 for i in range(120))
    count = metric(metrics, "modelyard_batch_size_count")
    assert metric(metrics, "modelyard_batch_size_bucket", le="8.0") == count
    assert metric(metrics, "modelyard_batch_size_bucket", le="4.0") < count


def test_a_lone_request_is_not_held_for_the_wait_window(
    server_factory: Callable[..., ServerHandle],
) -> None:
    # a one-minute window and a five-second timeout: a server that held a lone request for
    # its window would answer 504
    h = server_factory("BatchProbe", serving={"max_wait_ms": 60_000, "timeout_s": 5})
    with httpx.Client(base_url=h.url, timeout=30) as c:
        for v in range(3):
            r = c.post("/v1/models/probe:predict", json={"instances": [[v]]})
            assert r.status_code == 200, r.text
            assert r.json()["predictions"][0][:2] == [1, v]
