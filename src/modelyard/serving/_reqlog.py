"""The sampled request/prediction log and the feedback log, written as Parquet off the hot path.

The front appends records to a bounded in-memory buffer (a list append, no I/O); a writer thread
swaps the buffer every ``flush_s`` seconds and writes one Parquet file per (log, hour) through
``ArtifactStore.write_named``::

    requests/model=<m>/version=<v>/hour=<YYYY-MM-DDTHH>/<uuid>.parquet
        request_id, ts (UTC), model, version, instance, input (JSON), prediction (JSON),
        status, latency_ms                                  one row per instance
    feedback/model=<m>/version=<v>/hour=<YYYY-MM-DDTHH>/<uuid>.parquet
        request_id, ts (UTC), model, version, label (JSON), outcome (JSON), extra (JSON)

When the writer falls behind and the buffer is full, records are dropped and counted, never
waited for: serving does not block on the log.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from modelyard.logs import get_logger

__all__ = ["NamedWriter", "RecordLog"]

log = get_logger("modelyard.serving.reqlog")


class NamedWriter(Protocol):
    """What the log needs from an artifact store (``ArtifactStore`` has it)."""

    def write_named(self, name: str, data: bytes) -> Any: ...


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode()


class RecordLog:
    """Buffers records and writes them as Parquet files from a background thread.

    Args:
        store: where files go (``write_named``).
        model, version: partition values and columns.
        flush_s: how often the writer wakes up.
        sample_rate: fraction of requests logged (feedback is always kept).
        max_records: buffered records (requests + feedback) beyond which new ones are dropped.
        clock: wall-clock time source (seconds since the epoch).
    """

    def __init__(
        self,
        store: NamedWriter,
        model: str,
        version: str,
        *,
        flush_s: float = 10.0,
        sample_rate: float = 1.0,
        max_records: int = 50_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.model = model
        self.version = version
        self.flush_s = flush_s
        self.sample_rate = sample_rate
        self.max_records = max_records
        self.clock = clock
        self.dropped = 0
        self.written_files: list[str] = []
        # deque append/popleft are atomic: the loop appends, the writer pops, no lock needed
        self._requests: deque[tuple[Any, ...]] = deque()
        self._feedback: deque[tuple[Any, ...]] = deque()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._rand = random.random

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelyard-reqlog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is buffered and stop the writer thread."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.flush()

    # --- front side (event loop thread): appends only
    def add_request(
        self, request_id: str, instances: Any, outputs: Any, status: int, latency_s: float
    ) -> None:
        if self.sample_rate < 1.0 and self._rand() >= self.sample_rate:
            return
        if len(self._requests) + len(self._feedback) >= self.max_records:
            self.dropped += 1
            return
        self._requests.append((request_id, self.clock(), instances, outputs, status, latency_s))

    def add_feedback(self, request_id: str, label: Any, outcome: Any, extra: Any) -> bool:
        if len(self._requests) + len(self._feedback) >= self.max_records:
            self.dropped += 1
            return False
        self._feedback.append((request_id, self.clock(), label, outcome, extra))
        return True

    # --- writer thread
    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            if self._stop:
                break
            try:
                self.flush()
            except Exception:  # the log must never take the server down
                log.exception("request log flush failed")

    def flush(self) -> list[str]:
        """Write the buffered records now; return the names written."""
        with self._flush_lock:
            requests = [self._requests.popleft() for _ in range(len(self._requests))]
            feedback = [self._feedback.popleft() for _ in range(len(self._feedback))]
            names: list[str] = []
            if requests:
                names += self._write("requests", self._request_table(requests))
            if feedback:
                names += self._write("feedback", self._feedback_table(feedback))
            self.written_files += names
            return names

    def _hour(self, ts: float) -> str:
        return time.strftime("%Y-%m-%dT%H", time.gmtime(ts))

    def _request_table(self, records: list[tuple[Any, ...]]) -> dict[str, dict[str, list[Any]]]:
        by_hour: dict[str, dict[str, list[Any]]] = {}
        for rid, ts, instances, outputs, status, latency_s in records:
            cols = by_hour.setdefault(self._hour(ts), _columns(_REQUEST_COLUMNS))
            n = len(outputs) if outputs is not None else len(instances or [])
            for i in range(max(n, 1)):
                cols["request_id"].append(rid)
                cols["ts"].append(int(ts * 1000))
                cols["instance"].append(i)
                cols["input"].append(
                    _json(instances[i]) if instances is not None and i < len(instances) else None
                )
                cols["prediction"].append(
                    _json(outputs[i]) if outputs is not None and i < len(outputs) else None
                )
                cols["status"].append(status)
                cols["latency_ms"].append(latency_s * 1000.0)
        return by_hour

    def _feedback_table(self, records: list[tuple[Any, ...]]) -> dict[str, dict[str, list[Any]]]:
        by_hour: dict[str, dict[str, list[Any]]] = {}
        for rid, ts, label, outcome, extra in records:
            cols = by_hour.setdefault(self._hour(ts), _columns(_FEEDBACK_COLUMNS))
            cols["request_id"].append(rid)
            cols["ts"].append(int(ts * 1000))
            cols["label"].append(_json(label))
            cols["outcome"].append(_json(outcome))
            cols["extra"].append(_json(extra) if extra else None)
        return by_hour

    def _write(self, kind: str, by_hour: dict[str, dict[str, list[Any]]]) -> list[str]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema_cols = _REQUEST_COLUMNS if kind == "requests" else _FEEDBACK_COLUMNS
        names = []
        for hour, cols in by_hour.items():
            n = len(cols["request_id"])
            arrays = {
                "request_id": pa.array(cols["request_id"], pa.string()),
                "ts": pa.array(cols["ts"], pa.timestamp("ms", tz="UTC")),
                "model": pa.array([self.model] * n, pa.string()),
                "version": pa.array([self.version] * n, pa.string()),
            }
            for name, typ in schema_cols.items():
                if name not in arrays:
                    arrays[name] = pa.array(cols[name], _ARROW_TYPES[typ]())
            table = pa.table(arrays)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd")
            name = (
                f"{kind}/model={self.model}/version={self.version}/hour={hour}/"
                f"{uuid.uuid4().hex}.parquet"
            )
            self.store.write_named(name, sink.getvalue().to_pybytes())
            names.append(name)
        return names


def _columns(spec: dict[str, str]) -> dict[str, list[Any]]:
    return {name: [] for name in spec}


_REQUEST_COLUMNS = {
    "request_id": "string",
    "ts": "ts",
    "instance": "int32",
    "input": "string",
    "prediction": "string",
    "status": "int16",
    "latency_ms": "float64",
}
_FEEDBACK_COLUMNS = {
    "request_id": "string",
    "ts": "ts",
    "label": "string",
    "outcome": "string",
    "extra": "string",
}


def _arrow(name: str) -> Callable[[], Any]:
    def make() -> Any:
        import pyarrow as pa

        return getattr(pa, name)()

    return make


_ARROW_TYPES: dict[str, Callable[[], Any]] = {
    "string": _arrow("string"),
    "int32": _arrow("int32"),
    "int16": _arrow("int16"),
    "float64": _arrow("float64"),
}
