"""The rollout state machine: start, load test, steps with analysis, promotion and rollback.

::

    pending -> load_testing -> progressing <-> paused
                                   |   ^  \\-> awaiting_approval --promote--> (next step)
                                   v   |
                               (next step) ... -> promoting -> promoted
    any active state --abort / failed analysis / failed load test--> rolling_back -> rolled_back

:class:`RolloutController` drives the rollouts of one serving front through a
:class:`DeliveryFront` (start and stop a version's pool, swap the route plan, read per-version
counters, run a load test). Each :meth:`~RolloutController.tick` re-reads the rollout from the
metadata store, applies a steering command another process left there, and moves at most one
state; every move is a compare-and-set, recorded with its reason. So a restarted server resumes
where the store says, and abort/promote from another process are honoured at the next tick.

Rollback always gives stable all traffic first, then stops the candidate; it is idempotent and a
failure half-way leaves the rollout in ``rolling_back``, retried at the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from modelyard.delivery.analysis import (
    Analysis,
    ArmStats,
    Decision,
    Outcome,
    Thresholds,
    analyze,
    decide,
    load_test_verdict,
)
from modelyard.delivery.router import RoutePlan
from modelyard.delivery.store import Rollout, RolloutStore
from modelyard.delivery.strategies import check_steps, strategy_for
from modelyard.errors import ConflictError, InvalidInputError, ServiceUnavailable
from modelyard.logs import get_logger

if TYPE_CHECKING:
    from modelyard.types import Clock

__all__ = ["COMMANDS", "DeliveryFront", "LoadTestRun", "RolloutController", "RolloutRequest"]

log = get_logger("modelyard.delivery")

COMMANDS = ("promote", "abort", "pause", "resume")
PRODUCTION = "production"


@dataclass(frozen=True)
class LoadTestRun:
    """What a pre-production load test sent and measured.

    Attributes:
        stats: the candidate's counters over the load test.
        source: what was replayed: ``request_log`` (recent requests stable answered, read back
            from the request log), ``recent`` (the latest user requests the front kept in
            memory) or ``synthetic`` (requests built from the model's signature).
        samples: how many distinct requests were replayed round robin.
    """

    stats: ArmStats
    source: str
    samples: int


class DeliveryFront(Protocol):
    """What a rollout needs from the serving front that hosts it."""

    async def start_version(self, version: int, stop: asyncio.Event | None = None) -> None:
        """Start ``version``'s worker pool (no user traffic yet); a no-op if it runs. Once
        ``stop`` is set, a pool still loading stops (``ServiceUnavailable``)."""
        ...

    async def stop_version(self, version: int) -> None:
        """Stop ``version``'s pool after its requests finish; a no-op if it does not run."""
        ...

    def set_plan(self, plan: RoutePlan) -> None:
        """Route user traffic by ``plan`` from now on."""
        ...

    def make_stable(self, version: int) -> None:
        """Make ``version`` the front's stable version."""
        ...

    def stats(self, version: int) -> ArmStats:
        """``version``'s counters since its pool started (zeros if it does not run)."""
        ...

    async def load_test(
        self, version: int, rate_rps: float, duration_s: float
    ) -> LoadTestRun | None:
        """Drive ``version``'s pool at ``rate_rps`` for ``duration_s``; what it measured, or
        ``None`` when there is nothing to send (no request to replay and none to synthesise)."""
        ...

    async def feedback(self, version: int, since_s: float) -> ArmStats:
        """Quality (and predicted-class) counters of ``version``'s answers since ``since_s``
        (seconds since the epoch), from the labels that came back; zeros when the front has no
        feedback, or when its :meth:`stats` carry the quality already."""
        ...

    def traffic_rps(self) -> float:
        """The front's recent rate of inference requests."""
        ...


@dataclass(frozen=True)
class RolloutRequest:
    """What ``modelyard deploy`` asks for; ``None`` fields take the delivery settings."""

    candidate: int
    strategy: str | None = None
    steps: list[float] | None = None
    interval_s: float | None = None
    manual: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "strategy": self.strategy,
            "steps": self.steps,
            "interval_s": self.interval_s,
            "manual": self.manual,
        }


def _config(settings: Any, req: RolloutRequest) -> dict[str, Any]:
    """The settings a rollout runs with, frozen into its row (so a restart keeps them)."""
    keys = (
        "interval_s", "manual", "max_error_rate", "max_p99_ms", "max_latency_ratio",
        "max_quality_drop", "alpha", "min_samples", "deadline_s", "on_insufficient",
        "headroom", "load_test_s", "load_test_rps", "shadow_share", "ab_key",
        "scale_down_delay_s",
    )  # fmt: skip
    config = {k: getattr(settings, k) for k in keys}
    if req.interval_s is not None:
        if req.interval_s <= 0:
            raise InvalidInputError(
                f"interval {req.interval_s} s must be positive", field="interval_s"
            )
        config["interval_s"] = req.interval_s
    if req.manual is not None:
        config["manual"] = req.manual
    return config


