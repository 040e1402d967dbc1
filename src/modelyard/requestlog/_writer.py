"""The writer of the request and feedback logs: bounded columnar buffers, Parquet files.

Producers append whole batches (a model worker already holds the batch's input tensor and its
outputs, so one append is a few references, no per-record work); a background thread turns what
is buffered into Arrow tables every ``flush_s`` seconds and writes one Parquet file per (log,
hour) - at most ``max_rows_per_file`` rows each - through ``write_named``.

Nothing is lost silently. The buffer holds at most ``max_records`` rows; a batch that does not
fit is dropped and its rows counted in :attr:`RequestLogWriter.dropped`. When a file cannot be
written (a full disk, an unreachable bucket), its rows go back into the buffer for the next
flush (what does not fit is dropped and counted) and :meth:`RequestLogWriter.flush` raises
:class:`LogWriteFailed` naming the reason; :meth:`RequestLogWriter.stop` returns the rows it
could not write and logs them.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson

from modelyard.errors import ServiceUnavailable
from modelyard.logs import get_logger
from modelyard.requestlog.schema import (
    FEEDBACK,
    INPUT_PREFIX,
    OUTPUT_PREFIX,
    REQUESTS,
    arrow_type,
    feedback_schema,
    hour_of,
    partition_prefix,
    request_base_schema,
)

__all__ = [
    "FlushResult",
    "LogProducer",
    "LogWriteFailed",
    "NamedWriter",
    "RequestLogWriter",
    "sample_batch",
]

log = get_logger("modelyard.requestlog")


class NamedWriter(Protocol):
    """What the writer needs from an artifact store (``ArtifactStore`` has it)."""

    def write_named(self, name: str, data: Any) -> Any: ...


class LogWriteFailed(ServiceUnavailable):
    """A flush could not write every file; the rows that fit are kept for the next flush."""


@dataclass(frozen=True)
class FlushResult:
    """What one flush did.

    Attributes:
        written: the names of the files written.
        error: why a file could not be written (``None`` when all were).
        pending: rows still buffered afterwards (kept for a retry).
        dropped: rows dropped since the writer started (every drop counted).
    """

    written: list[str]
    error: str | None
    pending: int
    dropped: int


class _Chunk:
    """Rows appended together: one model batch, some front-side records, or feedback."""

    __slots__ = ("data", "kind", "rows", "ts_s")

    def __init__(self, kind: str, ts_s: float, rows: int, data: Any) -> None:
        self.kind = kind
        self.ts_s = ts_s
        self.rows = rows
        self.data = data


class LogProducer:
    """What appends to a request log: :class:`RequestLogWriter` buffers the rows itself,
    :class:`~modelyard.requestlog._process.RequestLogProcess` hands them to a child process.
    A subclass provides :meth:`add_chunk`, ``sample_rate``, ``rand`` and ``clock``."""

    sample_rate: float
    rand: Callable[[], float]
    clock: Callable[[], float]

    def add_chunk(self, kind: str, ts_s: float, rows: int, data: Any) -> bool:
        raise NotImplementedError

    def add_batch(
        self,
        request_ids: Sequence[str],
        rows: Sequence[int] | None,
        inputs: Any,
        outputs: Any,
        *,
        latency_ms: Sequence[float] | None = None,
        status: int = 200,
    ) -> bool:
        """Log one batch: ``inputs`` and ``outputs`` hold the rows of every request in order.

        Args:
            request_ids: one per request.
            rows: instances per request (``None``: one each).
            inputs: a 2-d (or higher) numpy array, a pandas DataFrame, or a list of instances.
            outputs: a numpy array, a list, or a mapping output name -> array (for example
                ``{"prediction": ..., "proba__yes": ...}``); ``None`` when there are none.
            latency_ms: one per request.
            status: the HTTP status of these requests.

        Returns:
            Whether the batch was buffered (``False``: sampled out, or dropped and counted).
        """
        sampled = sample_batch(request_ids, rows, latency_ms, self.sample_rate, self.rand)
        if sampled is None:
            return False
        ids, counts, latency, keep, n = sampled
        data = (ids, counts, inputs, outputs, latency, status, keep)
        return self.add_chunk(REQUESTS, self.clock(), n, data)

    def add_records(self, records: Sequence[tuple[str, int, float]]) -> bool:
        """Log requests answered without a model result (``(request_id, status, latency_ms)``:
        refused input, timeouts): their input and output columns are null."""
        if not records:
            return True
        return self.add_chunk(REQUESTS, self.clock(), len(records), list(records))

    def add_feedback(
        self, request_id: str, label: Any, outcome: Any = None, extra: Any = None
    ) -> bool:
        """Log one feedback record; ``False`` when the buffer is full (the record is counted)."""
        return self.add_chunk(
            FEEDBACK, self.clock(), 1, (request_id, label, outcome, extra or None)
        )


class RequestLogWriter(LogProducer):
    """Buffers request and feedback records and writes them as Parquet files.

    Args:
        store: where files go (``write_named``).
        model, version: partition values and columns.
        inputs: input column name -> logical type (from the version's contract or signature:
            ``float``, ``int``, ``bool``, ``string``, ``datetime``); ``None``: inferred per file.
        tensor_column: the column name (after ``in__``) of a tensor input whose features have
            no names (the signature's input name).
        flush_s: how often the background thread writes.
        sample_rate: fraction of requests logged (feedback is always kept).
        max_records: buffered rows beyond which new batches are dropped (and counted).
        max_rows_per_file: rows per Parquet file (bounds the work and memory of one write).
        flush_rows: buffered rows that wake the writer before ``flush_s`` is up (bounds the
            work of one flush, and so how long it holds the GIL in pieces).
        clock: wall-clock time source (seconds since the epoch).
        rand: uniform [0, 1) source for sampling.
        on_flush: called with each :class:`FlushResult` of the background thread.
    """

    def __init__(
        self,
        store: NamedWriter,
        model: str,
        version: str,
        *,
        inputs: Mapping[str, str] | None = None,
        tensor_column: str = "input",
        flush_s: float = 10.0,
        sample_rate: float = 1.0,
        max_records: int = 100_000,
        max_rows_per_file: int = 50_000,
        flush_rows: int = 8192,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        on_flush: Callable[[FlushResult], None] | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.version = version
        self.inputs = dict(inputs) if inputs is not None else None
        self.tensor_column = tensor_column
        self.flush_s = flush_s
        self.sample_rate = sample_rate
        self.max_records = max_records
        self.max_rows_per_file = max_rows_per_file
        self.flush_rows = flush_rows
        self.clock = clock
        self.rand = rand
        self.on_flush = on_flush
        self.dropped = 0
        self.pending = 0
        self.written_rows = 0  # rows in the files written (counted once a file is written)
        self.written_files: list[str] = []
        self._chunks: deque[_Chunk] = deque()
        self._lock = threading.Lock()  # guards _chunks, pending, dropped
        self._flush_lock = threading.Lock()  # one flush at a time
        self._wake = threading.Event()
        self._halt = threading.Event()  # set by stop(): ends a wait for the next retry
        self._stop = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ producers
    def _append(self, chunk: _Chunk) -> bool:
        with self._lock:
            if self.pending + chunk.rows > self.max_records:
                self.dropped += chunk.rows
                return False
            self._chunks.append(chunk)
            self.pending += chunk.rows
            if self.pending >= self.flush_rows:
                self._wake.set()  # bounded work per flush: write before the buffer grows big
            return True

    def add_chunk(self, kind: str, ts_s: float, rows: int, data: Any) -> bool:
        """Buffer rows sampled and shaped as :meth:`add_batch`, :meth:`add_records` or
        :meth:`add_feedback` do (``kind``: ``requests`` or ``feedback``)."""
        return self._append(_Chunk(kind, ts_s, rows, data))

    # ------------------------------------------------------------------ background thread
    def start(self) -> None:
        """Start the thread that flushes every ``flush_s`` seconds."""
        self._thread = threading.Thread(target=self._run, name="modelyard-requestlog", daemon=True)
        self._thread.start()

    def stop(self) -> int:
        """Stop the thread and write what is buffered; return the rows that could not be
        written (logged with the reason)."""
        self._stop = True
        self._wake.set()
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        result = self.try_flush()
        lost = result.pending
        if lost:
            log.error(
                "request log records lost",
                extra={
                    "model": self.model,
                    "version": self.version,
                    "lost_records": lost,
                    "dropped_records": self.dropped,
                    "error": result.error,
                },
            )
        return lost

    def _run(self) -> None:
        # not niced: a low-priority thread preempted while it holds the GIL stalls the
        # worker's main thread (measured: p99 0.1 s -> 0.9 s on a loaded machine)
        while not self._stop:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            if self._stop:
                break
            result = self.try_flush()
            if self.on_flush is not None:
                try:
                    self.on_flush(result)
                except Exception:  # a report that cannot be sent must not stop the log
                    log.exception("request log flush report failed")
            if result.error is not None:
                # the store refuses (a full disk, an unreachable bucket): retry in flush_s.
                # The rows kept stay above flush_rows, so every append would wake this
                # thread to build all their files again (and log another warning)
                self._halt.wait(self.flush_s)
                self._wake.set()

    # ------------------------------------------------------------------ flushing
    def try_flush(self) -> FlushResult:
        """Like :meth:`flush`, but reports a failure in the result instead of raising."""
        try:
            written = self.flush()
        except LogWriteFailed as exc:
            return FlushResult([], exc.message, self.pending, self.dropped)
        return FlushResult(written, None, self.pending, self.dropped)

    def flush(self) -> list[str]:
        """Write what is buffered now; return the names written.

        Raises:
            LogWriteFailed: a file could not be written; its rows (and the rows not tried yet)
                are back in the buffer, as many as fit.
        """
        with self._flush_lock:
            with self._lock:
                chunks = list(self._chunks)
                self._chunks.clear()
                self.pending -= sum(c.rows for c in chunks)
            groups: dict[tuple[str, str], list[_Chunk]] = {}
            hours: dict[int, str] = {}  # strftime once per hour, not once per batch
            for c in chunks:
                slot = int(c.ts_s // 3600)
                hour = hours.get(slot)
                if hour is None:
                    hour = hours[slot] = hour_of(c.ts_s)
                groups.setdefault((c.kind, hour), []).append(c)
            names: list[str] = []
            todo = list(groups.items())
            for i, ((kind, hour), chunks_of_hour) in enumerate(todo):
                group = chunks_of_hour
                try:
                    for part in _parts(chunks_of_hour, self.max_rows_per_file):
                        data = self._parquet(kind, part)
                        name = (
                            f"{partition_prefix(kind, self.model, self.version)}hour={hour}/"
                            f"{uuid.uuid4().hex}.parquet"
                        )
                        self.store.write_named(name, data)
                        self.written_rows += sum(c.rows for c in part)
                        names.append(name)
                        group = group[len(part) :]
                except Exception as exc:  # OSError (disk full), fsspec/botocore errors...
                    unwritten = group + [c for _, g in todo[i + 1 :] for c in g]
                    kept, dropped = self._put_back(unwritten)
                    self.written_files += names
                    reason = f"{type(exc).__name__}: {exc}"[:500]
                    log.warning(
                        "request log flush failed",
                        extra={
                            "model": self.model,
                            "version": self.version,
                            "error": reason,
                            "kept_records": kept,
                            "dropped_records": dropped,
                        },
                    )
                    raise LogWriteFailed(
                        f"the request log could not be written: {reason}; {kept} records kept "
                        f"for the next flush, {dropped} dropped",
                        hint="free space on the artifact store (or fix its credentials); the "
                        "next flush retries",
                        written=names,
                    ) from exc
            self.written_files += names
            return names

    def _put_back(self, chunks: list[_Chunk]) -> tuple[int, int]:
        """Return unwritten chunks to the front of the buffer, oldest dropped first when full."""
        with self._lock:
            room = self.max_records - self.pending
            kept_rows = dropped_rows = 0
            keep: list[_Chunk] = []
            for c in reversed(chunks):  # the newest are kept when not all fit
                if c.rows <= room:
                    keep.append(c)
                    room -= c.rows
                    kept_rows += c.rows
                else:
                    dropped_rows += c.rows
            self._chunks.extendleft(keep)  # extendleft reverses: back in original order
            self.pending += kept_rows
            self.dropped += dropped_rows
            return kept_rows, dropped_rows

    # ------------------------------------------------------------------ Arrow
    def warm_up(self) -> None:
        """Build (and discard) a small file of each kind through the real path.

        The first Parquet file of a process costs about 0.5 s of CPU (pyarrow's lazy imports,
        kernels and codecs), taken while holding the GIL: done at start-up, not under the
        first flush of a serving worker.
        """
        x = np.zeros((2, 3), dtype=np.float32)
        batch = (["a", "b"], [1, 1], x, x[:, 0], [0.0, 0.0], 200, None)
        chunks = [_Chunk(REQUESTS, self.clock(), 2, batch) for _ in range(2)]
        # a request of two rows: its ids go through a numpy object array, where pyarrow
        # imports pandas (0.3-0.5 s) the first time
        chunks.append(_Chunk(REQUESTS, self.clock(), 2, (["c"], [2], x, x[:, 0], [0.0], 200, None)))
        chunks.append(_Chunk(REQUESTS, self.clock(), 1, [("c", 400, 0.0)]))
        self._parquet(REQUESTS, chunks)
        self._parquet(FEEDBACK, [_Chunk(FEEDBACK, self.clock(), 1, ("a", 1.0, None, {"k": 1}))])

    def _parquet(self, kind: str, chunks: list[_Chunk]) -> Any:
        """One Parquet file of ``chunks``, as an Arrow buffer (bytes-like, not copied into a
        ``bytes``: that copy held the GIL for 3 ms per 8 MB file)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if kind == FEEDBACK:
            table = self._feedback_table(chunks)
        else:
            tables = [self._request_table(c) for c in _merge_runs(chunks)]
            try:
                table = pa.concat_tables(tables, promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # inferred input types that disagree between batches: keep them as text
                table = pa.concat_tables(
                    [_stringify(t) for t in tables], promote_options="permissive"
                )
        sink = pa.BufferOutputStream()
        strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
        # measured on 64 x 256 float32 batches: dictionaries and statistics of feature columns
        # cost more than the rest of the write and help no reader (monitoring reads whole
        # columns); lz4 is as fast as no compression. Statistics stay on the base columns
        # (ts, status, latency) for readers that filter on them.
        base = [f.name for f in request_base_schema() if f.name in table.column_names]
        pq.write_table(
            table,
            sink,
            compression="lz4",
            use_dictionary=strings,
            write_statistics=base if kind == REQUESTS else True,
        )
        return sink.getvalue()

    def _base(self, ids: Any, instance: Any, ts_s: Any, status: Any, latency: Any) -> Any:
        """The base columns; ``ts_s`` is one time for every row or an array of one per row."""
        import pyarrow as pa

        n = len(ids)
        if isinstance(ts_s, np.ndarray):
            ts_ms = (ts_s * 1000).astype("int64")
        else:
            ts_ms = np.full(n, int(ts_s * 1000), dtype="int64")
        return {
            "request_id": pa.array(ids, pa.string()),
            "instance": pa.array(instance, pa.int32()),
            "ts": pa.array(ts_ms).view(request_base_schema().field("ts").type),
            "model": pa.array([self.model] * n, pa.string()),
            "version": pa.array([self.version] * n, pa.string()),
            "status": pa.array(status, pa.int16()),
            "latency_ms": pa.array(latency, pa.float32()),
        }

    def _request_table(self, chunk: _Chunk) -> Any:
        import pyarrow as pa

        if isinstance(chunk.data, list):  # front-side records without model results
            ids = [r[0] for r in chunk.data]
            cols = self._base(
                ids,
                np.zeros(len(ids), dtype="int32"),
                chunk.ts_s,
                [r[1] for r in chunk.data],
                [r[2] for r in chunk.data],
            )
            return pa.table(cols)
        ids, counts, inputs, outputs, latency_ms, status, keep = chunk.data
        n = chunk.rows
        if len(ids) == n:
            row_ids: Any = ids
            instance: Any = np.zeros(n, dtype="int32")
        else:
            row_ids = np.repeat(np.array(ids, dtype=object), counts)
            instance = np.concatenate([np.arange(c, dtype="int32") for c in counts])
        lat: Any = (
            np.repeat(np.asarray(latency_ms, dtype="float32"), counts)
            if latency_ms is not None
            else np.full(n, np.nan, dtype="float32")
        )
        cols = self._base(row_ids, instance, chunk.ts_s, np.full(n, status, "int16"), lat)
        if latency_ms is None:
            cols["latency_ms"] = pa.nulls(n, pa.float32())
        for name, arr in self._input_columns(inputs, keep, n):
            cols[name] = arr
        for name, arr in _output_columns(outputs, keep, n):
            cols[name] = arr
        return pa.table(cols)

    def _input_columns(self, inputs: Any, keep: Any, n: int) -> list[tuple[str, Any]]:
        import pyarrow as pa

        if inputs is None:
            return []
        if isinstance(inputs, np.ndarray):
            arr = inputs if keep is None else inputs[keep]
            names = list(self.inputs) if self.inputs is not None else None
            if arr.ndim == 2 and names is not None and len(names) == arr.shape[1]:
                return [
                    (INPUT_PREFIX + c, self._typed(c, pa.array(np.ascontiguousarray(arr[:, j]))))
                    for j, c in enumerate(names)
                ]
            return [(INPUT_PREFIX + self.tensor_column, _tensor_array(arr))]
        if hasattr(inputs, "columns") and hasattr(inputs, "iloc"):  # a pandas DataFrame
            frame = inputs if keep is None else inputs[keep]
            return [
                (INPUT_PREFIX + str(c), self._typed(str(c), pa.array(frame[c], from_pandas=True)))
                for c in frame.columns
            ]
        rows = list(inputs)
        if keep is not None:
            rows = [r for r, k in zip(rows, keep, strict=True) if k]
        if rows and all(type(r) is dict for r in rows):
            keys: dict[str, None] = {}
            for r in rows:
                keys.update(dict.fromkeys(r))
            return [
                (INPUT_PREFIX + k, self._typed(k, _loose_array([r.get(k) for r in rows])))
                for k in keys
            ]
        return [(INPUT_PREFIX + "input", _loose_array(rows))]

    def _typed(self, column: str, arr: Any) -> Any:
        """Cast to the contract's type; values that do not fit become nulls (never a crash)."""
        if self.inputs is None or column not in self.inputs:
            return arr
        import pyarrow as pa
        import pyarrow.compute as pc

        target = arrow_type(self.inputs[column])
        if arr.type == target:
            return arr
        try:
            return pc.cast(arr, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return pa.nulls(len(arr), target)

    def _feedback_table(self, chunks: list[_Chunk]) -> Any:
        import pyarrow as pa

        ids, ts, labels, outcomes, extras = [], [], [], [], []
        for c in chunks:
            rid, label, outcome, extra = c.data
            ids.append(rid)
            ts.append(int(c.ts_s * 1000))
            labels.append(label)
            if outcome is not None and not _is_number(outcome):
                extra = {**(extra or {}), "outcome": outcome}
                outcome = None
            outcomes.append(float(outcome) if outcome is not None else None)
            extras.append(_json(extra) if extra else None)
        numeric = all(v is None or _is_number(v) for v in labels)
        label_col = (
            [float(v) if v is not None else None for v in labels]
            if numeric
            else [v if v is None or type(v) is str else _json(v) for v in labels]
        )
        schema = feedback_schema(numeric)
        n = len(ids)
        return pa.table(
            {
                "request_id": pa.array(ids, pa.string()),
                "ts": pa.array(ts, pa.int64()).cast(schema.field("ts").type),
                "model": pa.array([self.model] * n, pa.string()),
                "version": pa.array([self.version] * n, pa.string()),
                "label": pa.array(label_col, schema.field("label").type),
                "outcome": pa.array(outcomes, pa.float64()),
                "extra": pa.array(extras, pa.string()),
            },
            schema=schema,
        )


def sample_batch(
    request_ids: Sequence[str],
    rows: Sequence[int] | None,
    latency_ms: Sequence[float] | None,
    sample_rate: float,
    rand: Callable[[], float],
) -> tuple[list[str], list[int], Sequence[float] | None, Any, int] | None:
    """The requests of a batch kept at ``sample_rate``: ``(ids, counts, latency_ms, keep,
    rows)``, where ``keep`` masks the kept rows (``None``: all kept), or ``None`` when none is."""
    counts = list(rows) if rows is not None else [1] * len(request_ids)
    n = sum(counts)
    keep: np.ndarray[Any, Any] | None = None
    if sample_rate < 1.0:
        picked = [rand() < sample_rate for _ in request_ids]
        if not any(picked):
            return None
        if not all(picked):
            keep = np.repeat(np.array(picked, dtype=bool), counts)
            request_ids = [r for r, p in zip(request_ids, picked, strict=True) if p]
            if latency_ms is not None:
                latency_ms = [x for x, p in zip(latency_ms, picked, strict=True) if p]
            counts = [c for c, p in zip(counts, picked, strict=True) if p]
            n = sum(counts)
    return list(request_ids), counts, latency_ms, keep, n


def _tensor_run_key(chunk: _Chunk) -> tuple[Any, ...] | None:
    """What consecutive model batches must share to be stacked into one table at once."""
    data = chunk.data
    if isinstance(data, list):
        return None
    _ids, _counts, inputs, outputs, latency_ms, status, keep = data
    if (
        keep is not None
        or latency_ms is None
        or not isinstance(inputs, np.ndarray)
        or not isinstance(outputs, np.ndarray)
    ):
        return None
    return (inputs.dtype.str, inputs.shape[1:], outputs.dtype.str, outputs.shape[1:], status)


def _merge_runs(chunks: list[_Chunk]) -> list[_Chunk]:
    """Stack runs of tensor batches into one chunk each: one Arrow conversion per file instead
    of one per batch (the per-batch overhead was most of a flush's cost)."""
    out: list[_Chunk] = []
    run: list[_Chunk] = []

    def close() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            ids: list[str] = []
            counts: list[int] = []
            latency: list[float] = []
            for c in run:
                ids += c.data[0]
                counts += c.data[1]
                latency += list(c.data[4])
            ts = np.repeat(np.array([c.ts_s for c in run]), [c.rows for c in run])
            inputs = np.concatenate([c.data[2] for c in run])
            outputs = np.concatenate([c.data[3] for c in run])
            data = (ids, counts, inputs, outputs, latency, run[0].data[5], None)
            out.append(_Chunk(REQUESTS, ts, sum(c.rows for c in run), data))  # type: ignore[arg-type]
        run.clear()

    prev: tuple[Any, ...] | None = None
    for c in chunks:
        key = _tensor_run_key(c)
        if key is None or key != prev:
            close()
        if key is None:
            out.append(c)
        else:
            run.append(c)
        prev = key
    close()
    return out


def _parts(chunks: list[_Chunk], max_rows: int) -> list[list[_Chunk]]:
    parts: list[list[_Chunk]] = [[]]
    rows = 0
    for c in chunks:
        if parts[-1] and rows + c.rows > max_rows:
            parts.append([])
            rows = 0
        parts[-1].append(c)
        rows += c.rows
    return parts


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) or (
        isinstance(value, np.number) and not isinstance(value, np.bool_)
    )


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode()


def _tensor_array(arr: Any) -> Any:
    """Rows of a numpy array as fixed-size lists (a 1-d array stays a plain column)."""
    import pyarrow as pa

    if arr.ndim == 1:
        return pa.array(arr)
    flat = np.ascontiguousarray(arr).reshape(arr.shape[0], -1)
    values = pa.array(flat.reshape(-1))
    # elements never null (a row is whole or null): no definition level per element, which
    # halves the CPU of writing it (1.8 instead of 4.1 us per 256-float row, measured)
    item = pa.field("item", values.type, nullable=False)
    return pa.FixedSizeListArray.from_arrays(values, type=pa.list_(item, flat.shape[1]))


def _loose_array(values: list[Any]) -> Any:
    """Arrow's inference, or JSON text for values it cannot type (mixed kinds)."""
    import pyarrow as pa

    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array([None if v is None else _json(v) for v in values], pa.string())


def _output_columns(outputs: Any, keep: Any, n: int) -> list[tuple[str, Any]]:
    if outputs is None:
        return []
    if isinstance(outputs, Mapping):
        return [(OUTPUT_PREFIX + str(k), _one_output(v, keep)) for k, v in outputs.items()]
    return [(OUTPUT_PREFIX + "prediction", _one_output(outputs, keep))]


def _one_output(values: Any, keep: Any) -> Any:
    if isinstance(values, np.ndarray):
        arr = values if keep is None else values[keep]
        if arr.dtype.kind in "biuf":
            return _tensor_array(arr)
        values = arr.tolist()
    rows = list(values)
    if keep is not None:
        rows = [r for r, k in zip(rows, keep, strict=True) if k]
    return _loose_array(rows)


def _stringify(table: Any) -> Any:
    """``in__``/``out__`` columns as JSON text (when batches inferred different types)."""
    import pyarrow as pa

    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if name.startswith((INPUT_PREFIX, OUTPUT_PREFIX)) and not pa.types.is_string(col.type):
            col = pa.array([None if v is None else _json(v) for v in col.to_pylist()], pa.string())
        cols[name] = col
    return pa.table(cols)
