"""Is a candidate really better than production? Paired bootstrap and McNemar's test.

Both tests are *paired*: the candidate and the production model are scored on the same rows, so
row-to-row difficulty cancels out and a small real improvement can be told apart from noise.

:func:`paired_bootstrap` resamples rows with replacement. A resample is a vector of multinomial
row counts ``w``, so every metric becomes a weighted metric; the whole set of resamples is one
``(B, n)`` weight matrix, and each metric is a few matrix products over it (ROC AUC included:
rows are sorted by score once, and each resample's weighted Mann-Whitney statistic is a
cumulative sum over score groups). Resamples are processed in chunks to bound memory.

:func:`mcnemar` compares accuracies through the discordant pairs only (rows one model gets right
and the other wrong), with an exact one-sided binomial p-value and the chi-square statistic with
continuity correction beside it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError
from modelyard.evaluate.metrics import Predictions, metric_spec

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "BootstrapResult",
    "McNemarResult",
    "mcnemar",
    "paired_bootstrap",
    "weighted_metric",
]

# weight-matrix cells per chunk: 4M float64 = 32 MiB
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class BootstrapResult:
    """The paired bootstrap of ``improvement = candidate - production`` (sign-flipped for metrics
    where lower is better, so a positive improvement is always better).

    Attributes:
        metric: metric name.
        candidate: the candidate's metric on the full test set.
        baseline: the production model's metric on the full test set.
        improvement: observed improvement on the full test set.
        ci_low: lower end of the two-sided ``1 - 2 * alpha`` percentile interval of the
            improvement, i.e. the one-sided ``1 - alpha`` lower confidence bound.
        ci_high: upper end of that interval.
        p_value: one-sided bootstrap p-value of "improvement <= min_delta":
            ``(1 + #{resamples with improvement <= min_delta}) / (1 + n_resamples)``.
        min_delta: the smallest improvement that counts.
        alpha: the significance level.
        n_resamples: number of resamples.
        n_rows: rows in the test set.
        seed: the seed used, so the numbers can be reproduced.
        significant: ``p_value <= alpha`` (equivalently ``ci_low > min_delta``, up to ties).
    """

    metric: str
    candidate: float
    baseline: float
    improvement: float
    ci_low: float
    ci_high: float
    p_value: float
    min_delta: float
    alpha: float
    n_resamples: int
    n_rows: int
    seed: int | None
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (NaN becomes None)."""
        return {k: _json_float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired correctness (accuracy).

    Attributes:
        candidate_only: rows only the candidate gets right (``b``).
        baseline_only: rows only the production model gets right (``c``).
        candidate_accuracy: the candidate's accuracy.
        baseline_accuracy: the production model's accuracy.
        improvement: accuracy difference, ``(b - c) / n``.
        statistic: chi-square with continuity correction, ``(|b - c| - 1)^2 / (b + c)``.
        p_value: exact one-sided binomial p-value of ``P(X >= b)`` for ``X ~ Bin(b + c, 1/2)``.
        p_value_chi2: the two-sided chi-square p-value, for reference.
        min_delta: the smallest improvement that counts.
        alpha: the significance level.
        significant: ``p_value <= alpha`` and ``improvement > min_delta``.
    """

    candidate_only: int
    baseline_only: int
    candidate_accuracy: float
    baseline_accuracy: float
    improvement: float
    statistic: float
    p_value: float
    p_value_chi2: float
    min_delta: float
    alpha: float
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (NaN becomes None)."""
        return {k: _json_float(v) for k, v in asdict(self).items()}


def _json_float(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _np() -> Any:
    import numpy

    return numpy


def weighted_metric(
    name: str,
    weights: npt.NDArray[Any],
    y_true: npt.NDArray[Any],
    preds: Predictions,
    positive_label: Any = 1,
) -> Any:
    """Evaluate metric ``name`` under each row of a weight matrix.

    Args:
        name: a metric of :data:`~modelyard.evaluate.metrics.METRICS`.
        weights: ``(B, n)`` non-negative row weights (bootstrap counts).
        y_true: ``(n,)`` true labels or values.
        preds: predictions on the same ``n`` rows.
        positive_label: positive class of a binary task.

    Returns:
        ``(B,)`` metric values; NaN where undefined (no positives in a resample, ...).
    """
    np = _np()
    spec = metric_spec(name)
    W = np.asarray(weights, dtype=float)
    total = W.sum(axis=1)
    y = np.asarray(y_true)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "accuracy":
            return np.asarray(W @ (preds.y_pred == y).astype(float) / total)
        if name in ("precision", "recall", "f1"):
            if preds.y_score is not None and preds.y_score.ndim == 2:
                return _loop_metric(spec.name, W, y, preds, positive_label)
            t = (y == positive_label).astype(float)
            p = (preds.y_pred == positive_label).astype(float)
            tp = W @ (t * p)
            fp = W @ ((1 - t) * p)
            fn = W @ (t * (1 - p))
            if name == "precision":
                num, den = tp, tp + fp
            elif name == "recall":
                num, den = tp, tp + fn
            else:
                num, den = 2 * tp, 2 * tp + fp + fn
            return np.asarray(np.where(den > 0, num / np.where(den > 0, den, 1), 0.0))
        if name in ("log_loss", "brier", "roc_auc"):
            score = preds.y_score
            if score is None or score.ndim != 1:
                return _loop_metric(spec.name, W, y, preds, positive_label)
            t = (y == positive_label).astype(float)
            if name == "roc_auc":
                return _weighted_auc(W, t, score.astype(float))
            s = score.astype(float)
            if name == "brier":
                loss = (s - t) ** 2
            else:
                s = np.clip(s, 1e-15, 1 - 1e-15)
                loss = -(t * np.log(s) + (1 - t) * np.log(1 - s))
            return np.asarray(W @ loss / total)
        v = y.astype(float)
        e = v - preds.y_pred.astype(float)
        if name == "rmse":
            return np.asarray(np.sqrt(W @ (e**2) / total))
        if name == "mae":
            return np.asarray(W @ np.abs(e) / total)
        # r2 = 1 - SSE / SST with weighted sums
        sse = W @ (e**2)
        sy = W @ v
        sst = W @ (v**2) - sy**2 / total
        return np.asarray(np.where(sst > 0, 1 - sse / np.where(sst > 0, sst, 1), np.nan))


def _weighted_auc(W: Any, t: Any, score: Any) -> Any:
    """Weighted ROC AUC (Mann-Whitney, ties count one half) for each weight row."""
    np = _np()
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    pos = t[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    Ws = W[:, order]
    wp = np.add.reduceat(Ws * pos, starts, axis=1)  # (B, groups) positive weight per score
    wn = np.add.reduceat(Ws * (1 - pos), starts, axis=1)
    neg_below = np.cumsum(wn, axis=1) - wn
    u = (wp * (neg_below + 0.5 * wn)).sum(axis=1)
    denom = wp.sum(axis=1) * wn.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, u / np.where(denom > 0, denom, 1), np.nan)


def _loop_metric(name: str, W: Any, y: Any, preds: Predictions, pos: Any) -> Any:
    """Fallback for metrics without a closed weighted form: expand each resample's rows."""
    np = _np()
    spec = metric_spec(name)
    out = np.empty(W.shape[0])
    idx_all = np.arange(W.shape[1])
    for b in range(W.shape[0]):
        idx = np.repeat(idx_all, W[b].astype(int))
        out[b] = spec.fn(y[idx], preds.take(idx), pos)
    return out


def paired_bootstrap(
    metric: str,
    y_true: Any,
    candidate: Predictions,
    baseline: Predictions,
    *,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    min_delta: float = 0.0,
    seed: int | None = 0,
    positive_label: Any = 1,
) -> BootstrapResult:
    """Paired bootstrap of the improvement of ``candidate`` over ``baseline`` on ``metric``.

    Args:
        metric: metric name (see :data:`~modelyard.evaluate.metrics.METRICS`).
        y_true: true labels or values of the shared test set.
        candidate: the candidate's predictions on those rows.
        baseline: the production model's predictions on the same rows.
        n_resamples: number of bootstrap resamples (1,000-2,000 is typical).
        alpha: significance level of the one-sided test.
        min_delta: the improvement the candidate must beat (in metric units, positive = better).
        seed: seed of the resampling; None draws fresh entropy.
        positive_label: positive class of a binary task.

    Returns:
        A :class:`BootstrapResult`.

    Raises:
        InvalidInputError: lengths differ, fewer than 2 rows, or bad ``n_resamples``/``alpha``.
    """
    np = _np()
    y = np.asarray(y_true)
    n = y.shape[0]
    if len(candidate) != n or len(baseline) != n:
        raise InvalidInputError(
            f"paired bootstrap needs predictions on the same rows: {n} labels, "
            f"{len(candidate)} candidate and {len(baseline)} baseline predictions",
            hint="predict both models on the same test frame",
        )
    if n < 2:
        raise InvalidInputError(f"paired bootstrap needs at least 2 rows, got {n}")
    if n_resamples < 10:
        raise InvalidInputError(f"n_resamples must be at least 10, got {n_resamples}")
    if not 0 < alpha < 0.5:
        raise InvalidInputError(f"alpha must be in (0, 0.5), got {alpha}")
    spec = metric_spec(metric)
    sign = 1.0 if spec.higher_is_better else -1.0
    cand_full = spec.fn(y, candidate, positive_label)
    base_full = spec.fn(y, baseline, positive_label)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // n))
    deltas = []
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        # row counts of b resamples: bincount of the drawn indices, offset per resample
        # (the same distribution as a multinomial draw, and far cheaper than numpy's one)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        W = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(float)
        mc = weighted_metric(metric, W, y, candidate, positive_label)
        mb = weighted_metric(metric, W, y, baseline, positive_label)
        deltas.append(sign * (mc - mb))
        done += b
    d = np.concatenate(deltas)
    d = d[np.isfinite(d)]
    if d.size == 0:
        lo = hi = p = math.nan
        significant = False
    else:
        lo = float(np.quantile(d, alpha))
        hi = float(np.quantile(d, 1 - alpha))
        p = float((1 + np.count_nonzero(d <= min_delta)) / (1 + d.size))
        significant = p <= alpha
    return BootstrapResult(
        metric=metric,
        candidate=float(cand_full),
        baseline=float(base_full),
        improvement=float(sign * (cand_full - base_full)),
        ci_low=lo,
        ci_high=hi,
        p_value=p,
        min_delta=float(min_delta),
        alpha=float(alpha),
        n_resamples=int(n_resamples),
        n_rows=int(n),
        seed=seed,
        significant=bool(significant),
    )


def _binom_sf_half(k: int, n: int) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, 1/2)``, exact, computed in log space."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    np = _np()
    i = np.arange(k, n + 1)
    logs = (
        math.lgamma(n + 1)
        - np.array([math.lgamma(j + 1) + math.lgamma(n - j + 1) for j in i])
        - n * math.log(2)
    )
    top = float(logs.max())
    return float(min(1.0, math.exp(top) * float(np.exp(logs - top).sum())))


def mcnemar(
    y_true: Any,
    candidate_pred: Any,
    baseline_pred: Any,
    *,
    alpha: float = 0.05,
    min_delta: float = 0.0,
) -> McNemarResult:
    """McNemar's test that the candidate is more accurate than the baseline on paired rows.

    Args:
        y_true: true labels.
        candidate_pred: the candidate's hard labels.
        baseline_pred: the production model's hard labels on the same rows.
        alpha: significance level of the one-sided test.
        min_delta: the accuracy improvement the candidate must exceed.

    Returns:
        A :class:`McNemarResult`; only the discordant pairs ``b`` and ``c`` matter.

    Raises:
        InvalidInputError: lengths differ or the test set is empty.
    """
    np = _np()
    y = np.asarray(y_true)
    a = np.asarray(candidate_pred)
    z = np.asarray(baseline_pred)
    if not (y.shape[0] == a.shape[0] == z.shape[0]) or y.shape[0] == 0:
        raise InvalidInputError(
            f"McNemar needs non-empty paired labels: {y.shape[0]} true, {a.shape[0]} candidate, "
            f"{z.shape[0]} baseline",
            hint="predict both models on the same test frame",
        )
    ca = a == y
    cz = z == y
    b = int(np.count_nonzero(ca & ~cz))
    c = int(np.count_nonzero(~ca & cz))
    n = y.shape[0]
    discordant = b + c
    if discordant:
        stat = (abs(b - c) - 1) ** 2 / discordant if abs(b - c) >= 1 else 0.0
        p_chi2 = math.erfc(math.sqrt(stat / 2))
    else:
        stat, p_chi2 = 0.0, 1.0
    p = _binom_sf_half(b, discordant) if discordant else 1.0
    improvement = (b - c) / n
    return McNemarResult(
        candidate_only=b,
        baseline_only=c,
        candidate_accuracy=float(ca.mean()),
        baseline_accuracy=float(cz.mean()),
        improvement=float(improvement),
        statistic=float(stat),
        p_value=float(p),
        p_value_chi2=float(p_chi2),
        min_delta=float(min_delta),
        alpha=float(alpha),
        significant=bool(p <= alpha and improvement > min_delta),
    )
