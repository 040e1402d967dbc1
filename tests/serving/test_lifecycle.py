"""Processes and signals: graceful SIGTERM under load, killed workers, overload, timeouts."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from modelyard.serving import ServerHandle

from .conftest import HERE, ClientThreads, log_lines, metric


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[1] == str(pid) and fields[0] != "Z":
                out.append(int(entry))
    return out


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class _Load(ClientThreads):
    """Client threads posting in a loop; records every status and the first connection error."""

    def __init__(self, url: str, threads: int = 8) -> None:
        super().__init__(url, threads)
        self.statuses: list[int] = []
        self.errors: list[str] = []

    def _run(self, i: int) -> None:
        with httpx.Client(timeout=30) as c:
            v = 0
            while not self.stop.is_set():
                v += 1
                try:
                    r = c.post(self.url, json={"instances": [[i * 100000 + v]]})
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    return
                self.statuses.append(r.status_code)
                if r.status_code == 200:
                    assert r.json()["predictions"][0][1] == i * 100000 + v


def test_sigterm_under_load_loses_no_accepted_request(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    h = server_factory("BatchProbe", workers=2, env={"PROBE_SLEEP_MS": "30"})
    url = f"{h.url}/v1/models/probe:predict"
    with _Load(url) as load:
        _wait_for(lambda: len(load.statuses) > 50)
        h.process.send_signal(signal.SIGTERM)
        assert h.process.wait(timeout=60) == 0
    # every request the server accepted was answered 200 (its keep-alive connection closed
    # after the answer); later ones could not connect once the listener closed
    assert load.statuses.count(200) > 50
    assert set(load.statuses) == {200}, sorted(set(load.statuses))
    # a client thread stops at its first connection error: refused, never reset
    for err in load.errors:
        assert "ConnectError" in err, err
    lines = log_lines(tmp_path / "server.log")
    msgs = [line["msg"] for line in lines]
    assert "signal received; draining" in msgs
    assert msgs.index("signal received; draining") < msgs.index("workers stopped")
    stopped = next(line for line in lines if line["msg"] == "workers stopped")
    assert stopped["exit_codes"] == [0, 0]


def test_sigterm_to_the_whole_process_group_is_still_graceful(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    # systemd, `timeout` and some runtimes signal every process, workers included
    h = server_factory("BatchProbe", workers=2, env={"PROBE_SLEEP_MS": "30"}, new_session=True)
    with _Load(f"{h.url}/v1/models/probe:predict") as load:
        _wait_for(lambda: len(load.statuses) > 50)
        os.killpg(h.pid, signal.SIGTERM)
        assert h.process.wait(timeout=60) == 0
    assert set(load.statuses) == {200}
    for err in load.errors:
        assert "ConnectError" in err, err
    lines = log_lines(tmp_path / "server.log")
    assert not [line for line in lines if line["msg"] == "model worker died; restarting it"]
    stopped = next(line for line in lines if line["msg"] == "workers stopped")
    assert stopped["exit_codes"] == [0, 0]  # they finished their batches and exited on EOF


def test_readiness_turns_false_at_once_on_sigterm(
    server_factory: Callable[..., ServerHandle],
) -> None:
    import socket

    h = server_factory("BatchProbe", env={"PROBE_SLEEP_MS": "1500"}, serving={"drain_delay_s": 3})
    body = b'{"instances": [[5]]}'
    with socket.create_connection(("127.0.0.1", h.port), timeout=30) as s:
        s.sendall(
            b"POST /v1/models/probe:predict HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        with httpx.Client(base_url=h.url) as c:
            _wait_for(lambda: metric(c.get("/metrics").text, "modelyard_inflight_requests") == 2)
        h.process.send_signal(signal.SIGTERM)
        with httpx.Client(base_url=h.url, timeout=30) as c:
            # readiness turns false while the accepted request is still running
            _wait_for(lambda: c.get("/readyz").status_code == 503)
            assert c.get("/v2/health/ready").json()["draining"] is True
            # a request on a fresh connection is still answered during the drain delay,
            # and the connection closes after it
            late = c.post("/v1/models/probe:predict", json={"instances": [[6]]})
            assert late.status_code == 200
            assert late.headers["connection"] == "close"
        data = b""
        while not data.endswith(b"]]}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")  # the accepted request completed
    assert b'{"predictions":[[1.0,5.0,' in data
    assert h.process.wait(timeout=60) == 0


def test_sigint_stops_the_server_cleanly(server_factory: Callable[..., ServerHandle]) -> None:
    h = server_factory("Linear", workers=2)
    workers = _children(h.pid)
    assert len(workers) == 2
    h.process.send_signal(signal.SIGINT)
    assert h.process.wait(timeout=60) == 0
    for pid in workers:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
        )


def test_killed_worker_is_replaced_and_its_requests_fail_fast(
    server_factory: Callable[..., ServerHandle],
) -> None:
    h = server_factory("BatchProbe", workers=2, env={"PROBE_SLEEP_MS": "20"})
    url = f"{h.url}/v1/models/probe:predict"
    victim = _children(h.pid)[0]
    with _Load(url) as load:
        _wait_for(lambda: len(load.statuses) > 30)
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: len(_children(h.pid)) == 2 and victim not in _children(h.pid))
        with httpx.Client(base_url=h.url, timeout=30) as c:
            _wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
            metrics = c.get("/metrics").text
        n = len(load.statuses)
        _wait_for(lambda: len(load.statuses) > n + 30)
    assert not load.errors
    assert set(load.statuses) <= {200, 503}
    assert load.statuses[-1] == 200
    assert 'modelyard_worker_restarts_total{model="probe",version="1"} 1.0' in metrics


def test_readiness_is_false_while_a_worker_is_dead(
    server_factory: Callable[..., ServerHandle],
) -> None:
    # a worker that takes a while to load again: readiness must say so meanwhile
    h = server_factory("SlowLoad", workers=1)
    with httpx.Client(base_url=h.url, timeout=30) as c:
        assert c.get("/readyz").status_code == 200
        os.kill(_children(h.pid)[0], signal.SIGKILL)
        _wait_for(lambda: c.get("/readyz").status_code == 503)
        body = c.get("/v2/health/ready").json()
        assert body["workers_alive"] == 0
        r = c.post("/v1/models/slowload:predict", json={"instances": [[1]]})
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        _wait_for(lambda: c.get("/readyz").status_code == 200)
        assert c.post("/v1/models/slowload:predict", json={"instances": [[1]]}).status_code == 200


def test_full_queue_answers_503_with_retry_after(
    server_factory: Callable[..., ServerHandle],
) -> None:
    h = server_factory(
        "BatchProbe",
        serving={"queue_size": 2, "max_batch_size": 1},
        env={"PROBE_SLEEP_MS": "300"},
    )
    url = f"{h.url}/v1/models/probe:predict"
    with ThreadPoolExecutorCompat(12) as pool:
        answers = pool.map(
            lambda v: httpx.post(url, json={"instances": [[v]]}, timeout=60), range(12)
        )
    codes = [r.status_code for r in answers]
    assert 200 in codes
    assert 503 in codes
    rejected = next(r for r in answers if r.status_code == 503)
    assert rejected.headers["retry-after"] == "1"
    assert "queue is full (2 requests)" in rejected.json()["message"]
    assert set(codes) <= {200, 503}


def test_slow_request_times_out_with_504(server_factory: Callable[..., ServerHandle]) -> None:
    h = server_factory("BatchProbe", serving={"timeout_s": 0.3}, env={"PROBE_SLEEP_MS": "2000"})
    r = httpx.post(f"{h.url}/v1/models/probe:predict", json={"instances": [[1]]}, timeout=30)
    assert r.status_code == 504
    assert "longer than 0.3 s" in r.json()["message"]


def test_logs_are_json_lines_from_front_and_workers(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    h = server_factory("Picky", workers=2, env={"MODELYARD_LOG_LEVEL": "DEBUG"})
    r = httpx.post(
        f"{h.url}/v1/models/picky:predict",
        json={"instances": [[13]]},
        headers={"x-request-id": "log-me"},
    )
    assert r.status_code == 422
    h.stop()
    lines = log_lines(tmp_path / "server.log")
    workers = [line for line in lines if line.get("process", "").startswith("worker-")]
    assert {line["worker_id"] for line in workers} == {0, 1}
    ready = [line for line in workers if line["msg"] == "worker ready"]
    assert all(line["model"] == "picky" and line["version"] == "1" for line in ready)
    front = [line for line in lines if line["logger"] == "modelyard.serving"]
    assert any(line["msg"] == "ready" and line["model"] == "picky" for line in front)
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    access = [line for line in front if line["msg"] == "request"]
    mine = next(line for line in access if line["request_id"] == "log-me")
    assert mine["status"] == 422
    assert mine["route"] == "/v1/models/{name}:predict"
    assert (mine["model"], mine["version"]) == ("picky", "1")


@contextlib.contextmanager
def _served_as_pid_1(tmp_path: Path, model: str, workers: int) -> Iterator[tuple[int, Path]]:
    """``modelyard serve`` as PID 1 of a fresh PID namespace (as in a container).

    Yields the server's pid as seen from outside and its stderr log, once it is ready; on
    leaving, sends SIGTERM and checks that it stopped cleanly (exit 0, "stopped" logged).
    """
    if subprocess.run(["unshare", "--pid", "--fork", "true"], check=False).returncode != 0:
        pytest.skip("unshare --pid is not permitted here")
    script = tmp_path / "pid1.sh"
    script.write_text(
        'echo "pid=$$" >&2\n'
        f"exec {sys.executable} -m modelyard.cli serve --model models:{model} "
        f"--python-path {HERE} --port 0 --workers {workers} --no-request-log\n"
    )
    err = tmp_path / "err.log"
    with err.open("wb") as log:
        proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", "sh", str(script)],
            stderr=log,
            cwd=tmp_path,
        )
    try:
        _wait_for(lambda: b'"msg":"ready"' in err.read_bytes())
        server = next(p for p in _children(proc.pid))  # the PID-1 process, seen from outside
        yield server, err
        os.kill(server, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert '"msg":"stopped"' in err.read_text()


@pytest.mark.skipif(sys.platform != "linux", reason="PID namespaces are Linux-only")
def test_runs_as_pid_1(tmp_path: Path) -> None:
    """In a fresh PID namespace (as in a container) the server is PID 1 and stops on SIGTERM."""
    with _served_as_pid_1(tmp_path, "Linear", workers=1) as (_, err):
        assert "pid=1" in err.read_text()


def _zombies(parent: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and fields[1] == str(parent):
                out.append(int(entry))
    return out


@pytest.mark.skipif(sys.platform != "linux", reason="PID namespaces are Linux-only")
def test_as_pid_1_orphans_are_reaped_and_workers_kept(tmp_path: Path) -> None:
    """Orphans re-parented to the PID-1 server are reaped; its workers are not touched."""
    with _served_as_pid_1(tmp_path, "Orphaner", workers=2) as (server, _):
        workers = [
            p for p in _children(server) if b"sleep" not in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        assert len(workers) == 2
        # each worker's orphaned sleep (0.3 s) is re-parented to us, exits, and is reaped: only
        # the workers are left, and no zombie (an unreaped orphan would stay one for ever)
        _wait_for(lambda: _zombies(server) == [] and sorted(_children(server)) == sorted(workers))


class ThreadPoolExecutorCompat:
    """A ThreadPoolExecutor whose map returns a list (all calls finished)."""

    def __init__(self, n: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(n)

    def __enter__(self) -> ThreadPoolExecutorCompat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown()

    def map(self, fn: Callable[[int], httpx.Response], items: range) -> list[httpx.Response]:
        return list(self.pool.map(fn, items))


def test_workers_exit_when_the_front_is_killed(server_factory: Callable[..., ServerHandle]) -> None:
    h = server_factory("Linear", workers=2)
    workers = _children(h.pid)
    assert len(workers) == 2
    h.process.kill()
    h.process.wait(timeout=30)
    # each worker reads end of stream on its socket and exits: no orphans left behind
    _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers))
