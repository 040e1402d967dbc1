"""The analysis: outcomes on empty and odd data; always-valid tests in simulated rollouts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from modelyard.delivery.analysis import (
    LATENCY_BUCKETS_MS,
    ArmStats,
    Decision,
    Outcome,
    Thresholds,
    analyze,
    confidence_halfwidth,
    decide,
)


def _arm(
    rng: np.random.Generator,
    n: int,
    *,
    error_rate: float = 0.002,
    accuracy: float | None = 0.9,
    latency_median_ms: float = 4.0,
) -> ArmStats:
    """``n`` requests' counters drawn as a real arm's would be (vectorised for speed)."""
    latency = rng.lognormal(np.log(latency_median_ms), 0.4, size=n)
    bins = np.bincount(np.searchsorted(LATENCY_BUCKETS_MS, latency), minlength=19)
    correct = int(rng.binomial(n, accuracy)) if accuracy is not None else 0
    return ArmStats(
        requests=n,
        errors=int(rng.binomial(n, error_rate)),
        latency_counts=tuple(int(b) for b in bins),
        quality_n=n if accuracy is not None else 0,
        quality_sum=float(correct),
        quality_sumsq=float(correct),
    )


def _rollout(
    rng: np.random.Generator,
    candidate_accuracy: float,
    *,
    per_interval: int = 20_000,
    deadline_intervals: int = 40,
) -> str:
    """One simulated canary 5 -> 25 -> 50 -> 100: analysis every interval on the cumulative
    counters, as the rollout does. Returns 'promoted' or 'rolled_back'."""
    cand, stab = ArmStats(), ArmStats()
    for weight in (0.05, 0.25, 0.5):
        for interval in range(1, deadline_intervals + 1):
            n_c = int(rng.binomial(per_interval, weight))
            cand = cand + _arm(rng, n_c, accuracy=candidate_accuracy)
            stab = stab + _arm(rng, per_interval - n_c)
            verdict = analyze(cand, stab, Thresholds())
            move = decide(verdict.outcome, interval, deadline_intervals, "rollback")
            if move is Decision.ROLLBACK:
                return "rolled_back"
            if move is Decision.ADVANCE:
                break
    return "promoted"


def test_identical_candidate_is_rarely_rolled_back_in_200_rollouts() -> None:
    rng = np.random.default_rng(20261206)
    results = [_rollout(rng, 0.90) for _ in range(200)]
    rolled_back = results.count("rolled_back")
    assert rolled_back <= 10, f"{rolled_back} of 200 identical candidates rolled back"


def test_two_point_accuracy_drop_is_caught() -> None:
    rng = np.random.default_rng(7)
    results = [_rollout(rng, 0.88) for _ in range(100)]
    assert results.count("rolled_back") >= 95, results.count("promoted")


def test_error_spike_fails_with_the_failing_check_named() -> None:
    rng = np.random.default_rng(1)
    verdict = analyze(_arm(rng, 500, error_rate=0.2), _arm(rng, 5000))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.reason == "fail: error_rate"
    check = next(c for c in verdict.checks if c.name == "error_rate")
    assert check.lower is not None
    assert check.lower > 0
    assert verdict.to_dict()["candidate"]["error_rate"] == pytest.approx(0.2, abs=0.05)


def test_slow_candidate_fails_the_latency_checks() -> None:
    rng = np.random.default_rng(2)
    slow = _arm(rng, 2000, latency_median_ms=40.0)
    verdict = analyze(slow, _arm(rng, 2000), Thresholds(max_p99_ms=25.0))
    failed = {c.name for c in verdict.checks if c.outcome is Outcome.FAIL}
    assert failed == {"latency_ratio", "p99_ms"}


def test_empty_data_is_insufficient_never_pass_nor_exception() -> None:
    verdict = analyze(ArmStats(), ArmStats())
    assert verdict.outcome is Outcome.INSUFFICIENT
    assert {c.outcome for c in verdict.checks} == {Outcome.INSUFFICIENT}
    # one arm empty, the other busy
    busy = _arm(np.random.default_rng(3), 5000)
    assert analyze(ArmStats(), busy).outcome is Outcome.INSUFFICIENT
    assert analyze(busy, ArmStats()).outcome is Outcome.INSUFFICIENT
    # below min_samples
    few = _arm(np.random.default_rng(4), 20)
    verdict = analyze(few, few, Thresholds(min_samples=100))
    assert verdict.outcome is Outcome.INSUFFICIENT
    assert "needs 100 per arm, has candidate 20" in verdict.checks[0].detail


def test_only_invalid_requests_are_insufficient_not_a_division_error() -> None:
    bad = ArmStats(requests=300, invalid=300)
    verdict = analyze(bad, bad)
    assert verdict.outcome is Outcome.INSUFFICIENT  # no answered request, no latencies
    assert verdict.to_dict()["candidate"]["error_rate"] is None


def test_feedback_arriving_for_one_arm_only_is_insufficient() -> None:
    rng = np.random.default_rng(5)
    verdict = analyze(_arm(rng, 3000, accuracy=None), _arm(rng, 3000))
    quality = next(c for c in verdict.checks if c.name == "quality")
    assert quality.outcome is Outcome.INSUFFICIENT
    assert verdict.outcome is Outcome.INSUFFICIENT


def test_no_feedback_at_all_judges_the_other_checks() -> None:
    rng = np.random.default_rng(6)
    verdict = analyze(_arm(rng, 20000, accuracy=None), _arm(rng, 20000, accuracy=None))
    assert "quality" not in {c.name for c in verdict.checks}
    assert verdict.outcome is Outcome.PASS


def test_labels_received_but_not_yet_joined_hold_the_pass() -> None:
    # the server has accepted labels, but the request log holding their answers is not read
    # back yet: passing on latency and errors alone would promote a candidate whose quality
    # nobody looked at (the race a real canary with feedback ran into)
    from dataclasses import replace

    rng = np.random.default_rng(7)
    cand = _arm(rng, 20000, accuracy=None)
    stab = replace(_arm(rng, 20000, accuracy=None), labels=500)
    verdict = analyze(cand, stab)
    quality = next(c for c in verdict.checks if c.name == "quality")
    assert quality.outcome is Outcome.INSUFFICIENT
    assert verdict.outcome is Outcome.INSUFFICIENT
    assert ArmStats.from_dict(stab.to_dict()).labels == 500
    assert (stab - replace(stab, labels=200)).labels == 300


def test_counters_merge_and_round_trip() -> None:
    a = ArmStats.from_observations(
        statuses=[200, 500, 422], latencies_ms=[1.5, 3.0, 0.2], quality=[1, 0], predicted=["a"]
    )
    b = ArmStats.from_observations(statuses=[200], latencies_ms=[100.0], predicted=["b"])
    merged = a + b
    assert (merged.requests, merged.errors, merged.invalid) == (4, 1, 1)
    assert merged.predicted == {"a": 1, "b": 1}
    assert ArmStats.from_dict(merged.to_dict()) == merged
    assert merged.latency_quantile_ms(1.0) == pytest.approx(100.0)


def test_halfwidth_shrinks_with_data_and_guards_zero_variance() -> None:
    assert confidence_halfwidth(0.0, 0.01, 0.05) == float("inf")
    widths = [confidence_halfwidth(0.1 / n, 0.02, 0.05) for n in (100, 1_000, 10_000)]
    assert widths[0] > widths[1] > widths[2]


def test_deadline_turns_waiting_into_the_configured_move() -> None:
    assert decide(Outcome.INCONCLUSIVE, 10, 60, "rollback") is Decision.WAIT
    assert decide(Outcome.INSUFFICIENT, 60, 60, "rollback") is Decision.ROLLBACK
    assert decide(Outcome.INSUFFICIENT, 60, 60, "hold") is Decision.HOLD
    assert decide(Outcome.PASS, 0, 60, "hold") is Decision.ADVANCE
    assert decide(Outcome.FAIL, 0, 60, "hold") is Decision.ROLLBACK


def test_a_dead_candidate_worker_fails_at_once() -> None:
    rng = np.random.default_rng(8)
    crashed = _arm(rng, 10) + ArmStats(restarts=1)
    verdict = analyze(crashed, _arm(rng, 10))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.reason == "fail: worker_restarts"


def _computed(per_batch_ms: dict[str, float], batches: int = 200) -> ArmStats:
    """An arm whose model ran ``batches`` batches of each size label at the given CPU cost."""
    stats = ArmStats.from_observations(statuses=[200] * 500, latencies_ms=[5.0] * 500)
    compute = {size: (batches, batches * ms / 1000.0) for size, ms in per_batch_ms.items()}
    return replace(stats, compute=compute)


def test_a_shadow_is_judged_on_model_cpu_at_equal_batch_sizes_not_latency() -> None:
    stable = _computed({"1": 0.25, "32": 0.80})
    slow_queue = replace(_computed({"1": 0.26, "32": 0.79}), latency_counts=_arm(
        np.random.default_rng(3), 500, latency_median_ms=80.0).latency_counts)  # fmt: skip
    verdict = analyze(slow_queue, stable, Thresholds(), latency="compute")
    assert verdict.outcome is Outcome.PASS  # its latency (low priority) is not held against it
    assert {c.name for c in verdict.checks} == {"error_rate", "invalid_rate", "compute_ratio"}
    heavy = _computed({"1": 0.60, "32": 2.0})
    verdict = analyze(heavy, stable, Thresholds(max_latency_ratio=1.5), latency="compute")
    check = next(c for c in verdict.checks if c.name == "compute_ratio")
    assert check.outcome is Outcome.FAIL
    assert check.candidate == pytest.approx((2.4 * 2.5) ** 0.5)  # geometric mean of the sizes
    assert "2.45x stable's" in check.detail


def test_batches_of_other_sizes_are_not_compared_a_cheap_big_batch_is_no_excuse() -> None:
    # the shadow ran only big batches, stable only small ones: per row the shadow looks
    # cheap, but no size was run by both: not enough to say anything
    verdict = analyze(_computed({"64": 1.2}), _computed({"1": 0.25, "2": 0.3}), latency="compute")
    check = next(c for c in verdict.checks if c.name == "compute_ratio")
    assert check.outcome is Outcome.INSUFFICIENT
    assert verdict.outcome is Outcome.INSUFFICIENT


def test_compute_counters_merge_subtract_and_round_trip() -> None:
    a, b = _computed({"1": 0.25}, batches=10), _computed({"1": 0.25, "8": 0.5}, batches=30)
    merged = a + b
    assert merged.compute["1"] == (40, pytest.approx(0.01))
    assert (merged - a).compute == {
        "1": (30, pytest.approx(0.0075)),
        "8": (30, pytest.approx(0.015)),
    }
    assert ArmStats.from_dict(merged.to_dict()) == merged
