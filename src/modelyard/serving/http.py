"""A lean HTTP/1.1 keep-alive server: an asyncio Protocol around httptools' parser.

Public so that another front (a router, a management endpoint) reuses it: an
``asyncio.loop.create_server`` factory returns :class:`HttpProtocol` with a handler
``(Request) -> None`` that answers each :class:`Request` once with :meth:`Request.respond`
(now or later, from any callback on the loop); answers go out in request order.

Chosen by measurement over uvicorn + Starlette: per request it saves the ASGI scope dict, the
receive/send coroutines and one task, which is most of the front's budget at 10k req/s on a
shared core. What it does: keep-alive, pipelined requests answered in order, chunked and sized
bodies with a body limit (413 and close), back-pressure when the peer stops reading, and a
drain mode for graceful shutdown. What it does not: TLS, HTTP/2, upgrades (put a proxy in front).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable
from http import HTTPStatus

import httptools

__all__ = ["BodyBudget", "Handler", "HttpProtocol", "Request", "build_response"]

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_STATUS_LINES = {
    code: f"HTTP/1.1 {code} {phrase}\r\n".encode("latin-1") for code, phrase in _REASONS.items()
}
MAX_PIPELINED = 64
MAX_URL_BYTES = 16 * 1024  # request target; longer is 414
MAX_HEADER_BYTES = 64 * 1024  # all header names and values of one request; more is 431
KEEPALIVE_IDLE_S = 75.0  # an idle keep-alive connection is closed after this (nginx's default)


def build_response(
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    keep_alive: bool = True,
    head: bool = False,
) -> bytes:
    """The bytes of one HTTP/1.1 response (``head``: the headers only, as HEAD requires)."""
    line = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n".encode("latin-1")
    parts = [
        line,
        b"content-type: ",
        content_type,
        b"\r\ncontent-length: ",
        str(len(body)).encode(),
    ]
    if headers:
        for name, value in headers:
            parts += (b"\r\n", name, b": ", value)
    if not keep_alive:
        parts.append(b"\r\nconnection: close")
    parts += (b"\r\n\r\n", b"" if head else body)
    return b"".join(parts)


class BodyBudget:
    """Bytes of request bodies being received on all connections, and their limit.

    With the per-body limit it bounds the front's memory at any offered load: past the budget a
    new body is refused (503) instead of buffered.
    """

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class Request:
    """One parsed request; the application answers it with :meth:`respond`."""

    __slots__ = (
        "body",
        "conn",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "request_id",
        "response",
        "size",
        "t0",
    )

    def __init__(  # noqa: PLR0917  (one per request: positional arguments are cheaper)
        self,
        conn: HttpProtocol,
        method: str,
        path: str,
        query: str,
        headers: dict[bytes, bytes],
        body: bytes,
        keep_alive: bool,
        t0: float,
    ) -> None:
        self.conn = conn
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.t0 = t0
        self.request_id = ""
        self.response: bytes | None = None
        self.size = len(body)

    def respond(
        self,
        status: int,
        body: bytes,
        content_type: bytes = b"application/json",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Answer once; later calls are ignored (a timeout may have answered first)."""
        if self.response is not None:
            return
        keep = self.keep_alive and not self.conn.closing
        self.response = build_response(
            status, body, content_type, headers, keep_alive=keep, head=self.method == "HEAD"
        )
        self.conn.flush()


Handler = Callable[[Request], None]


