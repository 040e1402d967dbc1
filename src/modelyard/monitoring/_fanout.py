"""Where a window's request log is counted: in this process, or fanned out over Ray.

A window reduces to :class:`~modelyard.monitoring.WindowCounts`, and counts of disjoint parts
add up, so a large window can be split into parts (files, or row groups of a large file), each
counted where it is read, and the parts summed. :class:`LocalCounter` reads the window batch by
batch here; :class:`RayCounter` sends each part to a Ray task that opens the artifact store by
URL (a folder every node sees, or S3/GCS), reads only its part and returns its counts (bins,
never rows). Both give the same counts: integer bins add exactly, and the float sums of the
probability scores up to rounding.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.errors import InvalidInputError, ModelyardError, require_extra
from modelyard.logs import get_logger
from modelyard.monitoring._counts import IN, Binner, WindowCounts

if TYPE_CHECKING:
    from modelyard.monitoring._types import LogReader, Window

__all__ = ["Counter", "LocalCounter", "RayCounter"]

log = get_logger("modelyard.monitoring")

_stores: dict[str, Any] = {}  # per Ray worker process: one open store per URL


class Counter(Protocol):
    """Counts one window of a request log into a binner's bins."""

    def count(
        self,
        reader: LogReader,
        binner: Binner,
        window: Window,
        columns: list[str] | None,
        batch_rows: int,
    ) -> WindowCounts:
        """The window's counts; corrupt files are skipped and added to
        ``reader.skipped_files``."""
        ...


class LocalCounter:
    """Reads the window here, one batch in memory at a time."""

    def count(
        self,
        reader: LogReader,
        binner: Binner,
        window: Window,
        columns: list[str] | None,
        batch_rows: int,
    ) -> WindowCounts:
        """See :meth:`Counter.count`."""
        files = reader.files("requests", window.start, window.end)
        units: list[tuple[str, list[int] | None]] = [(p, None) for p in files]
        counts, skipped = _count_units(
            reader.store.fs, units, binner, window.start, window.end, columns, batch_rows
        )
        reader.skipped_files += skipped
        return counts


class RayCounter:
    """Fans a window out over a Ray cluster: one task per part, the parts' counts summed.

    Args:
        artifact_url: the artifact store's URL (each task opens it itself).
        storage_options: fsspec options for it (credentials travel to the tasks, never logged).
        address: a Ray cluster to connect to (default: the running Ray, else a new local one).
        parts: tasks per window (default: twice the cluster's CPUs).
        num_cpus: CPUs each task reserves.
    """

    def __init__(
        self,
        artifact_url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        address: str | None = None,
        parts: int | None = None,
        num_cpus: float = 1.0,
    ) -> None:
        self.artifact_url = artifact_url
        self.storage_options = dict(storage_options or {})
        self.address = address
        self.parts = parts
        self.num_cpus = num_cpus
        self._remote: Any = None

    def _ray(self) -> Any:
        ray = require_extra("ray", "ray")
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                kwargs["address"] = self.address
            ray.init(**kwargs)
        return ray

    def count(
        self,
        reader: LogReader,
        binner: Binner,
        window: Window,
        columns: list[str] | None,
        batch_rows: int,
    ) -> WindowCounts:
        """See :meth:`Counter.count`.

        Raises:
            InvalidInputError: a part's columns do not fit the profile (as the local reader).
            MissingExtraError: Ray (``modelyard[ray]``) is not installed.
        """
        files = reader.files("requests", window.start, window.end)
        if not files:
            return WindowCounts()
        ray = self._ray()
        parts = self.parts or max(1, 2 * int(ray.cluster_resources().get("CPU", 1)))
        plan = _plan(reader.store.fs, files, parts)
        if self._remote is None:
            self._remote = ray.remote(max_retries=1)(_count_part)
        remote = self._remote.options(num_cpus=self.num_cpus)
        job = ray.put((binner, window.start, window.end, columns, batch_rows))
        refs = [remote.remote(self.artifact_url, self.storage_options, u, job) for u in plan]
        total = WindowCounts()
        errors: list[tuple[str, str, str | None]] = []
        for answer in ray.get(refs):
            reader.skipped_files += answer["skipped"]
            if answer["error"] is not None:
                errors.append(answer["error"])
            else:
                total.merge(answer["counts"])
        log.debug("window counted on ray", extra={"files": len(files), "tasks": len(plan)})
        if errors:
            kind, message, hint = errors[0]
            if kind == "InvalidInputError":
                raise InvalidInputError(message, hint=hint)
            raise ValueError(message)
        return total