class _Settings:
    """The rollout's config read back as attributes, for strategies and thresholds."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)


class RolloutController:
    """Runs the rollouts of one model on one serving front.

    Args:
        store: where rollouts are kept.
        front: the serving front hosting the model's versions.
        registry: moves the ``production`` alias on promotion (a ``Registry``).
        model: the model's name.
        settings: the ``DeliverySettings`` new rollouts start from.
        clock: the time source (a seam for tests).
    """

    def __init__(
        self,
        store: RolloutStore,
        front: DeliveryFront,
        registry: Any,
        model: str,
        settings: Any,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.front = front
        self.registry = registry
        self.model = model
        self.settings = settings
        self.clock = clock
        self._baseline: dict[int, ArmStats] = {}
        self._reference: ArmStats | None = None  # blue-green: stable before the switch
        self._resumed: str | None = None  # the rollout this process has taken over
        self._last_recorded = 0.0
        self._quality: dict[int, ArmStats] = {}  # feedback since the step started, per version
        self._quality_at = -math.inf
        self._lock = asyncio.Lock()
        # set by an abort while a tick holds the lock (a load test runs for load_test_s): the
        # load test stops, and the abort is applied before any user request reaches the
        # candidate (it was applied after the load test had routed users to it)
        self._abort = asyncio.Event()

    def _now(self) -> float:
        return self.clock.time() if self.clock is not None else time.time()

    # ------------------------------------------------------------------ public API
    async def start(self, req: RolloutRequest, *, stable_version: int) -> Rollout:
        """Record a new rollout of ``req.candidate`` against ``stable_version`` and begin it.

        Raises:
            InvalidInputError: the candidate is the stable version, bad steps or strategy.
            NotFoundError: no such candidate version.
            ConflictError: the model has a rollout in progress.
        """
        if req.candidate == stable_version:
            raise InvalidInputError(
                f"candidate version {req.candidate} of {self.model!r} is the stable version "
                "already; nothing to deliver",
                hint=f"register a new version, then `modelyard deploy {self.model} --candidate N`",
                field="candidate",
            )
        self.registry.get_version(self.model, req.candidate)  # NotFoundError names it
        strategy = strategy_for(req.strategy or self.settings.strategy)
        source = "--steps" if req.steps is not None else "[tool.modelyard.delivery] steps"
        weights = check_steps(
            req.steps if req.steps is not None else self.settings.steps, source=source
        )
        config = _config(self.settings, req)
        config["steps"] = weights
        steps = strategy.plan(_Settings(config))
        async with self._lock:
            rollout = await asyncio.to_thread(
                self.store.create,
                model=self.model,
                stable_version=stable_version,
                candidate_version=req.candidate,
                strategy=strategy.name,
                steps=steps,
                config=config,
            )
            log.info(
                "rollout started",
                extra={"rollout": rollout.id, "model": self.model, "version": req.candidate},
            )
        # start the pool and run the load test now, so the caller learns how it went
        for _ in range(3):
            current = await self.tick()
            if current is None or current.state not in ("pending", "load_testing"):
                break
        return await asyncio.to_thread(self.store.get, rollout.id)

    async def command(self, command: str, *, actor: str | None = None) -> Rollout:
        """Apply ``promote``, ``abort``, ``pause`` or ``resume`` to the active rollout now.

        Raises:
            InvalidInputError: an unknown command.
            NotFoundError: the model has no rollout.
            ConflictError: the command does not apply in the rollout's state.
        """
        if command not in COMMANDS:
            raise InvalidInputError(
                f"unknown rollout command {command!r}; expected one of {', '.join(COMMANDS)}",
                field="command",
            )
        if command == "abort":
            self._abort.set()
        try:
            return await self._command(command, actor)
        finally:
            if command == "abort":
                self._abort.clear()

    async def _command(self, command: str, actor: str | None) -> Rollout:
        async with self._lock:
            rollout = await self._current_or_latest()
            if not rollout.active:
                if command == "abort" and rollout.state == "rolled_back":
                    return rollout  # idempotent
                raise ConflictError(
                    f"rollout {rollout.id} of {self.model!r} is {rollout.state} already; "
                    f"{command} does not apply",
                    hint="`modelyard models rollback` moves production back after a promotion"
                    if rollout.state == "promoted"
                    else None,
                )
            await asyncio.to_thread(
                self.store.record, rollout, "command", detail={"command": command}, actor=actor
            )
            await self._apply(rollout, command)
        return await asyncio.to_thread(self.store.get, rollout.id)

    async def status(self) -> Rollout | None:
        """The model's active rollout, else its last one."""
        return await asyncio.to_thread(self.store.latest, self.model)

    async def run(self, stop: asyncio.Event, poll_s: float = 0.5) -> None:
        """Tick until ``stop`` is set; a failing tick is logged and retried, never fatal."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:  # keep serving: the store says where to pick up next time
                log.exception("rollout tick failed; retrying", extra={"model": self.model})
            try:
                await asyncio.wait_for(stop.wait(), poll_s)
            except TimeoutError:
                pass

    # ------------------------------------------------------------------ the machine
    async def tick(self) -> Rollout | None:
        """Advance the model's active rollout by at most one state; ``None`` if there is none."""
        async with self._lock:
            rollout = await asyncio.to_thread(self.store.latest, self.model)
            if rollout is None or not rollout.active:
                return rollout
            if self._resumed != rollout.id:
                rollout = await self._resume(rollout)
            if rollout.command:
                return await self._apply(rollout, rollout.command)
            return await self._advance(rollout)

    async def _current_or_latest(self) -> Rollout:
        rollout = await asyncio.to_thread(self.store.latest, self.model)
        if rollout is None:
            from modelyard.errors import NotFoundError

            raise NotFoundError(
                f"model {self.model!r} has no rollout",
                hint=f"start one: modelyard deploy {self.model} --candidate VERSION",
            )
        if rollout.active and self._resumed != rollout.id:
            rollout = await self._resume(rollout)
        return rollout

    async def _resume(self, r: Rollout) -> Rollout:
        """Take over ``r`` in this process: restart the candidate's pool and its routing."""
        self._resumed = r.id
        self._reference = None
        if r.state in ("progressing", "paused", "awaiting_approval"):
            await self.front.start_version(r.candidate_version)
            self._rebase(r)
            self._route(r)
            log.info("rollout resumed", extra={"rollout": r.id, "state": r.state})
        return r

    def _rebase(self, r: Rollout, step_index: int | None = None) -> None:
        """Count the analysis window from now for both arms; in a blue-green preview the
        candidate keeps what it answered since its pool started (load test, preview route)."""
        self._baseline = {v: self.front.stats(v) for v in (r.stable_version, r.candidate_version)}
        index = r.step_index if step_index is None else step_index
        if index < len(r.steps) and r.steps[index].mode == "preview":
            self._baseline[r.candidate_version] = ArmStats()
        self._quality = {}
        self._quality_at = -math.inf

    def _window(self, version: int) -> ArmStats:
        counters = self.front.stats(version) - self._baseline.get(version, ArmStats())
        return counters + self._quality.get(version, ArmStats())

    async def _refresh_quality(self, r: Rollout) -> None:
        """Re-read both arms' feedback quality since the step started, at most twice an
        interval (it reads the request log); a failed read keeps the last figures."""
        step = r.step
        now = self._now()
        every = max(1.0, min((step.pause_s if step else 1.0) / 2, 10.0))
        if now - self._quality_at < every:
            return
        self._quality_at = now
        since = r.step_started_at or now
        try:
            for version in (r.candidate_version, r.stable_version):
                self._quality[version] = await self.front.feedback(version, since)
        except Exception:  # the analysis goes on with the other signals
            log.warning(
                "feedback quality could not be read", exc_info=True, extra={"rollout": r.id}
            )

    def _route(self, r: Rollout) -> None:
        step = r.step
        if r.state in ("rolling_back", "rolled_back", "pending", "load_testing") or step is None:
            self.front.set_plan(RoutePlan())
            return
        self.front.set_plan(
            RoutePlan(
                candidate=str(r.candidate_version),
                mode=step.mode,
                weight=step.weight,
                key=str(r.config.get("ab_key", "header:x-modelyard-key")),
                salt=r.id,
            )
        )

    async def _move(self, r: Rollout, state: str, **kwargs: Any) -> Rollout:
        moved = await asyncio.to_thread(self.store.transition, r, state, **kwargs)
        if moved is None:  # another writer changed it: re-read next tick
            return await asyncio.to_thread(self.store.get, r.id)
        log.info(
            "rollout moved",
            extra={
                "rollout": r.id,
                "from": r.state,
                "to": state,
                "step": moved.step_index,
                "reason": kwargs.get("reason"),
            },
        )
        return moved

    async def _apply(self, r: Rollout, command: str) -> Rollout:
        """Carry out a steering command (from the API or left in the store)."""
        if command == "abort":
            return await self._rollback(r, "aborted by a user", clear_command=True)
        if command == "pause":
            if r.state in ("progressing", "awaiting_approval"):
                return await self._move(r, "paused", reason="paused by a user", clear_command=True)
        elif command == "resume":
            if r.state == "paused":
                self._rebase(r)
                return await self._move(
                    r, "progressing", reason="resumed by a user", clear_command=True
                )
        elif command == "promote" and r.state in ("progressing", "awaiting_approval", "paused"):
            return await self._next_step(r, "approved by a user", clear_command=True)
        elif command == "promote" and r.state in ("pending", "load_testing"):
            pass  # wait for the load test: promote applies once the candidate takes traffic
        if r.command:  # does not apply in this state: drop it, recorded
            return await self._move(
                r, r.state, reason=f"{command} ignored in state {r.state}", clear_command=True
            )
        return r

    async def _advance(self, r: Rollout) -> Rollout:
        if r.state == "pending":
            try:  # a large model loads for minutes: an abort must not wait for it
                await self.front.start_version(r.candidate_version, stop=self._abort)
            except ServiceUnavailable:
                if self._abort.is_set():  # the abort, waiting for the lock, rolls back next
                    return r
                raise
            return await self._move(r, "load_testing", reason="candidate pool started")
        if r.state == "load_testing":
            return await self._load_test(r)
        if r.state == "promoting":
            return await self._promote(r)
        if r.state == "rolling_back":
            return await self._rollback(r, r.reason or "rolling back")
        if r.state == "progressing":
            return await self._watch(r)
        return r  # paused, awaiting_approval: wait for a command

    async def _load_test(self, r: Rollout) -> Rollout:
        cfg = r.config
        duration = float(cfg.get("load_test_s", 0.0))
        if duration <= 0:
            return await self._begin_traffic(r, "load test skipped (load_test_s = 0)")
        rate = max(self.front.traffic_rps(), 1.0) * float(cfg["headroom"])
        rate = max(rate, float(cfg["load_test_rps"]))
        test = asyncio.ensure_future(self.front.load_test(r.candidate_version, rate, duration))
        aborted = asyncio.ensure_future(self._abort.wait())
        await asyncio.wait({test, aborted}, return_when=asyncio.FIRST_COMPLETED)
        aborted.cancel()
        if not test.done():  # an abort is waiting for the lock: it rolls back next
            test.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await test
            return r
        run = test.result()
        if run is None:
            await asyncio.to_thread(
                self.store.record,
                r,
                "load_test",
                outcome="skipped",
                detail={"reason": "no request to replay and no signature to build one from"},
            )
            return await self._begin_traffic(r, "load test skipped: no request to send")
        stable = self.front.stats(r.stable_version)
        verdict = load_test_verdict(run.stats, stable, _thresholds(cfg))
        detail = {
            "rate_rps": round(rate, 1),
            "duration_s": duration,
            "source": run.source,
            "samples": run.samples,
            **verdict.to_dict(),
        }
        await asyncio.to_thread(
            self.store.record, r, "load_test", outcome=str(verdict.outcome), detail=detail
        )
        if verdict.outcome is Outcome.PASS:
            return await self._begin_traffic(
                r, f"load test passed at {rate:.0f} req/s of {run.source} requests"
            )
        return await self._rollback(
            r, f"load test at {rate:.0f} req/s: {verdict.reason}", evidence=detail
        )

    async def _begin_traffic(self, r: Rollout, reason: str) -> Rollout:
        self._rebase(r, 0)
        moved = await self._move(r, "progressing", reason=reason, step_index=0)
        self._route(moved)
        return moved

    async def _watch(self, r: Rollout) -> Rollout:
        step = r.step
        if step is None:
            return await self._move(r, "promoting", reason="every step passed")
        now = self._now()
        elapsed = now - (r.step_started_at or now)
        cfg = r.config
        if not step.analysis:
            if elapsed >= step.pause_s:
                return await self._step_done(r, "pause elapsed")
            return r
        await self._refresh_quality(r)
        verdict = self._analyze(r)
        due = elapsed >= step.pause_s
        # the confidence sequences hold at every look, so a failure counts between intervals
        if verdict.outcome is Outcome.FAIL:
            await self._record(r, verdict)
            return await self._rollback(r, f"analysis {verdict.reason}", evidence=verdict.to_dict())
        if not due:
            return r
        move = decide(verdict.outcome, elapsed, float(cfg["deadline_s"]), cfg["on_insufficient"])
        # a verdict that moves the rollout is always recorded (it is the evidence of the move);
        # one that only waits is recorded at most once an interval
        await self._record(r, verdict, every_s=step.pause_s if move is Decision.WAIT else 0.0)
        if move is Decision.ADVANCE:
            return await self._step_done(r, f"analysis passed: {verdict.reason}")
        if move is Decision.ROLLBACK:
            return await self._rollback(
                r, f"deadline passed with {verdict.outcome}", evidence=verdict.to_dict()
            )
        if move is Decision.HOLD:
            return await self._move(
                r, "paused", reason=f"deadline passed with {verdict.outcome}; holding"
            )
        return r

    async def _record(self, r: Rollout, verdict: Analysis, every_s: float = 0.0) -> None:
        now = self._now()
        if verdict.outcome is not Outcome.FAIL and now - self._last_recorded < every_s:
            return
        self._last_recorded = now
        await asyncio.to_thread(
            self.store.record, r, "analysis", outcome=str(verdict.outcome), detail=verdict.to_dict()
        )

    def _analyze(self, r: Rollout) -> Analysis:
        cand = self._window(r.candidate_version)
        step = r.step
        thresholds = _thresholds(r.config)
        if step is not None and step.mode == "switched" and self._reference is not None:
            stable = self._reference
        else:
            stable = self._window(r.stable_version)
        if step is not None and step.mode == "preview":
            # the candidate's traffic is the load test's burst and preview calls, not users':
            # its latency was judged by the load test; compare errors only
            thresholds = replace(thresholds, max_latency_ratio=None)
        if step is not None and step.mode == "mirror":
            # a shadow runs at low CPU priority: its latency is what stable leaves it, so the
            # model's CPU per batch is compared instead
            return analyze(cand, stable, thresholds, latency="compute")
        return analyze(cand, stable, thresholds)

    async def _step_done(self, r: Rollout, reason: str) -> Rollout:
        step = r.step
        if step is not None and step.approval:
            return await self._move(r, "awaiting_approval", reason=f"{reason}; awaiting approval")
        return await self._next_step(r, reason)

    async def _next_step(self, r: Rollout, reason: str, *, clear_command: bool = False) -> Rollout:
        nxt = r.step_index + 1
        if nxt >= len(r.steps):
            return await self._move(r, "promoting", reason=reason, clear_command=clear_command)
        if r.steps[nxt].mode == "switched":  # blue-green: compare with stable before the switch
            self._reference = self._window(r.stable_version)
        self._rebase(r, nxt)
        moved = await self._move(
            r, "progressing", reason=reason, step_index=nxt, clear_command=clear_command
        )
        self._route(moved)
        return moved

    async def _promote(self, r: Rollout) -> Rollout:
        """Candidate takes all traffic, becomes stable and ``production``; old pool stops."""
        # before the switch: a shadow's pool (low priority) is replaced by a normal one
        await self.front.start_version(r.candidate_version)
        self.front.set_plan(RoutePlan(candidate=str(r.candidate_version), mode="switched"))
        self.front.make_stable(r.candidate_version)
        self.front.set_plan(RoutePlan())
        evidence = {"rollout": r.id, "strategy": r.strategy, "evidence": r.evidence}
        await asyncio.to_thread(
            self.registry.set_alias,
            self.model,
            PRODUCTION,
            r.candidate_version,
            orjson.dumps(evidence).decode(),
        )
        moved = await self._move(r, "promoted", reason=r.reason or "promoted")
        await self.front.stop_version(r.stable_version)
        return moved

    async def _rollback(
        self,
        r: Rollout,
        reason: str,
        *,
        evidence: Mapping[str, Any] | None = None,
        clear_command: bool = False,
    ) -> Rollout:
        """Stable gets all traffic first, then the candidate stops. Safe to repeat."""
        self.front.set_plan(RoutePlan())
        if r.state in ("promoting",):  # the switch may have happened: undo it
            self.front.make_stable(r.stable_version)
        if r.state != "rolling_back":
            moved = await self._move(
                r, "rolling_back", reason=reason, evidence=evidence, clear_command=clear_command
            )
            if moved.state != "rolling_back":
                return moved
            r = moved
        await self.front.stop_version(r.candidate_version)
        return await self._move(r, "rolled_back", reason=reason, clear_command=True)


def _thresholds(cfg: Mapping[str, Any]) -> Thresholds:
    return Thresholds.from_settings(_Settings(cfg))