class HttpProtocol(asyncio.Protocol):
    """One client connection. ``handler`` is called for each complete request."""

    def __init__(
        self,
        handler: Handler,
        max_body_bytes: int,
        on_close: Callable[[HttpProtocol], None],
        clock: Callable[[], float],
        too_large: Callable[[Request, int, bool], None],
        *,
        budget: BodyBudget | None = None,
    ) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.on_close = on_close
        self.clock = clock
        self.too_large = too_large
        self.budget = budget or BodyBudget(1 << 62)
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: deque[Request] = deque()
        self.closing = False
        self._url = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._size = 0
        self._t0 = 0.0
        self._in_message = False
        self._last_active = clock()
        self._reading_paused = False
        self._writing_paused = False
        self._reject: int = 0

    # --- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.budget.used -= self._size
        self._size = 0
        self.closing = True
        self.transport = None
        self.on_close(self)

    def data_received(self, data: bytes) -> None:
        if self._reject:
            return
        self._last_active = self.clock()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(
                400,
                b'{"error":"InvalidInputError","message":"protocol upgrades are not supported"}',
            )
        except httptools.HttpParserError:
            if self._reject:
                return
            self._fail(400, b'{"error":"InvalidInputError","message":"malformed HTTP request"}')

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if len(self.pending) < MAX_PIPELINED:
            self._resume_reading()

    # --- httptools callbacks
    def on_message_begin(self) -> None:
        self._url = bytearray()
        self._headers = {}
        self._header_bytes = 0
        self._body = []
        self._size = 0
        self._t0 = self.clock()
        self._in_message = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL_BYTES:
            self._refuse(414, f"the request target is longer than {MAX_URL_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(431, f"the request headers are larger than {MAX_HEADER_BYTES} bytes")
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        length = self._headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            self._reject_body(int(length))
        if (
            self._headers.get(b"expect", b"").lower() == b"100-continue"
            and not self.pending  # an interim answer must not overtake earlier responses
            and self.transport is not None
        ):
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        n = len(body)
        self._size += n
        budget = self.budget
        budget.used += n
        if self._size > self.max_body_bytes:
            self._reject_body(self._size, overloaded=False)
            return
        if budget.used > budget.limit:
            self._reject_body(self._size, overloaded=True)
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.budget.used -= self._size
        self._size = 0
        self._in_message = False
        url = bytes(self._url)
        path, sep, query = url.partition(b"?")
        try:
            path_s = path.decode("ascii")
        except UnicodeDecodeError:
            path_s = path.decode("latin-1")
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        req = Request(
            self,
            self.parser.get_method().decode("ascii", "replace"),
            path_s,
            query.decode("latin-1") if sep else "",
            self._headers,
            body,
            self.parser.should_keep_alive(),
            self._t0,
        )
        self.pending.append(req)
        if len(self.pending) >= MAX_PIPELINED:
            self._pause_reading()
        self.handler(req)

    # --- internals
    def _reject_body(self, size: int, *, overloaded: bool = False) -> None:
        """Answer now (413, or 503 past the budget) and close: reading a body we refuse would
        waste memory and time."""
        self.budget.used -= self._size
        self._size = 0
        self._body = []
        self._reject = max(size, 1)
        self._in_message = False
        # keep_alive=False: the connection closes once this answer is written, after the answers
        # owed to earlier pipelined requests (``closing`` now would cut those short)
        req = Request(
            self, "POST", self._url.decode("latin-1"), "", self._headers, b"", False, self._t0
        )
        self.pending.append(req)
        self.too_large(req, size, overloaded)
        raise httptools.HttpParserError("body refused")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` and close, from inside a parser callback."""
        import orjson

        self._reject = 1
        self._fail(status, orjson.dumps({"error": "InvalidInputError", "message": message}))
        raise httptools.HttpParserError(message)

    def stale(self, now: float, request_timeout_s: float) -> bool:
        """Time this connection out? A request still arriving after ``request_timeout_s``
        (slow or stalled clients) gets 408, after the answers owed to earlier requests, and the
        connection closes; a keep-alive connection idle for ``KEEPALIVE_IDLE_S`` closes now."""
        if self.closing or self.transport is None:
            return False
        if self._in_message and now - self._t0 > request_timeout_s:
            self._reject = 1
            self._fail(
                408, b'{"error":"TimeoutExceeded","message":"the request was not received in time"}'
            )
            return True
        if not self._in_message and not self.pending and now - self._last_active > KEEPALIVE_IDLE_S:
            self.closing = True
            self.transport.close()
            return True
        return False

    def _fail(self, status: int, body: bytes) -> None:
        """Answer ``status`` for the request being parsed, then close; read nothing more.

        The answer waits its turn behind earlier pipelined requests still in flight: HTTP/1.1
        answers in request order, so writing it now would overtake (and, by closing, lose) theirs.
        """
        self._reject = self._reject or 1
        self._in_message = False  # the request is answered: no 408 for it later
        req = Request(self, "", "", "", {}, b"", False, self.clock())
        rid = [(b"x-request-id", uuid.uuid4().hex.encode())]
        req.response = build_response(status, body, headers=rid, keep_alive=False)
        self.pending.append(req)
        self.flush()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    def flush(self) -> None:
        """Write the answered requests at the head of the pipeline, in order."""
        pending = self.pending
        transport = self.transport
        while pending and pending[0].response is not None:
            req = pending.popleft()
            if transport is None:
                continue
            transport.write(req.response)  # type: ignore[arg-type]
            if not req.keep_alive or self.closing:
                self.closing = True
                transport.close()
                self.transport = transport = None
        if not self._writing_paused and len(pending) < MAX_PIPELINED:
            self._resume_reading()

    def busy(self, now: float, first_request_s: float = 1.0) -> bool:
        """Does the drain wait for this connection? A request is being received or answered,
        or it was accepted less than ``first_request_s`` ago and its first request has not
        begun yet (a connection taken from the listen backlog)."""
        if self.transport is None:
            return False
        if self.pending or self._in_message:
            return True
        return self._t0 == 0.0 and now - self._last_active < first_request_s

    def shutdown(self) -> None:
        """Drain mode: close now if idle, else after the answers already owed."""
        self.closing = True
        if not self.pending and self.transport is not None:
            self.transport.close()
            self.transport = None
