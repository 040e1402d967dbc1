"""Rollouts inside ``modelyard serve``: the front adapter, the management API and the hook.

:func:`delivery_hook` returns the ``on_ready`` hook a :class:`modelyard.serving.Server` runs once
its stable version is up: it installs the :class:`~modelyard.delivery.router.RolloutRouter`, the
management routes and a :class:`~modelyard.delivery.rollout.RolloutController` ticking in the
server's event loop (and resuming a rollout the metadata store says is in progress).

Management routes (``Authorization: Bearer <serving.admin_token>`` for every POST when a token is
set)::

    GET  /v1/admin/rollout                    the model's active (else latest) rollout + events
    POST /v1/admin/rollout                    {"candidate": 2, "strategy": "canary", "steps":
                                              [5, 25, 50, 100], "interval_s": 30, "manual": false}
    POST /v1/admin/rollout/promote|abort|pause|resume

A POST body may name the ``model``: one that is not the server's is refused (404), so a wrong
``--url`` never steers another model's rollout.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from modelyard.delivery.analysis import ArmStats
from modelyard.delivery.feedback import feedback_stats
from modelyard.delivery.replay import replay_bodies, synthetic_bodies
from modelyard.delivery.rollout import COMMANDS, LoadTestRun, RolloutController, RolloutRequest
from modelyard.delivery.router import PIN_HEADER, RolloutRouter, RoutePlan
from modelyard.delivery.store import RolloutStore
from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError
from modelyard.logs import get_logger

if TYPE_CHECKING:
    from modelyard.config import Settings
    from modelyard.serving._front import Front
    from modelyard.serving._model import ModelSpec
    from modelyard.serving.http import Request
    from modelyard.workspace import Workspace

__all__ = ["ServingFront", "delivery_hook", "rollout_hooks"]

log = get_logger("modelyard.delivery")

ADMIN_PATH = "/v1/admin/rollout"
_LOAD_CONNECTIONS = 8
#: the nice value of a shadow's workers (besides SCHED_IDLE, where Linux has it)
SHADOW_NICE = 10
_REPLAY = 256  # distinct requests a load test sends round robin
_Sample = tuple[str, bytes, bytes | None]  # path, body, binary header length (v2 binary)


class ServingFront:
    """:class:`~modelyard.delivery.rollout.DeliveryFront` over a serving front.

    Args:
        front: the serving front (``Server.front``).
        router: the router installed on it.
        spec_for: the :class:`ModelSpec` of a version number (fetches its package).
        port: the port the server listens on (read when a load test starts).
        min_idle_cpu: a shadow gets copies of stable's batches only while this share of the
            CPU is idle (:class:`~modelyard.serving.Front.share_batches`).
    """

    def __init__(
        self,
        front: Front,
        router: RolloutRouter,
        spec_for: Callable[[int], ModelSpec],
        port: Callable[[], int],
        *,
        min_idle_cpu: float = 0.4,
    ) -> None:
        self.front = front
        self.min_idle_cpu = min_idle_cpu
        self.router = router
        self.spec_for = spec_for
        self.port = port
        self._rate: tuple[float, int] | None = None
        self._rps = 0.0
        self._flushed_at = -math.inf
        front.on_versions_changed.append(self._share_changed)

    async def start_version(self, version: int, stop: asyncio.Event | None = None) -> None:
        """Start ``version``'s pool at normal CPU priority: a no-op when it runs so, a fresh
        pool in place of one lowered for a shadow (an unprivileged process cannot raise its
        workers' priority again). A new pool still loading when ``stop`` is set stops."""
        label = str(version)
        pool = self.front.pools.get(label)
        if pool is not None and pool.nice == 0:
            return
        spec = await asyncio.to_thread(self.spec_for, version)
        if pool is not None:
            await self.front.replace_version(spec, label)
            return
        await self.front.add_version(spec, version=label, stop=stop)

    async def stop_version(self, version: int) -> None:
        label = str(version)
        pool = self.front.pools.get(label)
        if pool is None or label == self.front.stable:
            return
        # the plan routes nothing new to it by now: the requests it holds finish first
        await pool.drain(self.front.settings.grace_s)
        await self.front.remove_version(label)

    def set_plan(self, plan: RoutePlan) -> None:
        """Route by ``plan``; a shadow's workers (``mirror``) run at low CPU priority, so the
        mirrored copies take only the CPU the answering version leaves."""
        if plan.mode == "mirror" and plan.candidate is not None:
            pool = self.front.pools.get(plan.candidate)
            if pool is not None and plan.candidate != self.front.stable:
                pool.set_priority(SHADOW_NICE)
        # a canary (the minority) rides in stable's batches (at 50 % or more it has batches
        # of its own as large as stable's); a shadow gets copies of stable's batches
        mirror = plan.mode == "mirror"
        shared = plan.candidate if mirror or (plan.mode == "split" and plan.weight < 50.0) else None
        batched = self.front.share_batches(
            shared, plan.weight / 100.0, mirror=mirror, min_idle_cpu=self.min_idle_cpu
        )
        plan = replace(plan, batched=batched)
        self._batch_holds(plan)
        self.router.plan = plan

    def _share_changed(self) -> None:
        """The versions served changed: a split per batch the front ended (a version gone)
        goes back to a split per request."""
        plan = self.router.plan
        if plan.batched and self.front.shared is None:
            plan = replace(plan, batched=False)
            self._batch_holds(plan)
            self.router.plan = plan

    def _batch_holds(self, plan: RoutePlan) -> None:
        """The version with the smaller share of user traffic (a canary at 10 %, stable at
        90 % of a rollout, a shadow's copies) waits up to ``max_wait_ms`` for a fuller batch
        instead of sending its few requests one by one; the others answer at once."""
        hold_s = self.front.settings.max_wait_ms / 1000.0
        minority: str | None = None
        if plan.candidate is not None and plan.mode in ("split", "sticky") and not plan.batched:
            if plan.weight < 50.0:
                minority = plan.candidate
            elif plan.weight > 50.0:
                minority = self.front.stable
        elif plan.candidate is not None and plan.mode == "mirror" and not plan.batched:
            minority = plan.candidate
        for label, pool in self.front.pools.items():
            pool.set_batch_hold(hold_s if label == minority else 0.0)

    def make_stable(self, version: int) -> None:
        self.front.set_stable(str(version))

    def stats(self, version: int) -> ArmStats:
        pool = self.front.pools.get(str(version))
        if pool is None:
            return ArmStats()
        m = pool.metrics
        return ArmStats(
            requests=m.answered,
            errors=m.errors,
            invalid=m.invalid,
            latency_counts=tuple(m.latency_s.counts),
            restarts=m.worker_restarts,
            labels=m.feedback_records,
            compute={k: (int(n), cpu) for k, (n, cpu) in m.compute.items() if n},
        )

    def traffic_rps(self) -> float:
        """Inference requests per second over all versions since the last call (>= 1 s)."""
        now = time.monotonic()
        total = sum(p.metrics.answered for p in self.front.pools.values())
        if self._rate is not None and now - self._rate[0] >= 1.0:
            self._rps = max(total - self._rate[1], 0) / (now - self._rate[0])
            self._rate = (now, total)
        elif self._rate is None:
            self._rate = (now, total)
        return self._rps

    async def feedback(self, version: int, since_s: float) -> ArmStats:
        """``version``'s feedback quality since ``since_s``, from the request and feedback logs
        (both versions' buffered records are written first, so the window is current)."""
        store: Any = self.front.log_store
        name = self.front.name
        if store is None or name is None or str(version) not in self.front.pools:
            return ArmStats()
        await self._flush_logs()
        since = dt.datetime.fromtimestamp(since_s, dt.UTC)
        return await asyncio.to_thread(feedback_stats, store, name, str(version), since)

    async def _flush_logs(self) -> None:
        """Write every pool's buffered log records, at most once a second."""
        now = time.monotonic()
        if now - self._flushed_at < 1.0:
            return
        self._flushed_at = now
        pools = [p for p in self.front.pools.values() if p.reqlog is not None]
        await asyncio.gather(*(p.flush_log(30.0) for p in pools), return_exceptions=True)

    async def load_test(
        self, version: int, rate_rps: float, duration_s: float
    ) -> LoadTestRun | None:
        """Drive ``version``'s pool over loopback HTTP, each request pinned to it, with (in
        this order of preference) stable's recent requests read back from the request log, the
        latest user requests kept in memory, or requests built from the candidate's signature;
        ``None`` when there is none of the three."""
        before = self.stats(version)
        source, samples = await self._load_samples(version)
        if not samples:
            log.warning("nothing to replay or synthesise; the load test has nothing to send")
            return None
        pinned = str(version).encode()
        await _drive(
            "127.0.0.1",
            self.port(),
            samples,
            version=pinned,
            rate_rps=rate_rps,
            duration_s=duration_s,
        )
        return LoadTestRun(self.stats(version) - before, source, len(samples))

    async def _load_samples(self, version: int) -> tuple[str, list[_Sample]]:
        name = self.front.name or ""
        path = f"/v1/models/{name}:predict"
        store: Any = self.front.log_store
        stable = self.front.pools.get(self.front.stable)
        if store is not None and stable is not None and stable.reqlog is not None and name:
            await self._flush_logs()
            codec = stable.codec
            try:
                bodies = await asyncio.to_thread(
                    replay_bodies,
                    store,
                    name,
                    self.front.stable,
                    _REPLAY,
                    input_spec=codec.input if codec is not None else None,
                    fields=codec.fields if codec is not None else (),
                )
            except Exception:  # an unreadable log: fall back to the other sources
                log.warning("the request log could not be replayed", exc_info=True)
                bodies = []
            if bodies:
                return "request_log", [(path, b, None) for b in bodies]
        recent = list(self.router.recent)
        if recent:
            return "recent", recent
        pool = self.front.pools.get(str(version))
        codec = pool.codec if pool is not None else None
        bodies = synthetic_bodies(
            codec.input if codec is not None else None,
            codec.fields if codec is not None else [],
            _REPLAY,
        )
        return "synthetic", [(path, b, None) for b in bodies]


async def _drive(
    host: str,
    port: int,
    samples: list[_Sample],
    *,
    version: bytes,
    rate_rps: float,
    duration_s: float,
) -> None:
    """Send ``samples`` round robin at ``rate_rps`` for ``duration_s`` on a few keep-alive
    connections, each request pinned to ``version``; answers are read and dropped (the pool's
    own counters are the measurement)."""
    start = time.monotonic()
    total = int(rate_rps * duration_s)
    counter = iter(range(total))

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in counter:
                delay = start + i / rate_rps - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                path, body, head_len = samples[i % len(samples)]
                head = (
                    f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\n"
                ).encode()
                head += PIN_HEADER + b": " + version + b"\r\n"
                if head_len is not None:
                    head += b"inference-header-content-length: " + head_len + b"\r\n"
                writer.write(head + b"\r\n" + body)
                await _read_response(reader)
        finally:
            writer.close()

    tasks = [asyncio.create_task(one_connection()) for _ in range(_LOAD_CONNECTIONS)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), duration_s + 30.0)
    except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
        log.warning("load test stopped early", extra={"error": repr(exc)})
        for t in tasks:
            t.cancel()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


