"""A bounded fuzzer over the routes of /openapi.json: no input may produce a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard.serving import ServerHandle

from .conftest import start

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=40,
)
numbers = st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-(2**40), 2**40)
rows = st.lists(st.one_of(numbers, json_leaf), min_size=0, max_size=6)
v1_bodies = st.fixed_dictionaries(
    {"instances": st.one_of(st.lists(rows, max_size=70), json_value)}
) | st.dictionaries(st.sampled_from(["instances", "inputs", "x"]), json_value, max_size=2)
tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["x", "y", ""]) | st.text(max_size=5),
        "shape": st.lists(st.integers(-2, 70), max_size=3) | json_value,
        "datatype": st.sampled_from(
            ["FP32", "FP64", "INT32", "INT64", "BOOL", "BYTES", "FP16", "X"]
        ),
        "data": st.lists(st.one_of(numbers, json_leaf, rows), max_size=12) | json_value,
    }
)
v2_bodies = st.fixed_dictionaries(
    {"inputs": st.lists(tensor, max_size=2) | json_value},
    optional={"id": json_value, "parameters": json_value, "outputs": json_value},
)
raw_bodies = st.binary(max_size=300) | st.sampled_from(
    [b"", b"{", b"[" * 5000, b'{"instances": [' + b"1," * 40000 + b"1]}", b"\xff\xfe", b"null"]
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    handle = start("Linear", tmp, workers=1, serving={"max_body_bytes": 65536})
    yield handle
    assert handle.stop() == 0


@pytest.fixture(scope="module")
def routes(fuzz_server: ServerHandle) -> list[tuple[str, str]]:
    doc = httpx.get(f"{fuzz_server.url}/openapi.json").json()
    out = [(m.upper(), p) for p, item in doc["paths"].items() for m in item]
    assert ("POST", "/v1/models/linear:predict") in out
    return out


def _check(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.headers.get("content-type", "").startswith("application/json"):
        orjson.loads(r.content)
    assert r.headers["x-request-id"]


FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(body=st.one_of(v1_bodies, v2_bodies, json_value), pick=st.integers(0, 10_000))
def test_structured_bodies_never_5xx(
    fuzz_server: ServerHandle, routes: list[tuple[str, str]], body: Any, pick: int
) -> None:
    posts = [p for m, p in routes if m == "POST"]
    path = posts[pick % len(posts)]
    r = httpx.post(f"{fuzz_server.url}{path}", content=json.dumps(body).encode(), timeout=30)
    _check(r)


@FUZZ
@given(
    body=raw_bodies,
    pick=st.integers(0, 10_000),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
)
def test_raw_bodies_and_methods_never_5xx(
    fuzz_server: ServerHandle, routes: list[tuple[str, str]], body: bytes, pick: int, method: str
) -> None:
    _, path = routes[pick % len(routes)]
    r = httpx.request(method, f"{fuzz_server.url}{path}", content=body, timeout=30)
    _check(r)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.text(alphabet="/abcxyz019:%._-?=&", max_size=60))
def test_unknown_paths_never_5xx(fuzz_server: ServerHandle, path: str) -> None:
    r = httpx.get(f"{fuzz_server.url}/{path}", timeout=30)
    _check(r)


def test_huge_body_is_413(fuzz_server: ServerHandle) -> None:
    body = b'{"instances": [' + b"[1,2,3,4]," * 20000 + b"[1,2,3,4]]}"
    r = httpx.post(f"{fuzz_server.url}/v1/models/linear:predict", content=body, timeout=30)
    assert r.status_code == 413


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    head=st.one_of(v2_bodies, json_value),
    tail=st.binary(max_size=80),
    length=st.one_of(
        st.none(), st.integers(-5, 400), st.text(alphabet="0123456789-+abc", max_size=6)
    ),
)
def test_binary_extension_never_5xx(
    fuzz_server: ServerHandle, head: Any, tail: bytes, length: int | str | None
) -> None:
    body = json.dumps(head).encode()
    value = str(len(body) if length is None else length)
    r = httpx.post(
        f"{fuzz_server.url}/v2/models/linear/infer",
        content=body + tail,
        headers={"inference-header-content-length": value},
        timeout=30,
    )
    _check(r)
