"""Which version answers a request: the router seam of a front hosting several versions.

A front (:class:`modelyard.serving.Server`) hosts one model and one or more of its versions,
each with its own worker pool and batcher. For every inference request on the version-less
routes (``/v2/models/NAME/infer``, ``/v1/models/NAME:predict``) it asks its router for a
:class:`Route`: the version that answers, optionally a version that gets a mirrored copy (its
answer is dropped and never waited for) and a version that retries the request when the first
one fails. Routes naming a version (``/v2/models/NAME/versions/V/infer``) bypass the router.

A router is any object with ``route(request, stable) -> Route``; it runs on the front's event
loop for every request, so it must be quick and must not block. A route naming a version the
front does not host (any more) is answered by the stable version.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from modelyard.serving.http import Request

__all__ = ["Route", "Router", "StableRouter"]


class Route(NamedTuple):
    """Where one request goes.

    Attributes:
        version: the version that answers the client.
        mirror: a version that also gets the request, off the client's path (shadow traffic).
        fallback: the version that answers instead when ``version`` fails (any error but a
            timeout), so a failing candidate costs the client nothing but time.
        shared: ``version`` may hand the request, inside one of its batches, to the version
            it shares its batches with (:meth:`Front.share_batches`: a canary's split made
            per batch); that version answers it then, with ``version`` as its fallback.
    """

    version: str
    mirror: str | None = None
    fallback: str | None = None
    shared: bool = False


class Router(Protocol):
    """Chooses the version for a request (canary weights, A/B arms, shadowing, ...)."""

    def route(self, request: Request, stable: str) -> Route:
        """The route of ``request``; ``stable`` is the front's stable version."""
        ...


class StableRouter:
    """The default router: every request goes to the stable version."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}

    def route(self, request: Request, stable: str) -> Route:
        """``Route(stable)`` (one object per stable version: no allocation per request)."""
        r = self._routes.get(stable)
        if r is None:
            r = self._routes[stable] = Route(stable)
        return r