def _plan(fs: Any, files: list[str], parts: int) -> list[list[tuple[str, list[int] | None]]]:
    """Split the files into at most ``parts`` tasks; when there are fewer files than tasks, a
    file of several row groups is cut into runs of row groups."""
    units: list[tuple[str, list[int] | None]] = [(p, None) for p in files]
    if len(files) < parts:
        import pyarrow as pa
        import pyarrow.parquet as pq

        per_file = math.ceil(parts / len(files))
        units = []
        for path in files:
            try:
                with fs.open(path, "rb") as fh:
                    groups = pq.ParquetFile(fh).metadata.num_row_groups
            except (pa.ArrowException, OSError, ValueError):
                units.append((path, None))  # the task skips and counts it, as the reader does
                continue
            step = max(1, math.ceil(groups / per_file))
            units += [(path, list(range(i, min(i + step, groups)))) for i in range(0, groups, step)]
    tasks = min(parts, len(units))
    return [units[i::tasks] for i in range(tasks)]


def _count_part(
    url: str,
    storage_options: dict[str, Any],
    units: list[tuple[str, list[int] | None]],
    job: tuple[Binner, dt.datetime, dt.datetime, list[str] | None, int],
) -> dict[str, Any]:
    """In a Ray task: the counts of some files (or row groups) of the window; errors travel
    back as text (Ray's wrapper would hide the cause's type)."""
    from modelyard.store.artifacts import ArtifactStore

    store = _stores.get(url)
    if store is None:
        store = _stores[url] = ArtifactStore.open(url, storage_options)
    try:
        counts, skipped = _count_units(store.fs, units, *job)
    except ModelyardError as exc:
        return {"counts": None, "skipped": 0, "error": (type(exc).__name__, exc.message, exc.hint)}
    except Exception as exc:  # named on the driver, which gives no verdict
        error = ("Exception", f"{type(exc).__name__}: {exc}"[:1000], None)
        return {"counts": None, "skipped": 0, "error": error}
    return {"counts": counts, "skipped": skipped, "error": None}


def _count_units(  # noqa: PLR0917  (the job's parts, as a Ray task gets them)
    fs: Any,
    units: list[tuple[str, list[int] | None]],
    binner: Binner,
    since: dt.datetime,
    until: dt.datetime,
    columns: list[str] | None,
    batch_rows: int,
) -> tuple[WindowCounts, int]:
    """The counts of the rows of ``[since, until)`` in some files (or row groups of them), and
    how many files could not be read (skipped and logged, as the request-log reader does)."""
    import pyarrow as pa

    from modelyard.requestlog.reader import iter_file_batches

    total = WindowCounts()
    skipped = 0
    # text columns of categorical features are read as dictionaries (Parquet stores them so):
    # no string is built per row, and they are counted by dictionary index
    texts = [IN + n for n, fp in binner.profile.features.items() if fp.kind == "categorical"]
    for path, groups in units:
        try:
            with fs.open(path, "rb") as fh:
                batches = iter_file_batches(
                    fh, columns, batch_rows=batch_rows, row_groups=groups, dictionary=texts
                )
                for batch in batches:
                    table = _in_window(pa.Table.from_batches([batch]), since, until)
                    if table.num_rows:
                        total.merge(binner.count(table))
        except (pa.ArrowException, OSError, ValueError) as exc:
            skipped += 1
            log.warning(
                "request log file skipped",
                extra={"path": path, "error": f"{type(exc).__name__}: {exc}"[:300]},
            )
    return total, skipped


def _in_window(table: Any, since: dt.datetime, until: dt.datetime) -> Any:
    """The rows of ``[since, until)``; a batch wholly inside (the usual case: a file holds
    seconds of traffic) is returned as it is, without copying every column through a filter."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ts = table.column("ts")
    bounds = pc.min_max(ts)
    first, last = bounds["min"].as_py(), bounds["max"].as_py()
    if ts.null_count == 0 and first is not None and since <= first and last < until:
        return table
    lo, hi = pa.scalar(since, ts.type), pa.scalar(until, ts.type)
    return table.filter(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)))
