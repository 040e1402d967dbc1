"""The inference handlers: decode a request, route it to a version, batch it, answer it.

The version-less routes ask the front's router for a :class:`~modelyard.serving.routing.Route`;
the request is decoded by that version's codec and queued on its batcher. A v1 body for a
version whose model has a ``[-1, D]`` numeric input is queued undecoded instead: that version's
worker decodes and checks it with the same codec and sends back its finished answer, so the
front's one event loop parses only HTTP (the decoding runs on the workers, one per core). A
mirrored copy is queued on the mirror version after the handler returns (its answer is counted
and logged, never sent). When the answering version fails and the route names a fallback, the
request is sent again to the fallback (its body, or its decoded document) and answered from
there; a refusal of the input counts as the failing version's 4xx, anything later as its 5xx.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from modelyard.errors import InvalidInputError, ModelyardError, TimeoutExceeded
from modelyard.logs import get_logger
from modelyard.serving._batcher import Item
from modelyard.serving._codec import error_from_json
from modelyard.serving._front import Front, loads
from modelyard.serving._pool import VersionPool
from modelyard.serving.http import Handler, Request
from modelyard.serving.routing import Route

__all__ = ["Inference"]

log = get_logger("modelyard.serving")

_BINARY = b"application/octet-stream"
_HEAD_LEN = b"inference-header-content-length"


class _Call:
    """One request on its way through a version (the ``ctx`` of its batch item)."""

    __slots__ = ("binary", "body", "doc", "fallback", "item", "mirror", "pool", "req", "v2")

    def __init__(  # noqa: PLR0917  (one per request: positional arguments are cheaper)
        self,
        req: Request,
        pool: VersionPool,
        v2: Any,
        doc: Any,
        binary: bytes | None,
        fallback: str | None,
        mirror: bool,
    ) -> None:
        self.req = req
        self.pool = pool
        self.v2 = v2  # None for v1, else (v2 request id, binary answer wanted)
        self.doc = doc  # kept only while a fallback may need to decode it again
        self.binary = binary
        self.fallback = fallback
        self.mirror = mirror
        self.body: bytes | None = None  # a v1 body sent undecoded, kept for a fallback
        self.item: Item | None = None  # when lent by the fallback: its rows, to send back


class Inference:
    """``POST /v1/models/NAME:predict`` and ``POST /v2/models/NAME[/versions/V]/infer``."""

    def __init__(self, front: Front) -> None:
        self.front = front
        front.on_lent = self._lent
        front.on_copy = self._copies

    # --- handlers
    def predict(self, req: Request) -> None:
        f = self.front
        if not f.method(req, "POST"):
            return
        if not f.pools:
            raise f.loading_error()
        route = f.router.route(req, f.stable)
        pool = f.pool_for(route.version)
        if not _raw(pool):
            self._routed(req, None, loads(req.body), None, route)
            return
        # the body goes to a worker undecoded; the worker answers it (or its refusal)
        call = _Call(req, pool, None, None, None, route.fallback, False)
        call.body = req.body
        self._submit_raw(call, route.shared)
        mirror = _mirror_pool(f, route, pool)
        if mirror is not None:
            shadow = _Call(req, mirror, None, None, None, None, True)
            shadow.body = req.body
            asyncio.get_running_loop().call_soon(self._v1, shadow)

    def _v1(self, call: _Call) -> None:
        """Queue a v1 call whose body is not decoded yet: undecoded on a version whose workers
        decode, else decoded here."""
        if _raw(call.pool):
            self._submit_raw(call)
            return
        try:
            call.doc = loads(call.body or b"")
        except ModelyardError as exc:
            self._failed(call, exc, decoded=False)
            return
        self._run(call)

    def _submit_raw(self, call: _Call, shared: bool = False) -> None:
        body = call.body or b""
        codec = call.pool.codec
        key = codec.raw_key if codec is not None else None
        assert key is not None
        item = Item(
            key,
            max(1, body.count(b"[") - 1),  # the rows of [[...], ...] (the worker counts)
            body,
            self._answered,
            call.req.t0 + self.front.settings.timeout_s,
            call.req.request_id,
        )
        item.ctx = call
        item.shared = shared
        if call.fallback is None:
            call.body = None  # the item holds it
        try:
            call.pool.submit(item)
        except ModelyardError as exc:
            call.body = body
            self._failed(call, exc, decoded=False)

    def infer(self, req: Request) -> None:
        if not self.front.method(req, "POST"):
            return
        doc, binary = _v2_doc(req)
        f = self.front
        if not f.pools:
            raise f.loading_error()
        self._routed(req, True, doc, binary, f.router.route(req, f.stable))

    def infer_on(self, pool: VersionPool) -> Handler:
        """The handler of a route naming a version: no router, no mirror, no fallback."""

        def handler(req: Request) -> None:
            if not self.front.method(req, "POST"):
                return
            doc, binary = _v2_doc(req)
            self._run(_Call(req, pool, True, doc, binary, None, False))

        return handler

    def _routed(self, req: Request, v2: Any, doc: Any, binary: bytes | None, route: Route) -> None:
        f = self.front
        pool = f.pool_for(route.version)
        self._run(_Call(req, pool, v2, doc, binary, route.fallback, False), route.shared)
        mirror = _mirror_pool(f, route, pool)
        if mirror is not None:
            shadow = _Call(req, mirror, v2, doc, binary, None, True)
            asyncio.get_running_loop().call_soon(self._run, shadow)

    # --- one request on one version
    def _run(self, call: _Call, shared: bool = False) -> None:
        req = call.req
        pool = call.pool
        codec = pool.codec
        try:
            if codec is None:
                raise self.front.loading_error()
            if call.v2 is None:
                decoded = codec.v1(call.doc)
            else:
                decoded, v2_id = codec.v2(call.doc, call.binary)
                call.v2 = (v2_id, _wants_binary(call.doc))
            if call.fallback is None:
                call.doc = call.binary = None
                if not call.mirror:
                    req.body = b""  # queued requests hold their packed rows, not their JSON text
            item = Item(
                decoded.key,
                decoded.rows,
                decoded.data,
                self._done,
                req.t0 + self.front.settings.timeout_s,
                req.request_id,
            )
            item.ctx = call
            item.shared = shared
            pool.submit(item)
        except ModelyardError as exc:
            self._failed(call, exc, decoded=False)

    def _lent(self, items: list[Item], pool: VersionPool, fallback: str) -> None:
        """``fallback`` (stable) lent these requests, batched, to ``pool``: it answers them
        (its metrics, its ``x-model-version``), and a failure sends their rows back."""
        for item in items:
            call: _Call = item.ctx
            call.pool = pool
            call.fallback = fallback
            call.item = item

    def _copies(self, items: list[Item], pool: VersionPool) -> list[Item]:
        """The items a copy of a batch sent to ``pool`` (a shadow) finishes: each counts its
        request on ``pool`` (as a mirrored request is counted), and is never answered."""
        copies = []
        for item in items:
            call: _Call = item.ctx
            copy = Item(item.key, item.rows, None, item.done, item.deadline, item.request_id)
            copy.ctx = _Call(call.req, pool, call.v2, None, None, None, True)
            copies.append(copy)
        return copies

    def _answered(self, item: Item, result: Any) -> None:
        """Answer one request of a raw batch: the body its worker made, or its error."""
        call: _Call = item.ctx
        if isinstance(result, ModelyardError):
            self._failed(call, result)
            return
        meta, bodies = result
        i = item.index
        status = meta["s"][i]
        if status != 200:  # refused while decoding (the input), or after (its rows, the model)
            self._failed(call, error_from_json(bodies[i]), decoded=i not in meta.get("i", ()))
            return
        req = call.req
        f = self.front
        if call.mirror:  # counted; the mirror's workers log it
            call.pool.metrics.mirrored += 1
            _count(call.pool, req, 200, f.label(req))
            return
        f.answer(req, 200, bodies[i], f.label(req), pool=call.pool)

    def _done(self, item: Item, result: Any) -> None:
        """Answer one request from its batch's result (or the error that ended it)."""
        call: _Call = item.ctx
        req = call.req
        pool = call.pool
        codec = pool.codec
        assert codec is not None
        try:
            if isinstance(result, ModelyardError):
                raise result
            outputs = codec.outputs_of(item, result)
            if call.mirror:  # counted; the mirror's workers log it
                pool.metrics.mirrored += 1
                _count(pool, req, 200, self.front.label(req))
                return
            head_len = None
            if call.v2 is not None:
                body, head_len = codec.v2_body(
                    outputs, call.v2[0], binary=call.v2[1], method=item.key.method
                )
            else:
                body = codec.v1_body(outputs)
        except ModelyardError as exc:
            self._failed(call, exc)
            return
        except Exception as exc:  # a bug of ours or an odd model output: answer, never hang
            log.exception("could not encode an answer", extra={"request_id": req.request_id})
            self._failed(call, ModelyardError(f"internal error: {type(exc).__name__}"))
            return
        f = self.front
        label = f.label(req)
        if head_len is None:
            f.answer(req, 200, body, label, pool=pool)
        else:
            f.answer(
                req,
                200,
                body,
                label,
                pool=pool,
                content_type=_BINARY,
                headers=[(_HEAD_LEN, str(head_len).encode())],
            )

    def _failed(self, call: _Call, exc: ModelyardError, *, decoded: bool = True) -> None:
        """Answer ``exc``, or retry on the route's fallback. A failure after the version
        accepted the request counts as its error; a refusal of the input (a 4xx before it was
        queued) counts as invalid input, not as a failure of the version."""
        f = self.front
        pool = call.pool
        req = call.req
        if call.mirror:
            pool.metrics.mirrored += 1
            _count(pool, req, exc.http_status, f.label(req))
            return
        fallback = f.pools.get(call.fallback) if call.fallback is not None else None
        if fallback is not None and fallback is not pool and not isinstance(exc, TimeoutExceeded):
            pool.metrics.retried += 1
            _count(
                pool, req, max(exc.http_status, 500) if decoded else exc.http_status, f.label(req)
            )
            log.warning(
                "version failed; answering from the fallback",
                extra={
                    "request_id": req.request_id,
                    "version": pool.version,
                    "fallback": fallback.version,
                    "status": exc.http_status,
                    "error": exc.message,
                },
            )
            lent = call.item
            if lent is not None:  # a batch lent by the fallback: the same rows go back to it
                retry = _Call(req, fallback, call.v2, None, None, None, False)
                again = Item(
                    lent.key, lent.rows, lent.data, lent.done, lent.deadline, lent.request_id
                )
                again.ctx = retry
                try:
                    fallback.submit(again)
                except ModelyardError as err:
                    self._failed(retry, err, decoded=False)
                return
            if call.body is not None:  # sent undecoded: so is the retry, where its workers decode
                retry = _Call(req, fallback, None, None, None, None, False)
                retry.body = call.body
                self._v1(retry)
                return
            v2 = None if call.v2 is None else True
            self._run(_Call(req, fallback, v2, call.doc, call.binary, None, False))
            return
        if pool.reqlog is not None:  # refused: logged with null inputs and outputs
            pool.reqlog.add_refused(req.request_id, exc.http_status, time.monotonic() - req.t0)
        f.error(req, exc, f.label(req), pool=pool)