class _ManagementApi:
    """The ``/v1/admin/rollout`` routes."""

    def __init__(self, front: Front, controller: RolloutController) -> None:
        self.front = front
        self.controller = controller

    def install(self) -> None:
        self.front.add_route(ADMIN_PATH, self.rollout, ADMIN_PATH)
        for command in COMMANDS:
            self.front.add_route(
                f"{ADMIN_PATH}/{command}", self._command(command), f"{ADMIN_PATH}/{command}"
            )

    def rollout(self, req: Request) -> None:
        f = self.front
        if not f.method(req, "GET", "POST"):
            return
        if req.method == "GET":
            self._later(req, self._status())
            return
        f.check_admin(req)
        self._check_model(req.body)
        request = _rollout_request(req.body)
        self._later(req, self._start(request), status=201)

    def _command(self, command: str) -> Callable[[Request], None]:
        def handler(req: Request) -> None:
            if not self.front.method(req, "POST"):
                return
            self.front.check_admin(req)
            self._check_model(req.body)
            self._later(req, self._steer(command, _actor(req.body)))

        return handler

    def _check_model(self, body: bytes) -> None:
        """Refuse a call that names another model than this server's (a wrong ``--url``)."""
        try:
            doc = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            return  # the body's own parser says what is wrong with it
        named = doc.get("model") if isinstance(doc, dict) else None
        if named is not None and named != self.controller.model:
            raise NotFoundError(
                f"this server serves model {self.controller.model!r}, not {str(named)[:100]!r}; "
                "nothing was changed",
                hint="pass the --url of the server that serves it",
            )

    async def _status(self) -> dict[str, Any]:
        rollout = await self.controller.status()
        if rollout is None:
            raise NotFoundError(
                f"model {self.controller.model!r} has no rollout",
                hint=f"start one: modelyard deploy {self.controller.model} --candidate VERSION",
            )
        events = await asyncio.to_thread(self.controller.store.events, rollout.id)
        return {**rollout.to_dict(), "events": [e.to_dict() for e in events]}

    async def _start(self, request: RolloutRequest) -> dict[str, Any]:
        stable = int(self.front.stable)
        rollout = await self.controller.start(request, stable_version=stable)
        return rollout.to_dict()

    async def _steer(self, command: str, actor: str | None) -> dict[str, Any]:
        rollout = await self.controller.command(command, actor=actor)
        return rollout.to_dict()

    def _later(self, req: Request, work: Awaitable[dict[str, Any]], status: int = 200) -> None:
        f = self.front

        async def run() -> None:
            try:
                body = await work
            except ModelyardError as exc:
                f.error(req, exc, req.path)
                return
            except Exception as exc:  # a bug of ours: answer, log, keep serving
                log.exception("management request failed", extra={"path": req.path})
                f.error(req, ModelyardError(f"internal error: {type(exc).__name__}: {exc}"))
                return
            f.answer(req, status, orjson.dumps(body), req.path)

        asyncio.get_running_loop().create_task(run())


