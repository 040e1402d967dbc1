"""The drain on SIGTERM, seen by clients that open a fresh connection per request.

While Kubernetes removes a pod from its endpoints (asynchronously) clients keep connecting to
it: for ``serving.drain_delay_s`` they must be answered normally, then the listener closes
without resetting the connections queued in its backlog (later ones are refused), and every
accepted request is answered.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from modelyard.serving import ServerHandle

from .conftest import ClientThreads, log_lines


class _FreshConnections(ClientThreads):
    """Client threads, each request on a new connection, until the server refuses them."""

    def __init__(self, url: str, threads: int = 6) -> None:
        super().__init__(url, threads)
        self.outcomes: list[tuple[float, str]] = []  # (time, "200" | "503" | error class)

    def _run(self, i: int) -> None:
        v = 0
        # "connection: close": the server closes each connection after its answer, so every
        # request opens a new one (a client per request would spend its time on TLS set-up)
        client = httpx.Client(timeout=30, headers={"connection": "close"})
        while not self.stop.is_set():
            v += 1
            try:
                r = client.post(self.url, json={"instances": [[i * 100000 + v]]})
            except httpx.ConnectError:  # refused: the listener is closed
                self.outcomes.append((time.monotonic(), "refused"))
                break
            except httpx.HTTPError as exc:  # reset, or closed without an answer
                self.outcomes.append((time.monotonic(), type(exc).__name__))
                continue
            self.outcomes.append((time.monotonic(), str(r.status_code)))
            if r.status_code == 200:
                assert r.json()["predictions"][0][1] == i * 100000 + v
        client.close()


def test_drain_answers_fresh_connections_then_refuses_them_without_a_reset(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    h = server_factory(
        "BatchProbe",
        workers=2,
        env={"PROBE_SLEEP_MS": "5"},
        serving={"drain_delay_s": 1.5, "grace_s": 20},
    )
    url = f"{h.url}/v1/models/probe:predict"
    with _FreshConnections(url) as load:
        deadline = time.monotonic() + 60
        while len(load.outcomes) < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        signalled = time.monotonic()
        h.process.send_signal(signal.SIGTERM)
        ready = httpx.get(f"{h.url}/readyz", timeout=10)
        assert ready.status_code == 503  # not ready at once ...
        assert ready.json()["draining"] is True
        assert h.process.wait(timeout=60) == 0
    kinds = {kind for _, kind in load.outcomes}
    # ... yet every request that reached the server was answered 200; later ones were refused
    assert kinds <= {"200", "refused"}, sorted(kinds)
    late = [t for t, kind in load.outcomes if kind == "200" and t > signalled + 1.0]
    assert len(late) > 10  # answered normally during the drain delay
    lines = log_lines(tmp_path / "server.log")
    msgs = [line["msg"] for line in lines]
    assert msgs.index("signal received; draining") < msgs.index("stopped accepting")
    assert msgs.index("stopped accepting") < msgs.index("workers stopped")


def test_a_second_signal_skips_the_drain_delay(
    server_factory: Callable[..., ServerHandle],
) -> None:
    h = server_factory("BatchProbe", serving={"drain_delay_s": 600})
    h.process.send_signal(signal.SIGTERM)
    with httpx.Client(base_url=h.url, timeout=10) as c:
        deadline = time.monotonic() + 30
        while c.get("/readyz").status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # still answering during the delay
        assert c.post("/v1/models/probe:predict", json={"instances": [[1]]}).status_code == 200
    h.process.send_signal(signal.SIGTERM)
    assert h.process.wait(timeout=30) == 0