#: requests queued on the answering version (this one included) from which no copy is made
_MIRROR_BACKLOG = 4


def _mirror_pool(f: Front, route: Route, answering: VersionPool) -> VersionPool | None:
    """The version that gets a mirrored copy of this request, if any.

    No copy while the mirror's queue already holds a full batch: a shadow runs at low CPU
    priority (it takes what the answering version leaves), so it can fall behind; its copies
    are then skipped and counted (``modelyard_mirror_skipped_requests_total``) instead of
    filling its queue and being refused as errors of the candidate. Nor while the answering
    version has a backlog (``_MIRROR_BACKLOG`` requests queued, this one included): a copy
    costs the front's one event loop too, and the users come first. Measured with a shadow at
    100 % on a saturated 2-core machine: copying every request the shadow could take, stable
    served 14.8k req/s at p99 9.1 ms (17.3k, 6.3 ms without a shadow); backing off at a backlog
    of 4, 16.3k at 7.4 ms, with 9 % of the requests copied (all of them when not saturated).
    """
    name = route.mirror
    if name is None or name == answering.version:
        return None
    pool = f.pools.get(name)
    if pool is None or pool.batcher is None:
        return None
    behind = pool.batcher.queued >= f.settings.max_batch_size
    busy = answering.batcher is not None and answering.batcher.queued >= _MIRROR_BACKLOG
    if behind or busy:
        pool.metrics.mirror_skipped += 1
        return None
    return pool


def _raw(pool: VersionPool) -> bool:
    """Do this version's workers decode v1 bodies themselves?"""
    codec = pool.codec
    return codec is not None and codec.raw_key is not None


def _count(pool: VersionPool, req: Request, status: int, route: str) -> None:
    """Count an attempt whose answer the client does not get (a mirrored copy, or a failure
    answered by the fallback) in its version's metrics, the Prometheus ones included."""
    seconds = time.monotonic() - req.t0
    pool.metrics.observe_request(route, status, seconds, req.size)
    pool.metrics.observe_inference(status, seconds)


def _v2_doc(req: Request) -> tuple[Any, bytes | None]:
    """The JSON header of a v2 request and, with the binary extension, the bytes after it."""
    body = req.body
    binary = None
    head_len = req.headers.get(_HEAD_LEN)
    if head_len is not None:
        if not head_len.isdigit() or int(head_len) > len(body):
            raise InvalidInputError(
                f"Inference-Header-Content-Length {head_len[:20].decode('latin-1')!r} is not "
                f"a length within the body ({len(body)} bytes)",
                field="Inference-Header-Content-Length",
            )
        n = int(head_len)
        body, binary = body[:n], body[n:]
    return loads(body), binary


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
