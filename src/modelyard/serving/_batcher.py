"""Dynamic batching in the front process, and the pool of model worker processes it feeds.

Policy: a worker with nothing to do gets what is queued at once, so a lone request never waits
for a window. While every worker is busy the queue grows; each worker may hold one more batch
(``depth`` 2) so that it starts the next batch without waiting for the front, and that second
batch is sent when it is full (``max_batch_size`` instances) or its oldest request has waited
``max_wait_ms``. A batch never exceeds ``max_batch_size`` instances and every request gets
exactly its own rows of the answer.

Two details keep batches from degenerating to size 1 under load: dispatch runs at the end of
the event-loop iteration that queued a request (the requests read together travel together),
and a worker that returns a result is handed its next batch before the front writes the answers.

A worker that dies fails its batches at once (503), readiness turns false, and it is restarted.

The workers also write the request log (see ``_worker``): the batcher sends each worker the
log's configuration, ships it the records only the front has, asks for flushes and sums the
records they report dropped.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from modelyard._priority import lower_process
from modelyard.errors import ConfigError, InvalidInputError, Overloaded, ServiceUnavailable
from modelyard.logs import get_logger
from modelyard.serving import _ipc
from modelyard.serving._keys import BatchKey
from modelyard.serving._model import ModelSpec

__all__ = ["Batcher", "Item", "WorkerHandle"]

log = get_logger("modelyard.serving.batcher")

PIPELINE_DEPTH = 2


class Item:
    """One request's instances waiting for, or inside, a batch.

    ``data`` is the raw tensor bytes of its rows (tensor kind) or the list of its decoded
    instances (JSON kind). ``done`` is called exactly once with ``(item, result)`` where result
    is ``(kind, payload_or_rows, meta)`` or an exception.
    """

    __slots__ = (
        "ctx",
        "data",
        "deadline",
        "done",
        "enqueued",
        "finished",
        "index",
        "key",
        "offset",
        "request_id",
        "rows",
        "shared",
    )

    def __init__(  # noqa: PLR0917  (one per request: positional arguments are cheaper)
        self,
        key: BatchKey,
        rows: int,
        data: Any,
        done: Callable[[Item, Any], None],
        deadline: float,
        request_id: str,
    ) -> None:
        self.key = key
        self.rows = rows
        self.data = data
        self.done = done
        self.deadline = deadline
        self.enqueued = 0.0
        self.finished = False
        self.request_id = request_id
        self.offset = 0
        self.index = 0
        self.ctx: Any = None
        self.shared = False  # may be lent to, or copied to, the version this one shares with

    def finish(self, result: Any) -> None:
        if not self.finished:
            self.finished = True
            self.done(self, result)


class _WorkerProtocol(asyncio.Protocol):
    def __init__(self, handle: WorkerHandle) -> None:
        self.handle = handle
        self.reader = _ipc.FrameReader()

    def data_received(self, data: bytes) -> None:
        for meta, payload in self.reader.feed(data):
            self.handle.on_frame(meta, payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self.handle.on_lost()


class WorkerHandle:
    """The front's view of one worker process."""

    def __init__(self, worker_id: int, batcher: Batcher) -> None:
        self.worker_id = worker_id
        self.batcher = batcher
        self.proc: subprocess.Popen[bytes] | None = None
        self.transport: asyncio.Transport | None = None
        self.batches: dict[int, list[Item]] = {}
        self.ready = False
        self.hello: asyncio.Future[dict[str, Any]] | None = None
        self.stopping = False
        self.log_dropped = 0  # request-log records this process reported dropped
        self.flushes: dict[int, asyncio.Future[dict[str, Any]]] = {}

    @property
    def inflight(self) -> int:
        return len(self.batches)

    async def start(self) -> dict[str, Any]:
        """Spawn the process and wait until it has loaded the model; return its description."""
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        b = self.batcher
        env = dict(os.environ)
        threads = str(b.threads_per_worker)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, threads)
        if b.spec.python_path:
            env["PYTHONPATH"] = os.pathsep.join(
                [*b.spec.python_path, *filter(None, [env.get("PYTHONPATH")])]
            )
        cmd = [
            sys.executable,
            "-m",
            "modelyard.serving._worker",
            "--fd",
            str(child.fileno()),
            "--worker-id",
            str(self.worker_id),
            "--spec",
            orjson.dumps(b.spec.to_json()).decode(),
            "--log-level",
            b.log_level,
        ]
        if b.nice:
            cmd += ["--nice", str(b.nice)]
        if b.log_config is not None or b.request_log:
            cmd.append("--request-log")
        self.proc = subprocess.Popen(cmd, pass_fds=[child.fileno()], env=env)
        b.spawned.add(self.proc.pid)  # ours to wait for: an orphan reaper must leave it alone
        child.close()
        self.hello = loop.create_future()
        self.stopping = False
        transport, _ = await loop.create_unix_connection(lambda: _WorkerProtocol(self), sock=parent)
        self.transport = transport
        try:
            desc = await asyncio.wait_for(asyncio.shield(self.hello), b.load_timeout_s)
        except TimeoutError as exc:
            self.kill()
            raise ConfigError(
                f"model worker {self.worker_id} did not load the model within {b.load_timeout_s} s",
                hint="check the worker's log lines above; raise load_timeout_s for large models",
            ) from exc
        if not desc.get("ok"):
            raise ConfigError(
                f"model worker {self.worker_id} could not load the model: {desc.get('error')}",
                hint="fix the model's load() (see the worker's log lines above)",
            )
        if b.codec_config is not None:  # a restarted worker: before any batch reaches it
            self.write(_ipc.KIND_CODEC, b.codec_config)
        self.ready = True
        if b.log_config is not None:  # a restarted worker: the log was configured before
            self.write(_ipc.KIND_LOG_CONFIG, b.log_config)
        return desc

    def write(self, kind: str, meta: dict[str, Any], payload: bytes = b"") -> bool:
        """Send a control frame; ``False`` when the worker is gone."""
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(_ipc.encode_frame({**meta, "k": kind}, payload))
        return True

    def send(self, batch_id: int, meta: dict[str, Any], payload: bytes, items: list[Item]) -> None:
        assert self.transport is not None
        self.batches[batch_id] = items
        meta["b"] = batch_id
        # header and tensor bytes go out in one writev: no copy of the batch into a frame
        self.transport.writelines((_ipc.frame_head(meta, len(payload)), payload))

    def on_frame(self, meta: dict[str, Any], payload: bytes) -> None:
        kind = meta.get("k")
        if kind == _ipc.KIND_HELLO:
            if self.hello is not None and not self.hello.done():
                self.hello.set_result(meta)
            return
        if kind == _ipc.KIND_LOG_STATS:
            self.log_dropped = int(meta["dropped"])
            return
        if kind == _ipc.KIND_FLUSHED:
            self.log_dropped = int(meta["dropped"])
            fut = self.flushes.pop(int(meta["id"]), None)
            if fut is not None and not fut.done():
                fut.set_result(meta)
            return
        items = self.batches.pop(meta["b"], None)
        if items is not None:
            self.batcher.on_result(self, items, meta, payload)

    def on_lost(self) -> None:
        self.transport = None
        was_ready = self.ready
        self.ready = False
        if self.hello is not None and not self.hello.done():
            self.hello.set_result({"ok": False, "error": "the worker exited while loading"})
        batches, self.batches = self.batches, {}
        self.batcher.log_dropped_gone += self.log_dropped
        self.log_dropped = 0
        for fut in self.flushes.values():
            if not fut.done():
                fut.set_result({"error": "the worker exited during the flush", "written": []})
        self.flushes.clear()
        self.batcher.on_worker_lost(self, batches, was_ready)

    def close(self) -> None:
        """Ask the worker to stop: it exits 0 when it reads end of stream."""
        self.stopping = True
        if self.transport is not None:
            self.transport.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    async def wait(self, timeout_s: float) -> int | None:
        """Reap the process; SIGKILL it if it has not exited after ``timeout_s``."""
        if self.proc is None:
            return None
        proc = self.proc
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(None, proc.wait), timeout_s)
        except TimeoutError:
            proc.kill()
            return await loop.run_in_executor(None, proc.wait)


