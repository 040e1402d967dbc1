"""The per-request router of a rollout: which version answers, which gets a mirrored copy.

:class:`RolloutRouter` implements the serving front's router seam (``route(request, stable)``)
from a :class:`RoutePlan` the rollout state machine swaps in atomically (one attribute
assignment on the event loop: no lock). A request routed to the candidate names stable as its
fallback, so a request the candidate fails is answered by stable.

Sticky assignment (A/B) hashes the key with the rollout id: ``u = blake2b(id + key)`` read as a
number in [0, 1), and the key goes to the candidate when ``u < weight``. The same key gets the
same arm after a restart, and raising the weight only moves keys towards the candidate.

A request with an ``x-modelyard-version`` header goes to that version (the preview of a
blue-green rollout, and the load test, which replays the latest user requests it keeps).
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

from modelyard.delivery.strategies import Mode
from modelyard.serving.routing import Route

__all__ = ["RolloutRouter", "RoutePlan", "key_of", "sticky_share"]

_MAX = float(1 << 64)
#: a request carrying this header is answered by the version it names (preview, load tests);
#: a version not served is answered by stable
PIN_HEADER = b"x-modelyard-version"
_HEAD_LEN = b"inference-header-content-length"


@dataclass(frozen=True)
class RoutePlan:
    """How traffic is split now.

    Attributes:
        candidate: the candidate's version label, or ``None`` when all traffic goes to stable.
        mode: the step's mode (see :class:`modelyard.delivery.Step`).
        weight: the candidate's share (or the mirrored share), 0-100.
        key: for ``sticky``: ``header:NAME``, ``cookie:NAME`` or ``field:NAME``.
        salt: for ``sticky``: mixed into the hash (the rollout id).
        batched: for ``split`` and ``mirror``: the front splits or mirrors per batch
            (``Front.share_batches``), so every request is routed to stable, which may lend
            it to the candidate, or send the candidate a copy of its batch.
    """

    candidate: str | None = None
    mode: Mode = "split"
    weight: float = 0.0
    key: str = "header:x-modelyard-key"
    salt: str = ""
    batched: bool = False


def sticky_share(salt: str, key: str) -> float:
    """Where ``key`` falls in [0, 1) for a rollout salted with ``salt`` (stable across runs)."""
    digest = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _MAX


def key_of(spec: str, headers: dict[bytes, bytes], body: bytes) -> str | None:
    """The sticky key of a request: a header, a cookie or a top-level field of a JSON body
    (for v1 ``{"instances": [{...}]}`` bodies, the field of the first instance)."""
    kind, _, name = spec.partition(":")
    if kind == "header":
        value = headers.get(name.lower().encode())
        return value.decode("latin-1") if value else None
    if kind == "cookie":
        raw = headers.get(b"cookie", b"").decode("latin-1")
        for part in raw.split(";"):
            k, _, v = part.strip().partition("=")
            if k == name:
                return v or None
        return None
    if kind == "field":
        import orjson

        try:
            doc: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if isinstance(doc, dict) and isinstance(doc.get("instances"), list) and doc["instances"]:
            doc = doc["instances"][0]
        if isinstance(doc, dict) and name in doc and doc[name] is not None:
            return str(doc[name])
    return None


class RolloutRouter:
    """Routes requests by the current :class:`RoutePlan` (``plan`` may be swapped any time).

    Args:
        plan: the starting plan (default: everything to stable).
        rng: the random source for ``split`` and ``mirror`` (a seam for tests).
    """

    def __init__(
        self,
        plan: RoutePlan | None = None,
        rng: random.Random | None = None,
        *,
        keep_recent: int = 256,
    ) -> None:
        self.plan = plan or RoutePlan()
        self._random = (rng or random.Random()).random
        self._shared_routes: dict[str, Route] = {}
        #: the latest user requests (path, body, binary header length), replayed by load tests
        self.recent: deque[tuple[str, bytes, bytes | None]] = deque(maxlen=keep_recent)

    @staticmethod
    def _route(version: str, mirror: str | None = None, fallback: str | None = None) -> Route:
        return Route(version, mirror, fallback)

    def _shared(self, stable: str) -> Route:
        """Stable's route, its requests shared (one object per stable version)."""
        r = self._shared_routes.get(stable)
        if r is None:
            r = self._shared_routes[stable] = Route(stable, shared=True)
        return r

    def route(self, request: Any, stable: str) -> Route:
        """The serving front's router seam: a ``Route`` for ``request``."""
        headers = request.headers
        pinned = headers.get(PIN_HEADER)
        if pinned is not None:  # a preview or load-test request naming its version
            return self._route(pinned.decode("latin-1"))
        self.recent.append((request.path, request.body, headers.get(_HEAD_LEN)))
        plan = self.plan
        cand = plan.candidate
        if cand is None or cand == stable:
            return self._route(stable)
        mode = plan.mode
        if mode == "split":
            if plan.batched:
                return self._shared(stable)
            if self._random() * 100.0 < plan.weight:
                return self._route(cand, None, stable)
            return self._route(stable)
        if mode == "mirror":
            if plan.batched:
                return self._shared(stable)
            if self._random() * 100.0 < plan.weight:
                return self._route(stable, cand)
            return self._route(stable)
        if mode == "switched":
            return self._route(cand, None, stable)
        if mode == "sticky":
            key = key_of(plan.key, request.headers, request.body)
            if key is None:  # no key: stable, so an unkeyed client never flips between arms
                return self._route(stable)
            if sticky_share(plan.salt, key) * 100.0 < plan.weight:
                return self._route(cand, None, stable)
            return self._route(stable)
        return self._route(stable)  # preview: the candidate answers only on its own route
