"""Per-feature drift of a window against a reference profile, and the dataset verdict.

Everything here works on count vectors in the bins of a
:class:`~modelyard.data.profile.Profile` (bins, then the null bucket), so a window is scored
from its mergeable counts without keeping rows.

Per feature:

* **Three effect sizes**, because each misses something the others see:
  PSI (:func:`modelyard.data.drift.psi`), the Jensen-Shannon *distance* (base 2, in [0, 1];
  bounded and symmetric) and, for numeric features, the Wasserstein-1 distance between the two
  binned distributions divided by the reference standard deviation ("normalised Wasserstein").
  PSI on deciles misses a pure variance change; Wasserstein reads it from the CDF gap in the
  tails (sd x1.3 on normal data: W/sd 0.24 where decile PSI read 0.09).
* **A two-sample test on the stored counts**: the Pearson chi-square test on the 2 x k table of
  reference and window counts, with sparse bins pooled (:func:`modelyard.data.drift.chi2_test`);
  both samples are treated as samples, so the reference's own noise is accounted for.
* **Benjamini-Hochberg** across the features of a window: with 20 features at alpha 0.05 an
  uncorrected test raises an alarm in most windows of unchanged data; BH keeps the chance of a
  false alarm in an unchanged window at about ``alpha``.

A feature drifts when its BH-adjusted p-value is below ``alpha`` AND one effect size reaches its
threshold: significance keeps small noisy windows quiet, effect thresholds keep huge windows
from alerting on trivial wobbles. A feature with fewer than ``min_samples`` rows in the window
is ``insufficient_data``, never "no drift".

The dataset verdict weighs drifted features by their importance (equal weights by default):
``drift_score = sum(importance of drifted) / sum(importance of judged)``; the window drifted when
the score reaches ``drift_share``, so one important feature can trip it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.data.drift import chi2_test, pool_sparse, psi
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from modelyard.data.profile import FeatureProfile, Profile

__all__ = [
    "DatasetDrift",
    "DriftThresholds",
    "FeatureDrift",
    "benjamini_hochberg",
    "jensen_shannon",
    "normalised_wasserstein",
    "score_counts",
]

#: Verdicts of a feature or a dataset.
DRIFT = "drift"
NO_DRIFT = "no_drift"
INSUFFICIENT = "insufficient_data"


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature counts as drifted.

    Attributes:
        alpha: false discovery rate of the Benjamini-Hochberg procedure across features.
        psi: the smallest PSI that counts as an effect.
        jensen_shannon: the smallest Jensen-Shannon distance that counts.
        wasserstein: the smallest normalised Wasserstein distance that counts (numeric only).
        min_samples: fewest non-null-or-null rows of a feature in the window to judge it.
        drift_share: the importance-weighted share of drifted features that makes the window
            drifted.
    """

    alpha: float = 0.05
    psi: float = 0.1
    jensen_shannon: float = 0.1
    wasserstein: float = 0.1
    min_samples: int = 500
    drift_share: float = 0.1

    def __post_init__(self) -> None:
        for name in ("alpha", "drift_share"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise InvalidInputError(
                    f"{name} must be in (0, 1], got {value!r}", hint=f"try {name}=0.05"
                )
        if self.min_samples < 1:
            raise InvalidInputError(f"min_samples must be at least 1, got {self.min_samples}")


@dataclass(frozen=True)
class FeatureDrift:
    """The drift of one feature in one window.

    Attributes:
        feature: the feature name.
        kind: ``numeric`` or ``categorical``.
        verdict: ``drift``, ``no_drift`` or ``insufficient_data``.
        n_ref: reference rows (nulls included).
        n_cur: window rows (nulls included).
        psi: Population Stability Index.
        jensen_shannon: Jensen-Shannon distance (base 2).
        wasserstein: normalised Wasserstein distance (numeric), else None.
        p_value: the two-sample chi-square p-value.
        p_adjusted: the Benjamini-Hochberg adjusted p-value.
        effects: names of the effect sizes at or above their threshold.
        null_rate_ref: share of missing values in the reference.
        null_rate_cur: share of missing values in the window.
        importance: the weight of the feature in the dataset verdict.
    """

    feature: str
    kind: str
    verdict: str
    n_ref: int
    n_cur: int
    psi: float
    jensen_shannon: float
    wasserstein: float | None
    p_value: float
    p_adjusted: float
    effects: tuple[str, ...] = ()
    null_rate_ref: float = 0.0
    null_rate_cur: float = 0.0
    importance: float = 1.0

    @property
    def drifted(self) -> bool:
        """Whether the feature drifted."""
        return self.verdict == DRIFT

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "feature": self.feature,
            "kind": self.kind,
            "verdict": self.verdict,
            "n_ref": self.n_ref,
            "n_cur": self.n_cur,
            "psi": self.psi,
            "jensen_shannon": self.jensen_shannon,
            "wasserstein": self.wasserstein,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "effects": list(self.effects),
            "null_rate_ref": self.null_rate_ref,
            "null_rate_cur": self.null_rate_cur,
            "importance": self.importance,
        }


