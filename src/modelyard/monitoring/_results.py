"""Monitoring results and retraining triggers in the metadata store (SQLite or PostgreSQL).

One row per (model, version, window) in ``monitor_results``: scoring a window again replaces
its row, so ``--history`` shows one point per window. ``monitor_triggers`` keeps every
retraining the policy started, with the evidence that started it and what came out of it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import NotFoundError
from modelyard.store.db import json_value

if TYPE_CHECKING:
    from modelyard.store.db import MetadataStore

__all__ = ["MonitorStore", "StoredResult", "Trigger"]

_RESULT_COLUMNS = (
    "id, model, version, window_start, window_end, verdict, n_rows, drift_score, signals, summary, "
    "error, created_at"
)
_TRIGGER_COLUMNS = (
    "id, model, version, result_id, window_start, window_end, status, run_id, new_version, "
    "evidence, error, at"
)


@dataclass(frozen=True)
class StoredResult:
    """One scored window as stored.

    Attributes:
        id: the row id.
        model: the model name.
        version: the version number.
        window_start: UNIX seconds, inclusive.
        window_end: UNIX seconds, exclusive.
        verdict: ``ok``, ``crossed``, ``insufficient_data`` or ``no_verdict``.
        rows: request-log rows in the window.
        drift_score: the importance-weighted share of drifted features, if scored.
        signals: the signals that crossed the policy, each naming its features.
        summary: the full result (scores, quality, violations), without rows.
        error: why there is no verdict.
        created_at: when it was stored (UNIX seconds).
    """

    id: int
    model: str
    version: int
    window_start: float
    window_end: float
    verdict: str
    rows: int
    drift_score: float | None
    signals: list[dict[str, Any]]
    summary: dict[str, Any]
    error: str | None
    created_at: float

    @property
    def report(self) -> str | None:
        """The named file of the artifact store that holds this window's HTML report, if one
        was written (``modelyard monitor --report``)."""
        name = self.summary.get("report")
        return str(name) if name else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Trigger:
    """One retraining started by the policy.

    Attributes:
        id: the row id.
        model: the model name.
        version: the monitored version.
        result_id: the stored result of the window that crossed.
        window_start: UNIX seconds.
        window_end: UNIX seconds.
        status: ``started``, ``succeeded``, ``gate_refused`` or ``failed``.
        run_id: the pipeline run, once known.
        new_version: the version the gate registered, if any.
        evidence: the crossed signals and the windows in a row that led here; ``rollout``
            once the new version was sent out (see :attr:`rollout`).
        error: why it failed.
        at: when it started (UNIX seconds).
    """

    id: int
    model: str
    version: int
    result_id: int | None
    window_start: float
    window_end: float
    status: str
    run_id: str | None
    new_version: int | None
    evidence: dict[str, Any]
    error: str | None
    at: float

    @property
    def rollout(self) -> dict[str, Any] | None:
        """The rollout of the new version, when the policy sent it out: ``id``, ``strategy``,
        ``state``, ``url`` (the delivery store's rollout row has the rest), or ``error``."""
        found = self.evidence.get("rollout")
        return dict(found) if isinstance(found, Mapping) else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode()


def _result(row: tuple[Any, ...]) -> StoredResult:
    return StoredResult(
        id=int(row[0]),
        model=str(row[1]),
        version=int(row[2]),
        window_start=float(row[3]),
        window_end=float(row[4]),
        verdict=str(row[5]),
        rows=int(row[6]),
        drift_score=None if row[7] is None else float(row[7]),
        signals=list(json_value(row[8])),
        summary=dict(json_value(row[9])),
        error=row[10],
        created_at=float(row[11]),
    )


def _trigger(row: tuple[Any, ...]) -> Trigger:
    return Trigger(
        id=int(row[0]),
        model=str(row[1]),
        version=int(row[2]),
        result_id=None if row[3] is None else int(row[3]),
        window_start=float(row[4]),
        window_end=float(row[5]),
        status=str(row[6]),
        run_id=row[7],
        new_version=None if row[8] is None else int(row[8]),
        evidence=dict(json_value(row[9])),
        error=row[10],
        at=float(row[11]),
    )


class MonitorStore:
    """Reads and writes monitoring rows.

    Args:
        metadata_store: the metadata store (SQLite or PostgreSQL).
        clock: wall-clock time source (UNIX seconds).
    """

    def __init__(self, metadata_store: MetadataStore, *, clock: Any = time.time) -> None:
        self.metadata_store = metadata_store
        self.clock = clock

    def record(
        self,
        *,
        model: str,
        version: int,
        window_start: float,
        window_end: float,
        verdict: str,
        rows: int,
        drift_score: float | None,
        signals: list[dict[str, Any]],
        summary: Mapping[str, Any],
        error: str | None = None,
    ) -> StoredResult:
        """Store the result of one window, replacing an earlier result for the same window."""
        params = {
            "model": model,
            "version": version,
            "ws": window_start,
            "we": window_end,
            "verdict": verdict,
            "rows": rows,
            "score": drift_score,
            "signals": _dumps(signals),
            "summary": _dumps(dict(summary)),
            "error": error,
            "at": self.clock(),
        }
        with self.metadata_store.write() as tx:
            rows_back = tx.execute(
                "INSERT INTO monitor_results (model, version, window_start, window_end, verdict, "
                "n_rows, drift_score, signals, summary, error, created_at) VALUES (:model, "
                ":version, :ws, :we, :verdict, :rows, :score, :signals, :summary, :error, :at) "
                "ON CONFLICT (model, version, window_start, window_end) DO UPDATE SET "
                "verdict = excluded.verdict, n_rows = excluded.n_rows, "
                "drift_score = excluded.drift_score, signals = excluded.signals, "
                "summary = excluded.summary, error = excluded.error, "
                f"created_at = excluded.created_at RETURNING {_RESULT_COLUMNS}",
                params,
            )
        return _result(rows_back[0])

    def get(self, result_id: int) -> StoredResult:
        """One stored window by its id.

        Raises:
            NotFoundError: no such row.
        """
        with self.metadata_store.query() as tx:
            rows = tx.execute(
                f"SELECT {_RESULT_COLUMNS} FROM monitor_results WHERE id = :id", {"id": result_id}
            )
        if not rows:
            raise NotFoundError(
                f"no monitoring result {result_id}",
                hint="`modelyard monitor NAME --history --json` lists them with their ids",
            )
        return _result(rows[0])

    def set_report(self, result_id: int, name: str) -> StoredResult:
        """Record the named file holding a window's HTML report (``summary["report"]``)."""
        with self.metadata_store.write() as tx:
            rows = tx.execute(
                "SELECT summary FROM monitor_results WHERE id = :id", {"id": result_id}
            )
            if not rows:
                raise NotFoundError(f"no monitoring result {result_id}")
            summary = dict(json_value(rows[0][0])) | {"report": name}
            rows = tx.execute(
                "UPDATE monitor_results SET summary = :summary WHERE id = :id "
                f"RETURNING {_RESULT_COLUMNS}",
                {"summary": _dumps(summary), "id": result_id},
            )
        return _result(rows[0])

    def history(
        self, model: str, version: int | None = None, *, limit: int = 100
    ) -> list[StoredResult]:
        """The latest ``limit`` stored windows of a model (or one version), oldest first."""
        where = "model = :model" + ("" if version is None else " AND version = :version")
        with self.metadata_store.query() as tx:
            rows = tx.execute(
                f"SELECT {_RESULT_COLUMNS} FROM monitor_results WHERE {where} "
                "ORDER BY window_end DESC, id DESC LIMIT :limit",
                {"model": model, "version": version, "limit": limit},
            )
        return [_result(r) for r in reversed(rows)]

    def start_trigger(
        self,
        *,
        model: str,
        version: int,
        result_id: int | None,
        window_start: float,
        window_end: float,
        evidence: Mapping[str, Any],
    ) -> Trigger:
        """Record that the policy starts a retraining (before it starts, so a crash shows)."""
        with self.metadata_store.write() as tx:
            rows = tx.execute(
                "INSERT INTO monitor_triggers (model, version, result_id, window_start, "
                "window_end, status, evidence, at) VALUES (:model, :version, :rid, :ws, :we, "
                f"'started', :evidence, :at) RETURNING {_TRIGGER_COLUMNS}",
                {
                    "model": model,
                    "version": version,
                    "rid": result_id,
                    "ws": window_start,
                    "we": window_end,
                    "evidence": _dumps(dict(evidence)),
                    "at": self.clock(),
                },
            )
        return _trigger(rows[0])

    def finish_trigger(
        self,
        trigger_id: int,
        *,
        status: str,
        run_id: str | None = None,
        new_version: int | None = None,
        error: str | None = None,
    ) -> Trigger:
        """Record how a retraining ended."""
        with self.metadata_store.write() as tx:
            rows = tx.execute(
                "UPDATE monitor_triggers SET status = :status, run_id = :run_id, "
                "new_version = :new_version, error = :error WHERE id = :id "
                f"RETURNING {_TRIGGER_COLUMNS}",
                {
                    "status": status,
                    "run_id": run_id,
                    "new_version": new_version,
                    "error": error,
                    "id": trigger_id,
                },
            )
        return _trigger(rows[0])

    def record_rollout(self, trigger_id: int, rollout: Mapping[str, Any]) -> Trigger:
        """Record the rollout a retraining's version went out with (in the evidence: a
        rollout's own row lives in the delivery store, under its ``id``)."""
        with self.metadata_store.write() as tx:
            rows = tx.execute(
                "SELECT evidence FROM monitor_triggers WHERE id = :id", {"id": trigger_id}
            )
            evidence = dict(json_value(rows[0][0])) | {"rollout": dict(rollout)}
            rows = tx.execute(
                "UPDATE monitor_triggers SET evidence = :evidence WHERE id = :id "
                f"RETURNING {_TRIGGER_COLUMNS}",
                {"evidence": _dumps(evidence), "id": trigger_id},
            )
        return _trigger(rows[0])

    def triggers(self, model: str, *, limit: int = 100) -> list[Trigger]:
        """The latest ``limit`` triggers of a model, oldest first."""
        with self.metadata_store.query() as tx:
            rows = tx.execute(
                f"SELECT {_TRIGGER_COLUMNS} FROM monitor_triggers WHERE model = :model "
                "ORDER BY at DESC, id DESC LIMIT :limit",
                {"model": model, "limit": limit},
            )
        return [_trigger(r) for r in reversed(rows)]
