"""The request log written by a child process: the model worker only hands batches over.

A :class:`RequestLogProcess` has the producer interface of
:class:`~modelyard.requestlog.RequestLogWriter` (``add_batch``, ``add_records``,
``add_feedback``, ``try_flush``, ``stop``) but builds no Arrow table and writes no file: each
appended batch (the model worker's input and output arrays, a few references) is pickled and
written, without blocking, to a Unix socket, and a child process (``python -m
modelyard.requestlog._process``, at idle CPU priority) buffers them in a ``RequestLogWriter``
and writes the Parquet files.

Why a process and not a thread of the worker: a flush of 8,192 rows of 256 floats takes 40-60
ms of CPU, partly holding the GIL, and the worker's next batch waited for it (the log cost the
served p99 23-29 %). In its own process, at idle priority, the writer takes the CPU the server
leaves idle and never the GIL of the process that answers requests. Why no sender thread:
waking it and passing it the GIL for every batch cost the worker more (6 us a request,
measured) than the pickle and the ``send`` do in the producer's own thread (2.8 us); a thread
drains the socket only while the child is behind.

Nothing is lost silently: batches that do not fit (more than ``max_records`` rows not yet taken
by the child) are dropped and counted here; the child's own drops are added; if the child dies
it is started again (at most once every 5 s) and every row handed to it and not written is
counted. The pickles cross a private socket pair between two processes of the same server
(never a file, never another user's bytes).
"""

from __future__ import annotations

import os
import pickle
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from itertools import islice
from multiprocessing.connection import Connection
from typing import Any

from modelyard._priority import lower_process
from modelyard.logs import get_logger
from modelyard.requestlog._writer import FlushResult, LogProducer, RequestLogWriter

__all__ = ["RequestLogProcess"]

log = get_logger("modelyard.requestlog")

NICE = 19  # where SCHED_IDLE is not available
_RESTART_EVERY_S = 5.0
_SOCKET_BUFFER = 4 << 20  # bytes the kernel holds for the child before a send would block
_DRAIN_EVERY_S = 0.02
_HEADER = struct.Struct("!i")  # multiprocessing.connection's framing: the child reads Connection


