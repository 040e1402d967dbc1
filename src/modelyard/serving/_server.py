"""The front process: HTTP routes, the batcher, probes, metrics, logs and graceful shutdown.

Life of a server: it listens at once (liveness is true), starts the model workers (readiness
turns true when all have loaded), answers until SIGTERM or SIGINT, then turns readiness false,
stops accepting connections, lets the requests already accepted finish (up to ``grace_s``),
closes the workers, reaps them and exits 0. A second signal skips the wait.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import orjson

from modelyard import __version__
from modelyard.config import ServingSettings
from modelyard.errors import (
    InvalidInputError,
    ModelyardError,
    NotFoundError,
    ServiceUnavailable,
    TimeoutExceeded,
)
from modelyard.logs import get_logger
from modelyard.serving._batcher import Batcher, Item
from modelyard.serving._codec import Codec
from modelyard.serving._http import BodyBudget, HttpProtocol, Request
from modelyard.serving._metrics import ServingMetrics
from modelyard.serving._model import ModelSpec, import_class
from modelyard.serving._openapi import openapi_document
from modelyard.serving._reqlog import NamedWriter, RecordLog

__all__ = ["Server"]

log = get_logger("modelyard.serving")

_JSON = b"application/json"
_TEXT = b"text/plain; version=0.0.4; charset=utf-8"
_RID = b"x-request-id"


class _Unauthorized(ModelyardError):
    exit_code = 2
    http_status = 401


def reap_orphans(own: set[int]) -> list[int]:
    """Reap every exited child not in ``own``; return their pids.

    ``waitid(WNOWAIT)`` looks at an exited child without reaping it, so the exit status of our
    own workers stays for their ``Popen.wait``; the scan stops at the first of those (the next
    call sees past it once it has been waited for).
    """
    reaped: list[int] = []
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # no children at all
            return reaped
        if info is None or info.si_pid == 0 or info.si_pid in own:
            return reaped
        try:
            os.waitpid(info.si_pid, os.WNOHANG)
        except ChildProcessError:  # reaped meanwhile by someone else
            continue
        reaped.append(info.si_pid)


class Server:
    """One serving front process for one model.

    Args:
        spec: where the workers get the model.
        settings: ``[tool.modelyard.serving]`` values (port, workers, batch limits, ...).
        name: the model name in URLs (default: the model's own name).
        log_store: where the request/feedback logs go (``write_named``); ``None`` turns them off.
        log_level: level for the front and worker loggers.
        load_timeout_s: how long a worker may take to load the model.
    """

    def __init__(
        self,
        spec: ModelSpec,
        settings: ServingSettings,
        *,
        name: str | None = None,
        version: str | None = None,
        log_store: NamedWriter | None = None,
        log_level: str = "INFO",
        load_timeout_s: float = 300.0,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.name = name
        self.version = version
        self.log_store = log_store
        self.log_level = log_level
        self.load_timeout_s = load_timeout_s
        self.metrics = ServingMetrics()
        self.batcher: Batcher | None = None
        self.codec: Codec | None = None
        self.reqlog: RecordLog | None = None
        self.connections: set[HttpProtocol] = set()
        self.inflight = 0
        self.draining = False
        self.port = 0
        self._routes: dict[str, Callable[[Request], None]] = {}
        self._labels: dict[str, str] = {}
        self._stop: asyncio.Event | None = None
        self._signals = 0
        self._rid_prefix = uuid.uuid4().hex[:12]
        self._rid_next = 0
        self._admin = settings.admin_token.get_secret_value() if settings.admin_token else None
        self._registry: Any = None
        self._openapi: bytes = b""
        self._access_log = False
        # bodies being received on all connections together: 8 bodies of the maximum size
        self._budget = BodyBudget(8 * settings.max_body_bytes)

    # ------------------------------------------------------------------ lifecycle
    def run(self, sock: socket.socket | None = None) -> int:
        """Serve until SIGTERM/SIGINT; return the exit code. Installs uvloop when present."""
        try:
            import uvloop

            runner: Any = uvloop.run
        except ImportError:  # pragma: no cover - uvloop is in the serve extra
            runner = asyncio.run
        result: int = runner(self.serve(sock))
        return result

    async def serve(self, sock: socket.socket | None = None) -> int:
        """The async body of :meth:`run` (signal handlers need the main thread)."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        s = self.settings
        workers = s.workers or os.cpu_count() or 1
        threads = max(1, (os.cpu_count() or 1) // workers)
        self.batcher = Batcher(
            self.spec,
            workers=workers,
            max_batch_size=s.max_batch_size,
            max_wait_ms=s.max_wait_ms,
            queue_size=s.queue_size,
            log_level=self.log_level,
            load_timeout_s=self.load_timeout_s,
            threads_per_worker=threads,
            on_batch=self.metrics.observe_batch,
            on_restart=self._on_restart,
        )
        b = self.batcher
        self.metrics.queue_depth = lambda: b.queued
        self.metrics.inflight = lambda: self.inflight
        self.metrics.workers_alive = b.alive
        self.metrics.ready = self.ready
        self._registry = self.metrics.registry()
        # one line per request only at DEBUG: at 10k req/s an access log would cost more than
        # the request itself
        self._access_log = log.isEnabledFor(logging.DEBUG)
        self._install_base_routes()
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (RuntimeError, ValueError):  # not the main thread: the caller stops us
                pass
        if sock is None:
            server = await loop.create_server(self._protocol, s.host, s.port, backlog=2048)
        else:
            server = await loop.create_server(self._protocol, sock=sock, backlog=2048)
        self.port = server.sockets[0].getsockname()[1]
        log.info("listening", extra={"host": s.host, "port": self.port, "workers": workers})
        sweeper = loop.create_task(self._sweep())
        # As PID 1 (a container without an init) orphaned processes are re-parented to us: reap
        # them, or they stay zombies for the container's life.
        reaper = loop.create_task(self._reap_orphans()) if os.getpid() == 1 else None
        try:
            try:
                desc = await self._start_workers()
            except BaseException:
                server.close()
                raise
            self._on_loaded(desc)
            await self._stop.wait()
            await self._drain(server)
        finally:
            sweeper.cancel()
            if reaper is not None:
                reaper.cancel()
            for signum in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.remove_signal_handler(signum)
                except (RuntimeError, ValueError):
                    pass
            await b.stop(s.grace_s)
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.close()
            if self.reqlog is not None:
                await loop.run_in_executor(None, self.reqlog.stop)
        log.info("stopped", extra={"model": self.name})
        return 0

    async def _reap_orphans(self, interval_s: float = 0.5) -> None:
        """Reap exited processes that are not our workers (only run as PID 1)."""
        while True:
            await asyncio.sleep(interval_s)
            own = self.batcher.spawned if self.batcher is not None else set()
            reaped = reap_orphans(own)
            if reaped:
                log.debug("reaped orphaned processes", extra={"pids": reaped})

    async def _start_workers(self) -> dict[str, Any]:
        assert self.batcher is not None
        assert self._stop is not None
        start = asyncio.ensure_future(self.batcher.start())
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({start, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not start.done():
            start.cancel()
            raise ServiceUnavailable("stopped before the model workers had loaded")
        stop.cancel()
        return start.result()

    def _on_loaded(self, desc: dict[str, Any]) -> None:
        assert self.batcher is not None
        hooks = None
        if self.spec.kind == "class" and (desc.get("preprocess") or desc.get("postprocess")):
            hooks = import_class(self.spec)()
        if self.name:
            desc["name"] = self.name
        if self.version:
            desc["version"] = self.version
        self.name = str(desc["name"])
        self.version = str(desc["version"])
        self.codec = Codec(desc, max_batch_size=self.settings.max_batch_size, hooks=hooks)
        self.batcher.prepare = self.codec.prepare
        self.batcher.decode = self.codec.decode_result
        self.metrics.model = self.name
        self.metrics.version = self.version
        if self.log_store is not None:
            self.reqlog = RecordLog(
                self.log_store,
                self.name,
                self.version,
                flush_s=self.settings.request_log_flush_s,
                sample_rate=self.settings.request_log_sample_rate,
            )
            self.reqlog.start()
        self._install_model_routes()
        self._openapi = orjson.dumps(
            openapi_document(self.name, self.version, self.codec.metadata())
        )
        log.info(
            "ready",
            extra={"model": self.name, "version": self.version, "port": self.port},
        )

    def stop(self) -> None:
        """Begin a graceful stop (thread-unsafe: call on the server's loop)."""
        if self._stop is not None:
            self._stop.set()

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        log.info("signal received; draining", extra={"signal": signal.Signals(signum).name})
        self.draining = True
        if self._signals > 1 and self.batcher is not None:
            # a second signal: stop waiting for requests
            self.settings = msgspec.structs.replace(self.settings, grace_s=0.0)
        self.stop()

    async def _drain(self, server: asyncio.Server) -> None:
        """Finish the accepted requests; meanwhile new ones get a fast 503 (not a refused
        connection), and the probes say not ready."""
        self.draining = True
        for conn in list(self.connections):
            conn.shutdown()
        deadline = time.monotonic() + self.settings.grace_s
        while self._accepted() and time.monotonic() < deadline and self.settings.grace_s > 0:
            await asyncio.sleep(0.01)
        server.close()
        if self._accepted():
            log.warning(
                "grace period over; answering 503 to the rest", extra={"inflight": self.inflight}
            )

    def _accepted(self) -> int:
        """Requests queued or inside a worker (the ones a drain waits for)."""
        b = self.batcher
        return (b.queued + b.inflight_items()) if b is not None else 0

    def _on_restart(self) -> None:
        self.metrics.worker_restarts += 1

    def ready(self) -> bool:
        return (
            not self.draining
            and self.codec is not None
            and bool(self.batcher and self.batcher.ready)
        )

    async def _sweep(self) -> None:
        timeout_s = self.settings.timeout_s
        period = min(0.1, timeout_s / 4)
        ticks = 0
        while True:
            await asyncio.sleep(period)
            ticks += 1
            if ticks % 10 == 0:  # slow, stalled and long-idle connections, about once a second
                now = time.monotonic()
                for conn in list(self.connections):
                    conn.stale(now, timeout_s)
            b = self.batcher
            if b is not None:
                n = b.expire(time.monotonic(), self._timeout_error)
                self.metrics.timeouts += n
            if self.reqlog is not None:
                self.metrics.dropped_log_records = self.reqlog.dropped

    def _timeout_error(self) -> Exception:
        return TimeoutExceeded(
            f"the request took longer than {self.settings.timeout_s} s",
            hint="retry later, or raise serving.timeout_s",
        )

    # ------------------------------------------------------------------ HTTP plumbing
    def _protocol(self) -> HttpProtocol:
        conn = HttpProtocol(
            self._handle,
            self.settings.max_body_bytes,
            self.connections.discard,
            time.monotonic,
            self._too_large,
            budget=self._budget,
        )
        self.connections.add(conn)
        if self.draining:
            conn.closing = True
        return conn

    def _request_id(self, req: Request) -> str:
        given = req.headers.get(_RID)
        if given is not None and 0 < len(given) <= 200:
            try:
                return given.decode("ascii")
            except UnicodeDecodeError:
                pass
        self._rid_next += 1
        return f"{self._rid_prefix}{self._rid_next:x}"

    def _handle(self, req: Request) -> None:
        self.inflight += 1
        req.request_id = self._request_id(req)
        route = self._routes.get(req.path)
        try:
            if route is None:
                self._dynamic(req)
            else:
                route(req)
        except ModelyardError as exc:
            self._error(req, exc)
        except Exception as exc:  # a bug of ours: still an answer, and a log line to fix it
            log.exception(
                "unexpected error", extra={"request_id": req.request_id, "path": req.path}
            )
            self._error(req, ModelyardError(f"internal error: {type(exc).__name__}"))

    def _route_label(self, req: Request) -> str:
        return self._labels.get(req.path, "other")

    def _answer(
        self,
        req: Request,
        status: int,
        body: bytes,
        route: str,
        *,
        content_type: bytes = _JSON,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if req.response is not None:
            return
        hdrs = [(_RID, req.request_id.encode("ascii", "replace"))]
        if headers:
            hdrs += headers
        req.respond(status, body, content_type, hdrs)
        self.inflight -= 1
        seconds = time.monotonic() - req.t0
        self.metrics.observe_request(route, status, seconds, req.size)
        if self._access_log:
            log.debug(
                "request",
                extra={
                    "request_id": req.request_id,
                    "method": req.method,
                    "route": route,
                    "status": status,
                    "latency_ms": round(seconds * 1000, 3),
                    "model": self.name,
                    "version": self.version,
                },
            )

    def _error(self, req: Request, exc: ModelyardError, route: str | None = None) -> None:
        body = exc.to_dict()
        body["request_id"] = req.request_id
        headers = [(b"retry-after", b"1")] if exc.http_status == 503 else None
        if exc.http_status == 401:
            headers = [(b"www-authenticate", b"Bearer")]
        if isinstance(exc, ServiceUnavailable):
            self.metrics.rejected_overload += "queue is full" in exc.message
        if exc.http_status >= 500:
            log.warning(
                "request failed",
                extra={
                    "request_id": req.request_id,
                    "status": exc.http_status,
                    "error": exc.message,
                },
            )
        self._answer(
            req,
            exc.http_status,
            orjson.dumps(body, default=str),
            route or self._route_label(req),
            headers=headers,
        )

    def _too_large(self, req: Request, size: int, overloaded: bool) -> None:
        self.inflight += 1
        req.request_id = self._request_id(req)
        if overloaded:
            exc: ModelyardError = ServiceUnavailable(
                f"the server is receiving more than {self._budget.limit} bytes of request "
                "bodies at once; retry shortly",
                hint="send smaller requests or fewer at once, or add replicas",
            )
        else:
            exc = _too_large_error(size, self.settings.max_body_bytes)
        self._error(req, exc, route="other")

    def _method(self, req: Request, *allowed: str) -> bool:
        if req.method in allowed:
            return True
        exc = InvalidInputError(
            f"method {req.method} is not allowed on {req.path}; use {' or '.join(allowed)}"
        )
        body = exc.to_dict()
        self._answer(
            req,
            405,
            orjson.dumps(body),
            self._route_label(req),
            headers=[(b"allow", ", ".join(allowed).encode())],
        )
        return False

    # ------------------------------------------------------------------ routes
    def _install_base_routes(self) -> None:
        r = self._routes
        r["/v2/health/live"] = r["/healthz"] = self._live
        r["/v2/health/ready"] = r["/readyz"] = self._ready
        r["/v2"] = self._server_metadata
        r["/metrics"] = self._metrics
        r["/openapi.json"] = self._openapi_route
        r["/v1/feedback"] = self._feedback
        r["/v1/admin/flush"] = self._admin_flush
        self._labels.update({path: path for path in r})

    def _install_model_routes(self) -> None:
        r = self._routes
        labels = self._labels
        for base, label in (
            (f"/v2/models/{self.name}", "/v2/models/{name}"),
            (f"/v2/models/{self.name}/versions/{self.version}", "/v2/models/{name}/versions/{v}"),
        ):
            r[base] = self._model_metadata
            r[base + "/ready"] = self._model_ready
            r[base + "/infer"] = self._infer
            labels[base] = label
            labels[base + "/ready"] = label + "/ready"
            labels[base + "/infer"] = label + "/infer"
        r[f"/v1/models/{self.name}:predict"] = self._predict
        labels[f"/v1/models/{self.name}:predict"] = "/v1/models/{name}:predict"

    def _dynamic(self, req: Request) -> None:
        path = req.path
        for prefix in ("/v2/models/", "/v1/models/"):
            if path.startswith(prefix):
                rest = path[len(prefix) :]
                name = rest.split("/", 1)[0].split(":", 1)[0]
                if self.codec is None:
                    raise ServiceUnavailable("the model is still loading; retry shortly")
                if name == self.name and "/versions/" in rest:
                    got = rest.split("/versions/", 1)[1].split("/", 1)[0]
                    raise NotFoundError(
                        f"model {self.name!r} has no version {got!r} here; this server serves "
                        f"version {self.version!r}",
                        model=self.name,
                        version=got,
                    )
                if name == self.name:
                    raise NotFoundError(
                        f"no route {req.method} {path}",
                        hint="see GET /openapi.json for the routes of this server",
                    )
                raise NotFoundError(
                    f"model {name!r} is not served here; this server serves {self.name!r}",
                    hint=f"use /v2/models/{self.name}/infer or /v1/models/{self.name}:predict",
                    model=name,
                )
        raise NotFoundError(
            f"no route {req.method} {path}"[:300],
            hint="see GET /openapi.json for the routes of this server",
        )

    def _live(self, req: Request) -> None:
        if self._method(req, "GET", "HEAD"):
            self._answer(req, 200, b'{"live":true}', req.path)

    def _ready(self, req: Request) -> None:
        if not self._method(req, "GET", "HEAD"):
            return
        if self.ready():
            self._answer(req, 200, b'{"ready":true}', req.path)
        else:
            b = self.batcher
            body = {
                "ready": False,
                "draining": self.draining,
                "workers_alive": b.alive() if b else 0,
                "workers": b.n_workers if b else 0,
            }
            self._answer(req, 503, orjson.dumps(body), req.path, headers=[(b"retry-after", b"1")])

    def _server_metadata(self, req: Request) -> None:
        if self._method(req, "GET"):
            body = {
                "name": "modelyard",
                "version": __version__,
                "extensions": ["binary_tensor_data"],
            }
            self._answer(req, 200, orjson.dumps(body), req.path)

    def _metrics(self, req: Request) -> None:
        if self._method(req, "GET"):
            if self.reqlog is not None:
                self.metrics.dropped_log_records = self.reqlog.dropped
            body = self.metrics.render(self._registry)
            self._answer(req, 200, body, req.path, content_type=_TEXT)

    def _openapi_route(self, req: Request) -> None:
        if not self._method(req, "GET"):
            return
        if not self._openapi:
            raise ServiceUnavailable("the model is still loading; retry shortly")
        self._answer(req, 200, self._openapi, req.path)

    def _model_metadata(self, req: Request) -> None:
        if self._method(req, "GET"):
            assert self.codec is not None
            self._answer(req, 200, orjson.dumps(self.codec.metadata()), self._route_label(req))

    def _model_ready(self, req: Request) -> None:
        if not self._method(req, "GET"):
            return
        ok = self.ready()
        body = orjson.dumps({"name": self.name, "ready": ok})
        self._answer(req, 200 if ok else 503, body, self._route_label(req))

    def _check_auth(self, req: Request) -> None:
        if self._admin is None:
            return
        got = req.headers.get(b"authorization", b"")
        want = b"Bearer " + self._admin.encode()
        if not hmac.compare_digest(got, want):
            raise _Unauthorized(
                "this endpoint needs the admin bearer token",
                hint="send 'Authorization: Bearer <serving.admin_token>'",
            )

    def _feedback(self, req: Request) -> None:
        if not self._method(req, "POST"):
            return
        doc = _loads(req.body)
        if type(doc) is not dict:
            raise InvalidInputError(
                "the body must be a JSON object with 'request_id'", field="request_id"
            )
        rid = doc.get("request_id")
        if type(rid) is not str or not 0 < len(rid) <= 200:
            raise InvalidInputError(
                "'request_id' must be a non-empty string of at most 200 characters "
                "(the x-request-id of the answered request)",
                field="request_id",
            )
        if "label" not in doc and "outcome" not in doc:
            raise InvalidInputError(
                "feedback needs a 'label' or an 'outcome'", field="label", request_id=rid
            )
        if self.reqlog is None:
            raise ServiceUnavailable(
                "the feedback log is off on this server",
                hint="start the server with an artifact store (modelyard serve writes to the "
                "project's artifact store by default)",
            )
        extra = {k: v for k, v in doc.items() if k not in ("request_id", "label", "outcome")}
        if not self.reqlog.add_feedback(rid, doc.get("label"), doc.get("outcome"), extra):
            self.metrics.dropped_log_records = self.reqlog.dropped
            raise ServiceUnavailable("the feedback log is behind; retry shortly")
        self.metrics.feedback_records += 1
        self._answer(req, 202, orjson.dumps({"request_id": rid, "accepted": True}), req.path)

    def _admin_flush(self, req: Request) -> None:
        if not self._method(req, "POST"):
            return
        self._check_auth(req)
        if self.reqlog is None:
            raise ServiceUnavailable("the request log is off on this server")
        reqlog = self.reqlog
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, reqlog.flush)

        def done(f: asyncio.Future[list[str]]) -> None:
            exc = f.exception()
            if exc is not None:
                log.error("request log flush failed", extra={"error": str(exc)})
                self._error(req, ServiceUnavailable(f"the request log could not be written: {exc}"))
                return
            self._answer(req, 200, orjson.dumps({"written": f.result()}), req.path)

        fut.add_done_callback(done)

    # --- the hot paths
    def _submit(
        self, req: Request, decoded: Any, done: Callable[[Item, Any], None], v2_id: Any
    ) -> None:
        b = self.batcher
        assert b is not None
        if self.draining:
            raise ServiceUnavailable(
                "the server is shutting down; retry on another replica",
                hint="this is expected during a rolling update",
            )
        if not b.alive():
            raise ServiceUnavailable(
                "no model worker is alive; retry shortly",
                hint="the workers are being restarted; see the server log",
            )
        item = Item(
            decoded.key,
            decoded.rows,
            decoded.data,
            done,
            req.t0 + self.settings.timeout_s,
            req.request_id,
        )
        item.ctx = (req, decoded.instances, v2_id)
        b.submit(item)

    def _predict(self, req: Request) -> None:
        if not self._method(req, "POST"):
            return
        assert self.codec is not None
        decoded = self.codec.v1(_loads(req.body))
        req.body = b""  # queued requests hold their packed rows, not their JSON text
        self._submit(req, decoded, self._done_v1, None)

    def _infer(self, req: Request) -> None:
        if not self._method(req, "POST"):
            return
        assert self.codec is not None
        body = req.body
        binary = None
        head_len = req.headers.get(b"inference-header-content-length")
        if head_len is not None:
            if not head_len.isdigit() or int(head_len) > len(body):
                raise InvalidInputError(
                    f"Inference-Header-Content-Length {head_len[:20].decode('latin-1')!r} is not "
                    f"a length within the body ({len(body)} bytes)",
                    field="Inference-Header-Content-Length",
                )
            n = int(head_len)
            body, binary = body[:n], body[n:]
        doc = _loads(body)
        decoded, v2_id = self.codec.v2(doc, binary)
        req.body = body = b""  # queued requests hold their packed rows, not their JSON text
        self._submit(req, decoded, self._done_v2, (v2_id, _wants_binary(doc)))

    def _done_v1(self, item: Item, result: Any) -> None:
        self._done(item, result, v2=False)

    def _done_v2(self, item: Item, result: Any) -> None:
        self._done(item, result, v2=True)

    def _done(self, item: Item, result: Any, *, v2: bool) -> None:
        """Answer one request from its batch's result (or the error that ended it)."""
        req, instances, v2_id = item.ctx
        route = self._route_label(req)
        codec = self.codec
        assert codec is not None
        try:
            if isinstance(result, ModelyardError):
                raise result
            outputs = codec.outputs_of(item, result)
            head_len = None
            if v2:
                body, head_len = codec.v2_body(outputs, v2_id[0], binary=v2_id[1])
            else:
                body = codec.v1_body(outputs)
        except ModelyardError as exc:
            self._error(req, exc, route)
            return
        except Exception as exc:  # a bug of ours or an odd model output: answer, never hang
            log.exception("could not encode an answer", extra={"request_id": req.request_id})
            self._error(req, ModelyardError(f"internal error: {type(exc).__name__}"), route)
            return
        if head_len is None:
            self._answer(req, 200, body, route)
        else:
            self._answer(
                req,
                200,
                body,
                route,
                content_type=b"application/octet-stream",
                headers=[(b"inference-header-content-length", str(head_len).encode())],
            )
        if self.reqlog is not None:
            if instances is None and item.key[0] == "t":
                instances = np.frombuffer(item.data, dtype=item.key[1]).reshape(
                    (item.rows, *item.key[2])
                )
            self.reqlog.add_request(
                req.request_id, instances, outputs, 200, time.monotonic() - req.t0
            )


def _wants_binary(doc: Any) -> bool:
    """Did a v2 request ask for binary outputs (``binary_data_output`` or per output)?"""
    params = doc.get("parameters")
    if type(params) is dict and params.get("binary_data_output") is True:
        return True
    outputs = doc.get("outputs")
    if type(outputs) is list:
        for out in outputs:
            p = out.get("parameters") if type(out) is dict else None
            if type(p) is dict and p.get("binary_data") is True:
                return True
    return False


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(
            f"the body is not valid JSON: {exc}"[:300], hint="send a JSON document"
        ) from None


def _too_large_error(size: int, limit: int) -> ModelyardError:
    from modelyard.errors import PayloadTooLarge

    return PayloadTooLarge(
        f"the body has {size} bytes; this server takes at most {limit}",
        hint="send smaller requests, or raise serving.max_body_bytes",
        size_bytes=size,
        max_body_bytes=limit,
    )