class Batcher:
    """Queue, batch policy and worker pool. Runs on the front's event loop only."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        workers: int,
        max_batch_size: int,
        max_wait_ms: float,
        queue_size: int,
        log_level: str = "INFO",
        load_timeout_s: float = 300.0,
        threads_per_worker: int = 1,
        on_batch: Callable[[int, float, float | None], None] | None = None,
        on_restart: Callable[[], None] | None = None,
        request_log: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.n_workers = workers
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self.log_level = log_level
        self.load_timeout_s = load_timeout_s
        self.threads_per_worker = threads_per_worker
        self.on_batch = on_batch
        self.on_restart = on_restart
        self.request_log = request_log
        self.clock = clock
        self.nice = 0  # the workers' nice value (raised, at SCHED_IDLE, for a shadow)
        # how long an idle worker waits for a fuller batch (0: it takes what is queued at
        # once); set on a version that gets a small share of the traffic: its requests
        # would otherwise run in batches of one or two, which cost the model several times
        # more CPU a request (measured on a 90/10 canary: 0.85 -> 0.88 of one version's
        # throughput, its p99 8.5 -> 7.3 ms, for 2 ms more on the canary's 10 %)
        self.hold_s = 0.0
        self.log_config: dict[str, Any] | None = None
        self.codec_config: dict[str, Any] | None = None
        self.log_dropped_gone = 0  # reported by worker processes that have exited since
        self._log_next = 0
        self.workers: list[WorkerHandle] = []
        self.spawned: set[int] = set()  # every worker pid ever started (Popen waits for them)
        self.queues: dict[BatchKey, deque[Item]] = {}
        self.queued = 0
        self.desc: dict[str, Any] = {}
        self.closed = False
        self._next_batch = 0
        self._timer: asyncio.TimerHandle | None = None
        self._restarts: dict[int, list[float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pump_soon = False
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.prepare: Callable[[BatchKey, list[Item]], tuple[list[Item], Any]] | None = None
        self.decode: Callable[[dict[str, Any], bytes], Any] | None = None
        # lending (see ``lend``): the batcher this one lends to, its share of the rows, the
        # callback told of each lent batch, the rows sent each way; the one lending to this one
        self._partner: Batcher | None = None
        self._share = 0.0
        self._on_lend: Callable[[list[Item]], None] | None = None
        self._mirror = False  # copies of batches, not lent ones (see ``mirror``)
        self._copy: Callable[[list[Item]], list[Item]] | None = None
        self._skip: Callable[[int], None] | None = None
        self._gate: Callable[[], bool] | None = None
        self._credit = 0.0  # rows the partner is owed copies of
        self._rows_kept = 0
        self._rows_lent = 0
        self._lender: Batcher | None = None

    # --- lifecycle
    async def start(self) -> dict[str, Any]:
        """Start every worker and wait for all to load; return the model's description."""
        self._loop = asyncio.get_running_loop()
        self.workers = [WorkerHandle(i, self) for i in range(self.n_workers)]
        try:
            descs = await asyncio.gather(*(w.start() for w in self.workers))
        except BaseException:
            for w in self.workers:
                w.close()
                w.kill()
            raise
        self.desc = descs[0]
        return self.desc

    @property
    def ready(self) -> bool:
        return bool(self.workers) and all(w.ready for w in self.workers) and not self.closed

    def alive(self) -> int:
        return sum(1 for w in self.workers if w.ready)

    def inflight_items(self) -> int:
        return sum(len(items) for w in self.workers for items in w.batches.values())

    def idle(self) -> bool:
        return self.queued == 0 and all(not w.batches for w in self.workers)

    async def stop(self, grace_s: float) -> None:
        """Close the workers' sockets, then reap them (SIGKILL past ``grace_s``; with the
        request log on, at least 10 s, for the workers' last flush)."""
        if self.request_log:
            grace_s = max(grace_s, 10.0)
        self.closed = True
        for q in self.queues.values():
            while q:
                q.popleft().finish(
                    ServiceUnavailable("the server is shutting down; retry elsewhere")
                )
        self.queued = 0
        for w in self.workers:
            w.close()
        codes = await asyncio.gather(*(w.wait(max(grace_s, 0.5)) for w in self.workers))
        log.info("workers stopped", extra={"exit_codes": list(codes)})

    def signal_workers(self, signum: int) -> None:
        for w in self.workers:
            w.signal(signum)

    def set_codec(self, config: dict[str, Any]) -> None:
        """Give every worker (and every worker started later) the codec that decodes raw
        batches, before any such batch."""
        self.codec_config = config
        for w in self.workers:
            if w.ready:
                w.write(_ipc.KIND_CODEC, config)

    def set_nice(self, nice: int) -> None:
        """Lower the workers' CPU priority to idle (``SCHED_IDLE``) and ``nice`` (every thread
        of every worker and of its log process; workers started later too). Only ever lowered:
        an unprivileged process cannot give the priority back (a pool that must serve users
        again is started afresh)."""
        self.nice = max(self.nice, nice)
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                lower_process(w.proc.pid, self.nice, children=True)

    def lend(
        self,
        partner: Batcher | None,
        share: float = 0.0,
        on_lend: Callable[[list[Item]], None] | None = None,
    ) -> None:
        """Send ``share`` (0-1) of this queue's rows, in whole batches, to ``partner``'s
        workers (``None``: stop). Only ``shared`` requests are lent; ``on_lend`` is told of
        each lent batch before it is sent (its answers come back through ``partner``).

        A batch goes to an idle worker of the partner instead of one of this batcher's own
        whenever the partner is owed rows. This is how a canary takes its share of the traffic
        without batches of its own: its requests ride in batches as large as stable's, so the
        model runs about as many batches as with one version. Split request by request, the
        canary's 10 % ran in batches of ~5 rows, which cost this benchmark's MLP 3x more CPU
        a row than stable's ~20 (``benchmarks/delivery.py``: 0.875 of one version's throughput,
        +0.49 ms p50; lent batches: 0.95-0.98, +0.0-0.15 ms).
        """
        self._set_partner(partner, share)
        self._on_lend = on_lend
        if partner is not None:
            partner._lender = self
            if self._loop is not None:
                self.pump()

    def mirror(
        self,
        partner: Batcher | None,
        share: float = 0.0,
        copy: Callable[[list[Item]], list[Item]] | None = None,
        skip: Callable[[int], None] | None = None,
        gate: Callable[[], bool] | None = None,
    ) -> None:
        """Send a copy of ``share`` (0-1) of the batches this batcher sends its own workers to
        an idle worker of ``partner`` (``None``: stop): the same bytes, one more write, no
        request queued twice. ``copy`` makes the items the copy's answers finish (they count
        the mirrored requests, and are never the client's); ``skip`` is told how many
        requests were not copied because no worker of the partner was idle (a shadow at low
        CPU priority that fell behind) or ``gate()`` said no (the machine has no CPU to
        spare). Only batches of ``shared`` requests are copied.

        Copied request by request, a shadow at 100 % cost the front's one event loop a queued
        item, a batch of its own and an answer per copy, and ran in batches of ~6 rows.
        """
        self._set_partner(partner, share)
        self._mirror = partner is not None
        self._copy = copy
        self._skip = skip
        self._gate = gate

    def _set_partner(self, partner: Batcher | None, share: float) -> None:
        if self._partner is not None:
            self._partner._lender = None
        self._partner = partner
        self._share = min(max(share, 0.0), 1.0) if partner is not None else 0.0
        self._on_lend = None
        self._mirror = False
        self._copy = None
        self._skip = None
        self._gate = None
        self._rows_kept = self._rows_lent = 0
        self._credit = 0.0

    def _idle_partner(self) -> WorkerHandle | None:
        assert self._partner is not None
        for w in self._partner.workers:
            if w.ready and not w.batches:
                return w
        return None

    def _mirror_batch(
        self, items: list[Item], rows: int, meta: dict[str, Any], payload: Any
    ) -> None:
        """Copy a batch just sent to one of this batcher's workers, when its turn by
        ``share`` has come and a worker of the partner is idle."""
        self._credit += self._share * rows
        if self._credit < rows:
            return
        self._credit -= rows
        partner = self._partner
        spare = self._gate is None or self._gate()
        idle = self._idle_partner() if spare else None
        if idle is None or not all(it.shared for it in items) or self._copy is None:
            if self._skip is not None:
                self._skip(len(items))
            return
        copies = self._copy(items)
        for c, it in zip(copies, items, strict=True):
            c.offset, c.index = it.offset, it.index
        assert partner is not None
        partner._next_batch += 1
        idle.send(partner._next_batch, meta, payload, copies)

    def _lend_to(self) -> WorkerHandle | None:
        """The partner's idle worker, when the partner is owed rows; else ``None``."""
        owed = self._share * (self._rows_kept + self._rows_lent) - self._rows_lent
        if owed < 0.0:
            return None
        cap = 2.0 * self.max_batch_size
        if owed > cap:  # a partner that could not take its share for a while: no burst after
            self._rows_lent += int(owed - cap)
        return self._idle_partner()

    # --- the request log (written by the workers)
    def start_log(self, config: dict[str, Any]) -> None:
        """Configure every worker's request log (and every worker started later)."""
        self.log_config = config
        for w in self.workers:
            if w.ready:
                w.write(_ipc.KIND_LOG_CONFIG, config)

    def send_log(self, payload: bytes) -> bool:
        """Hand records only the front has to one live worker; ``False`` when none is."""
        live = [w for w in self.workers if w.ready]
        if not live:
            return False
        self._log_next += 1
        return live[self._log_next % len(live)].write(_ipc.KIND_LOG, {}, payload)

    def log_dropped(self) -> int:
        """Request-log records the workers dropped (counted) since the server started."""
        return self.log_dropped_gone + sum(w.log_dropped for w in self.workers)

    async def flush_log(self, timeout_s: float) -> list[dict[str, Any]]:
        """Ask every live worker to write its buffered records; return their answers."""
        loop = asyncio.get_running_loop()
        futures = []
        for w in self.workers:
            if not w.ready:
                continue
            self._log_next += 1
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            w.flushes[self._log_next] = fut
            if w.write(_ipc.KIND_FLUSH, {"id": self._log_next}):
                futures.append(fut)
        if not futures:
            return [{"error": "no model worker is alive", "written": []}]
        done, pending = await asyncio.wait(futures, timeout=timeout_s)
        results = [f.result() for f in done]
        results += [{"error": f"no answer within {timeout_s} s", "written": []} for _ in pending]
        return results

    # --- queueing
    def submit(self, item: Item) -> None:
        """Queue a request's instances; raises ServiceUnavailable when full or closed."""
        if self.closed:
            raise ServiceUnavailable("the server is shutting down; retry elsewhere")
        if self.queued >= self.queue_size:
            raise Overloaded(
                f"the request queue is full ({self.queue_size} requests); retry shortly",
                hint="raise serving.queue_size or add workers/replicas",
            )
        item.enqueued = self.clock()
        q = self.queues.get(item.key)
        if q is None:
            q = self.queues[item.key] = deque()
        q.append(item)
        self.queued += 1
        if not self._pump_soon:
            # dispatch at the end of this loop iteration: the requests read in the same
            # iteration share a batch, and a lone request still leaves within microseconds
            self._pump_soon = True
            self._loop.call_soon(self._deferred_pump)

    def _deferred_pump(self) -> None:
        self._pump_soon = False
        self.pump()

    def pump(self) -> None:
        """Send batches to workers per the policy above."""
        if not self.queued:
            return
        workers = self.workers
        # idle workers first: a lone request goes out at once (held back up to ``hold_s`` for
        # a fuller batch when set)
        ripe = True
        if self.hold_s:
            head = self._oldest()
            ripe = (
                head is None
                or self.clock() - head.enqueued >= self.hold_s
                or self._rows_queued_at_least(self.max_batch_size)
            )
        if ripe:
            for w in workers:
                # a batch lent instead leaves this worker idle: what queues next reaches it when
                # full or due (``max_wait_ms``), as for a busy worker. Taking the rest at once
                # measured 3-5 % less throughput on a 90/10 canary (smaller batches)
                if w.ready and not w.batches and self.queued:
                    self._dispatch(w)
        if not self.queued:
            return
        now = self.clock()
        oldest = self._oldest()
        full = self._rows_queued_at_least(self.max_batch_size)
        due = oldest is not None and now - oldest.enqueued >= self.max_wait_s
        if full or due:
            # the worker whose batch started first is likely to be free first
            busy = [w for w in workers if w.ready and len(w.batches) < PIPELINE_DEPTH]
            busy.sort(key=lambda w: next(iter(w.batches), 0))
            for w in busy:
                if self.queued:
                    self._dispatch(w)
        if self.queued and self._timer is None and oldest is not None:
            wait_s = self.max_wait_s if ripe else min(self.hold_s, self.max_wait_s)
            delay = max(0.0, oldest.enqueued + wait_s - now)
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.pump()

    def _oldest(self) -> Item | None:
        best: Item | None = None
        for q in self.queues.values():
            if q and (best is None or q[0].enqueued < best.enqueued):
                best = q[0]
        return best

    def _rows_queued_at_least(self, n: int) -> bool:
        total = 0
        for q in self.queues.values():
            for item in q:
                total += item.rows
                if total >= n:
                    return True
        return False

    def _dispatch(self, worker: WorkerHandle) -> None:
        """Send the oldest queue's head (up to ``max_batch_size`` rows) to ``worker``, or to
        the partner's idle worker instead when lending and the partner is owed rows (then
        only the shared requests at the head)."""
        head = self._oldest()
        if head is None:
            return
        partner = None
        if self._partner is not None and head.shared and not self._mirror:
            idle = self._lend_to()
            if idle is not None:
                worker, partner = idle, self._partner
        q = self.queues[head.key]
        items: list[Item] = []
        rows = 0
        limit = self.max_batch_size
        while q and rows + q[0].rows <= limit and (partner is None or q[0].shared):
            item = q.popleft()
            items.append(item)
            rows += item.rows
        if not items:  # a request larger than the limit is refused before it is queued
            items.append(q.popleft())
        self.queued -= len(items)
        if partner is not None:
            self._rows_lent += rows
        elif self._partner is not None and not self._mirror:  # only what could have been lent
            self._rows_kept += sum(it.rows for it in items if it.shared)
        assert self.prepare is not None
        try:
            items, prepared = self.prepare(head.key, items)
        except Exception:  # a batch that cannot be built must not leave its requests waiting
            log.exception("batch could not be prepared", extra={"requests": len(items)})
            for item in items:
                item.finish(InvalidInputError("this request could not be batched"))
            return
        if not items:
            return
        meta, payload = prepared
        offset = 0
        for index, item in enumerate(items):
            item.offset = offset
            item.index = index
            offset += item.rows
        meta["r"] = [i.rows for i in items]
        meta["ids"] = [i.request_id for i in items]
        if self.log_config is not None:  # the worker logs each request's latency
            meta["q"] = [i.enqueued for i in items]
        owner = self if partner is None else partner  # batch ids are unique per worker pool
        owner._next_batch += 1
        if partner is not None and self._on_lend is not None:
            self._on_lend(items)
        worker.send(owner._next_batch, meta, payload, items)  # meta is encoded: reusable
        if self._mirror:
            self._mirror_batch(items, rows, meta, payload)

    # --- results
    def on_result(
        self, worker: WorkerHandle, items: list[Item], meta: dict[str, Any], payload: bytes
    ) -> None:
        if self.on_batch is not None and "t" in meta:
            self.on_batch(meta.get("n") or sum(i.rows for i in items), meta["t"], meta.get("c"))
        # the worker is idle now: give it the next batch before answering this one
        self.pump()
        if self._lender is not None:  # it may be owed one of the lender's batches
            self._lender.pump()
        result = (meta, self.decode(meta, payload) if self.decode is not None else payload)
        for item in items:
            item.finish(result)

    def on_worker_lost(
        self, worker: WorkerHandle, batches: dict[int, list[Item]], was_ready: bool
    ) -> None:
        err = ServiceUnavailable(
            f"model worker {worker.worker_id} died while processing this request; retry",
            hint="the worker is being restarted; see the server log",
        )
        for items in batches.values():
            for item in items:
                item.finish(err)
        if self.closed or worker.stopping or not was_ready:
            return
        code = worker.proc.poll() if worker.proc is not None else None
        log.error(
            "model worker died; restarting it",
            extra={"worker_id": worker.worker_id, "exit_code": code},
        )
        task = asyncio.get_running_loop().create_task(self._restart(worker))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.pump()

    async def _restart(self, worker: WorkerHandle) -> None:
        if worker.proc is not None:
            await worker.wait(5.0)
        history = self._restarts.setdefault(worker.worker_id, [])
        now = self.clock()
        history[:] = [t for t in history if now - t < 60.0]
        history.append(now)
        # back off when a worker keeps dying: 0.1 s, 0.2 s, ... up to 10 s
        await asyncio.sleep(min(10.0, 0.1 * 2 ** (len(history) - 1)))
        if self.closed:
            return
        try:
            await worker.start()
        except Exception:
            log.exception("model worker restart failed", extra={"worker_id": worker.worker_id})
            worker.kill()
            if not self.closed:
                task = asyncio.get_running_loop().create_task(self._restart(worker))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return
        if self.on_restart is not None:
            self.on_restart()
        log.info("model worker restarted", extra={"worker_id": worker.worker_id})
        self.pump()

    def expire(self, now: float, timeout_err: Callable[[], Exception]) -> int:
        """Answer 504 to requests past their deadline, queued or in a worker; return how many."""
        n = 0
        for q in self.queues.values():
            while q and q[0].deadline <= now:
                q.popleft().finish(timeout_err())
                self.queued -= 1
                n += 1
        for w in self.workers:
            for items in w.batches.values():
                for item in items:
                    if not item.finished and item.deadline <= now:
                        item.finish(timeout_err())
                        n += 1
        return n
