"""An in-memory serving front for rollout tests: versions with a chosen behaviour, no processes.

:class:`InMemoryFront` implements :class:`modelyard.delivery.DeliveryFront`. ``send(n)`` routes
``n`` requests through the real :class:`~modelyard.delivery.router.RolloutRouter` with the plan
the rollout set, and each version answers as its :class:`Behaviour` says (error rate, latency),
retrying a failed candidate request on stable as the real front does. Use it to test a rollout
policy or a strategy of your own without starting servers.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field, replace

from modelyard.delivery.analysis import ArmStats
from modelyard.delivery.rollout import LoadTestRun
from modelyard.delivery.router import RoutePlan

__all__ = ["Behaviour", "InMemoryFront", "ManualClock"]


class ManualClock:
    """A clock that moves only when told (``advance``)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Behaviour:
    """How one version answers: its error rate and median latency (lognormal)."""

    error_rate: float = 0.0
    latency_ms: float = 4.0
    correct_rate: float | None = None  # with feedback: the share of correct answers


@dataclass
class _Version:
    behaviour: Behaviour
    running: bool = False
    stats: ArmStats = field(default_factory=ArmStats)


class _Request:
    """What the router reads from a request."""

    def __init__(self, headers: dict[bytes, bytes], body: bytes) -> None:
        self.headers = headers
        self.body = body
        self.path = "/v1/models/m:predict"


class InMemoryFront:
    """A front whose versions are counters; ``send`` is the traffic.

    Args:
        stable: the stable version.
        behaviours: each version's behaviour (a version not named behaves like stable).
        rng: the random source.
    """

    def __init__(
        self,
        stable: int,
        behaviours: dict[int, Behaviour] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        from modelyard.delivery.router import RolloutRouter

        self.stable = stable
        self.behaviours = dict(behaviours or {})
        self.rng = rng or random.Random(0)
        self.router = RolloutRouter(rng=self.rng)
        self.versions: dict[int, _Version] = {}
        self.log: list[str] = []  # what the rollout did, in order
        self.rate_rps = 100.0
        self.fail_stop: int = 0  # stop_version raises this many times first (retry tests)
        self.user_failures = 0

    def _version(self, version: int) -> _Version:
        v = self.versions.get(version)
        if v is None:
            v = self.versions[version] = _Version(self.behaviours.get(version, Behaviour()))
        return v

    # -- DeliveryFront
    async def start_version(self, version: int, stop: asyncio.Event | None = None) -> None:
        v = self._version(version)
        if not v.running:
            v.running = True
            v.stats = ArmStats()
            self.log.append(f"start {version}")

    async def stop_version(self, version: int) -> None:
        if self.fail_stop > 0:
            self.fail_stop -= 1
            raise RuntimeError("the pool did not stop")
        v = self._version(version)
        if v.running and version != self.stable:
            v.running = False
            self.log.append(f"stop {version}")

    def set_plan(self, plan: RoutePlan) -> None:
        self.router.plan = plan
        self.log.append(f"plan {plan.mode} {plan.weight:g} -> {plan.candidate}")

    def make_stable(self, version: int) -> None:
        self.stable = version
        self.log.append(f"stable {version}")

    def stats(self, version: int) -> ArmStats:
        v = self.versions.get(version)
        return v.stats if v is not None and v.running else ArmStats()

    async def load_test(
        self, version: int, rate_rps: float, duration_s: float
    ) -> LoadTestRun | None:
        n = int(rate_rps * duration_s)
        self.log.append(f"load test {version} {n}")
        before = self.stats(version)
        seen: dict[int, tuple[list[int], list[float], list[float]]] = {}
        for _ in range(n):
            self._answer(version, seen)
        self._count(seen)
        source = "recent" if self.router.recent else "synthetic"
        return LoadTestRun(self.stats(version) - before, source, 1)

    async def feedback(self, version: int, since_s: float) -> ArmStats:
        """Zeros: the versions' :meth:`stats` carry their quality (``Behaviour.correct_rate``)."""
        return ArmStats()

    def traffic_rps(self) -> float:
        return self.rate_rps

    # -- traffic
    def send(self, n: int, headers: dict[bytes, bytes] | None = None) -> dict[str, int]:
        """Route and answer ``n`` user requests; returns how many each version answered
        the user (mirrored copies are answered too, and dropped)."""
        self._version(self.stable).running = True
        answered: dict[str, int] = {}
        seen: dict[int, tuple[list[int], list[float], list[float]]] = {}
        for i in range(n):
            hdrs = headers if headers is not None else {b"x-modelyard-key": str(i).encode()}
            route = self.router.route(_Request(hdrs, b"{}"), str(self.stable))
            version = int(route.version)
            if route.mirror is not None:
                self._answer(int(route.mirror), seen)
            status = self._answer(version, seen)
            if status >= 500 and route.fallback is not None:
                version = int(route.fallback)
                status = self._answer(version, seen)
            if status >= 500:
                self.user_failures += 1
            answered[str(version)] = answered.get(str(version), 0) + 1
        self._count(seen)
        return answered

    def _answer(
        self, version: int, seen: dict[int, tuple[list[int], list[float], list[float]]]
    ) -> int:
        v = self._version(version)
        if not v.running:
            return 503
        b = v.behaviour
        status = 500 if self.rng.random() < b.error_rate else 200
        statuses, latencies, quality = seen.setdefault(version, ([], [], []))
        statuses.append(status)
        latencies.append(b.latency_ms * self.rng.lognormvariate(0.0, 0.3))
        if b.correct_rate is not None:
            quality.append(1.0 if self.rng.random() < b.correct_rate else 0.0)
        return status

    def _count(self, seen: dict[int, tuple[list[int], list[float], list[float]]]) -> None:
        for version, (statuses, latencies, quality) in seen.items():
            v = self._version(version)
            seen_stats = ArmStats.from_observations(
                statuses=statuses, latencies_ms=latencies, quality=quality
            )
            # each request a batch of one whose model CPU is its latency (no queue here)
            compute = {"1": (len(latencies), sum(latencies) / 1000.0)} if latencies else {}
            v.stats = v.stats + replace(seen_stats, compute=compute)
