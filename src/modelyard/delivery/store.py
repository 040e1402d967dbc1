"""Rollouts as rows: the rollout, its steps, and every transition, analysis and command.

Every change is a compare-and-set on the rollout's ``generation``, so two processes steering one
rollout never overwrite each other: the loser gets ``None`` back and re-reads. One active
rollout per model is enforced by a unique column (``active_model``), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from modelyard.delivery.strategies import Step
from modelyard.errors import ConflictError, NotFoundError

if TYPE_CHECKING:
    from modelyard.store.db import MetadataStore, SqlTx
    from modelyard.types import Clock

__all__ = ["ACTIVE_STATES", "TERMINAL_STATES", "Rollout", "RolloutEvent", "RolloutStore"]

#: states a rollout ends in; every other state is active
TERMINAL_STATES = frozenset({"promoted", "rolled_back"})
ACTIVE_STATES = frozenset(
    {
        "pending",
        "load_testing",
        "progressing",
        "paused",
        "awaiting_approval",
        "promoting",
        "rolling_back",
    }
)

_COLUMNS = (
    "id, model, stable_version, candidate_version, strategy, state, step_index, "
    "step_started_at, config, command, reason, evidence, generation, created_at, updated_at, "
    "created_by"
)


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value


@dataclass(frozen=True)
class Rollout:
    """One rollout as stored.

    Attributes:
        id: its id (32 hex characters).
        model: the model's name.
        stable_version: the version in production when it started.
        candidate_version: the version being delivered.
        strategy: ``canary``, ``blue-green``, ``ab`` or ``shadow``.
        state: ``pending``, ``load_testing``, ``progressing``, ``paused``,
            ``awaiting_approval``, ``promoting``, ``promoted``, ``rolling_back``,
            ``rolled_back``.
        step_index: the current step (0-based).
        steps: the planned steps.
        config: the thresholds and settings it runs with.
        command: a steering command written by another process, not yet applied.
        reason: why it is in its state (the last transition's reason).
        evidence: the last analysis (``Analysis.to_dict()``).
        generation: bumped by every change.
    """

    id: str
    model: str
    stable_version: int
    candidate_version: int
    strategy: str
    state: str
    step_index: int
    step_started_at: float | None
    config: dict[str, Any]
    command: str | None
    reason: str | None
    evidence: dict[str, Any] | None
    generation: int
    created_at: float
    updated_at: float
    created_by: str | None
    steps: tuple[Step, ...] = field(default=())

    @property
    def active(self) -> bool:
        return self.state not in TERMINAL_STATES

    @property
    def step(self) -> Step | None:
        """The current step, or ``None`` past the last one."""
        return self.steps[self.step_index] if self.step_index < len(self.steps) else None

    @property
    def weight(self) -> float:
        """The candidate's share of user traffic now, percent."""
        if self.state == "promoted":
            return 100.0
        if self.state in {"rolled_back", "rolling_back", "pending", "load_testing"}:
            return 0.0
        step = self.step
        if step is None or step.mode in ("mirror", "preview"):
            return 0.0
        return step.weight

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for ``modelyard rollout status --json`` and the management API."""
        return {
            "id": self.id,
            "model": self.model,
            "stable_version": self.stable_version,
            "candidate_version": self.candidate_version,
            "strategy": self.strategy,
            "state": self.state,
            "step_index": self.step_index,
            "steps": [s.to_dict() for s in self.steps],
            "weight": self.weight,
            "step_started_at": self.step_started_at,
            "command": self.command,
            "reason": self.reason,
            "evidence": self.evidence,
            "config": self.config,
            "generation": self.generation,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class RolloutEvent:
    """A transition, analysis, load test or command of a rollout."""

    id: int
    rollout_id: str
    at: float
    kind: str
    from_state: str | None
    to_state: str | None
    step_index: int | None
    outcome: str | None
    actor: str | None
    detail: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "kind": self.kind,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "step_index": self.step_index,
            "outcome": self.outcome,
            "actor": self.actor,
            "detail": self.detail,
        }


class RolloutStore:
    """Reads and writes rollouts in the metadata store.

    Args:
        store: the metadata store (SQLite or PostgreSQL, at migration 0004 or later).
        actor: who the changes are recorded as (default: ``system``).
        clock: the time source (``time.time`` by default).
    """

    def __init__(
        self, store: MetadataStore, *, actor: str | None = None, clock: Clock | None = None
    ) -> None:
        self.store = store
        self.actor = actor
        self.clock = clock

    def _now(self) -> float:
        return self.clock.time() if self.clock is not None else time.time()

    # ------------------------------------------------------------------ reads
    def get(self, rollout_id: str) -> Rollout:
        """The rollout ``rollout_id``.

        Raises:
            NotFoundError: no such rollout.
        """
        with self.store.query() as tx:
            rows = tx.execute(f"SELECT {_COLUMNS} FROM rollouts WHERE id = :id", {"id": rollout_id})
            if not rows:
                raise NotFoundError(
                    f"no rollout {rollout_id!r}",
                    hint="`modelyard rollout status NAME` shows a model's latest rollout",
                )
            return self._with_steps(tx, rows[0])

    def latest(self, model: str) -> Rollout | None:
        """The model's active rollout, else its most recent one, else ``None``."""
        with self.store.query() as tx:
            rows = tx.execute(
                f"SELECT {_COLUMNS} FROM rollouts WHERE model = :m "
                "ORDER BY active_model IS NULL, created_at DESC LIMIT 1",
                {"m": model},
            )
            return self._with_steps(tx, rows[0]) if rows else None

    def active(self) -> list[Rollout]:
        """Every rollout not yet promoted or rolled back."""
        with self.store.query() as tx:
            rows = tx.execute(
                f"SELECT {_COLUMNS} FROM rollouts WHERE active_model IS NOT NULL "
                "ORDER BY created_at"
            )
            return [self._with_steps(tx, r) for r in rows]

    def events(self, rollout_id: str) -> list[RolloutEvent]:
        """The rollout's events, oldest first."""
        with self.store.query() as tx:
            rows = tx.execute(
                "SELECT id, rollout_id, at, kind, from_state, to_state, step_index, outcome, "
                "actor, detail FROM rollout_events WHERE rollout_id = :id ORDER BY id",
                {"id": rollout_id},
            )
        return [
            RolloutEvent(
                int(r[0]), r[1], float(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], _json(r[9])
            )
            for r in rows
        ]

    def _with_steps(self, tx: SqlTx, row: Sequence[Any]) -> Rollout:
        steps = tx.execute(
            "SELECT weight, mode, pause_s, approval, analysis FROM rollout_steps "
            "WHERE rollout_id = :id ORDER BY idx",
            {"id": row[0]},
        )
        return Rollout(
            id=row[0],
            model=row[1],
            stable_version=int(row[2]),
            candidate_version=int(row[3]),
            strategy=row[4],
            state=row[5],
            step_index=int(row[6]),
            step_started_at=row[7],
            config=_json(row[8]) or {},
            command=row[9],
            reason=row[10],
            evidence=_json(row[11]),
            generation=int(row[12]),
            created_at=float(row[13]),
            updated_at=float(row[14]),
            created_by=row[15],
            steps=tuple(
                Step(float(s[0]), s[1], float(s[2]), bool(s[3]), bool(s[4])) for s in steps
            ),
        )

    # ------------------------------------------------------------------ writes
    def create(
        self,
        *,
        model: str,
        stable_version: int,
        candidate_version: int,
        strategy: str,
        steps: Sequence[Step],
        config: Mapping[str, Any],
    ) -> Rollout:
        """Record a new rollout in state ``pending``.

        Raises:
            ConflictError: the model has an active rollout already.
        """
        now = self._now()
        rid = uuid.uuid4().hex
        try:
            with self.store.write() as tx:
                busy = tx.execute(
                    "SELECT id, state FROM rollouts WHERE active_model = :m", {"m": model}
                )
                if busy:
                    raise _overlap(model, busy[0][0], busy[0][1])
                tx.execute(
                    "INSERT INTO rollouts (id, model, active_model, stable_version, "
                    "candidate_version, strategy, state, step_index, step_started_at, config, "
                    "generation, created_at, updated_at, created_by) VALUES (:id, :m, :m, :s, "
                    ":c, :strategy, 'pending', 0, NULL, :config, 1, :now, :now, :actor)",
                    {
                        "id": rid,
                        "m": model,
                        "s": stable_version,
                        "c": candidate_version,
                        "strategy": strategy,
                        "config": orjson.dumps(dict(config)).decode(),
                        "now": now,
                        "actor": self.actor,
                    },
                )
                tx.executemany(
                    "INSERT INTO rollout_steps (rollout_id, idx, weight, mode, pause_s, approval, "
                    "analysis) VALUES (:id, :idx, :weight, :mode, :pause_s, :approval, :analysis)",
                    [{"id": rid, "idx": i, **s.to_dict()} for i, s in enumerate(steps)],
                )
                self._event(tx, rid, now, "transition", None, "pending", 0, None, None)
        except ConflictError:
            raise
        except Exception as exc:  # the unique column caught a race between two creators
            if _is_unique_violation(exc):
                raise _overlap(model, "?", "active") from exc
            raise
        return self.get(rid)

    def transition(
        self,
        rollout: Rollout,
        state: str,
        *,
        reason: str | None = None,
        step_index: int | None = None,
        evidence: Mapping[str, Any] | None = None,
        clear_command: bool = False,
        detail: Mapping[str, Any] | None = None,
    ) -> Rollout | None:
        """Move ``rollout`` to ``state`` if nobody changed it since it was read.

        Returns:
            The rollout as now stored, or ``None`` when another writer got there first.
        """
        now = self._now()
        new_step = rollout.step_index if step_index is None else step_index
        step_started = rollout.step_started_at
        if new_step != rollout.step_index or (
            state == "progressing" and rollout.state != "progressing"
        ):
            step_started = now
        with self.store.write() as tx:
            rows = tx.execute(
                "UPDATE rollouts SET state = :state, step_index = :step, step_started_at = :ss, "
                "reason = :reason, evidence = COALESCE(:evidence, evidence), "
                "command = CASE WHEN :clear = 1 THEN NULL ELSE command END, "
                "active_model = CASE WHEN :terminal = 1 THEN NULL ELSE active_model END, "
                "generation = generation + 1, updated_at = :now "
                "WHERE id = :id AND generation = :gen RETURNING id",
                {
                    "state": state,
                    "step": new_step,
                    "ss": step_started,
                    "reason": reason if reason is not None else rollout.reason,
                    "evidence": orjson.dumps(dict(evidence)).decode() if evidence else None,
                    "clear": int(clear_command),
                    "terminal": int(state in TERMINAL_STATES),
                    "now": now,
                    "id": rollout.id,
                    "gen": rollout.generation,
                },
            )
            if not rows:
                return None
            if new_step != rollout.step_index:
                tx.execute(
                    "UPDATE rollout_steps SET finished_at = :now WHERE rollout_id = :id "
                    "AND idx = :idx",
                    {"now": now, "id": rollout.id, "idx": rollout.step_index},
                )
            if step_started == now:
                tx.execute(
                    "UPDATE rollout_steps SET started_at = :now WHERE rollout_id = :id "
                    "AND idx = :idx",
                    {"now": now, "id": rollout.id, "idx": new_step},
                )
            if state != rollout.state or new_step != rollout.step_index:
                info = dict(detail or {})
                if reason:
                    info["reason"] = reason
                self._event(
                    tx, rollout.id, now, "transition", rollout.state, state, new_step, None, info
                )
        return replace(
            rollout,
            state=state,
            step_index=new_step,
            step_started_at=step_started,
            reason=reason if reason is not None else rollout.reason,
            evidence=dict(evidence) if evidence else rollout.evidence,
            command=None if clear_command else rollout.command,
            generation=rollout.generation + 1,
            updated_at=now,
        )

    def record(
        self,
        rollout: Rollout,
        kind: str,
        *,
        outcome: str | None = None,
        detail: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> None:
        """Append an ``analysis``, ``load_test`` or ``command`` event; for an analysis also
        mark the step's outcome and keep it as the rollout's evidence."""
        now = self._now()
        with self.store.write() as tx:
            self._event(
                tx,
                rollout.id,
                now,
                kind,
                rollout.state,
                None,
                rollout.step_index,
                outcome,
                dict(detail or {}),
                actor=actor,
            )
            if kind in ("analysis", "load_test"):
                tx.execute(
                    "UPDATE rollouts SET evidence = :ev WHERE id = :id",
                    {
                        "ev": orjson.dumps({"kind": kind, **(detail or {})}).decode(),
                        "id": rollout.id,
                    },
                )
                tx.execute(
                    "UPDATE rollout_steps SET outcome = :o WHERE rollout_id = :id AND idx = :idx",
                    {"o": outcome, "id": rollout.id, "idx": rollout.step_index},
                )

    def request(self, rollout_id: str, command: str, *, actor: str | None = None) -> None:
        """Leave a steering command (``promote``, ``abort``, ``pause``, ``resume``) for the
        process running the rollout; it applies it at its next tick."""
        now = self._now()
        with self.store.write() as tx:
            tx.execute(
                "UPDATE rollouts SET command = :c, updated_at = :now WHERE id = :id",
                {"c": command, "now": now, "id": rollout_id},
            )
            self._event(
                tx, rollout_id, now, "command", None, None, None, None, {"command": command},
                actor=actor,
            )  # fmt: skip

    def _event(  # noqa: PLR0917  (one row's columns)
        self,
        tx: SqlTx,
        rollout_id: str,
        at: float,
        kind: str,
        from_state: str | None,
        to_state: str | None,
        step_index: int | None,
        outcome: str | None,
        detail: Mapping[str, Any] | None,
        *,
        actor: str | None = None,
    ) -> None:
        tx.execute(
            "INSERT INTO rollout_events (rollout_id, at, kind, from_state, to_state, step_index, "
            "outcome, actor, detail) VALUES (:id, :at, :kind, :f, :t, :step, :outcome, :actor, "
            ":detail)",
            {
                "id": rollout_id,
                "at": at,
                "kind": kind,
                "f": from_state,
                "t": to_state,
                "step": step_index,
                "outcome": outcome,
                "actor": actor or self.actor,
                "detail": orjson.dumps(dict(detail)).decode() if detail is not None else None,
            },
        )


def _overlap(model: str, rollout_id: str, state: str) -> ConflictError:
    return ConflictError(
        f"model {model!r} has a rollout in progress already ({rollout_id}, {state})",
        hint=f"finish it first: `modelyard rollout promote {model}` or "
        f"`modelyard rollout abort {model}`",
        model=model,
        rollout=rollout_id,
    )


def _is_unique_violation(exc: Exception) -> bool:
    text = str(getattr(exc, "orig", None) or exc).lower()
    return "unique" in text or "duplicate key" in text
