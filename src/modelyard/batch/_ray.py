"""``modelyard score --executor ray``: Ray Data schedules the job's chunks on a Ray cluster.

The job is the local executor's: the same chunks (row groups of Parquet files, whole CSV files),
scored by the same :class:`~modelyard.batch._worker.Scorer` into the same staging folder, one
part per chunk, so the output rows, the contract checks, the quarantine and ``--resume`` are the
same. Ray Data runs a dataset of chunk descriptors through a pool of actors (``map_batches`` with
a callable class): each actor loads the model once and streams its chunks in bounded batches;
Ray's scheduler places the actors, restarts a dead one and back-pressures the queue. The output
folder must be reachable from every node (a shared mount); on one machine it always is.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any

from modelyard.batch._plan import Chunk
from modelyard.errors import ModelyardError, require_extra
from modelyard.logs import get_logger

__all__ = ["run_chunks_on_ray"]

log = get_logger("modelyard.batch")


class _ChunkScorer:
    """A Ray Data actor: loads the model once, scores the chunks it is handed."""

    def __init__(self, job: dict[str, Any]) -> None:
        from modelyard.batch._worker import Scorer

        self.scorer = Scorer(job)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        index, scored, rejected, errors = [], [], [], []
        for text in batch["chunk"]:
            data = json.loads(str(text))
            chunk = Chunk(
                data["index"], data["path"], data["format"], tuple(data["row_groups"]), data["rows"]
            )
            good = bad = 0
            error = b""
            try:
                good, bad = self.scorer.score_chunk(chunk)
            except ModelyardError as exc:
                # handed back as data: Ray Data's wrapper would keep only its text
                error = pickle.dumps(exc)
            index.append(chunk.index)
            scored.append(good)
            rejected.append(bad)
            errors.append(error)
        return {
            "index": np.asarray(index, dtype=np.int64),
            "scored": np.asarray(scored, dtype=np.int64),
            "rejected": np.asarray(rejected, dtype=np.int64),
            "error": np.asarray(errors, dtype=object),
        }


def run_chunks_on_ray(
    todo: list[Chunk],
    *,
    job: dict[str, Any],
    workers: int | None,
    counts: dict[str, int],
    progress: Callable[[int, int], None] | None,
    total_rows: int,
) -> None:
    """Score ``todo`` on Ray actors (``workers`` of them, default one per CPU of the cluster).

    Raises:
        MissingExtraError: Ray is not installed.
        ModelyardError: what a chunk raised (a file missing a column, an unreadable file).
    """
    if not todo:
        return
    ray = require_extra("ray", "ray")
    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if job.get("ray_address"):
            options["address"] = job["ray_address"]
        ray.init(**options)
        started = True
    try:
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        cpus = int(ray.cluster_resources().get("CPU", 1))
        size = max(1, min(workers or cpus, len(todo)))
        items = [
            {
                "chunk": json.dumps(
                    {
                        "index": c.index,
                        "path": c.path,
                        "format": c.format,
                        "row_groups": list(c.row_groups),
                        "rows": c.rows,
                    }
                )
            }
            for c in todo
        ]
        # one actor per CPU, one thread each (Ray sets OMP_NUM_THREADS to the actor's CPUs)
        job = {**job, "threads": False}
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _ChunkScorer,
            fn_constructor_kwargs={"job": job},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=1,
        )
        rows_done = counts["scored"] + counts["quarantined"]
        log.info("scoring on ray", extra={"chunks": len(todo), "actors": size})
        for row in ds.iter_rows():
            if row["error"]:
                error = pickle.loads(row["error"])  # our own actors wrote it
                raise error
            counts["scored"] += int(row["scored"])
            counts["quarantined"] += int(row["rejected"])
            rows_done += int(row["scored"]) + int(row["rejected"])
            if progress is not None:
                progress(rows_done, max(total_rows, rows_done))
    finally:
        if started:
            ray.shutdown()
