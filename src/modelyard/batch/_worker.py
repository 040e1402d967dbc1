"""What a scoring worker does with a chunk: read it in bounded batches, check, predict, write.

Shared by the local executor's threads and the ``processes`` executor's workers
(:mod:`modelyard.batch.scoring`) and the Ray executor's actors (:mod:`modelyard.batch._ray`), so
all write the same parts.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.batch._plan import Chunk
from modelyard.errors import InvalidInputError, ModelyardError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["QUARANTINE", "Cancelled", "Scorer", "arrow_memory", "one_thread_each"]

QUARANTINE = "_quarantine"
# rows per batch read, checked, predicted and written: with 20 float features a batch costs about
# 3 MB at each stage; smaller batches add per-call overhead, larger ones memory per worker
_BATCH_ROWS = 16_384
_READ_BUFFER_BYTES = 1 << 20  # Parquet read buffer per column


class Cancelled(ModelyardError):
    """A chunk stopped before its end because the job is stopping; its part is not written."""


@contextmanager
def arrow_memory() -> Iterator[None]:
    """Arrow allocates from jemalloc, returning freed pages at once, for the block's duration.

    The default pool (mimalloc) keeps freed pages for reuse: a scoring job's peak resident
    memory was 11% higher with it (2M rows, two threads: 452 vs 402 MiB). This sets pyarrow's
    default pool; Arrow's C++ readers take the process's, which ``modelyard score`` sets with
    ``ARROW_DEFAULT_MEMORY_POOL`` before pyarrow loads.
    """
    import pyarrow as pa

    previous = pa.default_memory_pool()
    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(0)
    except (NotImplementedError, pa.ArrowNotImplementedError):  # a build without jemalloc
        yield
        return
    pa.set_memory_pool(pool)
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


@contextmanager
def one_thread_each(threads: int) -> Iterator[None]:
    """The calling thread's OpenMP parallel regions use ``threads`` threads during the block.

    OpenMP's thread count is per calling thread, so each scoring thread limits its own model
    calls (scikit-learn's trees, for one) and the workers do not oversubscribe the cores.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # no scikit-learn, no OpenMP runtime to limit
        yield
        return
    with threadpool_limits(threads, user_api="openmp"):
        yield


class Scorer:
    """What a worker holds for a job: the loaded model, the contract, the output folder."""

    def __init__(self, job: dict[str, Any]) -> None:
        from modelyard.data.contract import Contract
        from modelyard.registry.packages import load

        self.model = load(job["package"], trusted=job["trusted"], trust_pickle=job["trust_pickle"])
        raw = job["contract"]
        self.contract = Contract.from_dict(raw, source="contract") if raw else None
        self.features: list[str] = job["features"]
        self.keep: list[str] | None = job["keep_columns"]
        self.partial = Path(job["partial"])
        self.threads = bool(job.get("threads", True))
        self.storage_options: dict[str, Any] = job.get("storage_options") or {}
        # set by the job on Ctrl-C or a failed chunk: the other threads stop at their next batch
        self.stop = threading.Event()

    def score_chunk(self, chunk: Chunk) -> tuple[int, int]:
        """Score one chunk into its part file (and quarantine file); return (scored, rejected).

        Batches of at most ``_BATCH_ROWS`` rows are read, checked, scored and appended to the
        part as they come, so a worker's memory does not grow with the chunk or the file.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        from modelyard.batch._rows import check_rows

        features = self.features
        target = self.partial / chunk.part_name
        bad_target = self.partial / QUARANTINE / chunk.part_name
        tmp = target.with_name(f".{chunk.part_name}.{uuid.uuid4().hex}.tmp")
        bad_tmp = bad_target.with_name(f".{chunk.part_name}.{uuid.uuid4().hex}.tmp")
        writer: pq.ParquetWriter | None = None
        bad_writer: pq.ParquetWriter | None = None
        scored = rejected = 0
        finished = False
        try:
            for batch in _read(
                chunk,
                self.features,
                self.contract,
                threads=self.threads,
                storage_options=self.storage_options,
            ):
                if self.stop.is_set():
                    raise Cancelled(f"scoring {chunk.part_name} was stopped")
                check = check_rows(batch, features, self.contract, source=chunk.path)
                keep = self.keep
                if keep is None:
                    keep = [c for c in batch.schema.names if c not in features]
                good = ~check.bad
                if check.bad.any():
                    rejected_rows = batch.filter(pa.array(check.bad))
                    rejected_rows = rejected_rows.append_column(
                        "_reason", pa.array(check.reasons, pa.string())
                    )
                    if bad_writer is None:
                        bad_writer = pq.ParquetWriter(bad_tmp, rejected_rows.schema)
                    bad_writer.write_batch(rejected_rows)
                    rejected += rejected_rows.num_rows
                table = _predict(
                    self.model, batch, check=check, good=good, features=features, keep=keep
                )
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                scored += table.num_rows
            if writer is None:  # an empty chunk still leaves a part: the chunk is done
                writer = pq.ParquetWriter(tmp, pa.schema([]))
            finished = True
        finally:
            if writer is not None:
                writer.close()
            if bad_writer is not None:
                bad_writer.close()
            if not finished:  # a failed chunk leaves no half-written temporary file behind
                tmp.unlink(missing_ok=True)
                bad_tmp.unlink(missing_ok=True)
        if bad_writer is not None:
            bad_tmp.replace(bad_target)
        tmp.replace(target)  # last: a part on disk means its quarantine file is in place too
        return scored, rejected


def _read(
    chunk: Chunk,
    features: list[str],
    contract: Any,
    *,
    threads: bool,
    storage_options: dict[str, Any],
) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    from modelyard.batch._plan import open_csv, open_input

    with open_input(chunk.path, storage_options) as source:
        if chunk.format == "parquet":
            import pyarrow.parquet as pq

            # buffer_size: pages are read as they are decoded; without it the reader holds
            # every column chunk of the row group at once (a 1M-row group of 20 floats: 160 MB)
            pf = pq.ParquetFile(source, buffer_size=_READ_BUFFER_BYTES, pre_buffer=False)
            if chunk.row_groups:
                yield from pf.iter_batches(
                    batch_size=_BATCH_ROWS, row_groups=list(chunk.row_groups), use_threads=threads
                )
            return
        from modelyard.batch._rows import numeric_columns

        reader = open_csv(source, numeric_columns(features, contract), path=chunk.path)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                raise InvalidInputError(
                    f"{chunk.path} cannot be read as CSV: {exc}",
                    hint="fix the file (every line needs the header's columns) and score it again",
                    file=chunk.path,
                ) from exc
            yield batch


def _predict(
    model: Any,
    batch: pa.RecordBatch,
    *,
    check: Any,
    good: Any,
    features: list[str],
    keep: list[str],
) -> pa.Table:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    n_good = int(good.sum())
    columns: dict[str, Any] = {}
    kept = batch.filter(pa.array(good)) if n_good != batch.num_rows else batch
    for name in keep:
        if name in batch.schema.names:
            column = kept.column(name)
            parsed = check.features.get(name)
            if pa.types.is_string(column.type) and parsed is not None and parsed.dtype.kind == "f":
                # a number feature of a CSV, read as text: kept as the number it was checked as
                column = pa.array(parsed if n_good == batch.num_rows else parsed[good])
            columns[name] = column
    if n_good == batch.num_rows:  # the common case: no row rejected, no copy of the columns
        frame = pd.DataFrame({name: check.features[name] for name in features}, copy=False)
    else:
        frame = pd.DataFrame({name: check.features[name][good] for name in features})
    raw = model.raw
    options = model.manifest.get("flavor_options") or {}
    if n_good == 0:
        columns["prediction"] = pa.array([], pa.float64())
        return pa.table(columns)
    method = options.get("method", "predict")
    if (
        method in {"predict", "predict_proba"}
        and hasattr(raw, "predict_proba")
        and hasattr(raw, "classes_")
    ):
        # one predict_proba gives both: the class is its argmax, as classifiers' predict does
        proba = np.asarray(raw.predict_proba(frame))
        classes = np.asarray(raw.classes_)
        columns["prediction"] = pa.array(classes[proba.argmax(axis=1)])
        for i, cls in enumerate(classes):
            columns[f"proba_{cls}"] = pa.array(proba[:, i])
    else:
        out = np.asarray(model.predict(frame))
        if out.ndim == 1:
            columns["prediction"] = pa.array(out)
        else:
            for i in range(out.shape[1]):
                columns[f"prediction_{i}"] = pa.array(out[:, i])
    return pa.table(columns)
