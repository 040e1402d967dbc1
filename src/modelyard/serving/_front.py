"""The front's request plumbing: versions, routes, request ids, answers and errors.

A :class:`Front` is what the handlers share: the versions served (one :class:`VersionPool`
each), the stable one, the router choosing a version per request, the route table, and the
functions that answer a request (adding ``x-request-id``, ``x-model-version`` and the metrics
of the version that answered). The lifecycle around it (listening, signals, drain) is
:class:`modelyard.serving.Server`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import orjson

from modelyard.config import ServingSettings
from modelyard.errors import (
    ConflictError,
    InvalidInputError,
    ModelyardError,
    NotFoundError,
    Overloaded,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
)
from modelyard.logs import get_logger
from modelyard.serving._batcher import Item
from modelyard.serving._codec import loads
from modelyard.serving._cpu import IdleCpu
from modelyard.serving._metrics import ServingMetrics
from modelyard.serving._model import ModelSpec
from modelyard.serving._pool import VersionPool
from modelyard.serving._reqlog import LogStore
from modelyard.serving.http import BodyBudget, Handler, HttpProtocol, Request
from modelyard.serving.routing import Router, StableRouter

__all__ = ["Front", "loads"]

if TYPE_CHECKING:
    from modelyard.data.contract import Contract

log = get_logger("modelyard.serving")

JSON = b"application/json"
_RID = b"x-request-id"
_VERSION = b"x-model-version"


class Front:
    """The versions a server hosts and the plumbing every handler uses.

    Args:
        settings: ``[tool.modelyard.serving]`` values.
        name: the model name in URLs (default: the first version's own name).
        router: chooses the version of each inference request (default: the stable one).
        log_store: where the versions' request/feedback logs go; ``None`` turns them off.
        log_level: level for the worker loggers.
        load_timeout_s: how long a worker may take to load the model.
    """

    def __init__(
        self,
        settings: ServingSettings,
        *,
        name: str | None = None,
        router: Router | None = None,
        log_store: LogStore | None = None,
        log_level: str = "INFO",
        load_timeout_s: float = 300.0,
    ) -> None:
        self.settings = settings
        self.name = name
        self.router: Router = router or StableRouter()
        self.log_store = log_store
        self.log_level = log_level
        self.load_timeout_s = load_timeout_s
        self.pools: dict[str, VersionPool] = {}
        self.stable = ""
        self.port = 0  # the port the server listens on, once it does
        self.routes: dict[str, Handler] = {}
        self.labels: dict[str, str] = {}
        self.connections: set[HttpProtocol] = set()
        self.inflight = 0
        self.draining = False
        self.access_log = False
        self.on_versions_changed: list[Callable[[], None]] = []
        self.boot_metrics = ServingMetrics()  # counts requests before any version has loaded
        self.admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
        fb = settings.feedback_token
        self.feedback_token = fb.get_secret_value() if fb is not None else None
        # bodies being received on all connections together: 8 bodies of the maximum size
        self.budget = BodyBudget(8 * settings.max_body_bytes)
        self._rid_prefix = uuid.uuid4().hex[:12]
        self._rid_next = 0
        self.dynamic: Handler = _no_route
        #: told of each batch the stable version lends (see ``share_batches``): the inference
        #: handlers move its requests to the version that answers them
        self.on_lent: Callable[[list[Item], VersionPool, str], None] | None = None
        #: makes the items a mirrored copy of a batch finishes (see ``share_batches``)
        self.on_copy: Callable[[list[Item], VersionPool], list[Item]] | None = None
        #: the version stable shares its batches with, its share, and whether it mirrors
        self.shared: tuple[str, float, bool, float] | None = None
        self._idle_cpu: IdleCpu | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ versions
    async def add_version(
        self,
        spec: ModelSpec,
        *,
        version: str | None = None,
        workers: int | None = None,
        stable: bool = False,
        contract: Contract | None = None,
        stop: Any = None,
    ) -> VersionPool:
        """Start a worker pool for another version and serve it once its workers have loaded.

        Args:
            spec: where the new version's workers get the model.
            version: its label (default: the version the model states).
            workers: its worker processes (default: as the serving settings say).
            stable: make it the stable version (the first version always is).
            contract: its data contract (requests are checked against it).
            stop: an ``asyncio.Event`` that aborts the start when set.

        Returns:
            The running :class:`VersionPool`.

        Raises:
            ConflictError: that version is served here already.
        """
        pool = self._pool(spec, version, workers, contract)
        if version is not None and version in self.pools:
            raise ConflictError(f"version {version!r} of {self.name!r} is served here already")
        await pool.start(stop)
        if pool.version in self.pools:
            await pool.stop(0.0)
            raise ConflictError(
                f"version {pool.version!r} of {pool.name!r} is served here already",
                hint="remove it first, or give the new one another version label",
            )
        self.name = pool.name
        self.pools[pool.version] = pool
        if stable or not self.stable:
            self.stable = pool.version
        self._versions_changed()
        log.info(
            "version ready",
            extra={"model": pool.name, "version": pool.version, "stable": self.stable},
        )
        return pool

    async def replace_version(self, spec: ModelSpec, version: str) -> VersionPool:
        """Serve ``version`` from a fresh pool of workers (at normal CPU priority): the new
        pool loads beside the old one, takes its place, and the old one stops once the
        requests it holds are answered.

        Raises:
            NotFoundError: the version is not served here.
        """
        old = self.pools.get(version)
        if old is None:
            raise NotFoundError(
                f"version {version!r} is not served here; served: {sorted(self.pools)}",
                version=version,
            )
        pool = self._pool(spec, version, old.workers, old.contract)
        await pool.start()
        self.pools[version] = pool
        old.lend(None)  # a share it had moves to the new pool (below), none stays with the old
        self._versions_changed()
        await old.drain(self.settings.grace_s)
        await old.stop(self.settings.grace_s)
        log.info("version replaced", extra={"model": pool.name, "version": version})
        return pool

    def _pool(
        self, spec: ModelSpec, version: str | None, workers: int | None, contract: Contract | None
    ) -> VersionPool:
        return VersionPool(
            spec,
            self.settings,
            name=self.name,
            version=version,
            workers=workers,
            log_store=self.log_store,
            log_level=self.log_level,
            load_timeout_s=self.load_timeout_s,
            contract=contract,
        )

    async def remove_version(self, version: str, grace_s: float | None = None) -> None:
        """Stop serving ``version``: route nothing more to it, finish its requests, stop it.

        Raises:
            NotFoundError: the version is not served here.
            ConflictError: it is the stable version (make another one stable first).
        """
        pool = self.pools.get(version)
        if pool is None:
            raise NotFoundError(
                f"version {version!r} is not served here; served: {sorted(self.pools)}",
                version=version,
            )
        if version == self.stable:
            raise ConflictError(
                f"version {version!r} is the stable version and cannot be removed",
                hint="make another version stable first (set_stable)",
                version=version,
            )
        del self.pools[version]
        self._versions_changed()
        await pool.stop(self.settings.grace_s if grace_s is None else grace_s)
        log.info("version removed", extra={"model": pool.name, "version": version})

    def set_stable(self, version: str) -> None:
        """Make ``version`` the one the default router (and a failed route) sends traffic to."""
        if version not in self.pools:
            raise NotFoundError(
                f"version {version!r} is not served here; served: {sorted(self.pools)}",
                version=version,
            )
        self.stable = version
        self._versions_changed()

    def share_batches(
        self,
        version: str | None,
        share: float = 0.0,
        *,
        mirror: bool = False,
        min_idle_cpu: float = 0.0,
    ) -> bool:
        """Share the stable version's batches with ``version`` (``None``: stop sharing):
        its workers answer ``share`` (0-1) of stable's requests, in whole batches built by
        stable's batcher (a canary split without small batches of its own), or, with
        ``mirror``, get a copy of ``share`` of stable's batches (a shadow: its answers are
        counted, never sent), and only while ``min_idle_cpu`` of the CPU is idle
        (:class:`~modelyard.serving._cpu.IdleCpu`). Only requests routed with
        ``Route.shared``.

        Returns:
            Whether the share is in effect: ``False`` (nothing changed but the end of an
            earlier share) when the two versions do not decode requests alike (another
            signature, contract or classes, or pre/postprocess hooks) or either is not loaded;
            the router then routes or mirrors request by request.
        """
        for pool in self.pools.values():
            pool.lend(None)
        self.shared = None
        stable = self.pools.get(self.stable)
        other = self.pools.get(version) if version is not None else None
        top = 1.0 if mirror else 1.0 - 1e-9
        if stable is None or other is None or other is stable or not 0.0 < share <= top:
            return False
        if stable.codec is None or other.codec is None:
            return False
        if not stable.codec.interchangeable(other.codec):
            return False
        label = stable.version
        if mirror:
            copy = self.on_copy
            gate = None
            if min_idle_cpu > 0.0:
                if self._idle_cpu is None:
                    self._idle_cpu = IdleCpu()
                meter = self._idle_cpu
                gate = lambda: meter.fraction() >= min_idle_cpu  # noqa: E731
            stable.mirror(
                other,
                share,
                (lambda items: copy(items, other)) if copy is not None else None,
                gate,
            )
        else:
            hook = self.on_lent
            stable.lend(
                other,
                share,
                (lambda items: hook(items, other, label)) if hook is not None else None,
            )
        self.shared = (other.version, share, mirror, min_idle_cpu)
        return True

    def pool_for(self, version: str) -> VersionPool:
        """The pool of ``version``, or the stable one when it is gone (a stale route)."""
        pool = self.pools.get(version)
        if pool is None:
            pool = self.pools[self.stable]
        return pool

    def metrics_of_front(self) -> ServingMetrics:
        """Where requests not answered by a version are counted: the stable version's metrics."""
        pool = self.pools.get(self.stable)
        return pool.metrics if pool is not None else self.boot_metrics

    def all_metrics(self) -> list[ServingMetrics]:
        """The metrics of every version served (those before any had loaded, until then)."""
        if not self.pools:
            return [self.boot_metrics]
        return [p.metrics for p in self.pools.values()]

    def ready(self) -> bool:
        """Ready for traffic: not draining and the stable version loaded with all its workers."""
        pool = self.pools.get(self.stable)
        return not self.draining and pool is not None and pool.ready()

    def accepted(self) -> int:
        """Requests queued or inside a worker, over all versions."""
        return sum(p.accepted() for p in self.pools.values())

    def _versions_changed(self) -> None:
        if self.shared is not None:  # the same share between the pools served now, if any
            version, share, mirror, idle = self.shared
            self.share_batches(version, share, mirror=mirror, min_idle_cpu=idle)
        for pool in self.pools.values():
            if pool.version == self.stable:
                pool.metrics.inflight = self._stable_inflight
            else:
                pool.metrics.inflight = pool.accepted
        for hook in self.on_versions_changed:
            hook()

    def _stable_inflight(self) -> int:
        """Requests in the front not queued on another version (health checks included)."""
        return self.inflight - sum(p.accepted() for v, p in self.pools.items() if v != self.stable)

    # ------------------------------------------------------------------ routes
    def add_route(self, path: str, handler: Handler, label: str | None = None) -> None:
        """Answer ``path`` (exact match) with ``handler``; ``label`` names it in the metrics."""
        self.routes[path] = handler
        self.labels[path] = label or path

    def add_async_route(
        self,
        path: str,
        handler: Callable[[Request], Coroutine[Any, Any, None]],
        label: str | None = None,
    ) -> None:
        """Answer ``path`` with a coroutine (run as a task; an error it raises is answered)."""

        def run(req: Request) -> None:
            task = asyncio.get_running_loop().create_task(handler(req))
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._finish_task(req, t))

        self.add_route(path, run, label)

    def _finish_task(self, req: Request, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            self.error(req, ServiceUnavailable("the server is shutting down; retry elsewhere"))
            return
        exc = task.exception()
        if isinstance(exc, ModelyardError):
            self.error(req, exc)
        elif exc is not None:
            log.error(
                "unexpected error",
                exc_info=exc,
                extra={"request_id": req.request_id, "path": req.path},
            )
            self.error(req, ModelyardError(f"internal error: {type(exc).__name__}"))

    def remove_route(self, path: str) -> None:
        self.routes.pop(path, None)
        self.labels.pop(path, None)

    def label(self, req: Request) -> str:
        return self.labels.get(req.path, "other")

    def check_admin(self, req: Request, token: str | None = None, setting: str = "") -> None:
        """Refuse (401) unless the request carries the admin token or ``token``.

        Nothing is checked when neither is set. ``setting`` names where ``token`` is configured
        (for the error's hint).
        """
        wanted = [t for t in (self.admin_token, token) if t is not None]
        if not wanted:
            return
        got = req.headers.get(b"authorization", b"")
        ok = False
        for want in wanted:  # compare with every token: the time taken does not say which
            ok |= hmac.compare_digest(got, b"Bearer " + want.encode())
        if not ok:
            where = " or ".join(x for x in ("serving.admin_token", setting) if x)
            raise Unauthorized(
                f"{req.path} needs a bearer token ({where})",
                hint="send 'Authorization: Bearer <token>'",
            )

    # ------------------------------------------------------------------ HTTP plumbing
    def protocol(self) -> HttpProtocol:
        """A protocol for a new connection (the ``create_server`` factory)."""
        conn = HttpProtocol(
            self.handle,
            self.settings.max_body_bytes,
            self.connections.discard,
            time.monotonic,
            self.too_large,
            budget=self.budget,
        )
        self.connections.add(conn)
        if self.draining:
            conn.closing = True
        return conn

    def request_id(self, req: Request) -> str:
        given = req.headers.get(_RID)
        if given is not None and 0 < len(given) <= 200:
            try:
                return given.decode("ascii")
            except UnicodeDecodeError:
                pass
        self._rid_next += 1
        return f"{self._rid_prefix}{self._rid_next:x}"

    def handle(self, req: Request) -> None:
        """Dispatch one request to its handler; any error becomes an answer."""
        self.inflight += 1
        req.request_id = self.request_id(req)
        route = self.routes.get(req.path)
        try:
            if route is None:
                self.dynamic(req)
            else:
                route(req)
        except ModelyardError as exc:
            self.error(req, exc)
        except Exception as exc:  # a bug of ours: still an answer, and a log line to fix it
            log.exception(
                "unexpected error", extra={"request_id": req.request_id, "path": req.path}
            )
            self.error(req, ModelyardError(f"internal error: {type(exc).__name__}"))

    def answer(
        self,
        req: Request,
        status: int,
        body: bytes,
        route: str,
        *,
        pool: VersionPool | None = None,
        content_type: bytes = JSON,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Answer once (later calls are ignored) and count it for the version that answered."""
        if req.response is not None:
            return
        hdrs = [(_RID, req.request_id.encode("ascii", "replace"))]
        if pool is not None:
            hdrs.append((_VERSION, pool.version.encode()))
            metrics = pool.metrics
        else:
            metrics = self.metrics_of_front()
        if headers:
            hdrs += headers
        req.respond(status, body, content_type, hdrs)
        self.inflight -= 1
        seconds = time.monotonic() - req.t0
        metrics.observe_request(route, status, seconds, req.size)
        if pool is not None:
            metrics.observe_inference(status, seconds)
        if self.access_log:
            log.debug(
                "request",
                extra={
                    "request_id": req.request_id,
                    "method": req.method,
                    "route": route,
                    "status": status,
                    "latency_ms": round(seconds * 1000, 3),
                    "model": metrics.model,
                    "version": metrics.version,
                },
            )

    def error(
        self,
        req: Request,
        exc: ModelyardError,
        route: str | None = None,
        *,
        pool: VersionPool | None = None,
    ) -> None:
        """Answer ``exc`` as its HTTP status with its JSON body."""
        body = exc.to_dict()
        body["request_id"] = req.request_id
        headers = [(b"retry-after", b"1")] if exc.http_status == 503 else None
        if exc.http_status == 401:
            headers = [(b"www-authenticate", b"Bearer")]
        if isinstance(exc, Overloaded):
            (pool.metrics if pool is not None else self.metrics_of_front()).rejected_overload += 1
        if exc.http_status >= 500:
            log.warning(
                "request failed",
                extra={
                    "request_id": req.request_id,
                    "status": exc.http_status,
                    "error": exc.message,
                    "version": pool.version if pool is not None else self.stable,
                },
            )
        self.answer(
            req,
            exc.http_status,
            orjson.dumps(body, default=str),
            route or self.label(req),
            pool=pool,
            headers=headers,
        )

    def too_large(self, req: Request, size: int, overloaded: bool) -> None:
        """The HTTP layer refused a body: 413, or 503 past the memory budget of all bodies."""
        self.inflight += 1
        req.request_id = self.request_id(req)
        if overloaded:
            exc: ModelyardError = Overloaded(
                f"the server is receiving more than {self.budget.limit} bytes of request "
                "bodies at once; retry shortly",
                hint="send smaller requests or fewer at once, or add replicas",
            )
        else:
            limit = self.settings.max_body_bytes
            exc = PayloadTooLarge(
                f"the body has {size} bytes; this server takes at most {limit}",
                hint="send smaller requests, or raise serving.max_body_bytes",
                size_bytes=size,
                max_body_bytes=limit,
            )
        self.error(req, exc, route="other")

    def method(self, req: Request, *allowed: str) -> bool:
        """True when the method is allowed; else answer 405 and return False."""
        if req.method in allowed:
            return True
        exc = InvalidInputError(
            f"method {req.method} is not allowed on {req.path}; use {' or '.join(allowed)}"
        )
        self.answer(
            req,
            405,
            orjson.dumps(exc.to_dict()),
            self.label(req),
            headers=[(b"allow", ", ".join(allowed).encode())],
        )
        return False

    def loading_error(self) -> ServiceUnavailable:
        return ServiceUnavailable("the model is still loading; retry shortly")


def _no_route(req: Request) -> None:
    raise NotFoundError(
        f"no route {req.method} {req.path}"[:300],
        hint="see GET /openapi.json for the routes of this server",
    )


def enabled_debug() -> bool:
    """One line per request only at DEBUG: at 10k req/s an access log costs more than the
    request itself."""
    return log.isEnabledFor(logging.DEBUG)
