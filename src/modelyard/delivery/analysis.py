"""Candidate against stable: always-valid comparisons that may be looked at every interval.

Each arm is summarised by additive counters (:class:`ArmStats`): requests, server errors, input
validation failures, a latency histogram, feedback quality and the predictions' distribution.
:func:`analyze` compares the candidate with the stable arm over the same window and returns an
:class:`Analysis` whose outcome is ``pass``, ``fail``, ``inconclusive`` or ``insufficient_data``;
it never raises on empty or odd data and never passes on empty data.

Every comparison is a *confidence sequence* for ``harm`` (how much worse the candidate is, in the
metric's own units): the normal-mixture boundary of the mixture SPRT (Robbins 1970; Johari et al.,
"Always valid inference", 2017)::

    half_width = sqrt(2 V (V + tau^2) / tau^2 * (log(1/alpha) + log((V + tau^2) / V) / 2))

with ``V`` the variance of the estimated difference and ``tau`` the mixture scale (the metric's
tolerance). The interval holds for every look at once, so checking each interval does not inflate
the false-rollback rate: a candidate identical to stable fails with probability at most
``alpha`` over the whole rollout (split evenly between the checks). A check

- **fails** when the lower bound of ``harm`` is above 0 (significantly worse) or an absolute SLO
  is broken with confidence;
- **passes** when the upper bound is below its tolerance (shown to be no worse than tolerated);
- is **inconclusive** otherwise, and **insufficient** below ``min_samples`` in either arm.

A candidate whose worker processes die (``restarts``) fails at once, whatever the counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "LATENCY_BUCKETS_MS",
    "LATENCY_SLACK_MS",
    "Analysis",
    "ArmStats",
    "Check",
    "Decision",
    "Outcome",
    "Thresholds",
    "analyze",
    "combine",
    "confidence_halfwidth",
    "decide",
    "load_test_verdict",
]

#: latency histogram bounds in milliseconds (the serving metrics' buckets)
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0,
    2500.0, 5000.0, 10000.0, 30000.0,
)  # fmt: skip

#: a request this close to stable's p99 never counts as slow: below it, queueing behind the
#: other arm on a busy front and the histogram's bucket width outweigh the model's own speed
LATENCY_SLACK_MS = 5.0
_DRIFT_WARN_TV = 0.2  # total variation between the arms' predicted classes worth a warning


class Outcome(StrEnum):
    """What one check, or a whole analysis, concluded."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    INSUFFICIENT = "insufficient_data"


_SEVERITY = {Outcome.PASS: 0, Outcome.INCONCLUSIVE: 1, Outcome.INSUFFICIENT: 2, Outcome.FAIL: 3}


