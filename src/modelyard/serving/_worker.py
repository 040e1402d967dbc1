"""A model worker process: load the model once, then answer batch frames until end of stream.

Started by the front as ``python -m modelyard.serving._worker --fd N ...`` with one end of a
Unix socket pair. It ignores SIGINT and SIGTERM (the front decides when workers stop) and
exits 0 when the front closes the socket, or when the front dies.

The worker also feeds the request log: it already holds each batch's input tensor and its
outputs, so logging a batch is one pickle and one non-blocking send after the answer is sent,
to the worker's log process (:class:`~modelyard.requestlog._process.RequestLogProcess`, at
idle CPU priority), which builds the Parquet files off this process's GIL and CPU. The front
sends the worker the records only the front has (feedback, refused requests) in ``KIND_LOG``
frames, and asks for flushes (``KIND_FLUSH``); at end of stream the worker hands over what is
queued and waits for its log process to write it (what could not be written is logged).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

import numpy as np
import orjson

from modelyard._priority import lower_thread
from modelyard.errors import ModelyardError
from modelyard.logs import configure_logging, get_logger
from modelyard.serving import _ipc
from modelyard.serving._batcher import Item
from modelyard.serving._codec import Codec, error_to_json, loads
from modelyard.serving._keys import BatchKey
from modelyard.serving._model import ModelSpec, load_model, proba_method

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
        self.proba: Any = None  # predict_proba, for batches whose meta says "m": "proba"
        self.desc: dict[str, Any] = {}
        self.columns: list[str] | None = None
        self.log_level = "INFO"
        self.reqlog: Any = None  # the log process, once the front sent KIND_LOG_CONFIG
        self.log_process: Any = None  # started with the worker (--request-log), warming up
        self.codec: Codec | None = None  # once the front sent KIND_CODEC (for raw batches)
        self._send_lock = threading.Lock()  # the log's threads answer too

    def send(self, meta: dict[str, Any], payload: bytes | bytearray | memoryview = b"") -> None:
        with self._send_lock:
            _ipc.send_frame(self.sock, meta, payload)

    def load(self) -> bool:
        try:
            self.model, self.desc = load_model(self.spec)
            self.proba = proba_method(self.model)
        except Exception as exc:  # any failure of user code: report it to the front
            log.exception("model load failed", extra={"worker_id": self.worker_id})
            self.send(
                {"k": _ipc.KIND_HELLO, "ok": False, "error": f"{type(exc).__name__}: {exc}"},
            )
            return False
        sig = self.desc.get("signature") or {}
        if self.spec.kind == "package" and sig.get("fields"):
            # a data-frame model: JSON-object instances become a frame with its columns
            self.columns = [f["name"] for f in sig["fields"]]
        if self.log_process is not None and not self.log_process.wait_ready(60.0):
            log.warning(
                "the request log process is not warm yet", extra={"worker_id": self.worker_id}
            )
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
        self.send({"k": _ipc.KIND_HELLO, "ok": True, "pid": os.getpid(), **self.desc})
        return True

    def _predict_all(
        self, meta: dict[str, Any], payload: bytearray
    ) -> tuple[dict[str, Any], bytes, Any, Any]:
        """Answer one batch frame; return the answer and, for the log, the batch and outputs
        (outputs ``None`` when the batch was answered request by request)."""
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
        predict = self.proba if meta.get("m") == "proba" else self.model.predict
        t0 = time.perf_counter()
        c0 = time.process_time()
        try:
            out = _to_numpy(predict(batch))
            out_meta, out_payload = encode_output(out, n)
        except Exception as exc:  # user code: isolate the request that breaks it
            if len(rows) == 1:
                return {"k": _ipc.KIND_MIXED}, orjson.dumps([{"e": _describe(exc)}]), batch, None
            log.warning(
                "batch predict failed; retrying request by request",
                extra={
                    "worker_id": self.worker_id,
                    "error": _describe(exc),
                    "request_ids": meta.get("ids"),
                },
            )
            return {"k": _ipc.KIND_MIXED}, self._one_by_one(predict, batch, rows), batch, None
        out_meta["t"] = time.perf_counter() - t0
        # the CPU the model took: what a shadow at low priority is compared on (its wall time
        # is whatever CPU the served version leaves it)
        out_meta["c"] = time.process_time() - c0
        return out_meta, out_payload, batch, out

    def _one_by_one(self, predict: Any, batch: Any, rows: list[int]) -> bytes:
        results: list[dict[str, Any]] = []
        off = 0
        for n in rows:
            part = batch[off : off + n]
            off += n
            try:
                results.append({"o": _as_rows(predict(part), n)})
            except Exception as exc:  # user code
                results.append({"e": _describe(exc)})
        return orjson.dumps(results, option=_JSON_OPTS, default=_json_default)

    def run(self) -> int:
        if not self.load():
            return 3
        log.info("worker ready", extra={"worker_id": self.worker_id, "pid": os.getpid()})
        try:
            while True:
                frame = _ipc.recv_frame(self.sock)
                if frame is None:
                    log.info("worker stopping", extra={"worker_id": self.worker_id})
                    return 0
                meta, payload = frame
                kind = meta["k"]
                if kind in (_ipc.KIND_TENSOR, _ipc.KIND_JSON):
                    out_meta, out_payload, batch, out = self._predict_all(meta, payload)
                    out_meta["b"] = meta["b"]
                    self.send(out_meta, out_payload)
                    if self.reqlog is not None:  # after the answer: the client does not wait
                        self._log_batch(meta, batch, out, out_payload)
                elif kind == _ipc.KIND_RAW:
                    self._raw(meta, payload)
                else:
                    self._control(meta, payload)
        finally:
            writer = self.reqlog or self.log_process
            if writer is not None:
                writer.stop()  # writes what is buffered; logs what it could not

    def _raw(self, meta: dict[str, Any], payload: bytearray) -> None:
        """Answer a batch of undecoded v1 bodies: decode and check each one with the front's
        codec (the same errors as the front would answer), predict on the requests that passed
        (grouped by batch key), and send back one finished body per request."""
        codec = self.codec
        sizes: list[int] = meta["l"]
        ids: list[str] = meta["ids"]
        queued: list[float] | None = meta.get("q")
        bodies: list[bytes] = [b""] * len(sizes)
        status = [200] * len(sizes)
        refused: list[int] = []  # refused while decoding: the input, not the version, failed

        def refuse(item: Item, exc: Any) -> None:
            bodies[item.ctx] = error_to_json(exc)
            status[item.ctx] = exc.http_status

        groups: dict[BatchKey, list[Item]] = {}
        view = memoryview(payload)
        pos = 0
        for i, size in enumerate(sizes):
            item = Item(None, 0, None, refuse, 0.0, ids[i])  # type: ignore[arg-type]
            item.ctx = i
            try:
                if codec is None:
                    raise ModelyardError("internal error: the worker has no codec")
                decoded = codec.v1(loads(view[pos : pos + size]))
            except ModelyardError as exc:
                refused.append(i)
                item.finish(exc)
            else:
                item.key, item.rows, item.data = decoded.key, decoded.rows, decoded.data
                groups.setdefault(decoded.key, []).append(item)
            pos += size
        t = cpu = 0.0
        rows = 0
        logs = []
        for key, group in groups.items():
            assert codec is not None
            items, prepared = codec.prepare(key, group)  # refuses non-finite/out-of-range rows
            if not items:
                continue
            bmeta, bpayload = prepared
            bmeta["r"] = [it.rows for it in items]
            bmeta["ids"] = [it.request_id for it in items]
            if queued is not None:
                bmeta["q"] = [queued[it.ctx] for it in items]
            out_meta, out_payload, batch, out = self._predict_all(bmeta, bpayload)
            t += out_meta.get("t", 0.0)
            cpu += out_meta.get("c", 0.0)
            rows += sum(bmeta["r"])
            result = (out_meta, codec.decode_result(out_meta, out_payload))
            offset = 0
            for index, it in enumerate(items):
                it.offset, it.index = offset, index
                offset += it.rows
                try:
                    bodies[it.ctx] = codec.v1_body(codec.outputs_of(it, result))
                except ModelyardError as exc:
                    refuse(it, exc)
                except Exception as exc:  # an odd model output: answer, never hang
                    log.exception("could not encode an answer", extra={"request_id": ids[it.ctx]})
                    refuse(it, ModelyardError(f"internal error: {type(exc).__name__}"))
            logs.append((bmeta, batch, out, out_payload))
        answer = {"k": _ipc.KIND_ANSWERS, "b": meta["b"], "l": [len(b) for b in bodies]}
        answer["s"] = status
        if refused:
            answer["i"] = refused
        if rows:
            answer["t"], answer["c"], answer["n"] = t, cpu, rows
        self.send(answer, b"".join(bodies))
        if self.reqlog is not None:  # after the answer: the client does not wait
            for bmeta, batch, out, out_payload in logs:
                self._log_batch(bmeta, batch, out, out_payload)

    # ------------------------------------------------------------------ the request log
    def _control(self, meta: dict[str, Any], payload: bytearray) -> None:
        kind = meta["k"]
        if kind == _ipc.KIND_CODEC:
            self.codec = Codec(meta["desc"], max_batch_size=int(meta["max"]))
        elif kind == _ipc.KIND_LOG_CONFIG:
            self._start_log(meta)
        elif kind == _ipc.KIND_LOG and self.reqlog is not None:
            doc = orjson.loads(payload)
            for rid, label, outcome, extra in doc.get("fb", ()):
                self.reqlog.add_feedback(rid, label, outcome, extra)
            self.reqlog.add_records([tuple(r) for r in doc.get("rec", ())])
        elif kind == _ipc.KIND_FLUSH:
            # a flush can take seconds (S3): off this loop, which keeps answering batches
            threading.Thread(target=self._flush, args=(meta["id"],), daemon=True).start()

    def _start_log(self, cfg: dict[str, Any]) -> None:
        from modelyard.requestlog._process import RequestLogProcess

        if self.reqlog is not None:
            return
        sig = self.desc.get("signature") or {}
        inputs = None
        if sig.get("fields"):
            inputs = {f["name"]: _LOG_TYPES.get(f["type"], "string") for f in sig["fields"]}
        tensor = (sig.get("inputs") or [{}])[0].get("name") or "input"
        # the Parquet files are built by a child process: this one only hands batches over
        writer = self.log_process
        if writer is None:
            writer = RequestLogProcess()
            writer.start()
        writer.configure(
            {
                "url": cfg["url"],
                "storage_options": cfg.get("storage_options"),
                "model": cfg["model"],
                "version": cfg["version"],
                "inputs": inputs,
                "tensor_column": tensor,
                "flush_s": cfg["flush_s"],
                "max_records": cfg["max_records"],
                "log_level": self.log_level,
            },
            sample_rate=cfg["sample_rate"],
            on_flush=self._report,
        )
        self.reqlog = writer

    def _report(self, result: Any) -> None:
        try:
            self.send(
                {
                    "k": _ipc.KIND_LOG_STATS,
                    "dropped": result.dropped,
                    "pending": result.pending,
                    "error": result.error,
                }
            )
        except OSError:  # the front is gone (a report landing during shutdown): nobody to tell
            pass

    def _flush(self, flush_id: int) -> None:
        result = self.reqlog.try_flush() if self.reqlog is not None else None
        try:
            self.send(
                {
                    "k": _ipc.KIND_FLUSHED,
                    "id": flush_id,
                    "written": result.written if result else [],
                    "error": result.error if result else "the request log is not started",
                    "dropped": result.dropped if result else 0,
                    "pending": result.pending if result else 0,
                }
            )
        except OSError:  # the front is gone; its stop flushes anyway
            pass

    def _log_batch(self, meta: dict[str, Any], batch: Any, out: Any, payload: bytes) -> None:
        now = time.monotonic()
        ids: list[str] = meta["ids"]
        rows: list[int] = meta["r"]
        latency = [(now - q) * 1000.0 for q in meta.get("q") or ()] or None
        classes = self.desc.get("classes")
        if out is not None and meta.get("m") == "proba" and classes and out.ndim == 2:
            out = {f"proba__{c}": out[:, j] for j, c in enumerate(classes)}  # typed columns
        if out is not None:
            self.reqlog.add_batch(ids, rows, batch, out, latency_ms=latency)
            return
        # answered request by request: each request logs its own rows or its refusal
        results = orjson.loads(payload)
        off = 0
        for i, (rid, n) in enumerate(zip(ids, rows, strict=True)):
            lat = latency[i] if latency else float("nan")
            entry = results[i] if i < len(results) else {"e": "no result"}
            if "o" in entry:
                part = batch[off : off + n]
                self.reqlog.add_batch([rid], [n], part, entry["o"], latency_ms=[lat])
            else:
                self.reqlog.add_records([(rid, 422, lat)])
            off += n


_LOG_TYPES = {"number": "float", "integer": "int", "boolean": "bool", "string": "string"}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelyard.serving._worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--worker-id", type=int, required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--request-log", action="store_true")
    parser.add_argument("--nice", type=int, default=0, help="CPU priority (a shadow's)")
    args = parser.parse_args(argv)
    if args.nice:  # before any thread starts: they (and the log process) inherit it
        lower_thread(0, args.nice)
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
    if args.request_log:  # warms up (imports pyarrow) while the model loads
        from modelyard.requestlog._process import RequestLogProcess

        worker.log_process = RequestLogProcess()
        worker.log_process.start()
    try:
        code = worker.run()
    except (BrokenPipeError, ConnectionResetError):
        code = 0
    finally:
        sock.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
