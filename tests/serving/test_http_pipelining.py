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