@dataclass(frozen=True)
class ArmStats:
    """Additive counters for one arm over a window; ``a + b`` merges two windows.

    Attributes:
        requests: inference requests answered (any status).
        errors: answered with a server error (5xx, timeouts).
        invalid: refused as invalid input (4xx).
        latency_counts: requests per bucket of ``LATENCY_BUCKETS_MS`` plus one overflow bucket.
        quality_n: requests with feedback.
        quality_sum: sum of their quality scores (1/0 for a correct/wrong class, or minus the
            absolute error for a regression): higher is better.
        quality_sumsq: sum of the squared scores.
        predicted: count of each predicted class (or decile label) for the drift between arms.
        restarts: model worker processes that died and were restarted.
        labels: feedback records this arm's endpoint received in the window (whichever
            version answered them): once labels flow, quality must be judged before a pass.
        compute: per batch-size label (``"1"``, ``"2"``, ``"4"``...), the batches the model
            ran and the CPU seconds it took: the model's cost, whatever CPU priority its
            workers had (a shadow's latency is the CPU stable leaves it; its cost is not).
    """

    requests: int = 0
    errors: int = 0
    invalid: int = 0
    latency_counts: tuple[int, ...] = (0,) * (len(LATENCY_BUCKETS_MS) + 1)
    quality_n: int = 0
    quality_sum: float = 0.0
    quality_sumsq: float = 0.0
    predicted: Mapping[str, int] = field(default_factory=dict)
    restarts: int = 0
    labels: int = 0
    compute: Mapping[str, tuple[int, float]] = field(default_factory=dict)

    def __add__(self, other: ArmStats) -> ArmStats:
        predicted = dict(self.predicted)
        for key, n in other.predicted.items():
            predicted[key] = predicted.get(key, 0) + n
        return ArmStats(
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            invalid=self.invalid + other.invalid,
            latency_counts=tuple(
                a + b for a, b in zip(self.latency_counts, other.latency_counts, strict=True)
            ),
            quality_n=self.quality_n + other.quality_n,
            quality_sum=self.quality_sum + other.quality_sum,
            quality_sumsq=self.quality_sumsq + other.quality_sumsq,
            predicted=predicted,
            restarts=self.restarts + other.restarts,
            labels=self.labels + other.labels,
            compute=_merge_compute(self.compute, other.compute, 1),
        )

    def __sub__(self, earlier: ArmStats) -> ArmStats:
        """The counters since ``earlier`` was read (all of ``self`` if they were reset since,
        as when the version's pool restarted)."""
        if self.requests < earlier.requests:
            return self
        return ArmStats(
            requests=self.requests - earlier.requests,
            errors=self.errors - earlier.errors,
            invalid=self.invalid - earlier.invalid,
            latency_counts=tuple(
                a - b for a, b in zip(self.latency_counts, earlier.latency_counts, strict=True)
            ),
            quality_n=self.quality_n - earlier.quality_n,
            quality_sum=self.quality_sum - earlier.quality_sum,
            quality_sumsq=self.quality_sumsq - earlier.quality_sumsq,
            predicted={k: n - earlier.predicted.get(k, 0) for k, n in self.predicted.items()},
            restarts=self.restarts - earlier.restarts,
            labels=self.labels - earlier.labels,
            compute=_merge_compute(self.compute, earlier.compute, -1),
        )

    @classmethod
    def from_observations(
        cls,
        *,
        statuses: Iterable[int],
        latencies_ms: Iterable[float],
        quality: Iterable[float] = (),
        predicted: Iterable[Any] = (),
    ) -> ArmStats:
        """Counters from raw observations (one status and latency per request)."""
        from bisect import bisect_left

        statuses = list(statuses)
        counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        for ms in latencies_ms:
            counts[bisect_left(LATENCY_BUCKETS_MS, ms)] += 1
        q = [float(v) for v in quality]
        labels: dict[str, int] = {}
        for p in predicted:
            labels[str(p)] = labels.get(str(p), 0) + 1
        return cls(
            requests=len(statuses),
            errors=sum(1 for s in statuses if s >= 500),
            invalid=sum(1 for s in statuses if 400 <= s < 500),
            latency_counts=tuple(counts),
            quality_n=len(q),
            quality_sum=sum(q),
            quality_sumsq=sum(v * v for v in q),
            predicted=labels,
        )

    @property
    def answered(self) -> int:
        """Requests the model answered or failed on (not refused as invalid)."""
        return self.requests - self.invalid

    def latency_quantile_ms(self, q: float) -> float | None:
        """The ``q`` quantile, interpolated inside its bucket as Prometheus does."""
        total = sum(self.latency_counts)
        if total == 0:
            return None
        rank = q * total
        running = 0
        lower = 0.0
        for i, n in enumerate(self.latency_counts):
            upper = LATENCY_BUCKETS_MS[i] if i < len(LATENCY_BUCKETS_MS) else lower
            if n and running + n >= rank:
                return lower + (upper - lower) * (rank - running) / n
            running += n
            lower = upper
        return lower

    def slower_than(self, bound_ms: float) -> float:
        """How many requests took longer than ``bound_ms`` (linear inside the bucket)."""
        slow = 0.0
        lower = 0.0
        for i, n in enumerate(self.latency_counts):
            upper = LATENCY_BUCKETS_MS[i] if i < len(LATENCY_BUCKETS_MS) else math.inf
            if lower >= bound_ms:
                slow += n
            elif upper > bound_ms and n:
                share = 1.0 if math.isinf(upper) else (upper - bound_ms) / (upper - lower)
                slow += n * share
            lower = upper
        return slow

    def summary(self) -> dict[str, Any]:
        """The arm's figures for evidence records."""
        q_mean = self.quality_sum / self.quality_n if self.quality_n else None
        return {
            "requests": self.requests,
            "error_rate": self.errors / self.answered if self.answered else None,
            "invalid_rate": self.invalid / self.requests if self.requests else None,
            "p50_ms": self.latency_quantile_ms(0.5),
            "p90_ms": self.latency_quantile_ms(0.9),
            "p99_ms": self.latency_quantile_ms(0.99),
            "feedback": self.quality_n,
            "quality": q_mean,
            "worker_restarts": self.restarts,
        }

    def to_dict(self) -> dict[str, Any]:
        """Every counter, JSON-able (:meth:`from_dict` reads it back)."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "invalid": self.invalid,
            "latency_counts": list(self.latency_counts),
            "quality_n": self.quality_n,
            "quality_sum": self.quality_sum,
            "quality_sumsq": self.quality_sumsq,
            "predicted": dict(self.predicted),
            "restarts": self.restarts,
            "labels": self.labels,
            "compute": {k: [n, cpu] for k, (n, cpu) in self.compute.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmStats:
        """The inverse of :meth:`to_dict`."""
        counts = tuple(int(n) for n in data.get("latency_counts", ()))
        if len(counts) != len(LATENCY_BUCKETS_MS) + 1:
            counts = (0,) * (len(LATENCY_BUCKETS_MS) + 1)
        return cls(
            requests=int(data.get("requests", 0)),
            errors=int(data.get("errors", 0)),
            invalid=int(data.get("invalid", 0)),
            latency_counts=counts,
            quality_n=int(data.get("quality_n", 0)),
            quality_sum=float(data.get("quality_sum", 0.0)),
            quality_sumsq=float(data.get("quality_sumsq", 0.0)),
            predicted={str(k): int(v) for k, v in dict(data.get("predicted", {})).items()},
            restarts=int(data.get("restarts", 0)),
            labels=int(data.get("labels", 0)),
            compute={
                str(k): (int(v[0]), float(v[1])) for k, v in dict(data.get("compute", {})).items()
            },
        )


def _merge_compute(
    a: Mapping[str, tuple[int, float]], b: Mapping[str, tuple[int, float]], sign: int
) -> dict[str, tuple[int, float]]:
    out = dict(a)
    for k, (n, cpu) in b.items():
        n0, cpu0 = out.get(k, (0, 0.0))
        out[k] = (n0 + sign * n, cpu0 + sign * cpu)
    return {k: v for k, v in out.items() if v[0] > 0}


@dataclass(frozen=True)
class Thresholds:
    """The SLOs and test settings of an analysis (built from ``DeliverySettings``).

    Attributes:
        max_error_rate: how much higher the candidate's error, invalid-input and slow-request
            rates may be (a latency check counts the share of requests slower than a bound).
        max_p99_ms: an absolute ceiling: at most 1 % of the candidate's requests slower.
        max_latency_ratio: the share of the candidate's requests slower than this times
            stable's p99 (and than stable's p99 plus ``LATENCY_SLACK_MS``) may exceed stable's
            share by at most ``max_error_rate``.
        max_quality_drop: how much lower the candidate's mean feedback quality may be.
        alpha: the chance, over the whole rollout, that a candidate no worse than stable fails.
        min_samples: requests (and, for quality, feedback records) each arm needs.
    """

    max_error_rate: float = 0.01
    max_p99_ms: float | None = None
    max_latency_ratio: float | None = 1.5
    max_quality_drop: float = 0.02
    alpha: float = 0.05
    min_samples: int = 100

    @classmethod
    def from_settings(cls, delivery: Any) -> Thresholds:
        """From a ``DeliverySettings`` (``settings.delivery``)."""
        return cls(
            max_error_rate=delivery.max_error_rate,
            max_p99_ms=delivery.max_p99_ms,
            max_latency_ratio=delivery.max_latency_ratio,
            max_quality_drop=delivery.max_quality_drop,
            alpha=delivery.alpha,
            min_samples=delivery.min_samples,
        )


@dataclass(frozen=True)
class Check:
    """One metric's comparison: ``harm`` is candidate minus stable, positive meaning worse."""

    name: str
    outcome: Outcome
    candidate: float | None
    stable: float | None
    harm: float | None = None
    lower: float | None = None
    upper: float | None = None
    tolerance: float | None = None
    n_candidate: int = 0
    n_stable: int = 0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "outcome": str(self.outcome),
            "candidate": _finite(self.candidate),
            "stable": _finite(self.stable),
            "harm": _finite(self.harm),
            "lower": _finite(self.lower),
            "upper": _finite(self.upper),
            "tolerance": self.tolerance,
            "n_candidate": self.n_candidate,
            "n_stable": self.n_stable,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Analysis:
    """The verdict of one analysis, its checks and both arms' figures."""

    outcome: Outcome
    checks: tuple[Check, ...]
    candidate: dict[str, Any]
    stable: dict[str, Any]
    reason: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": str(self.outcome),
            "reason": self.reason,
            "checks": [c.to_dict() for c in self.checks],
            "candidate": self.candidate,
            "stable": self.stable,
            "notes": list(self.notes),
        }