def _rollout_request(body: bytes) -> RolloutRequest:
    try:
        doc = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"the body is not JSON: {exc}", field="body") from exc
    if not isinstance(doc, dict):
        raise InvalidInputError("the body must be a JSON object", field="body")
    candidate = doc.get("candidate")
    if isinstance(candidate, str) and candidate.isdigit():
        candidate = int(candidate)
    if not isinstance(candidate, int) or isinstance(candidate, bool):
        raise InvalidInputError(
            f"'candidate' must be a version number, got {candidate!r}", field="candidate"
        )
    steps = doc.get("steps")
    if steps is not None and (
        not isinstance(steps, list) or not all(isinstance(w, int | float) for w in steps)
    ):
        raise InvalidInputError(
            f"'steps' must be a list of percentages, got {steps!r}", field="steps"
        )
    interval = doc.get("interval_s")
    if interval is not None and not isinstance(interval, int | float):
        raise InvalidInputError(
            f"'interval_s' must be a number of seconds, got {interval!r}", field="interval_s"
        )
    manual = doc.get("manual")
    strategy = doc.get("strategy")
    return RolloutRequest(
        candidate,
        strategy=str(strategy) if strategy is not None else None,
        steps=[float(w) for w in steps] if steps is not None else None,
        interval_s=float(interval) if interval is not None else None,
        manual=bool(manual) if manual is not None else None,
    )