class RequestLogProcess(LogProducer):
    """A request-log writer in a child process.

    Args:
        config: what the child needs to write: ``url`` and ``storage_options`` of the artifact
            store, ``model``, ``version``, ``inputs``, ``tensor_column``, ``flush_s``,
            ``max_records`` (sent over the socket, never on a command line: options may hold
            credentials).
        sample_rate: fraction of requests logged (feedback is always kept).
        on_flush: called with each timed flush's :class:`FlushResult` (from a thread).
        rand: uniform [0, 1) source for sampling.
    """

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        *,
        sample_rate: float = 1.0,
        on_flush: Callable[[FlushResult], None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = dict(config) if config is not None else None
        self.sample_rate = sample_rate
        self.on_flush = on_flush
        self.rand = rand
        self.clock = time.time
        self.max_records = int((config or {}).get("max_records", 100_000))
        self._ready = threading.Event()  # the child is warm, or its reader ended (it died)
        self._warm = False  # the child has imported pyarrow and written a file
        self.dropped_here = 0  # rows not handed over, or lost with a child that died
        self.child_dropped = 0  # the running child's last report: rows it dropped,
        self.child_pending = 0  # buffered,
        self.child_written = 0  # and written
        self._sent_rows = 0  # rows handed to the running child (frames sent or being sent)
        self._frames: deque[list[Any]] = deque()  # [unsent bytes, rows] not in the kernel yet
        self._unsent_rows = 0
        self._lock = threading.Lock()  # producers (the worker's loop, a flush thread), drainer
        self._behind = threading.Event()  # frames wait: the drainer thread sends them
        self._closing = False
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._next_flush = 0
        self._flushes: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._stopped = threading.Event()
        self._lost: int | None = None
        self._generation = 0  # children started: a reader acts only for the newest

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the child and the thread that drains the socket when the child is behind.

        The child imports pyarrow and writes a throw-away file first, at normal priority (about
        0.5 s of CPU), then drops to idle priority: start it before loading the model, and
        :meth:`wait_ready` before taking traffic, so that this never runs under the first
        requests. It writes nothing before :meth:`configure`.
        """
        with self._lock:
            self._spawn()
        threading.Thread(target=self._drain_loop, name="modelyard-log-drain", daemon=True).start()

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the child is warm (``False`` when it is not within ``timeout_s``, or
        when it exited first)."""
        self._ready.wait(timeout_s)
        return self._warm

    def configure(
        self,
        config: dict[str, Any],
        *,
        sample_rate: float = 1.0,
        on_flush: Callable[[FlushResult], None] | None = None,
    ) -> None:
        """Tell the child where and what to write (see the class's ``config``)."""
        with self._lock:
            self.config = dict(config)
            self.sample_rate = sample_rate
            self.on_flush = on_flush
            self.max_records = int(config.get("max_records", 100_000))
            if self._sock is not None:
                try:
                    self._sock.sendall(_frame(("config", self.config)))
                except OSError:  # gone: the next append starts it again, with this config
                    self._sock = None

    def _spawn(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        parent.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        child.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        cmd = [sys.executable, "-m", "modelyard.requestlog._process", "--fd", str(child.fileno())]
        self._proc = subprocess.Popen(cmd, pass_fds=[child.fileno()])
        child.close()
        self._started_at = time.monotonic()
        if self.config is not None:
            parent.sendall(_frame(("config", self.config)))
        self._sock = parent
        self._stopped.clear()
        self._generation += 1
        replies = Connection(os.dup(parent.fileno()))  # blocking reads in their own thread
        threading.Thread(
            target=self._recv_loop,
            args=(replies, self._generation),
            name="modelyard-log-receiver",
            daemon=True,
        ).start()

    @property
    def dropped(self) -> int:
        """Rows dropped since the start: here (queue full, child gone) and in the child."""
        return self.dropped_here + self.child_dropped

    @property
    def pending(self) -> int:
        """Rows not written yet: not sent yet, or buffered in the child (its last report)."""
        return self._unsent_rows + self.child_pending

    # ------------------------------------------------------------------ producers
    def _put(self, item: tuple[Any, ...], rows: int) -> bool:
        with self._lock:
            if self._closing or self._unsent_rows + rows > self.max_records:
                self.dropped_here += rows
                if item[0] == "flush":  # (else it waits its whole timeout)
                    self._answer_flush(item[1], [], "the request log is stopping")
                return False
            if self.config is None and item[0] != "stop":  # not configured: nowhere to write
                self.dropped_here += rows
                if item[0] == "flush":
                    self._answer_flush(item[1], [], "the request log is not configured yet")
                return False
            if not self._alive(restart=item[0] != "stop"):
                self.dropped_here += rows
                if item[0] == "flush":
                    self._answer_flush(item[1], [], "the request log process is not running")
                return False
            try:
                data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                self.dropped_here += rows  # a value pickle cannot take: the log goes on
                log.warning(
                    "request log batch could not be handed over",
                    extra={"error": f"{type(exc).__name__}: {exc}"[:300]},
                )
                return False
            # multiprocessing.connection's framing (the child reads a Connection); header and
            # pickle go out in one sendmsg, not joined into a copy
            self._frames.append([memoryview(_HEADER.pack(len(data))), 0])
            self._frames.append([memoryview(data), rows])
            self._unsent_rows += rows
            self._sent_rows += rows
            self._pump()
            return True

    def _alive(self, *, restart: bool = True) -> bool:
        """The child runs (started again, unless ``restart`` is false, if it died at least 5 s
        after its last start: never only to be told to stop)."""
        if self._sock is not None and self._proc is not None and self._proc.poll() is None:
            return True
        if not restart or self._closing or time.monotonic() - self._started_at < _RESTART_EVERY_S:
            return False
        log.error("request log process exited; starting it again")
        if self._sock is not None:  # exited before its reader saw it (that reader leaves it)
            self._sock.close()
            self._sock = None
        self._child_gone()
        self._spawn()
        return True

    def _pump(self, flags: int = socket.MSG_DONTWAIT) -> None:
        """Send what the kernel takes now (with the lock held); wake the drainer if not all."""
        sock = self._sock
        frames = self._frames
        while frames and sock is not None:
            try:
                sent = sock.sendmsg([f[0] for f in islice(frames, 64)], [], flags)
            except BlockingIOError:
                break
            except OSError:  # the child is gone: what it had not taken is lost, and counted
                sock.close()
                self._sock = None
                self._child_gone()
                return
            while sent and frames:
                head = frames[0]
                size = len(head[0])
                if sent >= size:
                    sent -= size
                    frames.popleft()
                    self._unsent_rows -= head[1]
                else:
                    head[0] = head[0][sent:]
                    sent = 0
        if frames:
            self._behind.set()

    def _drain_loop(self) -> None:
        # while the child is behind, every append pumps too; this thread only catches up when
        # the producer is idle, 50 times a second (waking it on every full socket, to wait
        # for writability, cost the worker's loop the GIL at each of the child's reads)
        while True:
            self._behind.wait()
            time.sleep(_DRAIN_EVERY_S)
            with self._lock:
                self._behind.clear()
                self._pump()
                if self._closing:  # stop() sends the rest itself
                    return

    def add_chunk(self, kind: str, ts_s: float, rows: int, data: Any) -> bool:
        """Hand rows to the child (the producer methods of :class:`LogProducer` call this)."""
        return self._put(("chunk", kind, ts_s, rows, data), rows)

    # ------------------------------------------------------------------ flushing
    def try_flush(self, timeout_s: float = 120.0) -> FlushResult:
        """Have the child write everything appended before this call; never raises."""
        with self._lock:
            self._next_flush += 1
            flush_id = self._next_flush
            done: tuple[threading.Event, list[Any]] = (threading.Event(), [])
            self._flushes[flush_id] = done
        self._put(("flush", flush_id), 0)
        if not done[0].wait(timeout_s):
            with self._lock:
                self._flushes.pop(flush_id, None)
            error = f"the log process did not answer within {timeout_s} s"
            return FlushResult([], error, self.pending, self.dropped)
        written, error = done[1]
        return FlushResult(written, error, self.pending, self.dropped)

    def stop(self, timeout_s: float = 60.0) -> int:
        """Hand over what is waiting, let the child write it and exit; return the rows lost."""
        self._put(("stop",), 0)
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._closing = True
            sock = self._sock
        while sock is not None and self._frames and time.monotonic() < deadline:
            try:  # the child takes the rest as it writes (the socket stays blocking: its
                # reply reader shares the file description)
                select.select([], [sock], [], max(0.0, deadline - time.monotonic()))
            except (OSError, ValueError):
                break
            with self._lock:
                self._pump()
                sock = self._sock
        self._behind.set()  # the drainer sees the close and exits
        self._stopped.wait(max(0.0, deadline - time.monotonic()))
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
        if self._unsent_rows:  # the child's own losses are logged by the child
            log.error(
                "request log records lost",
                extra={"lost_records": self._unsent_rows, "error": "not handed to the log process"},
            )
        return (self._lost if self._lost is not None else self.child_pending) + self._unsent_rows

    # ------------------------------------------------------------------ replies
    def _recv_loop(self, conn: Connection, generation: int) -> None:
        lost: int | None = None
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "ready":
                self._warm = True
                self._ready.set()
            elif kind == "flushed":
                _, flush_id, files, error, counts = msg
                self._counts(counts, generation)
                self._answer_flush(flush_id, files, error)
            elif kind == "stats":
                _, error, counts = msg
                self._counts(counts, generation)
                if self.on_flush is not None:
                    try:
                        self.on_flush(FlushResult([], error, self.pending, self.dropped))
                    except Exception:  # a report that cannot be sent must not stop the log
                        log.exception("request log flush report failed")
            elif kind == "failed":
                log.error("request log process could not start", extra={"error": msg[1]})
                break
            elif kind == "stopped":
                _, lost, counts = msg
                self._counts(counts, generation)
                break
        conn.close()
        self._ready.set()  # a start waiting for a warm child: this one never will be
        with self._lock:
            if generation != self._generation:
                # a producer found this child dead and started the next one (counting what
                # this one lost): the socket and the waiting flushes are the new child's
                return
            if lost is not None:
                self._lost = lost
                self.child_pending = 0
            elif self._sock is not None:  # died: what it had not written is lost, and counted
                self._sock.close()
                self._sock = None
                self._child_gone()
            waiting = list(self._flushes)
        for flush_id in waiting:  # the child is gone: nobody else will answer these
            self._answer_flush(flush_id, [], "the request log process exited")
        self._stopped.set()

    def _counts(self, counts: tuple[int, int, int], generation: int) -> None:
        with self._lock:
            if generation == self._generation:  # not a late report of a child replaced since
                self.child_pending, self.child_dropped, self.child_written = counts

    def _child_gone(self) -> None:
        """Count as dropped every row handed to a child that died before writing it (with the
        lock held): those it had taken, and those still waiting to be sent to it."""
        self.dropped_here += max(0, self._sent_rows - self.child_written)
        self._frames.clear()
        self._unsent_rows = 0
        self._sent_rows = self.child_written = self.child_dropped = self.child_pending = 0
        self._lost = None  # a child that reported its loss before exiting: counted just now
        for flush_id in list(self._flushes):  # sent to this child (or lost with its frames)
            self._answer_flush(flush_id, [], "the request log process exited")

    def _answer_flush(self, flush_id: int, written: list[str], error: str | None) -> None:
        done = self._flushes.pop(flush_id, None)
        if done is not None:
            done[1][:] = [written, error]
            done[0].set()


def _frame(item: tuple[Any, ...]) -> bytes:
    """One message as ``multiprocessing.connection.Connection.recv`` reads it."""
    data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


# ---------------------------------------------------------------------------------- the child
class _Discard:
    """A store that keeps nothing (the warm-up's file)."""

    def write_named(self, name: str, data: Any) -> None:
        return None


def _serve(conn: Connection, configure_logging: Callable[..., Any]) -> int:
    from modelyard.store.artifacts import ArtifactStore

    # pyarrow's imports, kernels and codecs: ~0.5 s of CPU, at normal priority while the
    # worker loads its model, never under the first requests
    RequestLogWriter(_Discard(), "warm-up", "0").warm_up()
    conn.send(("ready",))
    _lowest_priority()
    cfg = _wait_config(conn)
    if cfg is None:  # stopped (or gone) before it configured the log: nothing to write
        return 0
    static = {"process": "request-log", "model": cfg["model"], "version": cfg["version"]}
    configure_logging(cfg.get("log_level") or "INFO", static=static, force=True)
    lock = threading.Lock()

    def send(msg: tuple[Any, ...]) -> None:
        with lock:
            conn.send(msg)

    def counts(result: FlushResult) -> tuple[int, int, int]:
        # rows written as the writer counts them once a file is written: never ahead of the
        # files (a count derived from the rows received, read from the flush thread while
        # this loop appends, could be, and the parent would not count them if this died)
        return result.pending, result.dropped, writer.written_rows

    def report(result: FlushResult) -> None:
        send(("stats", result.error, counts(result)))

    try:
        store = ArtifactStore.open(cfg["url"], cfg.get("storage_options") or None)
    except Exception as exc:  # reported, and every record counted as dropped by the parent
        log.error("request log store cannot be opened", extra={"error": f"{exc}"[:300]})
        send(("failed", f"{type(exc).__name__}: {exc}"[:500]))
        return 2
    writer = RequestLogWriter(
        store,
        cfg["model"],
        cfg["version"],
        inputs=cfg.get("inputs"),
        tensor_column=cfg.get("tensor_column") or "input",
        flush_s=float(cfg.get("flush_s", 10.0)),
        max_records=int(cfg.get("max_records", 100_000)),
        on_flush=report,
    )
    writer.start()
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the worker is gone: write what is buffered
                break
            if msg[0] == "chunk":
                _, kind, ts_s, rows, data = msg
                writer.add_chunk(kind, ts_s, rows, data)
            elif msg[0] == "flush":
                result = writer.try_flush()
                send(("flushed", msg[1], result.written, result.error, counts(result)))
            elif msg[0] == "stop":
                break
    finally:
        lost = writer.stop()  # writes what is buffered; logs what it could not
        final = FlushResult([], None, lost, writer.dropped)
        try:
            send(("stopped", lost, counts(final)))
        except OSError:
            pass
    return 0


def _wait_config(conn: Connection) -> dict[str, Any] | None:
    """The config, or ``None`` when the parent stops (or goes) before sending it (the parent
    sends nothing else before it: it answers flushes and drops records itself)."""
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "config":
                cfg: dict[str, Any] = msg[1]
                return cfg
            if msg[0] == "stop":
                conn.send(("stopped", 0, (0, 0, 0)))
                return None
    except (EOFError, OSError):
        return None


def _lowest_priority() -> None:
    """Run only on CPU nobody else wants (``SCHED_IDLE``: any runnable task of the server
    preempts this one), every thread of it (pyarrow's pools and jemalloc's started during the
    warm-up). Measured on 2 cores, one model worker, 64 connections: 20.6-20.7k req/s and p99
    4.6-4.8 ms with SCHED_IDLE, 19.7k and 5.2-5.5 ms at nice 10."""
    lower_process(0, NICE)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from modelyard.logs import configure_logging

    parser = argparse.ArgumentParser(prog="modelyard.requestlog._process")
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(argv)
    # like the model workers: the parent decides when the log stops (end of stream)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(socket.socket(fileno=args.fd).detach())
    return _serve(conn, configure_logging)


if __name__ == "__main__":
    sys.exit(main())
