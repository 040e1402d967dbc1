"""The per-request router: weights, mirrors, sticky keys."""

from __future__ import annotations

import random

from modelyard.delivery import RolloutRouter, RoutePlan
from modelyard.delivery.router import key_of, sticky_share


class _Req:
    def __init__(self, headers: dict[bytes, bytes] | None = None, body: bytes = b"{}") -> None:
        self.headers = headers or {}
        self.body = body
        self.path = "/v2/models/m/infer"


def test_split_sends_about_the_weight_and_names_stable_as_fallback() -> None:
    router = RolloutRouter(RoutePlan("2", "split", 10.0), rng=random.Random(1))
    routes = [router.route(_Req(), "1") for _ in range(10_000)]
    to_candidate = [r for r in routes if r.version == "2"]
    assert 800 < len(to_candidate) < 1200
    assert {r.fallback for r in to_candidate} == {"1"}
    assert {r.fallback for r in routes if r.version == "1"} == {None}


def test_mirror_always_answers_from_stable() -> None:
    router = RolloutRouter(RoutePlan("2", "mirror", 100.0))
    route = router.route(_Req(), "1")
    assert (route.version, route.mirror) == ("1", "2")


def test_no_candidate_or_preview_routes_to_stable() -> None:
    assert RolloutRouter().route(_Req(), "1").version == "1"
    assert RolloutRouter(RoutePlan("2", "preview", 0.0)).route(_Req(), "1").version == "1"


def test_sticky_keys_keep_their_arm_and_only_move_towards_the_candidate() -> None:
    keys = [f"user-{i}" for i in range(2000)]
    at = {w: {k for k in keys if sticky_share("r1", k) * 100 < w} for w in (10, 50)}
    assert at[10] <= at[50]
    assert 100 < len(at[10]) < 300
    router = RolloutRouter(RoutePlan("2", "sticky", 50.0, salt="r1"))
    for k in keys[:50]:
        version = router.route(_Req({b"x-modelyard-key": k.encode()}), "1").version
        assert (version == "2") == (k in at[50])
    # no key: stable
    assert router.route(_Req(), "1").version == "1"


def test_keys_from_header_cookie_and_field() -> None:
    headers = {b"x-user": b"u1", b"cookie": b"a=1; arm=zz"}
    assert key_of("header:X-User", headers, b"") == "u1"
    assert key_of("cookie:arm", headers, b"") == "zz"
    assert key_of("cookie:none", headers, b"") is None
    body = b'{"instances": [{"customer_id": 42, "x": 1}]}'
    assert key_of("field:customer_id", {}, body) == "42"
    assert key_of("field:customer_id", {}, b'{"customer_id": "c9"}') == "c9"
    assert key_of("field:customer_id", {}, b"not json") is None


def test_a_pinned_version_bypasses_the_plan_and_is_not_replayed() -> None:
    router = RolloutRouter(RoutePlan("2", "split", 0.0))
    assert router.route(_Req({b"x-modelyard-version": b"2"}), "1").version == "2"
    assert not router.recent
    router.route(_Req(body=b'{"inputs": []}'), "1")
    assert list(router.recent) == [("/v2/models/m/infer", b'{"inputs": []}', None)]
