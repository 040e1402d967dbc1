"""Live model quality from feedback joined by request id, and estimated quality without labels.

* **Measured** (labels arrived): classification accuracy with a Wilson interval, and for binary
  classifiers with probabilities ROC AUC (Hanley-McNeil standard error) and the Brier score;
  regression MAE and RMSE with normal-approximation intervals (RMSE through the interval of
  the mean squared error). Predictions still waiting for a label are counted.
* **Estimated** (no labels yet), confidence-based as NannyML's CBPE: with calibrated
  probabilities the chance that a prediction is right is the probability of the predicted
  class, so the expected accuracy is their mean; for binary classifiers the expected ROC curve
  follows from cumulated probabilities, and the expected Brier score is ``mean(p (1 - p))``.
  Valid only for calibrated scores: the result says so.

Intervals are 95 % (``z = 1.96``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "Estimate",
    "LiveQuality",
    "estimated_from_counts",
    "estimated_quality",
    "live_quality",
]

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A metric with its 95 % interval.

    Attributes:
        value: the point estimate.
        low: lower bound of the interval.
        high: upper bound of the interval.
        n: rows it rests on.
    """

    value: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


@dataclass(frozen=True)
class LiveQuality:
    """Quality of one window's predictions.

    Attributes:
        task: ``classification`` or ``regression``.
        labelled: predictions with a label.
        unlabelled: predictions still without one.
        metrics: metric name -> :class:`Estimate` (measured from labels).
        estimated: metric name -> :class:`Estimate` (from calibrated scores, no labels).
    """

    task: str
    labelled: int
    unlabelled: int
    metrics: dict[str, Estimate] = field(default_factory=dict)
    estimated: dict[str, Estimate] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "task": self.task,
            "labelled": self.labelled,
            "unlabelled": self.unlabelled,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "estimated": {k: v.to_dict() for k, v in self.estimated.items()},
            "estimated_assumes": "calibrated probabilities" if self.estimated else None,
        }


def wilson(successes: int, n: int) -> Estimate:
    """A proportion with its Wilson score interval."""
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return Estimate(p, max(centre - half, 0.0), min(centre + half, 1.0), n)


def _mean_ci(values: npt.NDArray[np.float64]) -> Estimate:
    import numpy as np

    n = int(values.size)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    sd = float(values.std(ddof=1)) if n > 1 else 0.0
    half = Z95 * sd / math.sqrt(n)
    return (
        Estimate(mean, mean - half, mean + half, n)
        if np.isfinite(mean)
        else Estimate(mean, mean, mean, n)
    )


