"""TrackingClient: start runs, read them back, search them.

A client wraps one :class:`~modelyard.store.db.MetadataStore` and one
:class:`~modelyard.store.artifacts.ArtifactStore`::

    from modelyard.tracking.client import TrackingClient

    tc = TrackingClient.from_settings(load_settings())
    with tc.start_run(experiment="churn", name="xgb-depth6") as run:
        run.log_param("depth", 6)
        run.log_metric("auc", 0.91)
    page = tc.search_runs(experiment="churn", filter="metrics.auc > 0.9",
                          order_by=["metrics.auc DESC"])

Reads see this process's buffered records: ``get_run``, ``search_runs`` and ``metric_history``
flush the open runs of this client first.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import ConflictError, InvalidInputError, ModelyardError, NotFoundError
from modelyard.logs import get_logger
from modelyard.store.keys import MAX_KEY, check_key, check_value
from modelyard.store.sql import upsert
from modelyard.tracking._flusher import flusher
from modelyard.tracking.entities import RUN_KINDS, Page, RunInfo
from modelyard.tracking.run import FLUSH_EVERY, Run

if TYPE_CHECKING:
    from modelyard.config import Settings
    from modelyard.store.artifacts import ArtifactRef, ArtifactStore
    from modelyard.store.db import MetadataStore

__all__ = ["TrackingClient"]

_log = get_logger("tracking")

# Plain SQL of the hot path (SQLite and PostgreSQL alike), run through MetadataStore.write().
_INSERT_RUN = (
    "INSERT INTO runs (id, experiment_id, name, kind, status, parent_run_id, start_time, "
    'end_time, "user", source, process_host, process_pid) VALUES (:id, :experiment_id, :name, '
    ":kind, :status, :parent_run_id, :start_time, :end_time, :user, :source, :process_host, "
    ":process_pid)"
)
_INSERT_RUN_TAG = "INSERT INTO run_tags (run_id, key, value) VALUES (:run_id, :key, :value)"
_UPSERT_RUN_ARTIFACT = upsert("run_artifacts", ("run_id", "path"), ("sha256", "size_bytes"))


class TrackingClient:
    """Runs on a metadata store and an artifact store.

    Args:
        metadata_store: where runs, params, metrics and lineage go.
        artifact_store: where logged files go.
        user: recorded on each run (default: the OS user).
        project_root: the folder whose git state is captured as lineage (default: cwd).
        default_experiment: used when ``start_run`` gets no experiment.
        flush_every: buffered records per run that trigger a background flush.
    """

    def __init__(
        self,
        metadata_store: MetadataStore,
        artifact_store: ArtifactStore,
        *,
        user: str | None = None,
        project_root: str | os.PathLike[str] | None = None,
        default_experiment: str = "default",
        flush_every: int = FLUSH_EVERY,
    ) -> None:
        self.metadata_store = metadata_store
        self.artifact_store = artifact_store
        self.user = user
        self.project_root = Path(project_root) if project_root is not None else None
        self.default_experiment = default_experiment
        self.flush_every = flush_every
        self._experiments: dict[str, int] = {}
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> TrackingClient:
        """A client on the stores that ``settings`` name (db_url, artifact_url, user, ...)."""
        from modelyard.store.artifacts import ArtifactStore
        from modelyard.store.db import MetadataStore

        return cls(
            MetadataStore.from_settings(settings),
            ArtifactStore.from_settings(settings),
            user=settings.resolved_user,
            project_root=settings.project_root,
            default_experiment=settings.experiment,
        )

    # ------------------------------------------------------------------ experiments
    def _experiment_id(self, name: str) -> int:
        cached = self._experiments.get(name)
        if cached is not None:
            return cached
        select = "SELECT id FROM experiments WHERE name = :name"
        with self.metadata_store.query() as q:
            found = q.execute(select, {"name": name})
        if not found:
            with self.metadata_store.write() as tx:
                tx.execute(
                    "INSERT INTO experiments (name, created_at) VALUES (:name, :at) "
                    "ON CONFLICT (name) DO NOTHING",
                    {"name": name, "at": time.time()},
                )
                found = tx.execute(select, {"name": name})
        self._experiments[name] = int(found[0][0])
        return int(found[0][0])

    def list_experiments(self) -> list[str]:
        """Every experiment's name, sorted."""
        import sqlalchemy as sa

        from modelyard.store.schema import experiments

        with self.metadata_store.read() as conn:
            return list(
                conn.execute(sa.select(experiments.c.name).order_by(experiments.c.name)).scalars()
            )

    # ------------------------------------------------------------------ runs
    def start_run(  # noqa: PLR0917 - positional order is public API (docs/architecture.md)
        self,
        experiment: str | None = None,
        name: str | None = None,
        tags: dict[str, Any] | None = None,
        kind: str = "run",
        parent_run_id: str | None = None,
        source: str | None = None,
        capture_lineage: bool = True,
    ) -> Run:
        """Create a run (status RUNNING) and return it; lineage is captured in the background.

        Args:
            experiment: the experiment's name (created on first use; default
                ``default_experiment``).
            name: a human name for the run.
            tags: initial tags.
            kind: ``run``, ``pipeline`` or ``step``.
            parent_run_id: makes this a nested run.
            source: the entry point (default: the running script).
            capture_lineage: record git state and the environment.

        Raises:
            InvalidInputError: a bad experiment name, kind or tag.
            NotFoundError: ``parent_run_id`` does not exist.
        """
        experiment = experiment or self.default_experiment
        check_key(experiment, "experiment")
        if kind not in RUN_KINDS:
            raise InvalidInputError(
                f"run kind {kind!r} is not one of {', '.join(RUN_KINDS)}", kind=kind
            )
        if name is not None and len(name) > MAX_KEY:
            raise InvalidInputError(
                f"run name is {len(name)} characters long; the limit is {MAX_KEY}", name=name
            )
        tag_rows = {}
        for key, value in (tags or {}).items():
            check_key(key, "tag")
            tag_rows[key] = check_value(value, key, "tag")
        process_host = process_pid = None
        if parent_run_id is None:
            from modelyard.tracking import liveness

            # runs of this machine left RUNNING by a process that died (SIGKILL, out of memory,
            # a native crash) end KILLED now; this run says which process it belongs to
            liveness.end_stale_runs(self.metadata_store)
            process_host, process_pid = liveness.host_identity(), liveness.process_token()
        exp_id = self._experiment_id(experiment)
        run_id = uuid.uuid4().hex
        now = time.time()
        row = {
            "id": run_id,
            "experiment_id": exp_id,
            "name": name,
            "kind": kind,
            "status": "RUNNING",
            "parent_run_id": parent_run_id,
            "start_time": now,
            "end_time": None,
            "user": self.user if self.user is not None else _os_user(),
            "source": source if source is not None else _default_source(),
            "process_host": process_host,
            "process_pid": process_pid,
        }
        try:
            with self.metadata_store.write() as tx:
                if parent_run_id is not None and not tx.execute(
                    "SELECT id FROM runs WHERE id = :id", {"id": parent_run_id}
                ):
                    raise NotFoundError(
                        f"parent run {parent_run_id!r} not found",
                        hint="pass the id of an existing run (modelyard runs list)",
                        run_id=parent_run_id,
                    )
                tx.execute(_INSERT_RUN, row)
                tx.executemany(
                    _INSERT_RUN_TAG,
                    [{"run_id": run_id, "key": k, "value": v} for k, v in tag_rows.items()],
                )
        except Exception as exc:
            if type(exc).__name__ != "IntegrityError":  # sqlite3's or SQLAlchemy's
                raise
            # the cached experiment id may be stale (its row deleted): look it up next time
            self._experiments.pop(experiment, None)
            raise ModelyardError(
                f"could not create a run in experiment {experiment!r}: "
                f"{getattr(exc, 'orig', None) or exc}",
                hint="retry; if it persists, check the metadata store with `modelyard db current`",
            ) from exc
        run = Run(
            self,
            run_id,
            experiment=experiment,
            name=name,
            kind=kind,
            parent_run_id=parent_run_id,
            start_time=now,
            flush_every=self.flush_every,
        )
        with self._lock:
            self._runs[run_id] = run
        flusher.register(run)
        if capture_lineage:
            run._start_lineage(self.project_root or Path.cwd())
        return run

    def attach_run(self, run_id: str) -> Run:
        """A handle on the existing RUNNING run ``run_id``, to log to it from this process.

        What a pipeline step's executor activates (:func:`modelyard.tracking.activate`) in a
        forked child or on a Ray worker: records go to the step's run; its status stays for
        the process that started it to set. Flush the handle before the process exits.

        Raises:
            NotFoundError: no run has this id.
            ConflictError: the run has ended (resume it with :meth:`resume_run`).
        """
        with self._lock:
            known = self._runs.get(run_id)
        if known is not None and not known._forked and known.status == "RUNNING":
            return known
        row, run_params = self._run_row(run_id)
        if row["status"] != "RUNNING":
            raise ConflictError(
                f"run {run_id} has ended ({row['status']}); it cannot be logged to",
                hint=f"resume it with modelyard.start_run({run_id!r})",
                run_id=run_id,
            )
        return self._handle(row, run_params)

    def resume_run(self, run_id: str) -> Run:
        """Set the ended run ``run_id`` RUNNING again and return a handle on it (MLflow's
        ``start_run(run_id)``); params logged before stay immutable.

        Raises:
            NotFoundError: no run has this id.
        """
        with self._lock:
            known = self._runs.get(run_id)
        if known is not None and not known._forked and known.status == "RUNNING":
            return known
        row, run_params = self._run_row(run_id)
        owner: dict[str, Any] = {"id": run_id, "host": None, "pid": None}
        if row["parent_run_id"] is None:
            from modelyard.tracking import liveness

            # the process that resumes it runs it now: the one that started it may be gone, and
            # the next top-level run on this machine would end the resumed run as KILLED
            owner.update(host=liveness.host_identity(), pid=liveness.process_token())
        with self.metadata_store.write() as tx:
            tx.execute(
                "UPDATE runs SET status = 'RUNNING', end_time = NULL, process_host = :host, "
                "process_pid = :pid WHERE id = :id",
                owner,
            )
        _log.info("run resumed", extra={"run_id": run_id, "from_status": row["status"]})
        return self._handle(row, run_params)

    def _run_row(self, run_id: str) -> tuple[dict[str, Any], dict[str, str]]:
        select = (
            "SELECT r.id, r.name, r.kind, r.status, r.parent_run_id, r.start_time, "
            "e.name AS experiment FROM runs r JOIN experiments e ON e.id = r.experiment_id "
            "WHERE r.id = :id"
        )
        with self.metadata_store.query() as q:
            rows = q.execute(select, {"id": run_id})
            if not rows:
                raise NotFoundError(
                    f"run {run_id!r} not found",
                    hint="start_run(run_id) resumes an existing run; to name a new run, pass "
                    "run_name=... (`modelyard runs list` shows the runs)",
                    run_id=run_id,
                )
            run_params = q.execute(
                "SELECT key, value FROM params WHERE run_id = :id", {"id": run_id}
            )
        keys = ("id", "name", "kind", "status", "parent_run_id", "start_time", "experiment")
        return dict(zip(keys, rows[0], strict=True)), {str(k): str(v) for k, v in run_params}

    def _handle(self, row: dict[str, Any], run_params: dict[str, str]) -> Run:
        run = Run(
            self,
            str(row["id"]),
            experiment=str(row["experiment"]),
            name=row["name"],
            kind=str(row["kind"]),
            parent_run_id=row["parent_run_id"],
            start_time=float(row["start_time"]),
            flush_every=self.flush_every,
        )
        run._params.update(run_params)
        with self._lock:
            self._runs[run.id] = run
        flusher.register(run)
        return run

    def _forget(self, run_id: str) -> None:
        """Called by a run once its final status is written."""
        with self._lock:
            self._runs.pop(run_id, None)

    def _flush_open(self, run_id: str | None = None) -> None:
        with self._lock:
            if run_id is not None:
                one = self._runs.get(run_id)
                runs = [one] if one is not None else []
            else:
                runs = list(self._runs.values())
        for r in runs:
            r.flush()

    def get_run(self, run_id: str) -> RunInfo:
        """Everything stored about one run.

        Raises:
            NotFoundError: no run has this id.
        """
        import sqlalchemy as sa

        from modelyard.store.schema import (
            datasets,
            experiments,
            latest_metrics,
            params,
            run_artifacts,
            run_tags,
            runs,
        )

        self._flush_open(run_id)
        with self.metadata_store.read() as conn:
            row = conn.execute(
                sa.select(runs, experiments.c.name.label("experiment"))
                .join(experiments, experiments.c.id == runs.c.experiment_id)
                .where(runs.c.id == run_id)
            ).first()
            if row is None:
                raise NotFoundError(
                    f"run {run_id!r} not found",
                    hint="list runs with `modelyard runs list`",
                    run_id=run_id,
                )
            info = _run_info(dict(row._mapping), with_environment=True)
            for key, value in conn.execute(
                sa.select(params.c.key, params.c.value).where(params.c.run_id == run_id)
            ):
                info.params[key] = value
            for key, value in conn.execute(
                sa.select(run_tags.c.key, run_tags.c.value).where(run_tags.c.run_id == run_id)
            ):
                info.tags[key] = value
            for key, value in conn.execute(
                sa.select(latest_metrics.c.key, latest_metrics.c.value).where(
                    latest_metrics.c.run_id == run_id
                )
            ):
                info.metrics[key] = value
            for d in conn.execute(
                sa.select(
                    datasets.c.name,
                    datasets.c.context,
                    datasets.c.digest,
                    datasets.c.rows,
                    datasets.c.schema,
                    datasets.c.source,
                    datasets.c.created_at,
                )
                .where(datasets.c.run_id == run_id)
                .order_by(datasets.c.id)
            ):
                info.datasets.append(dict(d._mapping))
            for path, sha, size in conn.execute(
                sa.select(run_artifacts.c.path, run_artifacts.c.sha256, run_artifacts.c.size_bytes)
                .where(run_artifacts.c.run_id == run_id)
                .order_by(run_artifacts.c.path)
            ):
                info.artifacts[path] = {"sha256": sha, "size_bytes": size}
        info.params = dict(sorted(info.params.items()))
        info.tags = dict(sorted(info.tags.items()))
        info.metrics = dict(sorted(info.metrics.items()))
        return info

    def resolve_run_id(self, prefix: str) -> str:
        """The full id of the one run whose id starts with ``prefix`` (at least 4 characters).

        Raises:
            NotFoundError: no run matches.
            InvalidInputError: the prefix is too short, not hex, or matches several runs.
        """
        import sqlalchemy as sa

        from modelyard.store.schema import runs

        prefix = prefix.strip().lower()
        if len(prefix) < 4 or any(c not in "0123456789abcdef" for c in prefix):
            raise InvalidInputError(
                f"{prefix!r} is not a run id or a prefix of one (4+ hex characters)",
                run_id=prefix,
            )
        with self.metadata_store.read() as conn:
            found = list(
                conn.execute(
                    sa.select(runs.c.id).where(runs.c.id.like(prefix + "%")).limit(3)
                ).scalars()
            )
        if not found:
            raise NotFoundError(
                f"no run id starts with {prefix!r}",
                hint="list runs with `modelyard runs list`",
                run_id=prefix,
            )
        if len(found) > 1:
            raise InvalidInputError(
                f"run id prefix {prefix!r} matches several runs: {', '.join(found)}",
                hint="give more characters of the id",
                run_id=prefix,
            )
        return str(found[0])

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float, float]]:
        """Every value of metric ``key`` in run ``run_id``: ``(step, value, timestamp)`` by step.

        Returns an empty list when the run has no such metric.

        Raises:
            NotFoundError: no run has this id.
        """
        import sqlalchemy as sa

        from modelyard.store.schema import metrics, runs

        self._flush_open(run_id)
        with self.metadata_store.read() as conn:
            rows = [
                (int(s), float(v), float(t))
                for s, v, t in conn.execute(
                    sa.select(metrics.c.step, metrics.c.value, metrics.c.timestamp)
                    .where(metrics.c.run_id == run_id, metrics.c.key == key)
                    .order_by(metrics.c.step, metrics.c.timestamp, metrics.c.id)
                )
            ]
            if (
                not rows
                and conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is None
            ):
                raise NotFoundError(
                    f"run {run_id!r} not found",
                    hint="list runs with `modelyard runs list`",
                    run_id=run_id,
                )
        return rows

    def search_runs(
        self,
        experiment: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page[RunInfo]:
        """Runs matching ``filter``, ordered and paginated (see :mod:`modelyard.tracking.search`).

        Args:
            experiment: one experiment's name, several, or None for all.
            filter: e.g. ``"metrics.auc > 0.8 and params.lr = '0.1'"``.
            order_by: e.g. ``["metrics.auc DESC", "start_time"]``; default newest first.
            max_results: page size (1-50,000).
            page_token: ``next_page_token`` of the previous page.

        Raises:
            InvalidInputError: a malformed filter/order_by (pointing at the token) or page token.
            NotFoundError: a named experiment does not exist.
        """
        import sqlalchemy as sa

        from modelyard.store.schema import experiments, latest_metrics, params, run_tags
        from modelyard.tracking.search import SearchQuery

        query = SearchQuery.build(experiment, filter, order_by, max_results, page_token)
        self._flush_open()
        with self.metadata_store.read() as conn:
            rows, next_token = query.execute(conn)
            if not rows and query.experiments and query.offset == 0:
                known = set(
                    conn.execute(
                        sa.select(experiments.c.name).where(
                            experiments.c.name.in_(query.experiments)
                        )
                    ).scalars()
                )
                missing = [e for e in query.experiments if e not in known]
                if missing:
                    raise NotFoundError(
                        f"experiment {missing[0]!r} not found",
                        hint="experiments are created by the first run logged to them; "
                        "leave the experiment out to search all",
                        experiment=missing[0],
                    )
            infos = [_run_info(r, with_environment=False) for r in rows]
            by_id = {info.id: info for info in infos}
            if by_id:
                ids = list(by_id)
                for table, attr in (
                    (params, "params"),
                    (run_tags, "tags"),
                    (latest_metrics, "metrics"),
                ):
                    found = conn.execute(
                        sa.select(table.c.run_id, table.c.key, table.c.value).where(
                            table.c.run_id.in_(ids)
                        )
                    ).all()
                    for rid, key, value in found:
                        getattr(by_id[rid], attr)[key] = value
        return Page(infos, next_token)

    # ------------------------------------------------------------------ used by Run
    def _insert_dataset(
        self,
        run_id: str,
        name: str,
        context: str | None,
        source: str | None,
        fp: dict[str, Any],
    ) -> None:
        from modelyard.store.schema import datasets

        if context is not None and len(context) > 64:
            raise InvalidInputError(
                f"dataset context {context!r} is longer than 64 characters", context=context
            )
        with self.metadata_store.begin() as conn:
            conn.execute(
                datasets.insert(),
                [
                    {
                        "run_id": run_id,
                        "name": name,
                        "context": context,
                        "digest": fp["digest"],
                        "rows": fp["rows"],
                        "schema": fp["schema"],
                        "source": source,
                        "created_at": time.time(),
                    }
                ],
            )

    def _upsert_artifacts(self, run_id: str, refs: dict[str, ArtifactRef]) -> None:
        if not refs:
            return
        with self.metadata_store.write() as tx:
            tx.executemany(
                _UPSERT_RUN_ARTIFACT,
                [
                    {"run_id": run_id, "path": p, "sha256": r.sha256, "size_bytes": r.size_bytes}
                    for p, r in refs.items()
                ],
            )


def _run_info(row: dict[str, Any], *, with_environment: bool) -> RunInfo:
    lineage = {
        "git_commit": row.get("git_commit"),
        "git_branch": row.get("git_branch"),
        "git_dirty": row.get("git_dirty"),
        "git_diff_sha256": row.get("git_diff_sha256"),
    }
    if with_environment:
        lineage["environment"] = row.get("environment")
        lineage["process_host"] = row.get("process_host")
        lineage["process_pid"] = row.get("process_pid")
    return RunInfo(
        id=row["id"],
        experiment=row["experiment"],
        name=row.get("name"),
        kind=row["kind"],
        status=row["status"],
        start_time=row["start_time"],
        end_time=row.get("end_time"),
        parent_run_id=row.get("parent_run_id"),
        user=row.get("user"),
        source=row.get("source"),
        lineage=lineage,
    )


_user: str | None = None


def _os_user() -> str:
    global _user
    if _user is None:
        try:
            import getpass

            _user = getpass.getuser()
        except Exception:  # getpass raises several types when no user is known
            _user = "unknown"
    return _user


def _default_source() -> str | None:
    argv0 = sys.argv[0] if sys.argv else ""
    if not argv0 or argv0 == "-c":
        return None
    path = Path(argv0)
    return str(path.resolve()) if path.is_file() else argv0