def _finite(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return round(v, 6)


def confidence_halfwidth(variance: float, tau: float, alpha: float) -> float:
    """Half-width of the always-valid interval for a difference with estimated ``variance``.

    The normal-mixture boundary of the mixture SPRT with mixing scale ``tau``: it holds at every
    sample size at once with probability at least ``1 - alpha``.
    """
    if variance <= 0 or not math.isfinite(variance):
        return math.inf
    tau2 = tau * tau
    return math.sqrt(
        2 * variance * (variance + tau2) / tau2
        * (math.log(1 / alpha) + 0.5 * math.log((variance + tau2) / variance))
    )  # fmt: skip


def _rate_var(x: float, n: int) -> float:
    # half a pseudo-count keeps the variance away from 0 when no event was seen yet
    p = (x + 0.5) / (n + 1)
    return p * (1 - p) / n


def _judge(
    name: str,
    harm: float,
    variance: float,
    tolerance: float,
    alpha: float,
    *,
    candidate: float,
    stable: float | None,
    n: tuple[int, int],
) -> Check:
    width = confidence_halfwidth(variance, max(tolerance, 1e-6), alpha)
    lower, upper = harm - width, harm + width
    if lower > 0:
        outcome, detail = Outcome.FAIL, "candidate significantly worse"
    elif upper < tolerance:
        outcome, detail = Outcome.PASS, "no worse than tolerated"
    else:
        outcome, detail = Outcome.INCONCLUSIVE, "not enough evidence either way yet"
    return Check(
        name,
        outcome,
        candidate,
        stable,
        harm,
        lower,
        upper,
        tolerance,
        n[0],
        n[1],
        detail,
    )


def _too_few(name: str, n_c: int, n_s: int, need: int) -> Check:
    return Check(
        name,
        Outcome.INSUFFICIENT,
        None,
        None,
        n_candidate=n_c,
        n_stable=n_s,
        detail=f"needs {need} per arm, has candidate {n_c}, stable {n_s}",
    )


def _rate_check(
    name: str, cand: tuple[int, int], stab: tuple[int, int], t: Thresholds, alpha: float
) -> Check:
    """``cand`` and ``stab``: (events, trials) of each arm."""
    (xc, nc), (xs, ns) = cand, stab
    if min(nc, ns) < t.min_samples:
        return _too_few(name, nc, ns, t.min_samples)
    pc, ps = xc / nc, xs / ns
    return _judge(
        name,
        pc - ps,
        _rate_var(xc, nc) + _rate_var(xs, ns),
        t.max_error_rate,
        alpha,
        candidate=pc,
        stable=ps,
        n=(nc, ns),
    )


def _latency_checks(c: ArmStats, s: ArmStats, t: Thresholds, alpha: float) -> list[Check]:
    nc, ns = sum(c.latency_counts), sum(s.latency_counts)
    checks: list[Check] = []
    if t.max_latency_ratio is not None:
        if min(nc, ns) < t.min_samples:
            checks.append(_too_few("latency_ratio", nc, ns, t.min_samples))
        else:
            p99 = s.latency_quantile_ms(0.99) or 0.0
            bound = max(t.max_latency_ratio * p99, p99 + LATENCY_SLACK_MS)
            xc, xs = c.slower_than(bound), s.slower_than(bound)
            check = _judge(
                "latency_ratio",
                xc / nc - xs / ns,
                _rate_var(xc, nc) + _rate_var(xs, ns),
                t.max_error_rate,
                alpha,
                candidate=c.latency_quantile_ms(0.99) or 0.0,
                stable=p99,
                n=(nc, ns),
            )
            checks.append(
                replace(check, detail=f"{check.detail}; share slower than {bound:.2f} ms")
            )
    if t.max_p99_ms is not None:
        if nc < t.min_samples:
            checks.append(_too_few("p99_ms", nc, ns, t.min_samples))
        else:
            xc = c.slower_than(t.max_p99_ms)
            # harm: the share above the ceiling beyond the 1 % that a p99 allows
            check = _judge(
                "p99_ms",
                xc / nc - 0.01,
                _rate_var(xc, nc),
                t.max_error_rate,
                alpha,
                candidate=c.latency_quantile_ms(0.99) or 0.0,
                stable=s.latency_quantile_ms(0.99),
                n=(nc, ns),
            )
            checks.append(replace(check, tolerance=t.max_p99_ms))
    return checks


#: batches of one size each arm needs before their model CPU is compared
MIN_COMPUTE_BATCHES = 20


def _compute_check(c: ArmStats, s: ArmStats, t: Thresholds) -> Check | None:
    """The candidate's model CPU per batch against stable's, batch size by batch size (a batch
    of 1 costs far more per row than one of 32), averaged over the sizes both ran often
    (geometric mean of the ratios, weighted by the candidate's batches): at most
    ``max_latency_ratio``. Means over many batches: a threshold, not a sequential test."""
    bound = t.max_latency_ratio
    if bound is None:
        return None
    weight = total = 0.0
    for label, (nc, cpu_c) in c.compute.items():
        ns, cpu_s = s.compute.get(label, (0, 0.0))
        if min(nc, ns) < MIN_COMPUTE_BATCHES or cpu_c <= 0 or cpu_s <= 0:
            continue
        total += nc * math.log((cpu_c / nc) / (cpu_s / ns))
        weight += nc
    nc_all = sum(n for n, _ in c.compute.values())
    ns_all = sum(n for n, _ in s.compute.values())
    if not weight:
        return Check(
            "compute_ratio",
            Outcome.INSUFFICIENT,
            None,
            None,
            n_candidate=nc_all,
            n_stable=ns_all,
            detail=f"needs {MIN_COMPUTE_BATCHES} batches of one size per arm, has candidate "
            f"{nc_all}, stable {ns_all} (over all sizes)",
        )
    ratio = math.exp(total / weight)
    worse = ratio > bound
    return Check(
        "compute_ratio",
        Outcome.FAIL if worse else Outcome.PASS,
        ratio,
        1.0,
        harm=ratio - 1.0,
        tolerance=bound,
        n_candidate=nc_all,
        n_stable=ns_all,
        detail=(
            f"model CPU per batch {ratio:.2f}x stable's at the same batch sizes "
            f"({'above' if worse else 'within'} {bound:g}x)"
        ),
    )


def _quality_check(c: ArmStats, s: ArmStats, t: Thresholds, alpha: float) -> Check | None:
    if c.quality_n == 0 and s.quality_n == 0 and c.labels == 0 and s.labels == 0:
        return None  # no feedback: quality is not judged (nor passed)
    # labels are flowing (even if none has been joined to an answer yet, as when the request
    # log is still being written): the window waits for them instead of passing without them
    if min(c.quality_n, s.quality_n) < t.min_samples:
        return _too_few("quality", c.quality_n, s.quality_n, t.min_samples)
    mc, ms = c.quality_sum / c.quality_n, s.quality_sum / s.quality_n
    vc = max(c.quality_sumsq / c.quality_n - mc * mc, 0.0)
    vs = max(s.quality_sumsq / s.quality_n - ms * ms, 0.0)
    # a floor as for rates, so a perfect score on a few samples does not read as certainty
    floor = 0.25 / (min(c.quality_n, s.quality_n) + 1)
    variance = max(vc, floor) / c.quality_n + max(vs, floor) / s.quality_n
    return _judge(
        "quality",
        ms - mc,
        variance,
        t.max_quality_drop,
        alpha,
        candidate=mc,
        stable=ms,
        n=(c.quality_n, s.quality_n),
    )


def _drift_note(c: ArmStats, s: ArmStats) -> str | None:
    nc, ns = sum(c.predicted.values()), sum(s.predicted.values())
    if not nc or not ns:
        return None
    keys = set(c.predicted) | set(s.predicted)
    tv = 0.5 * sum(abs(c.predicted.get(k, 0) / nc - s.predicted.get(k, 0) / ns) for k in keys)
    level = "warning: " if tv > _DRIFT_WARN_TV else ""
    return f"{level}prediction drift between arms: total variation {tv:.3f}"


def analyze(
    candidate: ArmStats,
    stable: ArmStats,
    thresholds: Thresholds | None = None,
    *,
    latency: Literal["served", "compute"] = "served",
) -> Analysis:
    """Compare ``candidate`` with ``stable`` over the same window.

    Pass the counters accumulated since the rollout (or experiment) started: the confidence
    sequences are valid however often this is called on a growing window. ``latency``:
    ``served`` compares the requests' latencies; ``compute`` (a shadow, which runs at low CPU
    priority) compares the model's CPU per batch instead (``max_latency_ratio`` bounds it).

    Returns:
        An :class:`Analysis`: ``fail`` if any check fails, else ``insufficient_data`` if any
        lacks samples, else ``inconclusive`` if any is undecided, else ``pass``. With no
        requests at all it is ``insufficient_data``.
    """
    t = thresholds or Thresholds()
    has_feedback = candidate.quality_n > 0 or stable.quality_n > 0
    served = latency == "served"
    n_latency = (t.max_latency_ratio is not None) + (served and t.max_p99_ms is not None)
    alpha = t.alpha / (2 + n_latency + has_feedback)  # Bonferroni over the checks
    if served:
        latency_checks = _latency_checks(candidate, stable, t, alpha)
    else:
        latency_checks = [c for c in [_compute_check(candidate, stable, t)] if c is not None]
    checks: list[Check] = [
        _rate_check(
            "error_rate",
            (candidate.errors, candidate.answered),
            (stable.errors, stable.answered),
            t,
            alpha,
        ),
        _rate_check(
            "invalid_rate",
            (candidate.invalid, candidate.requests),
            (stable.invalid, stable.requests),
            t,
            alpha,
        ),
        *latency_checks,
    ]
    quality = _quality_check(candidate, stable, t, alpha)
    if quality is not None:
        checks.append(quality)
    if candidate.restarts > 0:  # a crashing model is a failure however few requests it cost
        checks.append(
            Check(
                "worker_restarts",
                Outcome.FAIL,
                float(candidate.restarts),
                float(stable.restarts),
                n_candidate=candidate.requests,
                n_stable=stable.requests,
                detail=f"{candidate.restarts} candidate worker process(es) died",
            )
        )
    return combine(checks, candidate, stable)


def combine(checks: Sequence[Check], candidate: ArmStats, stable: ArmStats) -> Analysis:
    """One verdict from ``checks``: the worst outcome (fail > insufficient_data > inconclusive
    > pass); ``insufficient_data`` at best when an arm saw no request."""
    worst = max((c.outcome for c in checks), key=_SEVERITY.__getitem__, default=Outcome.PASS)
    if candidate.requests == 0 or stable.requests == 0:
        worst = Outcome.FAIL if worst is Outcome.FAIL else Outcome.INSUFFICIENT
    named = [c.name for c in checks if c.outcome is worst]
    if worst is Outcome.PASS:
        reason = "every check passed"
    elif named:
        reason = f"{worst}: {', '.join(named)}"
    else:
        reason = f"{worst}: no requests in one arm"
    note = _drift_note(candidate, stable)
    return Analysis(
        worst,
        tuple(checks),
        candidate.summary(),
        stable.summary(),
        reason,
        (note,) if note else (),
    )


class Decision(StrEnum):
    """What a rollout does with an analysis."""

    ADVANCE = "advance"  # to the next step (or promotion)
    ROLLBACK = "rollback"
    WAIT = "wait"  # look again next interval
    HOLD = "hold"  # stop deciding by itself; wait for `modelyard rollout promote` or abort


def decide(outcome: Outcome, elapsed_s: float, deadline_s: float, on_insufficient: str) -> Decision:
    """The rollout's move after an analysis ``elapsed_s`` into the current step.

    ``pass`` advances and ``fail`` rolls back at once; ``inconclusive`` and ``insufficient_data``
    look again until ``deadline_s``, then roll back or hold as ``on_insufficient`` says.
    """
    if outcome is Outcome.PASS:
        return Decision.ADVANCE
    if outcome is Outcome.FAIL:
        return Decision.ROLLBACK
    if elapsed_s < deadline_s:
        return Decision.WAIT
    return Decision.ROLLBACK if on_insufficient == "rollback" else Decision.HOLD


def load_test_verdict(candidate: ArmStats, stable: ArmStats, t: Thresholds) -> Analysis:
    """The pre-production load test's verdict on the candidate's own figures.

    The candidate must answer ``min_samples`` requests with an error rate of at most
    ``max_error_rate`` (refusals count as errors: the replayed requests are ones stable
    answered) and a p99 under ``max_p99_ms`` and, when ``stable`` has served
    ``min_samples`` requests, under ``max_latency_ratio`` times stable's p99 (and stable's p99
    plus ``LATENCY_SLACK_MS``). A p99 bound holds when at most 1 % of the requests, plus
    ``max_error_rate`` as for the analysis' slow share, took longer: on a few hundred requests
    one hiccup of a busy machine is not a slow model.
    """
    checks: list[Check] = []
    n = candidate.requests
    if n < t.min_samples:
        checks.append(_too_few("load_requests", n, stable.requests, t.min_samples))
        return combine(checks, candidate, stable)
    rate = (candidate.errors + candidate.invalid) / n
    ok = rate <= t.max_error_rate
    checks.append(
        Check(
            "error_rate",
            Outcome.PASS if ok else Outcome.FAIL,
            rate,
            None,
            tolerance=t.max_error_rate,
            n_candidate=n,
        )
    )
    p99 = candidate.latency_quantile_ms(0.99) or 0.0
    stable_p99 = stable.latency_quantile_ms(0.99)
    limits: list[tuple[str, float]] = []
    if t.max_p99_ms is not None:
        limits.append(("p99_ms", t.max_p99_ms))
    if t.max_latency_ratio is not None and stable_p99 and stable.answered >= t.min_samples:
        limits.append(
            ("latency_ratio", max(t.max_latency_ratio * stable_p99, stable_p99 + LATENCY_SLACK_MS))
        )
    allowed = 0.01 + t.max_error_rate
    timed = sum(candidate.latency_counts) or 1
    for name, limit in limits:
        slow = candidate.slower_than(limit) / timed
        checks.append(
            Check(
                name,
                Outcome.PASS if slow <= allowed else Outcome.FAIL,
                p99,
                stable_p99,
                tolerance=round(limit, 3),
                n_candidate=n,
                n_stable=stable.answered,
                detail=f"p99 {p99:.2f} ms against a limit of {limit:.2f} ms; {slow:.1%} of "
                f"requests slower (at most {allowed:.1%})",
            )
        )
    worst = max((c.outcome for c in checks), key=_SEVERITY.__getitem__)
    named = [c.name for c in checks if c.outcome is worst]
    reason = "every check passed" if worst is Outcome.PASS else f"{worst}: {', '.join(named)}"
    return Analysis(worst, tuple(checks), candidate.summary(), stable.summary(), reason)
