"""A model worker process: load the model once, then answer batch frames until end of stream.

Started by the front as ``python -m modelyard.serving._worker --fd N ...`` with one end of a
Unix socket pair. It ignores SIGINT and SIGTERM (the front decides when workers stop) and
exits 0 when the front closes the socket, or when the front dies.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from typing import Any

import numpy as np
import orjson

from modelyard.logs import configure_logging, get_logger
from modelyard.serving import _ipc
from modelyard.serving._model import ModelSpec, load_model

log = get_logger("modelyard.serving.worker")

_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


class PredictError(Exception):
    """predict failed or returned something that is not one output per input."""


def _to_numpy(out: Any) -> Any:
    if hasattr(out, "detach") and hasattr(out, "numpy"):  # a torch tensor, without importing torch
        return out.detach().cpu().numpy()
    return out


def encode_output(out: Any, n: int) -> tuple[dict[str, Any], bytes]:
    """Encode ``n`` outputs: raw bytes for a numeric array, JSON for anything else."""
    out = _to_numpy(out)
    if isinstance(out, np.ndarray) and out.ndim >= 1 and out.dtype.kind in "biuf":
        if out.shape[0] != n:
            raise PredictError(f"predict returned {out.shape[0]} outputs for {n} inputs")
        out = np.ascontiguousarray(out)
        return {"k": _ipc.KIND_TENSOR, "dt": out.dtype.name, "sh": list(out.shape)}, out.tobytes()
    if isinstance(out, np.ndarray):
        out = out.tolist()
    try:
        items = list(out)
    except TypeError as exc:
        raise PredictError(
            f"predict returned {type(out).__name__}, not one output per input"
        ) from exc
    if len(items) != n:
        raise PredictError(f"predict returned {len(items)} outputs for {n} inputs")
    items = [_to_numpy(x) for x in items]
    return {"k": _ipc.KIND_JSON}, orjson.dumps(items, option=_JSON_OPTS, default=_json_default)


def _as_rows(out: Any, n: int) -> list[Any]:
    meta, payload = encode_output(out, n)
    if meta["k"] == _ipc.KIND_TENSOR:
        rows: list[Any] = np.frombuffer(payload, dtype=meta["dt"]).reshape(meta["sh"]).tolist()
        return rows
    decoded: list[Any] = orjson.loads(payload)
    return decoded


class Worker:
    """The loop of one worker process around one loaded model."""

    def __init__(self, sock: socket.socket, spec: ModelSpec, worker_id: int) -> None:
        self.sock = sock
        self.spec = spec
        self.worker_id = worker_id
        self.model: Any = None
        self.desc: dict[str, Any] = {}
        self.columns: list[str] | None = None
        self.log_level = "INFO"

    def load(self) -> bool:
        try:
            self.model, self.desc = load_model(self.spec)
        except Exception as exc:  # any failure of user code: report it to the front
            log.exception("model load failed", extra={"worker_id": self.worker_id})
            _ipc.send_frame(
                self.sock,
                {"k": _ipc.KIND_HELLO, "ok": False, "error": f"{type(exc).__name__}: {exc}"},
            )
            return False
        sig = self.desc.get("signature") or {}
        if self.spec.kind == "package" and sig.get("fields"):
            # a data-frame model: JSON-object instances become a frame with its columns
            self.columns = [f["name"] for f in sig["fields"]]
        configure_logging(
            self.log_level,
            static={
                "process": f"worker-{self.worker_id}",
                "worker_id": self.worker_id,
                "model": self.desc.get("name"),
                "version": self.desc.get("version"),
            },
            force=True,
        )
        _ipc.send_frame(
            self.sock, {"k": _ipc.KIND_HELLO, "ok": True, "pid": os.getpid(), **self.desc}
        )
        return True

    def _predict_all(
        self, meta: dict[str, Any], payload: bytearray
    ) -> tuple[dict[str, Any], bytes]:
        rows: list[int] = meta["r"]
        n = sum(rows)
        batch: Any
        if meta["k"] == _ipc.KIND_TENSOR:
            batch = np.frombuffer(payload, dtype=meta["dt"]).reshape(meta["sh"])
        else:
            batch = orjson.loads(payload)
            if self.columns is not None:
                import pandas as pd

                batch = pd.DataFrame.from_records(batch, columns=self.columns)
        t0 = time.perf_counter()
        try:
            out_meta, out_payload = encode_output(self.model.predict(batch), n)
        except Exception as exc:  # user code: isolate the request that breaks it
            if len(rows) == 1:
                return {"k": _ipc.KIND_MIXED}, orjson.dumps([{"e": _describe(exc)}])
            log.warning(
                "batch predict failed; retrying request by request",
                extra={
                    "worker_id": self.worker_id,
                    "error": _describe(exc),
                    "request_ids": meta.get("ids"),
                },
            )
            return {"k": _ipc.KIND_MIXED}, self._one_by_one(batch, rows)
        out_meta["t"] = time.perf_counter() - t0
        return out_meta, out_payload

    def _one_by_one(self, batch: Any, rows: list[int]) -> bytes:
        results: list[dict[str, Any]] = []
        off = 0
        for n in rows:
            part = batch[off : off + n]
            off += n
            try:
                results.append({"o": _as_rows(self.model.predict(part), n)})
            except Exception as exc:  # user code
                results.append({"e": _describe(exc)})
        return orjson.dumps(results, option=_JSON_OPTS, default=_json_default)

    def run(self) -> int:
        if not self.load():
            return 3
        log.info("worker ready", extra={"worker_id": self.worker_id, "pid": os.getpid()})
        while True:
            frame = _ipc.recv_frame(self.sock)
            if frame is None:
                log.info("worker stopping", extra={"worker_id": self.worker_id})
                return 0
            meta, payload = frame
            out_meta, out_payload = self._predict_all(meta, payload)
            out_meta["b"] = meta["b"]
            _ipc.send_frame(self.sock, out_meta, out_payload)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelyard.serving._worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--worker-id", type=int, required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    # SIGINT (Ctrl-C) and SIGTERM sent to the whole process group or cgroup (systemd, timeout,
    # some container runtimes) must not kill a batch in flight: the front stops the workers by
    # closing their sockets once the accepted requests are answered, and SIGKILLs stragglers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    spec = ModelSpec.from_json(orjson.loads(args.spec))
    static = {"process": f"worker-{args.worker_id}", "worker_id": args.worker_id}
    configure_logging(args.log_level, static=static, force=True)
    sock = socket.socket(fileno=args.fd)
    worker = Worker(sock, spec, args.worker_id)
    worker.log_level = args.log_level
    try:
        code = worker.run()
    except (BrokenPipeError, ConnectionResetError):
        code = 0
    finally:
        sock.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
