"""Batch scoring: a registered model over Parquet/CSV files, in parallel, resumable, checked.

``score`` resolves a version, fetches its verified package, splits the input into chunks
(row groups of Parquet files, whole CSV files; local or fsspec URLs such as ``s3://``) and
scores them in a thread per core sharing one loaded model (``executor="processes"``: a
process per core; ``"ray"``: Ray Data actors, :mod:`modelyard.batch._ray`), each streaming its
chunk in batches of 16,384 rows, so memory does not grow with the row groups or the files. The
files' columns are checked before anything is written. Every row is checked against the
version's data contract first: rows that break it go to a quarantine file with the reason, the
others are scored. Output goes to ``OUT.partial/`` (one Parquet part per chunk, each renamed
into place when complete) and the folder becomes ``OUT`` only when every chunk is done, with a
``_SUCCESS.json`` manifest, so a half-written output is never mistaken for a result. After an
interruption (Ctrl-C, SIGKILL, a crash), ``resume=True`` scores only the chunks whose part is
missing. The job is a tracked run with the version, the inputs' fingerprints and the counts.

Layout of a finished output folder::

    OUT/part-00000.parquet ...          kept input columns + prediction (+ proba_<class>)
    OUT/_quarantine/part-00000.parquet  the rejected rows as read, + _reason
    OUT/_SUCCESS.json                   version, inputs (sha256), counts, run id
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.batch._plan import Chunk, check_inputs, plan_chunks, scan_inputs
from modelyard.batch._rows import feature_columns
from modelyard.batch._worker import QUARANTINE, Scorer, arrow_memory, one_thread_each
from modelyard.errors import ConflictError, InvalidInputError
from modelyard.logs import get_logger

if TYPE_CHECKING:
    from modelyard.workspace import Workspace

__all__ = ["ScoreResult", "score"]

log = get_logger("modelyard.batch")

_PLAN = "_plan.json"
_SUCCESS = "_SUCCESS.json"
_EXECUTORS = ("local", "processes", "ray")


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """What a scoring job did.

    Attributes:
        output: the finished output folder.
        model: the model name; ``version``: the version scored with.
        rows_scored: rows written with predictions; ``rows_quarantined``: rows rejected.
        chunks: chunks in the job; ``chunks_resumed``: chunks found done and not re-scored.
        run_id: the tracking run of the job.
        seconds: wall time of this call.
    """

    output: Path
    model: str
    version: int
    rows_scored: int
    rows_quarantined: int
    chunks: int
    chunks_resumed: int
    run_id: str | None
    seconds: float
    inputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return (self.rows_scored + self.rows_quarantined) / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "model": self.model,
            "version": self.version,
            "rows_scored": self.rows_scored,
            "rows_quarantined": self.rows_quarantined,
            "chunks": self.chunks,
            "chunks_resumed": self.chunks_resumed,
            "run_id": self.run_id,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 1),
            "inputs": self.inputs,
        }


def score(
    workspace: Workspace,
    ref: str,
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    keep_columns: Sequence[str] | None = None,
    chunk_rows: int = 1_000_000,
    workers: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    trusted: bool | Sequence[str] = (),
    trust_pickle: bool = False,
    progress: Callable[[int, int], None] | None = None,
    track: bool = True,
    executor: str = "local",
    ray_address: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> ScoreResult:
    """Score ``inputs`` with the model version ``ref`` into the Parquet folder ``out``.

    Args:
        workspace: the project's stores and registry.
        ref: ``NAME``, ``NAME@ALIAS`` or ``NAME:VERSION``.
        inputs: Parquet or CSV files, or folders of them; local paths or URLs
            (``s3://bucket/day/``).
        out: the output folder; it must not exist (unless ``overwrite``), and it appears only
            once every chunk is scored.
        keep_columns: input columns copied beside the predictions (default: every input
            column that is not a feature, such as ids).
        chunk_rows: about how many rows make one unit of parallel work and of resumption.
        workers: chunks scored in parallel (default: one per core).
        resume: continue an interrupted job with the same version and inputs.
        overwrite: replace an existing output folder.
        trusted, trust_pickle: as for :func:`modelyard.models.load`.
        progress: called with (rows done, rows in total) as chunks finish.
        track: record the job as a tracking run.
        executor: ``"local"`` (a thread per worker in this process, sharing one loaded model:
            the libraries and the model are in memory once), ``"processes"`` (a spawned
            process per worker, for models whose predict holds the GIL) or ``"ray"`` (Ray Data
            schedules the same chunks on a Ray cluster's actors, each loading the model once;
            the output folder must be reachable from every node, e.g. a shared mount).
        ray_address: the Ray cluster to connect to (default: the running Ray, else a new
            local one).
        storage_options: fsspec options for URL inputs (default: the settings'
            ``storage_options``, those of the artifact store).

    Raises:
        NotFoundError: no such model, version or input file.
        InvalidInputError: an input misses a feature column or holds an impossible type, an
            empty input, or ``resume`` for another version or other inputs.
        ConflictError: ``out`` exists (pass ``overwrite=True``) or a job is under way there.
    """
    from modelyard.registry.packages import read_manifest

    started = time.perf_counter()
    if chunk_rows < 1:
        raise InvalidInputError(f"chunk_rows must be at least 1, not {chunk_rows}")
    if executor not in _EXECUTORS:
        raise InvalidInputError(
            f"executor must be one of {', '.join(_EXECUTORS)}, not {executor!r}",
            hint="modelyard score ... --executor ray",
            field="executor",
        )
    out_dir = Path(out)
    partial = out_dir.with_name(out_dir.name + ".partial")
    if out_dir.exists() and not overwrite:
        raise ConflictError(
            f"output {str(out_dir)!r} already exists",
            hint="choose another --out, or pass --overwrite to replace it",
            path=str(out_dir),
        )
    version = workspace.resolve(ref)
    contract = version.contract
    package = workspace.fetch(version)
    if storage_options is None:
        storage_options = dict(workspace.settings.storage_options)
    files = scan_inputs(inputs, storage_options)
    signature = version.signature or read_manifest(package).get("signature")
    features = feature_columns(contract, signature)
    check_inputs(files, features, contract, storage_options)  # before anything is written
    chunks = plan_chunks(files, chunk_rows, storage_options)
    total_rows = sum(c.rows or 0 for c in chunks)
    if all(c.format == "parquet" for c in chunks) and total_rows == 0:
        raise InvalidInputError(
            "the input holds no rows", hint="check the files given", files=[f.path for f in files]
        )
    plan = {
        "model": version.name,
        "version": version.version,
        "manifest_sha256": version.manifest_sha256,
        "inputs": [f.to_dict() for f in files],
        "chunk_rows": chunk_rows,
        "keep_columns": list(keep_columns) if keep_columns is not None else None,
    }
    done = _prepare(partial, plan, resume=resume)
    run = None
    if track:
        run = workspace.tracking.start_run(
            experiment="scoring",
            name=f"score {version.name}:{version.version}",
            tags={"modelyard.kind": "batch-score"},
        )
        run.log_params(
            {
                "model": version.name,
                "version": version.version,
                "inputs": len(files),
                "chunk_rows": chunk_rows,
                "resume": resume,
            }
        )
        run.set_tags({f"input.{i}.sha256": f.sha256 for i, f in enumerate(files)})
    todo = [c for c in chunks if c.part_name not in done]
    counts = {"scored": 0, "quarantined": 0}
    for name in done:
        meta = _part_counts(partial, name)
        counts["scored"] += meta[0]
        counts["quarantined"] += meta[1]
    job = {
        "package": str(package),
        "partial": str(partial),
        "contract": contract.to_dict() if contract is not None else None,
        "features": features,
        "keep_columns": list(keep_columns) if keep_columns is not None else None,
        "trusted": trusted if isinstance(trusted, bool) else list(trusted),
        "trust_pickle": trust_pickle,
        "storage_options": storage_options,
    }
    try:
        if executor == "ray":
            from modelyard.batch._ray import run_chunks_on_ray as run_chunks

            job["ray_address"] = ray_address
        elif executor == "processes":
            run_chunks = _run_chunks_in_processes
        else:
            run_chunks = _run_chunks_in_threads
        run_chunks(
            todo, job=job, workers=workers, counts=counts, progress=progress, total_rows=total_rows
        )
        if counts["scored"] + counts["quarantined"] == 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise InvalidInputError(
                "the input holds no rows (only a header)",
                hint="check the files given",
                files=[f.path for f in files],
            )
    except BaseException as exc:
        if run is not None:
            run.set_tag("error", f"{type(exc).__name__}: {exc}"[:500])
            run.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    seconds = time.perf_counter() - started
    manifest = {
        **plan,
        "rows_scored": counts["scored"],
        "rows_quarantined": counts["quarantined"],
        "chunks": len(chunks),
        "run_id": run.id if run is not None else None,
        "finished_at": time.time(),
    }
    _write_atomic(partial / _SUCCESS, json.dumps(manifest, indent=2).encode())
    if out_dir.is_dir() and not out_dir.is_symlink():
        shutil.rmtree(out_dir)
    elif out_dir.exists() or out_dir.is_symlink():
        out_dir.unlink()
    partial.rename(out_dir)
    if run is not None:
        run.log_metrics(
            {
                "rows_scored": counts["scored"],
                "rows_quarantined": counts["quarantined"],
                "seconds": seconds,
                "rows_per_s": (counts["scored"] + counts["quarantined"]) / seconds,
            }
        )
        run.set_tag("output", str(out_dir.resolve()))
        run.end()
    log.info(
        "scored",
        extra={
            "model": version.name,
            "version": version.version,
            "rows_scored": counts["scored"],
            "rows_quarantined": counts["quarantined"],
            "seconds": round(seconds, 3),
        },
    )
    return ScoreResult(
        output=out_dir,
        model=version.name,
        version=version.version,
        rows_scored=counts["scored"],
        rows_quarantined=counts["quarantined"],
        chunks=len(chunks),
        chunks_resumed=len(done),
        run_id=run.id if run is not None else None,
        seconds=seconds,
        inputs=[f.to_dict() for f in files],
    )


# ---------------------------------------------------------------------------- output folder


def _prepare(partial: Path, plan: dict[str, Any], *, resume: bool) -> set[str]:
    """Create (or, resuming, check) the staging folder; return the parts already done."""
    plan_file = partial / _PLAN
    if partial.exists():
        if not resume:
            raise ConflictError(
                f"{str(partial)!r} holds an unfinished scoring job",
                hint="pass --resume to finish it, or delete the folder to start again",
                path=str(partial),
            )
        try:
            before = json.loads(plan_file.read_text())
        except (OSError, ValueError) as exc:
            raise ConflictError(
                f"{str(partial)!r} has no readable {_PLAN}; it is not a job to resume",
                hint="delete the folder to start again",
                path=str(partial),
            ) from exc
        if before != plan:
            changed = sorted(k for k in plan if before.get(k) != plan[k])
            raise InvalidInputError(
                f"cannot resume {str(partial)!r}: {', '.join(changed)} differ from the "
                "interrupted job's",
                hint="resume with the same model version and unchanged inputs, or delete the "
                "folder to start again",
                changed=changed,
            )
        return {p.name for p in partial.glob("part-*.parquet")}
    (partial / QUARANTINE).mkdir(parents=True)
    _write_atomic(plan_file, json.dumps(plan, indent=2).encode())
    return set()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _part_counts(partial: Path, name: str) -> tuple[int, int]:
    import pyarrow.parquet as pq

    scored = pq.ParquetFile(partial / name).metadata.num_rows
    bad = partial / QUARANTINE / name
    quarantined = pq.ParquetFile(bad).metadata.num_rows if bad.exists() else 0
    return scored, quarantined


# ---------------------------------------------------------------------------- workers


def _drive(
    submit: Callable[[Chunk], Future[tuple[int, int]]],
    todo: list[Chunk],
    *,
    in_flight: int,
    counts: dict[str, int],
    progress: Callable[[int, int], None] | None,
    total_rows: int,
) -> None:
    """Keep ``in_flight`` chunks submitted until all are done; count rows as they finish."""
    rows_done = counts["scored"] + counts["quarantined"]
    pending: set[Future[tuple[int, int]]] = set()
    queue = iter(todo)
    for chunk in queue:
        pending.add(submit(chunk))
        if len(pending) >= in_flight:
            break
    try:
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                scored, bad = fut.result()
                counts["scored"] += scored
                counts["quarantined"] += bad
                rows_done += scored + bad
                if progress is not None:
                    progress(rows_done, max(total_rows, rows_done))
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(submit(nxt))
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise


def _run_chunks_in_threads(
    todo: list[Chunk],
    *,
    job: dict[str, Any],
    workers: int | None,
    counts: dict[str, int],
    progress: Callable[[int, int], None] | None,
    total_rows: int,
) -> None:
    if not todo:
        return
    from concurrent.futures import ThreadPoolExecutor

    cores = os.cpu_count() or 1
    workers = max(1, min(workers or cores, len(todo)))
    with arrow_memory(), ThreadPoolExecutor(workers, thread_name_prefix="score") as pool:
        # one model in memory for all threads: predict, Arrow's reading and writing and most
        # of the checks release the GIL, so a thread per core scales like a process per core
        # without each process's copy of the libraries and the model
        scorer = Scorer({**job, "threads": workers < cores})

        def one(chunk: Chunk) -> tuple[int, int]:
            with one_thread_each(max(1, cores // workers)):
                return scorer.score_chunk(chunk)

        try:
            _drive(
                lambda chunk: pool.submit(one, chunk),
                todo,
                in_flight=workers,
                counts=counts,
                progress=progress,
                total_rows=total_rows,
            )
        except BaseException:
            scorer.stop.set()  # Ctrl-C or a failed chunk: the others stop at their next batch
            raise


def _run_chunks_in_processes(
    todo: list[Chunk],
    *,
    job: dict[str, Any],
    workers: int | None,
    counts: dict[str, int],
    progress: Callable[[int, int], None] | None,
    total_rows: int,
) -> None:
    if not todo:
        return
    import multiprocessing

    cores = os.cpu_count() or 1
    workers = max(1, min(workers or cores, len(todo)))
    # a worker per core, each decoding and predicting on one thread, so that workers do not
    # fight over the cores with their libraries' thread pools
    job = {**job, "threads": workers < cores, "omp_threads": max(1, cores // workers)}
    # spawn, not fork: the parent holds threads (tracking, logging) that a fork would copy
    # mid-flight; each worker imports the model's libraries once and loads the model once
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(job,)) as pool:
        _drive(
            lambda chunk: pool.submit(_score_chunk, chunk),
            todo,
            in_flight=workers * 2,
            counts=counts,
            progress=progress,
            total_rows=total_rows,
        )


_SCORER: list[Scorer] = []


def _init(job: dict[str, Any]) -> None:
    import signal

    # Ctrl-C reaches the whole process group: the parent stops the job, workers just exit
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threads = job.get("omp_threads")
    if threads:  # before the model's libraries load: one worker per core, one thread each
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(threads))
    _SCORER.append(Scorer(job))


def _score_chunk(chunk: Chunk) -> tuple[int, int]:
    return _SCORER[0].score_chunk(chunk)
