"""The small request handlers of a front: probes, metadata, metrics, OpenAPI, feedback, flush.

Each handler is a callable ``(Request) -> None`` that answers through the :class:`Front`;
inference lives in ``_inference``. :func:`install` puts them on a front's route table.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from modelyard import __version__
from modelyard.errors import InvalidInputError, NotFoundError, ServiceUnavailable
from modelyard.logs import get_logger
from modelyard.serving import _metrics
from modelyard.serving._front import Front, loads
from modelyard.serving._inference import Inference
from modelyard.serving._openapi import openapi_document
from modelyard.serving._pool import VersionPool
from modelyard.serving.http import Request

__all__ = ["install"]

log = get_logger("modelyard.serving")

_TEXT = b"text/plain; version=0.0.4; charset=utf-8"


def install(front: Front) -> None:
    """Put the probes, metrics, feedback and model routes on ``front``'s route table."""
    probes = Probes(front)
    metrics = Metrics(front)
    feedback = Feedback(front)
    models = ModelRoutes(front, probes, Inference(front))
    for path in ("/v2/health/live", "/healthz"):
        front.add_route(path, probes.live)
    for path in ("/v2/health/ready", "/readyz"):
        front.add_route(path, probes.ready)
    front.add_route("/v2", probes.server_metadata)
    front.add_route("/metrics", metrics)
    front.add_route("/openapi.json", models.openapi)
    front.add_route("/v1/feedback", feedback.feedback)
    front.add_route("/v1/admin/flush", feedback.flush)
    front.dynamic = models.unknown
    front.on_versions_changed.append(models.refresh)


class Probes:
    """Liveness, readiness and metadata."""

    def __init__(self, front: Front) -> None:
        self.front = front

    def live(self, req: Request) -> None:
        if self.front.method(req, "GET", "HEAD"):
            self.front.answer(req, 200, b'{"live":true}', req.path)

    def ready(self, req: Request) -> None:
        f = self.front
        if not f.method(req, "GET", "HEAD"):
            return
        if f.ready():
            f.answer(req, 200, b'{"ready":true}', req.path)
            return
        pool = f.pools.get(f.stable)
        b = pool.batcher if pool is not None else None
        body = {
            "ready": False,
            "draining": f.draining,
            "workers_alive": b.alive() if b else 0,
            "workers": b.n_workers if b else 0,
        }
        f.answer(req, 503, orjson.dumps(body), req.path, headers=[(b"retry-after", b"1")])

    def server_metadata(self, req: Request) -> None:
        if self.front.method(req, "GET"):
            body = {
                "name": "modelyard",
                "version": __version__,
                "extensions": ["binary_tensor_data"],
            }
            self.front.answer(req, 200, orjson.dumps(body), req.path)

    def model_metadata(self, req: Request, pool: VersionPool) -> None:
        if self.front.method(req, "GET"):
            assert pool.codec is not None
            meta = pool.codec.metadata()
            if pool.version == self.front.stable and "/versions/" not in req.path:
                meta["versions"] = sorted(self.front.pools)
            self.front.answer(req, 200, orjson.dumps(meta), self.front.label(req), pool=None)

    def model_ready(self, req: Request, pool: VersionPool) -> None:
        f = self.front
        if not f.method(req, "GET"):
            return
        ok = not f.draining and pool.ready()
        body = orjson.dumps({"name": pool.name, "version": pool.version, "ready": ok})
        f.answer(req, 200 if ok else 503, body, f.label(req))


