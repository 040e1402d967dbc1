"""Frames between the front process and the model workers.

One frame is ``<meta_len u32><payload_len u32><meta><payload>``: ``meta`` is a small JSON object
(batch id, kind, dtype, shape, rows per request), ``payload`` is the raw tensor bytes (C order)
or a JSON document. Tensors cross the process boundary as raw bytes over a Unix socket pair: a
64 x 256 float32 batch is 64 KiB, one ``send`` and one ``recv`` away, measured cheaper than a
shared-memory ring plus a wake-up pipe for batches of this size.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import orjson

__all__ = ["HEADER", "FrameReader", "encode_frame", "frame_head", "recv_frame", "send_frame"]

HEADER = struct.Struct("<II")

# meta "k" values
KIND_TENSOR = "t"
KIND_JSON = "j"
KIND_MIXED = "m"
KIND_HELLO = "h"
KIND_ERROR = "e"
# v1 JSON bodies the worker decodes itself (lengths in "l"), and its answer: one finished HTTP
# body per request (lengths in "l", statuses in "s"; an error's body is its JSON description)
KIND_RAW = "r"
KIND_ANSWERS = "a"
KIND_CODEC = "d"  # front -> worker: the codec's description (signature after the contract)
# the request log, which the workers write (the front never builds Parquet)
KIND_LOG_CONFIG = "c"  # front -> worker: start the log (store, model, version, limits)
KIND_LOG = "l"  # front -> worker: records only the front has (feedback, refused requests)
KIND_FLUSH = "f"  # front -> worker: write what is buffered now, answer KIND_FLUSHED
KIND_FLUSHED = "F"  # worker -> front: the flush's files or its error, and the drop count
KIND_LOG_STATS = "s"  # worker -> front: after each timed flush: dropped and pending records


def frame_head(meta: dict[str, Any], payload_size: int) -> bytes:
    """The bytes of a frame before its payload (a writev sends both without joining them)."""
    head = orjson.dumps(meta)
    return HEADER.pack(len(head), payload_size) + head


def encode_frame(meta: dict[str, Any], payload: bytes | bytearray | memoryview = b"") -> bytes:
    """One frame as bytes (meta first, then the payload)."""
    return frame_head(meta, len(payload)) + payload


def send_frame(
    sock: socket.socket, meta: dict[str, Any], payload: bytes | bytearray | memoryview = b""
) -> None:
    """Send one frame on a blocking socket."""
    sock.sendall(encode_frame(meta, payload))


def _recv_exact(sock: socket.socket, size: int) -> bytearray | None:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            return None
        got += n
    return buf


def recv_frame(sock: socket.socket) -> tuple[dict[str, Any], bytearray] | None:
    """Read one frame from a blocking socket; ``None`` at end of stream."""
    head = _recv_exact(sock, HEADER.size)
    if head is None:
        return None
    meta_len, payload_len = HEADER.unpack(head)
    meta = _recv_exact(sock, meta_len)
    if meta is None:
        return None
    payload = _recv_exact(sock, payload_len) if payload_len else bytearray()
    if payload is None:
        return None
    return orjson.loads(meta), payload


class FrameReader:
    """Incremental frame parser for the non-blocking side (the front's event loop)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        """Add received bytes; return the frames now complete."""
        buf = self._buf
        buf += data
        frames: list[tuple[dict[str, Any], bytes]] = []
        pos = 0
        size = len(buf)
        while size - pos >= HEADER.size:
            meta_len, payload_len = HEADER.unpack_from(buf, pos)
            end = pos + HEADER.size + meta_len + payload_len
            if end > size:
                break
            start = pos + HEADER.size
            meta = orjson.loads(memoryview(buf)[start : start + meta_len])
            payload = bytes(buf[start + meta_len : end])
            frames.append((meta, payload))
            pos = end
        if pos:
            del buf[:pos]
        return frames