def auc(scores: npt.NDArray[np.float64], positive: npt.NDArray[np.bool_]) -> Estimate:
    """ROC AUC (ties count half) with the Hanley-McNeil interval."""
    import numpy as np

    n_pos = int(positive.sum())
    n_neg = int(positive.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return Estimate(math.nan, math.nan, math.nan, int(positive.size))
    # average ranks of tied scores (1-based), as the Mann-Whitney U statistic needs
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    a = float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    q1 = a / (2 - a)
    q2 = 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    half = Z95 * math.sqrt(max(var, 0.0))
    return Estimate(a, max(a - half, 0.0), min(a + half, 1.0), int(positive.size))


def live_quality(table: Any, *, task: str = "auto") -> LiveQuality:
    """Measure quality on a joined window (requests left-joined with their latest feedback).

    Args:
        table: a ``pyarrow.Table`` with ``out__prediction``, ``label`` (null when none yet) and,
            for classifiers with probabilities, ``out__proba__<class>`` columns.
        task: ``classification``, ``regression`` or ``auto`` (classification when there are
            probability columns or the predictions are strings or booleans).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    proba_cols = [c for c in table.column_names if c.startswith("out__proba__")]
    pred_col = table.column("out__prediction") if "out__prediction" in table.column_names else None
    if task == "auto":
        numeric_pred = pred_col is not None and (
            pa.types.is_floating(pred_col.type) or pa.types.is_integer(pred_col.type)
        )
        task = "classification" if proba_cols or not numeric_pred else "regression"
    if "label" not in table.column_names or pred_col is None:
        return LiveQuality(task=task, labelled=0, unlabelled=table.num_rows)
    has_label = pc.is_valid(table.column("label"))
    labelled_table = table.filter(has_label)
    n = labelled_table.num_rows
    result = LiveQuality(task=task, labelled=n, unlabelled=table.num_rows - n)
    if task == "classification" and proba_cols:
        result.estimated.update(estimated_quality(table.filter(pc.invert(has_label))))
    if n == 0:
        return result
    labels = labelled_table.column("label").to_numpy(zero_copy_only=False)
    preds = labelled_table.column("out__prediction").to_numpy(zero_copy_only=False)
    if task == "regression":
        err = preds.astype(np.float64) - labels.astype(np.float64)
        result.metrics["mae"] = _mean_ci(np.abs(err))
        mse = _mean_ci(err * err)
        result.metrics["rmse"] = Estimate(
            math.sqrt(max(mse.value, 0.0)),
            math.sqrt(max(mse.low, 0.0)),
            math.sqrt(max(mse.high, 0.0)),
            n,
        )
        return result
    if preds.dtype.kind in "iufb" and labels.dtype.kind in "iufb":
        right = preds.astype(np.float64) == labels.astype(np.float64)
    else:  # string classes (labels of numeric classes arrive as float64 in the feedback log)
        right = np.asarray([_same(y, str(p)) for p, y in zip(preds, labels, strict=True)])
    result.metrics["accuracy"] = wilson(int(right.sum()), n)
    if len(proba_cols) == 2:
        classes = [c.removeprefix("out__proba__") for c in proba_cols]
        positive_class = sorted(classes)[-1]
        p = labelled_table.column("out__proba__" + positive_class).to_numpy(zero_copy_only=False)
        p = p.astype(np.float64)
        is_pos = np.asarray([_same(y, positive_class) for y in labels.tolist()])
        result.metrics["auc"] = auc(p, is_pos)
        result.metrics["brier"] = _mean_ci((p - is_pos.astype(np.float64)) ** 2)
    return result


def _same(label: Any, cls: str) -> bool:
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return str(label) == cls or (isinstance(label, bool) and str(int(label)) == cls)


def estimated_quality(table: Any) -> dict[str, Estimate]:
    """CBPE-style expected accuracy (and for binary classifiers AUC and Brier) from probabilities.

    Args:
        table: a ``pyarrow.Table`` with ``out__proba__<class>`` columns (unlabelled rows).
    """
    import numpy as np

    cols = sorted(c for c in table.column_names if c.startswith("out__proba__"))
    if not cols or table.num_rows == 0:
        return {}
    probs = np.column_stack(
        [table.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in cols]
    )
    probs = probs[np.isfinite(probs).all(axis=1)]
    n = int(probs.shape[0])
    if n == 0:
        return {}
    confidence = probs.max(axis=1)
    mean = float(confidence.mean())
    half = Z95 * math.sqrt(float(np.sum(confidence * (1 - confidence)))) / n
    out = {"accuracy": Estimate(mean, max(mean - half, 0.0), min(mean + half, 1.0), n)}
    if len(cols) == 2:
        p = probs[:, 1]
        order = np.argsort(-p, kind="stable")
        tp = np.concatenate([[0.0], np.cumsum(p[order])])
        fp = np.concatenate([[0.0], np.cumsum(1 - p[order])])
        if tp[-1] > 0 and fp[-1] > 0:
            tpr, fpr = tp / tp[-1], fp / fp[-1]
            a = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
            out["auc"] = Estimate(a, a, a, n)
        brier = p * (1 - p)
        out["brier"] = _mean_ci(brier)
    return out


def estimated_from_counts(scores: Mapping[str, Any]) -> dict[str, Estimate]:
    """CBPE-style estimated quality from a window's streamed probability sums.

    The same estimates as :func:`estimated_quality`, from the sums
    :class:`~modelyard.monitoring.WindowCounts` keeps (mergeable, no rows): expected accuracy
    and, for binary classifiers, Brier score and AUC (the expected ROC curve over 1,000
    probability bins, ties within a bin counted half).
    """
    import numpy as np

    n = float(scores["n"][0]) if "n" in scores else 0.0
    if n <= 0:
        return {}
    mean = float(scores["confidence"][0]) / n
    half = Z95 * math.sqrt(float(scores["confidence_var"][0])) / n
    count = int(n)
    out = {"accuracy": Estimate(mean, max(mean - half, 0.0), min(mean + half, 1.0), count)}
    if "p_sum" in scores:
        brier = float(scores["brier"][0]) / n
        out["brier"] = Estimate(brier, brier, brier, count)
        tp = np.asarray(scores["p_sum"], dtype=np.float64)[::-1]
        fp = np.asarray(scores["p_count"], dtype=np.float64)[::-1] - tp
        if tp.sum() > 0 and fp.sum() > 0:
            tpr = np.concatenate([[0.0], np.cumsum(tp)]) / tp.sum()
            fpr = np.concatenate([[0.0], np.cumsum(fp)]) / fp.sum()
            a = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
            out["auc"] = Estimate(a, a, a, count)
    return out