class Metrics:
    """``GET /metrics``: every version's metrics in the Prometheus text format."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.registry: Any = None

    def __call__(self, req: Request) -> None:
        f = self.front
        if not f.method(req, "GET"):
            return
        if self.registry is None:
            self.registry = _metrics.registry(f.all_metrics)
        for pool in f.pools.values():
            pool.sweep()
        f.answer(req, 200, _metrics.render(self.registry), req.path, content_type=_TEXT)


class Feedback:
    """``POST /v1/feedback`` (labels for answered requests) and ``POST /v1/admin/flush``."""

    def __init__(self, front: Front) -> None:
        self.front = front

    def feedback(self, req: Request) -> None:
        f = self.front
        if not f.method(req, "POST"):
            return
        # labels steer monitoring and retraining: the same token as management, or its own
        f.check_admin(req, f.feedback_token, "serving.feedback_token")
        doc = loads(req.body)
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
        version = doc.get("version", f.stable)
        pool = f.pools.get(version) if type(version) is str else None
        if pool is None:
            raise InvalidInputError(
                f"'version' {str(version)[:50]!r} is not served here; served: {sorted(f.pools)}",
                field="version",
            )
        if pool.reqlog is None:
            raise ServiceUnavailable(
                "the feedback log is off on this server",
                hint="start the server with an artifact store (modelyard serve writes to the "
                "project's artifact store by default)",
            )
        extra = {
            k: v for k, v in doc.items() if k not in ("request_id", "label", "outcome", "version")
        }
        if not pool.reqlog.add_feedback(rid, doc.get("label"), doc.get("outcome"), extra):
            pool.sweep()
            raise ServiceUnavailable("the feedback log is behind; retry shortly")
        pool.metrics.feedback_records += 1
        body = orjson.dumps({"request_id": rid, "accepted": True, "version": pool.version})
        f.answer(req, 202, body, req.path)

    def flush(self, req: Request) -> None:
        f = self.front
        if not f.method(req, "POST"):
            return
        f.check_admin(req)
        pools = [p for p in f.pools.values() if p.reqlog is not None]
        if not pools:
            raise ServiceUnavailable("the request log is off on this server")

        async def flush_all() -> list[dict[str, Any]]:
            answers = await asyncio.gather(*(p.flush_log() for p in pools))
            return [a for per_pool in answers for a in per_pool]

        task = asyncio.get_running_loop().create_task(flush_all())

        def done(task: asyncio.Task[list[dict[str, Any]]]) -> None:
            results = task.result()
            written = sorted(n for r in results for n in r.get("written") or ())
            errors = sorted({str(r["error"]) for r in results if r.get("error")})
            if errors:
                log.error("request log flush failed", extra={"errors": errors})
                exc = ServiceUnavailable(
                    f"the request log could not be written: {'; '.join(errors)}"[:1000],
                    hint="free space on the artifact store (or fix its credentials); the "
                    "buffered records are kept for the next flush",
                    written=written,
                )
                f.error(req, exc)
                return
            f.answer(req, 200, orjson.dumps({"written": written}), req.path)

        task.add_done_callback(done)


class ModelRoutes:
    """The per-model routes, rebuilt whenever the served versions change."""

    def __init__(self, front: Front, probes: Probes, inference: Inference) -> None:
        self.front = front
        self.probes = probes
        self.inference = inference
        self.installed: list[str] = []
        self.document = b""

    def refresh(self) -> None:
        f = self.front
        for path in self.installed:
            f.remove_route(path)
        self.installed = []
        name = f.name
        inf = self.inference
        base = f"/v2/models/{name}"
        label = "/v2/models/{name}"
        self._add(base, lambda r: self.probes.model_metadata(r, f.pools[f.stable]), label)
        self._add(base + "/ready", lambda r: self.probes.model_ready(r, f.pools[f.stable]), label)
        self._add(base + "/infer", inf.infer, label + "/infer")
        self._add(f"/v1/models/{name}:predict", inf.predict, "/v1/models/{name}:predict")
        vlabel = "/v2/models/{name}/versions/{v}"
        for version, pool in f.pools.items():
            vbase = f"{base}/versions/{version}"
            self._add(vbase, _bind(self.probes.model_metadata, pool), vlabel)
            self._add(vbase + "/ready", _bind(self.probes.model_ready, pool), vlabel + "/ready")
            self._add(vbase + "/infer", inf.infer_on(pool), vlabel + "/infer")
        stable = f.pools[f.stable]
        assert stable.codec is not None
        self.document = orjson.dumps(
            openapi_document(stable.name, stable.version, stable.codec.metadata())
        )

    def _add(self, path: str, handler: Any, label: str) -> None:
        self.front.add_route(path, handler, label)
        self.installed.append(path)

    def openapi(self, req: Request) -> None:
        if not self.front.method(req, "GET"):
            return
        if not self.document:
            raise self.front.loading_error()
        self.front.answer(req, 200, self.document, req.path)

    def unknown(self, req: Request) -> None:
        """A path not in the table: say why, naming what this server does serve."""
        f = self.front
        path = req.path
        for prefix in ("/v2/models/", "/v1/models/"):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            name = rest.split("/", 1)[0].split(":", 1)[0]
            if not f.pools:
                raise f.loading_error()
            if name == f.name and "/versions/" in rest:
                got = rest.split("/versions/", 1)[1].split("/", 1)[0]
                raise NotFoundError(
                    f"model {f.name!r} has no version {got!r} here; this server serves "
                    f"version{'s' if len(f.pools) > 1 else ''} "
                    f"{', '.join(repr(v) for v in sorted(f.pools))}",
                    model=f.name,
                    version=got,
                )
            if name == f.name:
                raise NotFoundError(
                    f"no route {req.method} {path}",
                    hint="see GET /openapi.json for the routes of this server",
                )
            raise NotFoundError(
                f"model {name!r} is not served here; this server serves {f.name!r}",
                hint=f"use /v2/models/{f.name}/infer or /v1/models/{f.name}:predict",
                model=name,
            )
        raise NotFoundError(
            f"no route {req.method} {path}"[:300],
            hint="see GET /openapi.json for the routes of this server",
        )


def _bind(handler: Any, pool: VersionPool) -> Any:
    return lambda req: handler(req, pool)
