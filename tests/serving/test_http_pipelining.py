"""Pipelined requests on one keep-alive connection: answers in request order, errors included.

HTTP/1.1 (RFC 9112, section 9.3.2) requires a server to answer pipelined requests in the order it
received them. A malformed or refused request behind a good one must therefore wait for the good
one's answer, then get its own error, and only then may the connection close.
"""

from __future__ import annotations

import json
import socket

from modelyard.serving import ServerHandle

INFER = b"POST /v2/models/linear/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
BODY = json.dumps(
    {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}
).encode()
GOOD = INFER + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY
GARBAGE = b"NOT A REQUEST\r\n\r\n"


def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` in one write on a new connection; read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a byte stream of HTTP/1.1 responses (each with a content-length) into
    (status, headers, body); leftover bytes fail the test."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"an incomplete response: {data[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers["content-length"])
        assert len(rest) >= size, f"a truncated body: {rest!r}"
        out.append((int(status_line.split()[1]), headers, rest[:size]))
        data = rest[size:]
    return out


def test_a_malformed_request_is_answered_after_the_good_one_before_it(
    linear: ServerHandle,
) -> None:
    answers = _responses(_exchange(linear.port, GOOD + GARBAGE))
    assert [status for status, _, _ in answers] == [200, 400]
    (_, good_headers, good_body), (_, bad_headers, bad_body) = answers
    assert json.loads(good_body)["outputs"][0]["data"] == [12.0, 1.0]
    # the connection goes on after the good answer, and closes after the error
    assert "connection" not in good_headers
    assert bad_headers["connection"] == "close"
    assert json.loads(bad_body) == {
        "error": "InvalidInputError",
        "message": "malformed HTTP request",
    }


def test_a_malformed_first_request_gets_400_and_the_connection_closes(
    linear: ServerHandle,
) -> None:
    answers = _responses(_exchange(linear.port, GARBAGE + GOOD))
    assert len(answers) == 1
    status, headers, body = answers[0]
    assert status == 400
    assert headers["connection"] == "close"
    assert headers["x-request-id"]
    assert json.loads(body)["message"] == "malformed HTTP request"


def test_a_refused_request_target_waits_for_the_good_request_before_it(
    linear: ServerHandle,
) -> None:
    long_target = b"GET /" + b"a" * (64 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    answers = _responses(_exchange(linear.port, GOOD + long_target))
    assert [status for status, _, _ in answers] == [200, 414]
    assert json.loads(answers[0][2])["outputs"][0]["data"] == [12.0, 1.0]


def test_an_oversized_body_gets_413_after_the_good_request_before_it(
    linear: ServerHandle,
) -> None:
    too_big = INFER + f"Content-Length: {8 * 1024 * 1024 + 1}\r\n\r\n".encode()
    answers = _responses(_exchange(linear.port, GOOD + too_big))
    assert [status for status, _, _ in answers] == [200, 413]
    assert json.loads(answers[0][2])["outputs"][0]["data"] == [12.0, 1.0]
    assert "at most 8388608" in json.loads(answers[1][2])["message"]


def _predict(body: bytes) -> bytes:
    head = b"POST /v1/models/linear:predict HTTP/1.1\r\nHost: x\r\n"
    return head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def test_v1_bodies_read_together_are_answered_each_on_its_own(linear: ServerHandle) -> None:
    # pipelined requests read in one loop iteration share a batch; its worker decodes the v1
    # bodies itself, so a refused body must get its own error and not spoil the others
    bodies = [
        b'{"instances": [[1, 2, 3, 4]]}',
        b"{not json",
        b'{"instances": [[1, 2, "three", 4]]}',
        b'{"instances": [[0, 0, 0, 1], [1, 0, 0, 0]]}',
        b'{"instances": [[1, 2, 3, 4000]]}',
        b'{"instances": [[1, 2, 3]]}',
        b'{"instances": [[1, 2, 3, 4]], "outputs": ["proba"]}',
        b'{"inputs": [[2, 0, 0, 0]]}',
    ]
    data = b"".join(_predict(b) for b in bodies) + GARBAGE
    answers = _responses(_exchange(linear.port, data))
    statuses = [status for status, _, _ in answers]
    assert statuses == [200, 400, 400, 200, 422, 400, 400, 200, 400]
    docs = [json.loads(body) for _, _, body in answers]
    assert docs[0] == {"predictions": [[12.0, 1.0]]}
    assert "not valid JSON" in docs[1]["message"]
    assert docs[2]["message"].startswith("instances[0][2] is a JSON string")
    assert docs[3] == {"predictions": [[2.0, -1.0], [1.0, 0.0]]}
    assert "instances[0][3] = 4000.0 is out of range" in docs[4]["message"]
    assert docs[4]["details"]["allowed_max"] == 1000.0
    assert "has 3 values; expected a list of 4 numbers" in docs[5]["message"]
    assert "no output 'proba'" in docs[6]["message"]
    assert docs[7] == {"predictions": [[2.0, 0.0]]}
    for (_, headers, _), doc in zip(answers[:-1], docs[:-1], strict=True):
        assert headers["x-model-version"] == "7"
        assert headers["x-request-id"] == doc.get("request_id", headers["x-request-id"])
