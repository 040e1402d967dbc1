"""The request-log child process under faults, with real processes: a child that dies while
warming up, a child stopped before it was configured, a reader of a dead child that runs late."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard.requestlog import RequestLog
from modelyard.requestlog._process import RequestLogProcess
from modelyard.store.artifacts import ArtifactStore


def _config(root: Path) -> dict[str, Any]:
    return {"url": str(root), "model": "m", "version": "1", "flush_s": 3600, "max_records": 1000}


def _log_children() -> list[int]:
    """This process's request-log children (alive or not yet reaped)."""
    me = os.getpid()
    kids = []
    for task in Path(f"/proc/{me}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return [k for k in kids if b"modelyard.requestlog._process" in _cmdline(k)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _wait_exited(pid: int, timeout_s: float = 10.0) -> None:
    """Wait until our child ``pid`` can be reaped (not reaping it: ``WNOWAIT``)."""
    deadline = time.monotonic() + timeout_s
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        assert time.monotonic() < deadline, f"process {pid} did not exit"
        time.sleep(0.02)


def test_wait_ready_returns_at_once_when_the_child_dies_warming_up() -> None:
    """The worker waits for a warm child before its hello: a child that died must not hold the
    worker's start for the whole timeout."""
    p = RequestLogProcess()
    p.start()
    try:
        (pid,) = _log_children()
        os.kill(pid, signal.SIGKILL)  # long before its warm-up (pyarrow imports) is done
        t0 = time.monotonic()
        assert not p.wait_ready(30.0)
        assert time.monotonic() - t0 < 10.0
    finally:
        p.stop(timeout_s=5.0)


def test_a_child_never_configured_answers_a_flush_and_stops_cleanly(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A worker stopped before the front configured its log (another worker failed to load, a
    stop during start-up) stops its child: no traceback, exit 0, a flush is answered."""
    p = RequestLogProcess()
    p.start()
    assert p.wait_ready(60.0)
    result = p.try_flush(timeout_s=30.0)
    assert result.written == []
    assert result.error is not None
    assert "not configured" in result.error
    assert p.stop(timeout_s=30.0) == 0
    assert p._proc is not None
    assert p._proc.returncode == 0
    assert "Traceback" not in capfd.readouterr().err


def test_the_reader_of_a_dead_child_leaves_its_successor_alone(tmp_path: Path) -> None:
    """A child dies and, before its reply reader has run, a producer starts the next one (the
    reader waits for the lock the producer holds while it restarts): the late reader must not
    close the new child's socket, count its rows as lost, nor answer its flushes."""
    p = RequestLogProcess(_config(tmp_path))
    before = set(threading.enumerate())
    started = time.monotonic()
    p.start()
    try:
        assert p.wait_ready(60.0)
        (first_reader,) = [
            t
            for t in threading.enumerate()
            if t not in before and t.name == "modelyard-log-receiver"
        ]
        (pid,) = _log_children()
        time.sleep(max(0.0, started + 5.5 - time.monotonic()))  # restarts: at most every 5 s
        with p._lock:  # a producer that appends just as the child dies
            os.kill(pid, signal.SIGKILL)
            _wait_exited(pid)
            assert p._alive()  # started again, with the lock held
        first_reader.join(10.0)  # the dead child's reader runs now, late
        assert not first_reader.is_alive()
        x = np.ones((3, 4), dtype=np.float32)
        assert p.add_batch(["a", "b", "c"], None, x, x[:, 0])
        result = p.try_flush(timeout_s=60.0)
        assert result.error is None, result.error
        assert result.written
        assert p.dropped == 0
    finally:
        lost = p.stop(timeout_s=30.0)
    assert lost == 0
    store = ArtifactStore.open(str(tmp_path))
    ids = RequestLog(store, "m", "1").requests().column("request_id").to_pylist()
    assert sorted(ids) == ["a", "b", "c"]


def test_every_thread_of_a_warm_log_process_runs_at_idle_priority() -> None:
    """The warm-up starts pyarrow's (and the allocator's) threads at normal priority: all of
    them, not only the main thread, must then yield the CPU to the server."""
    p = RequestLogProcess()
    p.start()
    try:
        assert p.wait_ready(60)
        assert p._proc is not None
        deadline = time.monotonic() + 10
        while True:  # the child lowers its threads right after it says it is ready
            tids = os.listdir(f"/proc/{p._proc.pid}/task")
            policies = {os.sched_getscheduler(int(t)) for t in tids}
            if policies == {os.SCHED_IDLE} or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(tids) > 1
        assert policies == {os.SCHED_IDLE}
    finally:
        assert p.stop(30) == 0


def test_stop_does_not_start_a_dead_child_again_only_to_stop_it(tmp_path: Path) -> None:
    """A child that died is started again by the next append (at most every 5 s), but not by
    stop(): a new child would import pyarrow during the server's shutdown for nothing."""
    p = RequestLogProcess(_config(tmp_path))
    started = time.monotonic()
    p.start()
    assert p.wait_ready(60.0)
    (pid,) = _log_children()
    os.kill(pid, signal.SIGKILL)
    _wait_exited(pid)
    time.sleep(max(0.0, started + 5.5 - time.monotonic()))  # a restart would be allowed now
    p.stop(timeout_s=10.0)
    assert p._proc is not None
    assert p._proc.pid == pid  # no other child was started
    assert _log_children() == []
