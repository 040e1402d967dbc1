"""The HTTP contract: v2 and v1 routes, probes, metadata, errors naming the field."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from modelyard.serving import ServerHandle

from .conftest import metric

ROW = [1.0, 2.0, 3.0, 4.0]


def test_v1_predict_answers_each_instance(client: httpx.Client) -> None:
    r = client.post("/v1/models/linear:predict", json={"instances": [ROW, [0, 0, 0, 1]]})
    assert r.status_code == 200
    assert r.json() == {"predictions": [[12.0, 1.0], [2.0, -1.0]]}
    assert r.headers["x-request-id"]


def test_v2_infer_flat_and_nested_data(client: httpx.Client) -> None:
    for path in ("/v2/models/linear/infer", "/v2/models/linear/versions/7/infer"):
        body = {
            "id": "req-1",
            "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": ROW + ROW}],
        }
        r = client.post(path, json=body)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["model_name"] == "linear"
        assert doc["model_version"] == "7"
        assert doc["id"] == "req-1"
        assert doc["outputs"] == [
            {"name": "y", "datatype": "FP32", "shape": [2, 2], "data": [12.0, 1.0, 12.0, 1.0]}
        ]
    nested = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [ROW]}]}
    r = client.post("/v2/models/linear/infer", json=nested)
    assert r.status_code == 200
    assert r.json()["outputs"][0]["data"] == [12.0, 1.0]


def test_request_id_is_honoured(client: httpx.Client) -> None:
    r = client.post(
        "/v1/models/linear:predict", json={"instances": [ROW]}, headers={"x-request-id": "abc-42"}
    )
    assert r.headers["x-request-id"] == "abc-42"
    other = client.get("/v2/health/live")
    assert other.headers["x-request-id"] != "abc-42"


def test_probes_and_metadata(client: httpx.Client) -> None:
    for path in ("/v2/health/live", "/healthz", "/v2/health/ready", "/readyz"):
        assert client.get(path).status_code == 200, path
    assert client.get("/v2/models/linear/ready").json() == {
        "name": "linear",
        "version": "7",
        "ready": True,
    }
    assert client.get("/v2").json()["name"] == "modelyard"
    meta = client.get("/v2/models/linear").json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["versions"] == ["7"]
    assert client.get("/v2/models/linear/versions/7").status_code == 200


def test_openapi_describes_both_protocols(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/v2/models/linear/infer" in doc["paths"]
    assert "/v1/models/linear:predict" in doc["paths"]
    assert "post" in doc["paths"]["/v1/feedback"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"instances": [[1, 2, 3]]}, 400, "instances[0] has 3 values; expected a list of 4"),
        ({"instances": [[1, 2, 3, "x"]]}, 400, "instances[0][3] is a JSON string"),
        ({"instances": [[1, 2, 3, None]]}, 400, "instances[0][3] is a JSON null"),
        ({"instances": [ROW, 7]}, 400, "instances[1] has a JSON int"),
        ({"instances": []}, 400, "instances is empty"),
        ({"instances": "no"}, 400, "'instances' must be a JSON array"),
        ({"rows": [ROW]}, 400, "'instances' must be a JSON array"),
        ([ROW], 400, "the body must be a JSON object"),
        (
            {"instances": [[1, 2, 3, 5000]]},
            422,
            "instances[0][3] = 5000.0 is out of range; expected a finite value, -1000.0 <= value",
        ),
        (
            {"instances": [[1, 2, 3, 1e300]]},
            422,
            "instances[0][3] = 1e+300 is out of range for FP32",
        ),
        ({"instances": [ROW] * 65}, 413, "at most 64 per request"),
    ],
)
def test_bad_instances_name_the_field(
    client: httpx.Client, body: object, status: int, words: str
) -> None:
    r = client.post("/v1/models/linear:predict", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]
    assert r.json()["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize(
    ("tensor", "words"),
    [
        ({"name": "z", "shape": [1, 4], "datatype": "FP32", "data": ROW}, "expected 'x'"),
        ({"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}, "takes FP32"),
        ({"name": "x", "shape": [1, 4], "datatype": "FP99", "data": ROW}, "datatype 'FP99'"),
        ({"name": "x", "shape": [1, 5], "datatype": "FP32", "data": [*ROW, 1]}, "shape [5]"),
        ({"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ROW[:3]}, "needs 4"),
        ({"name": "x", "shape": [-1, 4], "datatype": "FP32", "data": ROW}, "inputs[0].shape"),
        ({"name": "x", "shape": [1, 4], "datatype": "FP32", "data": "abc"}, "must be a JSON array"),
        ({"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, "a", 4]}, "not a FP32"),
    ],
)
def test_bad_v2_tensors_name_the_field(client: httpx.Client, tensor: dict, words: str) -> None:
    r = client.post("/v2/models/linear/infer", json={"inputs": [tensor]})
    assert r.status_code == 400, r.text
    assert words in r.json()["message"]


def test_malformed_json_and_unknown_routes(client: httpx.Client) -> None:
    r = client.post("/v1/models/linear:predict", content=b"{not json")
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["message"]
    r = client.post("/v1/models/other:predict", json={"instances": [ROW]})
    assert r.status_code == 404
    assert "'other' is not served here" in r.json()["message"]
    r = client.get("/v2/models/linear/versions/3")
    assert r.status_code == 404
    assert "no version '3'" in r.json()["message"]
    assert client.get("/nowhere").status_code == 404
    r = client.get("/v1/models/linear:predict")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"


def test_oversized_body_gets_413(linear: ServerHandle) -> None:
    size = 8 * 1024 * 1024 + 1
    with socket.create_connection(("127.0.0.1", linear.port), timeout=10) as s:
        s.sendall(
            b"POST /v1/models/linear:predict HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"at most 8388608" in data


def test_chunked_body_over_the_limit_gets_413(server_factory: Callable[..., ServerHandle]) -> None:
    h = server_factory("Linear", serving={"max_body_bytes": 1000})

    def chunks():
        for _ in range(10):
            yield b"x" * 500

    r = httpx.post(f"{h.url}/v1/models/linear:predict", content=chunks(), timeout=10)
    assert r.status_code == 413


def test_pipelined_requests_answer_in_order(linear: ServerHandle) -> None:
    reqs = b"".join(
        b"POST /v1/models/linear:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        for body in (f'{{"instances": [[{i}, 0, 0, 0]]}}'.encode() for i in range(20))
    )
    with socket.create_connection(("127.0.0.1", linear.port), timeout=10) as s:
        s.sendall(reqs)
        data = b""
        while data.count(b"HTTP/1.1 200") < 20 or not data.endswith(b"]]}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    answers = [part.split(b"\r\n\r\n", 1)[1][:40] for part in data.split(b"HTTP/1.1 ")[1:]]
    assert answers == [f'{{"predictions":[[{i}.0,0.0]]}}'.encode() for i in range(20)]


def test_json_instances_without_signature(server_factory: Callable[..., ServerHandle]) -> None:
    h = server_factory("Words")
    r = httpx.post(f"{h.url}/v1/models/words:predict", json={"instances": ["ab", "abcd"]})
    assert r.json() == {"predictions": [{"length": 2}, {"length": 4}]}
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["xyz"]}]}
    r = httpx.post(f"{h.url}/v2/models/words/infer", json=body)
    assert r.status_code == 200
    assert r.json()["outputs"][0]["data"] == [{"length": 3}]


def test_fields_pre_and_postprocess(server_factory: Callable[..., ServerHandle]) -> None:
    h = server_factory("Prices")
    url = f"{h.url}/v1/models/prices:predict"
    r = httpx.post(
        url, json={"instances": [{"rooms": 2, "city": "PARIS"}, {"rooms": 1, "city": "lyon"}]}
    )
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["price"] for p in preds] == [200, 50]
    # postprocess ran in the front process (the launched process), not in a worker
    assert preds[0]["front_pid"] == h.pid
    cases = [
        ({"rooms": 2}, 400, "instances[0].city is missing"),
        (
            {"rooms": "2", "city": "lyon"},
            400,
            "instances[0].rooms is a JSON string; expected a integer",
        ),
        ({"rooms": 99, "city": "lyon"}, 422, "instances[0].rooms = 99 is out of range"),
        ({"rooms": 2, "city": "nice"}, 422, "'nice' is not an allowed category"),
    ]
    for inst, status, words in cases:
        r = httpx.post(url, json={"instances": [inst]})
        assert r.status_code == status, r.text
        assert words in r.json()["message"]


def test_a_bad_request_does_not_fail_its_batch(server_factory: Callable[..., ServerHandle]) -> None:
    h = server_factory("Picky", serving={"max_wait_ms": 50})
    url = f"{h.url}/v1/models/picky:predict"
    from concurrent.futures import ThreadPoolExecutor

    values = list(range(30))
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda v: httpx.post(url, json={"instances": [[v]]}, timeout=30), values)
        )
    for v, r in zip(values, answers, strict=True):
        if v == 13:
            assert r.status_code == 422
            assert "13 is unlucky" in r.json()["message"]
        else:
            assert r.status_code == 200
            assert r.json() == {"predictions": [[v * 2]]}


def test_launch_reports_a_model_that_cannot_load(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    from modelyard.errors import ServiceUnavailable

    with pytest.raises(ServiceUnavailable, match="exited with code 2"):
        server_factory("BrokenLoad")
    log = (tmp_path / "server.log").read_text()
    assert "weights file is missing" in log
    assert "could not load the model" in log


def test_v2_binary_tensor_extension(client: httpx.Client) -> None:
    import numpy as np
    import orjson

    x = np.array([ROW, [0, 0, 0, 1]], dtype="<f4")
    head = orjson.dumps(
        {
            "id": "bin",
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    r = client.post(
        "/v2/models/linear/infer",
        content=head + x.tobytes(),
        headers={"inference-header-content-length": str(len(head))},
    )
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    doc = orjson.loads(r.content[:n])
    out = doc["outputs"][0]
    assert out["shape"] == [2, 2]
    assert "data" not in out
    assert out["parameters"]["binary_data_size"] == 16
    y = np.frombuffer(r.content[n:], dtype="<f4").reshape(out["shape"])
    assert y.tolist() == [[12.0, 1.0], [2.0, -1.0]]
    # binary in, JSON out
    head = head.replace(b',"parameters":{"binary_data_output":true}', b"")
    r = client.post(
        "/v2/models/linear/infer",
        content=head + x.tobytes(),
        headers={"inference-header-content-length": str(len(head))},
    )
    assert r.json()["outputs"][0]["data"] == [12.0, 1.0, 2.0, -1.0]
    # a size that does not match the shape names the field
    r = client.post(
        "/v2/models/linear/infer",
        content=head + x.tobytes()[:-4],
        headers={"inference-header-content-length": str(len(head))},
    )
    assert r.status_code == 400
    assert "needs 32" in r.json()["message"]
    r = client.post(
        "/v2/models/linear/infer",
        content=head,
        headers={"inference-header-content-length": "999"},
    )
    assert r.status_code == 400
    assert "Inference-Header-Content-Length" in r.json()["message"]


def test_bodies_beyond_the_memory_budget_get_503(
    server_factory: Callable[..., ServerHandle],
) -> None:
    # budget: 8 bodies of max_body_bytes; nine clients each stall half-way through a big body
    h = server_factory("Linear", serving={"max_body_bytes": 10_000})
    socks = []
    try:
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
            s.sendall(
                b"POST /v1/models/linear:predict HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 10000\r\n\r\n" + b" " * 9000
            )
            socks.append(s)
        with httpx.Client(base_url=h.url, timeout=30) as c:

            def refused() -> float:
                text = c.get("/metrics").text
                return metric(text, "modelyard_requests_total", route="other", status="503")

            deadline = time.monotonic() + 60
            while refused() < 12 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert refused() == 12  # 8 bodies fit the budget of 80,000 bytes
        last = socks[-1].recv(4096)
        assert last.startswith(b"HTTP/1.1 503 ")
        assert b"bytes of request bodies at once" in last
    finally:
        for s in socks:
            s.close()
    # the budget is released: the server still answers
    r = httpx.post(f"{h.url}/v1/models/linear:predict", json={"instances": [ROW]})
    assert r.status_code == 200


def _binary_request(client: httpx.Client, rows: int) -> httpx.Response:
    import numpy as np
    import orjson

    x = np.zeros((rows, 4), dtype="<f4")
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [rows, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ]
        }
    )
    return client.post(
        "/v2/models/linear/infer",
        content=head + x.tobytes(),
        headers={"inference-header-content-length": str(len(head))},
    )


def test_binary_requests_obey_the_row_limits_like_json(client: httpx.Client) -> None:
    # zero rows: answered at once (it used to leave the request waiting for ever)
    r = _binary_request(client, 0)
    assert r.status_code == 400
    assert "empty" in r.json()["message"]
    # more rows than a batch may hold: 413, as the JSON form answers
    r = _binary_request(client, 5000)
    assert r.status_code == 413
    assert "at most" in r.json()["message"]
    assert _binary_request(client, 3).status_code == 200


def _raw(port: int, data: bytes, *, read_timeout_s: float = 10.0) -> bytes:
    """Send raw bytes on a new connection; return everything read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout_s) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_oversized_request_targets_and_headers_are_refused(linear: ServerHandle) -> None:
    long_url = b"GET /" + b"a" * (64 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _raw(linear.port, long_url).startswith(b"HTTP/1.1 414 ")
    big_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (128 * 1024) + b"\r\n\r\n"
    assert _raw(linear.port, big_header).startswith(b"HTTP/1.1 431 ")
    # the server still answers normally afterwards
    assert (
        _raw(linear.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[:12]
        == b"HTTP/1.1 200"
    )


def test_a_stalled_request_is_closed_after_the_request_timeout(
    server_factory: Callable[..., ServerHandle],
) -> None:
    h = server_factory("Linear", serving={"timeout_s": 1.0})
    started = time.monotonic()
    answer = _raw(h.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", read_timeout_s=20)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert time.monotonic() - started < 20


def test_head_answers_carry_no_body_and_keep_the_connection_in_step(
    linear: ServerHandle,
) -> None:
    answer = _raw(
        linear.port,
        b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    head, sep, rest = answer.partition(b"\r\n\r\n")
    assert sep
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-length: " in head  # the length GET would send, and no body
    assert rest.startswith(b"HTTP/1.1 200"), rest[:40]
    assert answer.count(b'"live"') == 1


def test_expect_100_continue_is_answered_before_the_body(linear: ServerHandle) -> None:
    body = b'{"instances": [[1, 2, 3, 4]]}'
    with socket.create_connection(("127.0.0.1", linear.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/models/linear:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        interim = sock.recv(64)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        rest = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
        while chunk := sock.recv(65536):
            rest += chunk
    assert rest.startswith(b"HTTP/1.1 200"), rest[:60]
    assert b'"predictions"' in rest
