"""One version of the model behind a front: its worker pool, batcher, codec, log and metrics."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from modelyard.config import ServingSettings
from modelyard.errors import ServiceUnavailable
from modelyard.logs import get_logger
from modelyard.serving._batcher import Batcher, Item
from modelyard.serving._codec import Codec
from modelyard.serving._metrics import ServingMetrics
from modelyard.serving._model import (
    ModelSpec,
    apply_contract,
    check_model_name,
    check_version_label,
    import_class,
)
from modelyard.serving._reqlog import LogRelay, LogStore

__all__ = ["VersionPool"]

if TYPE_CHECKING:
    from modelyard.data.contract import Contract

log = get_logger("modelyard.serving")


class VersionPool:
    """The workers, batcher, codec, request log and counters of one served version.

    Args:
        spec: where the workers get the model.
        settings: the serving settings (batch limits, queue size, log sampling...).
        name: the model name in URLs (default: the model's own name).
        version: the version label (default: the model's own version).
        workers: worker processes (default: ``settings.workers``, else one per core).
        log_store: the ``ArtifactStore`` the request/feedback logs go to (this version's
            workers write them); ``None`` turns them off.
        log_level: level for the worker loggers.
        load_timeout_s: how long a worker may take to load the model.
        contract: the version's data contract: requests are checked against its types,
            nulls, ranges and categories (on top of the model's own signature).
    """

    def __init__(
        self,
        spec: ModelSpec,
        settings: ServingSettings,
        *,
        name: str | None = None,
        version: str | None = None,
        workers: int | None = None,
        log_store: LogStore | None = None,
        log_level: str = "INFO",
        load_timeout_s: float = 300.0,
        contract: Contract | None = None,
    ) -> None:
        self.spec = spec
        self.contract = contract
        self.settings = settings
        self.name = name or ""
        self.version = version or ""
        self.workers = workers
        self.log_store = log_store
        self.log_level = log_level
        self.load_timeout_s = load_timeout_s
        self.metrics = ServingMetrics()
        self.batcher: Batcher | None = None
        self.codec: Codec | None = None
        self.reqlog: LogRelay | None = None
        self.openapi: dict[str, Any] = {}

    async def start(self, stop: asyncio.Event | None = None) -> None:
        """Start the workers and wait until every one has loaded the model.

        Raises:
            ServiceUnavailable: ``stop`` was set before the workers had loaded.
            ConfigError: a worker could not load the model.
        """
        s = self.settings
        workers = self.workers or s.workers or os.cpu_count() or 1
        threads = max(1, (os.cpu_count() or 1) // workers)
        spec = self.spec
        if self.version and spec.version is None:
            spec = spec.with_version(self.version)
        b = self.batcher = Batcher(
            spec,
            workers=workers,
            max_batch_size=s.max_batch_size,
            max_wait_ms=s.max_wait_ms,
            queue_size=s.queue_size,
            log_level=self.log_level,
            load_timeout_s=self.load_timeout_s,
            threads_per_worker=threads,
            on_batch=self.metrics.observe_batch,
            on_restart=self._on_restart,
            request_log=self.log_store is not None,
        )
        m = self.metrics
        m.queue_depth = lambda: b.queued
        m.workers_alive = b.alive
        m.ready = self.ready
        m.inflight = self.accepted
        start = asyncio.ensure_future(b.start())
        if stop is None:
            desc = await start
        else:
            halt = asyncio.ensure_future(stop.wait())
            await asyncio.wait({start, halt}, return_when=asyncio.FIRST_COMPLETED)
            if not start.done():
                start.cancel()
                await b.stop(0.0)
                raise ServiceUnavailable("stopped before the model workers had loaded")
            halt.cancel()
            desc = start.result()
        self._on_loaded(desc)

    def _on_loaded(self, desc: dict[str, Any]) -> None:
        b = self.batcher
        assert b is not None
        hooks = None
        if self.spec.kind == "class" and (desc.get("preprocess") or desc.get("postprocess")):
            hooks = import_class(self.spec)()
        if self.name:
            desc["name"] = self.name
        if self.version:
            desc["version"] = self.version
        self.name = check_model_name(str(desc["name"]))
        self.version = check_version_label(str(desc["version"]))
        desc["signature"] = apply_contract(desc.get("signature"), self.contract)
        self.codec = Codec(desc, max_batch_size=self.settings.max_batch_size, hooks=hooks)
        b.prepare = self.codec.prepare
        b.decode = self.codec.decode_result
        if self.codec.raw_key is not None:  # the workers decode v1 bodies with this codec
            keep = ("name", "version", "signature", "classes")
            config: dict[str, Any] = {"desc": {k: desc[k] for k in keep if k in desc}}
            config["max"] = self.codec.max_batch_size
            try:
                orjson.dumps(config)
            except TypeError:  # a contract value JSON cannot carry: the front decodes then
                self.codec.raw_key = None
            else:
                b.set_codec(config)
        self.metrics.model = self.name
        self.metrics.version = self.version
        if self.log_store is not None:
            self.reqlog = LogRelay.for_store(
                self.log_store,
                flush_s=self.settings.request_log_flush_s,
                sample_rate=self.settings.request_log_sample_rate,
                max_records=self.settings.request_log_max_records,
            )
            b.start_log(self.reqlog.config(self.name, self.version))

    def ready(self) -> bool:
        """Loaded, with every worker alive."""
        return self.codec is not None and bool(self.batcher and self.batcher.ready)

    @property
    def nice(self) -> int:
        """The workers' CPU priority (0 unless lowered for a shadow)."""
        return self.batcher.nice if self.batcher is not None else 0

    def set_priority(self, nice: int) -> None:
        """Lower the workers' CPU priority (see :meth:`Batcher.set_nice`)."""
        if self.batcher is not None:
            self.batcher.set_nice(nice)

    def set_batch_hold(self, seconds: float) -> None:
        """Let an idle worker wait up to ``seconds`` for a fuller batch (0: not at all)."""
        if self.batcher is not None:
            self.batcher.hold_s = seconds

    def lend(
        self,
        other: VersionPool | None,
        share: float = 0.0,
        on_lend: Callable[[list[Item]], None] | None = None,
    ) -> None:
        """Have ``other``'s workers answer ``share`` (0-1) of this version's shared requests,
        in whole batches (see :meth:`Batcher.lend`); ``None`` stops lending."""
        if self.batcher is not None:
            partner = other.batcher if other is not None else None
            self.batcher.lend(partner, share, on_lend)

    def mirror(
        self,
        other: VersionPool | None,
        share: float = 0.0,
        copy: Callable[[list[Item]], list[Item]] | None = None,
        gate: Callable[[], bool] | None = None,
    ) -> None:
        """Send ``other``'s workers a copy of ``share`` (0-1) of this version's batches of
        shared requests while ``gate()`` (see :meth:`Batcher.mirror`); ``None`` stops. The
        requests not copied (``other`` had no idle worker, or the gate said no) count as its
        skipped copies."""
        if self.batcher is None:
            return
        if other is None or other.batcher is None:
            self.batcher.mirror(None)
            return
        metrics = other.metrics

        def skip(n: int) -> None:
            metrics.mirror_skipped += n

        self.batcher.mirror(other.batcher, share, copy, skip, gate)

    async def drain(self, grace_s: float) -> None:
        """Wait (at most ``grace_s``) until the requests this version holds are answered (call
        it once nothing new is routed here: stopping fails what is queued or in a worker)."""
        deadline = time.monotonic() + grace_s
        while self.accepted() > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def accepted(self) -> int:
        """Requests queued or inside a worker (the ones a drain waits for)."""
        b = self.batcher
        return (b.queued + b.inflight_items()) if b is not None else 0

    def submit(self, item: Item) -> None:
        """Queue a request for a batch (raises ServiceUnavailable/Overloaded when it cannot)."""
        b = self.batcher
        assert b is not None
        if not b.alive():
            raise ServiceUnavailable(
                "no model worker is alive; retry shortly",
                hint="the workers are being restarted; see the server log",
                version=self.version,
            )
        b.submit(item)

    def sweep(self) -> None:
        """Periodic upkeep (about every 100 ms): hand the front's few log records (feedback,
        refused requests) to a worker, and refresh the log's drop count."""
        relay, b = self.reqlog, self.batcher
        if relay is None or b is None:
            return
        payload = relay.take()
        if payload is not None and not b.send_log(payload):
            relay.put_back(payload)  # no worker alive: kept (bounded) for the next tick
        self.metrics.dropped_log_records = relay.dropped + b.log_dropped()

    async def flush_log(self, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Ask this version's workers to write their log now; their answers (``written``,
        ``error``)."""
        self.sweep()
        assert self.batcher is not None
        results = await self.batcher.flush_log(timeout_s)
        self.sweep()  # the answers carried the workers' drop counts
        return results

    async def stop(self, grace_s: float) -> None:
        """Stop the workers (after ``grace_s`` for the batches in flight); they write the
        request log before they exit."""
        self.sweep()
        if self.batcher is not None:
            await self.batcher.stop(grace_s)

    def _on_restart(self) -> None:
        self.metrics.worker_restarts += 1