def _actor(body: bytes) -> str | None:
    try:
        doc = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return None
    actor = doc.get("actor") if isinstance(doc, dict) else None
    return str(actor)[:200] if actor else None


def delivery_hook(
    workspace: Workspace,
    *,
    port: Callable[[], int],
    trust_pickle: bool = False,
) -> Callable[[Front], Awaitable[None]]:
    """The ``on_ready`` hook that makes a server able to run rollouts of its model.

    Args:
        workspace: where the model is registered (its registry, package cache and
            ``settings.delivery``).
        port: returns the server's listening port (for the load test).
        trust_pickle: whether the candidate's package may be loaded with pickle.
    """

    async def hook(front: Front) -> None:
        from modelyard.serving._model import ModelSpec

        name = front.name
        if name is None:
            return
        router = RolloutRouter()
        front.router = router
        registry = workspace.registry

        def spec_for(version: int) -> ModelSpec:
            folder = workspace.fetch(registry.get_version(name, version))
            return ModelSpec.for_package(folder, trust_pickle=trust_pickle).with_version(
                str(version)
            )

        delivery = workspace.settings.delivery
        adapter = ServingFront(
            front, router, spec_for, port, min_idle_cpu=delivery.shadow_min_idle_cpu
        )
        store = RolloutStore(workspace.metadata_store, actor=registry.user)
        controller = RolloutController(store, adapter, registry, name, delivery)
        _ManagementApi(front, controller).install()
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(controller.run(stop))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    return hook


_TASKS: set[asyncio.Task[None]] = set()  # keep the controllers' tasks referenced


def rollout_hooks(
    settings: Settings, model: str | None, model_class: str | None, trust_pickle: bool
) -> list[Callable[[Front], Awaitable[None]]]:
    """The ``on_ready`` hooks of a server that runs its registered model's rollouts.

    What ``modelyard serve`` installs, and a launch hook for a server in a child process:
    ``modelyard.serving.launch("churn@production", hooks=[rollout_hooks])``. A model class or a
    package folder has no rollouts (an empty list).
    """
    from pathlib import Path

    if model_class is not None or model is None or Path(str(model)).is_dir():
        return []

    async def hook(front: Front) -> None:
        from modelyard.workspace import Workspace

        install = delivery_hook(
            Workspace.open(settings), port=lambda: front.port, trust_pickle=trust_pickle
        )
        await install(front)

    return [hook]
