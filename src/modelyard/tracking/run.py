"""A live run: buffered params, metrics and tags, artifacts, datasets and lineage.

Writes are cheap on purpose. ``log_metric`` validates its arguments and appends one tuple to an
in-memory list under a lock; the records reach the store in batches (one ``executemany`` INSERT
per flush, and one upsert per metric key into ``latest_metrics``), written by a background
thread every second or as soon as 1,000 records are waiting, by :meth:`Run.flush`, at the end of
the run, and at interpreter exit. Params and tags are buffered the same way and written in the
same transaction.

Value rules (checked at call time, so errors point at the caller's line):

- keys: 1-255 characters of letters, digits, ``_ - . / : space``; no leading ``/``.
- metric values: finite numbers (anything ``float()`` accepts). NaN and infinities are refused
  with :class:`~modelyard.errors.InvalidInputError`: SQLite cannot store them, and a diverged
  loss is better caught where it happens than found as a hole in a chart.
- steps: integers (default 0); timestamps: UNIX seconds (default now).
- params: immutable; logging the same value again is a no-op, a different value raises
  :class:`~modelyard.errors.InvalidInputError` naming the key, the old and the new value.
- params and tags are stored as strings of at most 8,000 characters.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.errors import ConflictError, InvalidInputError, ModelyardError
from modelyard.logs import get_logger
from modelyard.store.keys import check_key, check_value
from modelyard.store.sql import upsert
from modelyard.tracking._flusher import flusher
from modelyard.tracking.entities import RUN_STATUSES

if TYPE_CHECKING:
    from modelyard.store.artifacts import ArtifactRef, ArtifactStore
    from modelyard.store.db import MetadataStore, SqlTx
    from modelyard.tracking.entities import RunInfo

__all__ = ["FLUSH_EVERY", "MAX_BUFFERED", "Run", "RunOwner"]

# Plain SQL of the flush (SQLite and PostgreSQL alike), run through MetadataStore.write().
_INSERT_PARAM = "INSERT INTO params (run_id, key, value) VALUES (:run_id, :key, :value)"
_UPSERT_TAG = upsert("run_tags", ("run_id", "key"), ("value",))
_INSERT_METRIC = (
    "INSERT INTO metrics (run_id, key, value, step, timestamp) "
    "VALUES (:run_id, :key, :value, :step, :timestamp)"
)
# the latest value per key: replaced only by a later step, or the same step and a newer time
_UPSERT_LATEST = upsert(
    "latest_metrics",
    ("run_id", "key"),
    ("value", "step", "timestamp"),
    where="excluded.step > latest_metrics.step OR (excluded.step = latest_metrics.step "
    "AND excluded.timestamp >= latest_metrics.timestamp)",
)

FLUSH_EVERY = 1_000
MAX_BUFFERED = 100_000  # past this, log_metric flushes inline: memory stays bounded

_log = get_logger("tracking")
_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 1  # a BIGINT column


class RunOwner(Protocol):
    """What a run writes through: the :class:`~modelyard.tracking.client.TrackingClient` that
    started it (a protocol, so that this module does not import the client's)."""

    @property
    def metadata_store(self) -> MetadataStore:
        """Where the run's rows go."""
        ...

    @property
    def artifact_store(self) -> ArtifactStore:
        """Where the run's files go."""
        ...

    def get_run(self, run_id: str) -> RunInfo:
        """Everything stored about one run."""
        ...

    def _insert_dataset(
        self, run_id: str, name: str, context: str | None, source: str | None, fp: dict[str, Any]
    ) -> None: ...

    def _upsert_artifacts(self, run_id: str, refs: dict[str, ArtifactRef]) -> None: ...

    def _forget(self, run_id: str) -> None: ...


class Run:
    """A run being recorded. Get one from ``TrackingClient.start_run`` or ``modelyard.start_run``.

    Used as a context manager, the run ends ``FINISHED``, or ``FAILED`` when the block raises
    (``KILLED`` on ``KeyboardInterrupt``)::

        with client.start_run(experiment="churn") as run:
            run.log_params({"lr": 0.1, "depth": 6})
            for step in range(100):
                run.log_metric("loss", loss, step=step)

    Attributes:
        id: the run id.
        experiment: the experiment's name.
        name: the run's name, if any.
        kind: ``run``, ``pipeline`` or ``step``.
        parent_run_id: the parent of a nested run.
        start_time: UNIX seconds.
    """

    def __init__(
        self,
        client: RunOwner,
        run_id: str,
        *,
        experiment: str,
        name: str | None,
        kind: str,
        parent_run_id: str | None,
        start_time: float,
        flush_every: int = FLUSH_EVERY,
    ) -> None:
        self.id = run_id
        self.experiment = experiment
        self.name = name
        self.kind = kind
        self.parent_run_id = parent_run_id
        self.start_time = start_time
        self._client = client
        self._flush_every = flush_every
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._metrics: list[tuple[str, float, int, float]] = []
        self._params: dict[str, str] = {}  # every param of this run, for the immutability check
        self._params_pending: dict[str, str] = {}
        self._tags_pending: dict[str, str] = {}
        self._lineage_pending: dict[str, Any] | None = None
        self._lineage_thread: threading.Thread | None = None
        self._final: tuple[str, float] | None = None  # (status, end_time) waiting to be written
        self._status = "RUNNING"
        self._ended = False
        self._forked = False

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, experiment={self.experiment!r}, status={self._status!r})"

    # ------------------------------------------------------------------ state
    @property
    def status(self) -> str:
        """``RUNNING`` until :meth:`end`, then the final status."""
        return self._status

    @property
    def info(self) -> RunInfo:
        """The run as stored (flushes buffered records first)."""
        return self._client.get_run(self.id)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("KILLED")
        else:
            self.end("FAILED")

    def _closed(self) -> ConflictError:
        if self._forked:
            return ConflictError(
                f"run {self.id} belongs to the parent of this forked process",
                hint="start a new run in this process with modelyard.start_run()",
                run_id=self.id,
            )
        return ConflictError(
            f"run {self.id} has ended ({self._status}); it cannot be changed",
            hint="start a new run with modelyard.start_run()",
            run_id=self.id,
        )

    # ------------------------------------------------------------------ metrics
    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: float | None = None
    ) -> None:
        """Record ``value`` of metric ``key`` at ``step`` (buffered; returns in microseconds).

        Args:
            key: the metric name, e.g. ``"val/loss"``.
            value: a finite number (``float()`` of it is stored).
            step: an integer step (default 0).
            timestamp: UNIX seconds (default now).

        Raises:
            InvalidInputError: a bad key, a non-finite or non-numeric value, a non-integer step.
            ConflictError: the run has ended.
        """
        check_key(key, "metric")
        try:
            v = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"metric {key!r} must be a number, got {type(value).__name__} {value!r}",
                key=key,
            ) from exc
        if not math.isfinite(v):
            raise InvalidInputError(
                f"metric {key!r} is {v} at step {step or 0}; only finite values are stored",
                hint="check for a diverged loss, or skip the value: "
                "if math.isfinite(x): log_metric(...)",
                key=key,
                step=step,
            )
        if step is None:
            s = 0
        elif type(step) is int and _STEP_MIN <= step <= _STEP_MAX:
            s = step
        else:
            s = self._check_step(key, step)
        ts = time.time() if timestamp is None else self._check_timestamp(key, timestamp)
        with self._lock:
            if self._ended:
                raise self._closed()
            self._metrics.append((key, v, s, ts))
            n = len(self._metrics)
        if n >= self._flush_every:
            if n >= MAX_BUFFERED:
                self.flush()
            elif n % self._flush_every == 0:
                flusher.wake()

    @staticmethod
    def _check_timestamp(key: str, timestamp: Any) -> float:
        try:
            ts = float(timestamp)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"timestamp of metric {key!r} must be UNIX seconds, got {timestamp!r}", key=key
            ) from exc
        if not math.isfinite(ts) or ts < 0 or ts > 1e11:
            raise InvalidInputError(
                f"timestamp of metric {key!r} is {timestamp!r}: not UNIX seconds",
                hint="timestamps are seconds since 1970 (time.time()); divide milliseconds by 1000",
                key=key,
            )
        return ts

    @staticmethod
    def _check_step(key: str, step: Any) -> int:
        import numbers

        if isinstance(step, numbers.Integral) and not isinstance(step, bool):
            if _STEP_MIN <= int(step) <= _STEP_MAX:
                return int(step)
            raise InvalidInputError(
                f"step of metric {key!r} is {step}; steps are 64-bit integers "
                f"({_STEP_MIN} to {_STEP_MAX})",
                key=key,
            )
        raise InvalidInputError(
            f"step of metric {key!r} must be an integer, got {type(step).__name__} {step!r}",
            key=key,
        )

    def log_metrics(
        self, metrics: dict[str, float], step: int | None = None, timestamp: float | None = None
    ) -> None:
        """Record several metrics at the same step and time (see :meth:`log_metric`)."""
        ts = time.time() if timestamp is None else timestamp
        for key, value in metrics.items():
            self.log_metric(key, value, step=step, timestamp=ts)

    # ------------------------------------------------------------------ params and tags
    def log_param(self, key: str, value: Any) -> None:
        """Record a parameter (stored as a string; immutable once logged).

        Raises:
            InvalidInputError: a bad key, a too-long value, or a different value for a key
                already logged.
            ConflictError: the run has ended.
        """
        check_key(key, "param")
        text = check_value(value, key, "param")
        with self._lock:
            if self._ended:
                raise self._closed()
            old = self._params.get(key)
            if old is not None:
                if old == text:
                    return
                raise InvalidInputError(
                    f"param {key!r} of run {self.id} is already {old!r}; cannot change it to "
                    f"{text!r}",
                    hint="params are immutable: log the new value under another key, or in a "
                    "new run",
                    key=key,
                    old=old,
                    new=text,
                )
            self._params[key] = text
            self._params_pending[key] = text

    def log_params(self, params: dict[str, Any]) -> None:
        """Record several parameters (see :meth:`log_param`)."""
        for key, value in params.items():
            self.log_param(key, value)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag (stored as a string; setting it again replaces the value)."""
        check_key(key, "tag")
        text = check_value(value, key, "tag")
        with self._lock:
            if self._ended:
                raise self._closed()
            self._tags_pending[key] = text

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set several tags (see :meth:`set_tag`)."""
        for key, value in tags.items():
            self.set_tag(key, value)

    # ------------------------------------------------------------------ artifacts and data
    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> ArtifactRef:
        """Store a file in the artifact store (content-addressed) and attach it to the run.

        Args:
            path: the local file.
            name: its logical path inside the run (default: the file name); logging the same
                name again points it at the new content.

        Raises:
            NotFoundError: ``path`` is not a file.
            InvalidNameError: ``name`` is not a safe relative path.
        """
        from modelyard.store.artifacts import validate_relative_name

        self._check_open()
        logical = validate_relative_name(name or Path(path).name, what="artifact name")
        ref = self._client.artifact_store.put_file(path)
        self._write_artifacts({logical: ref})
        return ref

    def log_artifacts(
        self, folder: str | os.PathLike[str], prefix: str | None = None
    ) -> dict[str, ArtifactRef]:
        """Store every file under ``folder``; their logical paths are ``prefix/relative/path``.

        Returns:
            logical path -> reference.
        """
        from modelyard.store.artifacts import validate_relative_name

        self._check_open()
        if prefix is not None:
            validate_relative_name(prefix, what="artifact prefix")
        refs = self._client.artifact_store.put_dir(folder)
        named = {(f"{prefix}/{rel}" if prefix else rel): ref for rel, ref in refs.items()}
        self._write_artifacts(named)
        return named

    def log_dataset(
        self,
        frame: Any,
        name: str,
        context: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """Fingerprint a data frame (content sha256, rows, schema) and record it on the run.

        Args:
            frame: pandas/polars DataFrame or Series, pyarrow Table or numpy array.
            name: what the data is called, e.g. ``"train"``.
            context: its role, e.g. ``train``, ``validation``, ``test``.
            source: where it came from (a path or URL).

        Returns:
            ``{"digest", "rows", "columns", "schema"}`` (see ``fingerprint_frame``).
        """
        from modelyard.tracking.fingerprint import fingerprint_frame

        self._check_open()
        check_key(name, "dataset")
        fp = fingerprint_frame(frame)
        self._client._insert_dataset(self.id, name, context, source, fp)
        return fp

    def _write_artifacts(self, refs: dict[str, ArtifactRef]) -> None:
        self._client._upsert_artifacts(self.id, refs)

    def _check_open(self) -> None:
        if self._ended:
            raise self._closed()

    def _forget_after_fork(self) -> None:
        """In a forked child: drop what the parent will write, refuse further writes here."""
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._metrics = []
        self._params_pending = {}
        self._tags_pending = {}
        self._lineage_pending = None
        self._lineage_thread = None
        self._final = None
        self._ended = True
        self._forked = True

    # ------------------------------------------------------------------ lineage
    def _start_lineage(self, project_root: Path) -> None:
        from modelyard.tracking import lineage

        cached = lineage.capture_cached(project_root)
        if cached is not None:  # nothing to wait for: no thread
            with self._lock:
                self._lineage_pending = cached
            return

        def capture() -> None:
            try:
                info = lineage.capture(project_root)
            except Exception:  # lineage is best effort: a run must not fail for it
                _log.warning("could not capture lineage", exc_info=True, extra={"run_id": self.id})
                return
            with self._lock:
                self._lineage_pending = info

        thread = threading.Thread(target=capture, name="modelyard-lineage", daemon=True)
        self._lineage_thread = thread
        thread.start()

    def _join_lineage(self) -> None:
        thread = self._lineage_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30.0)

    # ------------------------------------------------------------------ flushing and ending
    def flush(self, *, wait_lineage: bool = False) -> None:
        """Write every buffered record now, in one transaction.

        Args:
            wait_lineage: first wait (up to 30 s) for lineage still being captured.

        Raises:
            ModelyardError: the store refused the write; the records stay buffered and are
                retried by the next flush.
        """
        if wait_lineage:
            self._join_lineage()
        with self._flush_lock:
            with self._lock:
                metrics, self._metrics = self._metrics, []
                params, self._params_pending = self._params_pending, {}
                tags, self._tags_pending = self._tags_pending, {}
                lineage, self._lineage_pending = self._lineage_pending, None
                final = self._final
            if not (metrics or params or tags or lineage or final):
                return
            try:
                with self._client.metadata_store.write() as tx:
                    self._write(tx, metrics, params=params, tags=tags, lineage=lineage, final=final)
            except Exception as exc:
                with self._lock:
                    self._metrics[:0] = metrics
                    self._params_pending = {**params, **self._params_pending}
                    self._tags_pending = {**tags, **self._tags_pending}
                    if self._lineage_pending is None:
                        self._lineage_pending = lineage
                if isinstance(exc, ModelyardError):
                    raise
                raise ModelyardError(
                    f"could not write {len(metrics)} metric values, {len(params)} params and "
                    f"{len(tags)} tags of run {self.id} to {self._client.metadata_store.safe_url}"
                    f": {type(exc).__name__}: {exc}",
                    hint="the records are kept in memory and retried on the next flush; "
                    "check that the database is reachable",
                    run_id=self.id,
                ) from exc
            if final is not None:
                with self._lock:
                    if self._final == final:
                        self._final = None
                flusher.unregister(self)
                self._client._forget(self.id)

    def _write(
        self,
        tx: SqlTx,
        metrics: list[tuple[str, float, int, float]],
        *,
        params: dict[str, str],
        tags: dict[str, str],
        lineage: dict[str, Any] | None,
        final: tuple[str, float] | None,
    ) -> None:
        rid = self.id
        tx.executemany(
            _INSERT_PARAM, [{"run_id": rid, "key": k, "value": v} for k, v in params.items()]
        )
        tx.executemany(
            _UPSERT_TAG, [{"run_id": rid, "key": k, "value": v} for k, v in tags.items()]
        )
        if metrics:
            tx.executemany(
                _INSERT_METRIC,
                [
                    {"run_id": rid, "key": k, "value": v, "step": s, "timestamp": t}
                    for k, v, s, t in metrics
                ],
            )
            latest: dict[str, tuple[str, float, int, float]] = {}
            for rec in metrics:
                cur = latest.get(rec[0])
                if cur is None or (rec[2], rec[3]) >= (cur[2], cur[3]):
                    latest[rec[0]] = rec
            tx.executemany(
                _UPSERT_LATEST,
                [
                    {"run_id": rid, "key": k, "value": v, "step": s, "timestamp": t}
                    for k, v, s, t in latest.values()
                ],
            )
        values: dict[str, Any] = {}
        if lineage is not None:
            import orjson

            env = lineage.get("environment")
            values.update(
                git_commit=lineage.get("git_commit"),
                git_branch=(lineage.get("git_branch") or None),
                git_dirty=lineage.get("git_dirty"),
                git_diff_sha256=lineage.get("git_diff_sha256"),
                environment=None if env is None else orjson.dumps(env).decode(),
            )
        if final is not None:
            values.update(status=final[0], end_time=final[1])
        if values:
            sets = ", ".join(f"{k} = :{k}" for k in values)
            tx.execute(f"UPDATE runs SET {sets} WHERE id = :run_id", {**values, "run_id": rid})

    def end(self, status: str = "FINISHED") -> None:
        """End the run: wait for lineage, write every buffered record and the final status.

        Ending an ended run does nothing.

        Args:
            status: ``FINISHED``, ``FAILED`` or ``KILLED``.

        Raises:
            InvalidInputError: an unknown status.
            ModelyardError: the final write failed; it is retried at interpreter exit.
        """
        if status not in RUN_STATUSES or status == "RUNNING":
            raise InvalidInputError(
                f"cannot end run {self.id} with status {status!r}",
                hint="use FINISHED, FAILED or KILLED",
                status=status,
            )
        with self._lock:
            if self._ended:
                return
            self._ended = True
            self._status = status
        self._join_lineage()
        with self._lock:
            self._final = (status, time.time())
        try:
            self.flush()
        except BaseException:
            with self._lock:  # the store still says RUNNING: so does the object
                self._ended = False
                self._status = "RUNNING"
                self._final = None
            raise
        _log.debug("run ended", extra={"run_id": self.id, "status": status})
