"""Drift statistics: PSI, the two-sample G-test, and the combined verdict at large n."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.data.drift import chi2_sf, chi2_test, compare_counts, g_test, pool_sparse, psi
from modelyard.data.profile import build_profile
from modelyard.errors import InvalidInputError


@pytest.mark.parametrize(
    ("x", "dof"),
    [(0.5, 1), (3.84, 1), (10.0, 5), (36.5, 19), (19.0, 21), (150.0, 21), (0.01, 50)],
)
def test_chi2_sf_matches_scipy(x: float, dof: int) -> None:
    from scipy import stats

    assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-10)


def test_chi2_sf_edges() -> None:
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(5.0, 0) == 1.0
    assert chi2_sf(1e6, 10) == 0.0


def test_g_test_matches_scipy_contingency() -> None:
    from scipy import stats

    r = np.array([120, 300, 0, 80])
    c = np.array([100, 330, 0, 60])
    g, dof, p = g_test(r, c)
    want = stats.chi2_contingency(np.vstack([r, c])[:, [0, 1, 3]], lambda_="log-likelihood")
    assert g == pytest.approx(want.statistic, rel=1e-9)
    assert dof == want.dof == 2
    assert p == pytest.approx(want.pvalue, rel=1e-9)


def test_psi_properties() -> None:
    a = np.array([100, 200, 300, 400])
    assert psi(a, a) == 0.0
    assert psi(a, a * 10) == pytest.approx(0.0, abs=1e-5)  # size does not matter
    assert psi(a, a[::-1]) == pytest.approx(psi(a[::-1], a))
    assert psi(a, a[::-1]) > 0.25
    with pytest.raises(InvalidInputError, match="equal length"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(InvalidInputError, match="non-negative"):
        psi([1, -2], [1, 2])


def _normal_counts(n: int, seed: int, *, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Counts of n normal draws in 20 quantile bins of N(0, 1), drawn as one multinomial."""
    from scipy import stats

    edges = stats.norm.ppf(np.linspace(0, 1, 21)[1:-1])
    cdf = stats.norm.cdf(np.concatenate([[-np.inf], edges, [np.inf]]), shift, scale)
    return np.random.default_rng(seed).multinomial(n, np.diff(cdf))


def test_same_distribution_at_one_million_rows_does_not_flag() -> None:
    ref = _normal_counts(1_000_000, 0)
    flagged = [compare_counts(ref, _normal_counts(1_000_000, s)).drifted for s in range(1, 21)]
    assert not any(flagged)


def test_significance_alone_would_flag_at_large_n() -> None:
    # a 0.02 sd shift is real but harmless: the test rejects, the effect size does not
    r = compare_counts(_normal_counts(1_000_000, 0), _normal_counts(1_000_000, 1, shift=0.02))
    assert r.p_value < 0.05
    assert r.psi < 0.01
    assert not r.drifted


def test_mean_shift_flags() -> None:
    r = compare_counts(_normal_counts(100_000, 0), _normal_counts(100_000, 1, shift=0.5))
    assert r.drifted
    assert r.psi > 0.2
    assert r.p_value < 1e-12


def test_pure_variance_change_flags() -> None:
    r = compare_counts(_normal_counts(100_000, 0), _normal_counts(100_000, 1, scale=1.5))
    assert r.drifted
    assert r.psi > 0.1


def test_small_noisy_samples_alert_at_about_alpha() -> None:
    # 30 rows in 22 bins: PSI is inflated by chance (so it cannot decide alone) and the
    # chi-square test keeps false alarms near alpha
    ref = _normal_counts(100_000, 0)
    results = [compare_counts(ref, _normal_counts(30, s)) for s in range(1, 401)]
    assert np.mean([r.psi > 0.1 for r in results]) > 0.9
    assert np.mean([r.drifted for r in results]) < 0.08


def test_chi2_test_matches_scipy() -> None:
    from scipy import stats

    r, c = np.array([120, 300, 0, 80]), np.array([100, 330, 0, 60])
    x2, dof, p = chi2_test(r, c)
    want = stats.chi2_contingency(np.vstack([r, c])[:, [0, 1, 3]], correction=False)
    assert (x2, dof, p) == pytest.approx((want.statistic, want.dof, want.pvalue), rel=1e-9)


def test_variance_change_on_real_rows_through_a_profile() -> None:
    rng = np.random.default_rng(42)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 1_000_000)})
    same = pd.DataFrame({"x": rng.normal(0, 1, 1_000_000)})
    wider = pd.DataFrame({"x": rng.normal(0, 1.5, 1_000_000)})
    profile = build_profile(ref)
    assert profile.score(same).drifted == []
    assert profile.score(wider).drifted == ["x"]


def test_rare_categories_in_small_samples_alert_at_about_alpha() -> None:
    # 40 long-tailed categories: one live row in a rare category used to decide the
    # chi-square test (expected counts far below 5), so a quarter of same-distribution
    # samples of 5-10 rows were flagged
    rng = np.random.default_rng(2)
    cats = [f"c{i}" for i in range(40)]
    w = 1 / np.arange(1, 41) ** 1.5
    w /= w.sum()
    profile = build_profile(pd.DataFrame({"s": rng.choice(cats, 200_000, p=w)}))
    for n in (5, 10, 30):
        flagged = [
            profile.score(pd.DataFrame({"s": rng.choice(cats, n, p=w)}))["s"].drifted
            for _ in range(300)
        ]
        assert np.mean(flagged) < 0.08, n


def test_pooled_bins_keep_power_on_small_shifted_samples() -> None:
    rng = np.random.default_rng(5)
    profile = build_profile(pd.DataFrame({"x": rng.normal(size=100_000)}))
    flagged = [
        profile.score(pd.DataFrame({"x": rng.normal(1.0, 1.0, 30)}))["x"].drifted
        for _ in range(100)
    ]
    assert np.mean(flagged) > 0.9


def test_pool_sparse_merges_neighbours_until_five_rows_are_expected() -> None:
    # expected counts of the smaller sample: [1, 9, 10, 0, 0]: the first two merge, the
    # empty tail joins the group before it
    r, c = pool_sparse([10, 90, 100, 0, 0], [1, 9, 10, 0, 0])
    assert r.tolist() == [100, 100]
    assert c.tolist() == [10, 10]
    assert pool_sparse([500, 500], [50, 50])[0].tolist() == [500, 500]  # nothing sparse
    assert compare_counts([100] * 20, [0] * 19 + [5]).p_value == 1.0  # 5 rows: no test
