from __future__ import annotations

import math

import numpy as np
import pytest

from modelyard.errors import InvalidInputError
from modelyard.evaluate.metrics import Predictions
from modelyard.evaluate.stats import mcnemar, paired_bootstrap


def _scores(n: int, signal: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(0, 1.5, n))))


def _pred(score: np.ndarray) -> Predictions:
    return Predictions((score >= 0.5).astype(int), score, (0, 1))


def test_a_large_improvement_is_significant() -> None:
    y, base = _scores(1500, 0.5, seed=0)
    rng = np.random.default_rng(9)
    better = 1 / (1 + np.exp(-(1.5 * (2 * y - 1) + rng.normal(0, 1.5, len(y)))))
    r = paired_bootstrap("roc_auc", y, _pred(better), _pred(base), n_resamples=1000, seed=1)
    assert r.improvement > 0.1
    assert r.significant
    assert r.p_value < 0.01
    assert 0 < r.ci_low <= r.improvement <= r.ci_high


def test_a_tiny_noisy_improvement_is_not_significant() -> None:
    y, base = _scores(1500, 0.8, seed=0)
    rng = np.random.default_rng(5)
    noisy = np.clip(base + rng.normal(0, 0.02, len(y)), 0, 1)
    r = paired_bootstrap("roc_auc", y, _pred(noisy), _pred(base), n_resamples=1000, seed=1)
    assert abs(r.improvement) < 0.01
    assert not r.significant
    assert r.p_value > 0.05
    assert r.ci_low < 0 < r.ci_high


def test_lower_is_better_metrics_flip_the_sign() -> None:
    y, base = _scores(800, 0.5, seed=2)
    better = np.clip(np.where(y == 1, base + 0.2, base - 0.2), 0.01, 0.99)
    r = paired_bootstrap("log_loss", y, _pred(better), _pred(base), n_resamples=300, seed=0)
    assert r.candidate < r.baseline
    assert r.improvement == pytest.approx(r.baseline - r.candidate)
    assert r.significant


def test_bootstrap_is_reproducible_with_a_seed_and_chunks_agree() -> None:
    y, base = _scores(500, 0.5, seed=3)
    _, other = _scores(500, 0.6, seed=4)
    a = paired_bootstrap("accuracy", y, _pred(other), _pred(base), n_resamples=200, seed=7)
    b = paired_bootstrap("accuracy", y, _pred(other), _pred(base), n_resamples=200, seed=7)
    assert a == b
    assert a.to_dict()["seed"] == 7


def test_min_delta_raises_the_bar() -> None:
    y, base = _scores(1000, 0.5, seed=0)
    rng = np.random.default_rng(9)
    better = 1 / (1 + np.exp(-(1.0 * (2 * y - 1) + rng.normal(0, 1.5, len(y)))))
    loose = paired_bootstrap("roc_auc", y, _pred(better), _pred(base), seed=0, n_resamples=300)
    strict = paired_bootstrap(
        "roc_auc", y, _pred(better), _pred(base), seed=0, n_resamples=300, min_delta=0.5
    )
    assert loose.significant
    assert not strict.significant


def test_bootstrap_rejects_unpaired_inputs() -> None:
    y = np.array([0, 1, 1])
    with pytest.raises(InvalidInputError, match="same rows"):
        paired_bootstrap("accuracy", y, _pred(np.array([0.1, 0.9, 0.8])), _pred(np.array([0.1])))


def test_mcnemar_uses_only_discordant_pairs() -> None:
    y = np.ones(100, dtype=int)
    base = np.ones(100, dtype=int)
    cand = np.ones(100, dtype=int)
    base[:10] = 0  # candidate right, baseline wrong on 10 rows
    r = mcnemar(y, cand, base)
    assert (r.candidate_only, r.baseline_only) == (10, 0)
    assert r.p_value == pytest.approx(0.5**10)
    assert r.significant
    assert r.improvement == pytest.approx(0.1)
    assert r.statistic == pytest.approx(81 / 10)
    assert r.p_value_chi2 == pytest.approx(math.erfc(math.sqrt(8.1 / 2)))


def test_mcnemar_balanced_discordance_is_not_significant() -> None:
    y = np.ones(1000, dtype=int)
    base = np.ones(1000, dtype=int)
    cand = np.ones(1000, dtype=int)
    base[:6] = 0
    cand[6:10] = 0  # 6 rows only candidate right, 4 only baseline right
    r = mcnemar(y, cand, base)
    assert (r.candidate_only, r.baseline_only) == (6, 4)
    assert r.p_value == pytest.approx(386 / 1024)  # P(X >= 6), X ~ Bin(10, 1/2)
    assert not r.significant


def test_mcnemar_exact_p_value_on_many_pairs_stays_finite() -> None:
    y = np.zeros(20000, dtype=int)
    cand = np.zeros(20000, dtype=int)
    base = np.zeros(20000, dtype=int)
    base[:5200] = 1
    cand[5200:10000] = 1  # b = 5200, c = 4800
    r = mcnemar(y, cand, base)
    assert 0 < r.p_value < 0.001
    assert r.significant