@dataclass(frozen=True)
class DatasetDrift:
    """The drift of every feature of one window, and the dataset verdict.

    Attributes:
        verdict: ``drift``, ``no_drift`` or ``insufficient_data``.
        drift_score: importance-weighted share of the judged features that drifted.
        features: one :class:`FeatureDrift` per profiled feature, in profile order.
        rows: rows of the window.
        thresholds: the thresholds used.
    """

    verdict: str
    drift_score: float
    features: list[FeatureDrift] = field(default_factory=list)
    rows: int = 0
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)

    @property
    def drifted(self) -> list[str]:
        """Names of the drifted features, most important first."""
        hits = [f for f in self.features if f.drifted]
        return [f.feature for f in sorted(hits, key=lambda f: -f.importance)]

    def __getitem__(self, feature: str) -> FeatureDrift:
        for f in self.features:
            if f.feature == feature:
                return f
        raise KeyError(feature)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "verdict": self.verdict,
            "drift_score": self.drift_score,
            "drifted": self.drifted,
            "rows": self.rows,
            "features": [f.to_dict() for f in self.features],
        }


def jensen_shannon(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (square root of the divergence, base 2) of two count vectors.

    0 for identical proportions, 1 for disjoint support; 0 when either vector is empty.
    """
    import numpy as np

    r = np.asarray(ref_counts, dtype=np.float64)
    c = np.asarray(cur_counts, dtype=np.float64)
    if r.sum() <= 0 or c.sum() <= 0:
        return 0.0
    p = r / r.sum()
    q = c / c.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(max((kl_p + kl_q) / 2, 0.0)))


def normalised_wasserstein(
    fp: FeatureProfile,
    cur_counts: npt.ArrayLike,
    *,
    low: float | None = None,
    high: float | None = None,
) -> float | None:
    """Wasserstein-1 distance between the reference and window of a numeric feature, from bins.

    Both CDFs are known exactly at the bin edges and taken as linear in between (the trapezoid
    rule on ``|F_cur - F_ref|``). Window rows outside the reference range sit in the two open
    outer bins; their width is taken from the window's own minimum/maximum (``low``/``high``),
    capped at the width of the reference range so one extreme value cannot dominate. The
    distance is divided by the reference standard deviation estimated from the bin midpoints.
    Nulls are left out (the null bucket has its own weight in PSI and Jensen-Shannon).

    Returns:
        The normalised distance, or None for categorical features or when either side has no
        non-null values or the reference has fewer than two edges.
    """
    import numpy as np

    if fp.kind != "numeric" or len(fp.edges) < 2:
        return None
    edges = np.asarray(fp.edges, dtype=np.float64)
    ref = np.asarray(fp.counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)[: ref.size]
    if ref.sum() <= 0 or cur.sum() <= 0:
        return None
    # CDF at each edge: bin i (0-based) ends at edges[i]
    f_ref = np.cumsum(ref)[:-1] / ref.sum()
    f_cur = np.cumsum(cur)[:-1] / cur.sum()
    gap = np.abs(f_cur - f_ref)
    widths = np.diff(edges)
    inner = float(np.sum(widths * (gap[:-1] + gap[1:]) / 2))
    span = float(edges[-1] - edges[0])
    left_w = min(max(edges[0] - (low if low is not None else edges[0]), 0.0), span)
    right_w = min(max((high if high is not None else edges[-1]) - edges[-1], 0.0), span)
    distance = inner + gap[0] * left_w / 2 + gap[-1] * right_w / 2
    mids = (edges[:-1] + edges[1:]) / 2
    inner_ref = ref[1:-1]
    if inner_ref.sum() <= 0:
        return None
    weights = inner_ref / inner_ref.sum()
    mean = float(np.sum(weights * mids))
    sd = math.sqrt(float(np.sum(weights * (mids - mean) ** 2)))
    scale = sd if sd > 0 else max(span, 1.0)
    return float(distance / scale)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (reject where adjusted < alpha), in input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = min(running, 1.0)
    return adjusted


def score_counts(
    profile: Profile,
    counts: Mapping[str, npt.NDArray[np.int64]],
    *,
    ranges: Mapping[str, tuple[float | None, float | None]] | None = None,
    importances: Mapping[str, float] | None = None,
    thresholds: DriftThresholds | None = None,
    rows: int | None = None,
) -> DatasetDrift:
    """Score a window's counts against a reference profile.

    Args:
        profile: the reference profile.
        counts: feature -> window count vector in the profile's layout (bins, then nulls).
            Features of the profile missing here are left out.
        ranges: feature -> (min, max) of the window's finite values (numeric features), for the
            outer bins of the Wasserstein distance.
        importances: feature -> weight in the dataset verdict (missing features weigh the
            smallest given weight; None: equal weights).
        thresholds: the decision thresholds.
        rows: rows of the window (for the dataset's minimum sample size); default the largest
            feature count.

    Returns:
        A :class:`DatasetDrift`.
    """
    th = thresholds or DriftThresholds()
    ranges = ranges or {}
    names = [n for n in profile.features if n in counts]
    weights = _weights(names, importances)
    n_rows = rows if rows is not None else max((int(counts[n].sum()) for n in names), default=0)
    raw: list[dict[str, Any]] = []
    for name in names:
        fp = profile.features[name]
        ref = fp.vector()
        cur = counts[name]
        n_cur = int(cur.sum())
        _, _, p = chi2_test(*pool_sparse(ref, cur))
        low, high = ranges.get(name, (None, None))
        raw.append(
            {
                "feature": name,
                "kind": fp.kind,
                "n_ref": int(ref.sum()),
                "n_cur": n_cur,
                "psi": psi(ref, cur) if n_cur else 0.0,
                "jensen_shannon": jensen_shannon(ref, cur),
                "wasserstein": normalised_wasserstein(fp, cur, low=low, high=high),
                "p_value": p,
                "null_rate_ref": fp.nulls / fp.n if fp.n else 0.0,
                "null_rate_cur": float(cur[-1]) / n_cur if n_cur else 0.0,
                "importance": weights[name],
            }
        )
    judged = [r for r in raw if r["n_cur"] >= th.min_samples]
    adjusted = dict(
        zip(
            (r["feature"] for r in judged),
            benjamini_hochberg([r["p_value"] for r in judged]),
            strict=True,
        )
    )
    features: list[FeatureDrift] = []
    for r in raw:
        effects = tuple(
            name
            for name, value, limit in (
                ("psi", r["psi"], th.psi),
                ("jensen_shannon", r["jensen_shannon"], th.jensen_shannon),
                ("wasserstein", r["wasserstein"], th.wasserstein),
            )
            if value is not None and value >= limit
        )
        p_adj = adjusted.get(r["feature"], 1.0)
        if r["feature"] not in adjusted:
            verdict = INSUFFICIENT
        elif p_adj < th.alpha and effects:
            verdict = DRIFT
        else:
            verdict = NO_DRIFT
        features.append(FeatureDrift(**r, p_adjusted=p_adj, effects=effects, verdict=verdict))
    judged_weight = sum(f.importance for f in features if f.verdict != INSUFFICIENT)
    drift_weight = sum(f.importance for f in features if f.drifted)
    score = drift_weight / judged_weight if judged_weight > 0 else 0.0
    if n_rows < th.min_samples or judged_weight <= 0:
        verdict = INSUFFICIENT
    else:
        verdict = DRIFT if score >= th.drift_share else NO_DRIFT
    return DatasetDrift(
        verdict=verdict, drift_score=score, features=features, rows=n_rows, thresholds=th
    )


def _weights(names: Sequence[str], importances: Mapping[str, float] | None) -> dict[str, float]:
    if not importances:
        return dict.fromkeys(names, 1.0)
    given = [abs(float(v)) for k, v in importances.items() if k in names]
    floor = min((v for v in given if v > 0), default=1.0)
    out = {}
    for name in names:
        value = importances.get(name)
        out[name] = abs(float(value)) if value is not None else floor
    return out
