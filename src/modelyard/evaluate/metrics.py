"""Model metrics for classification and regression, on a whole test set or on slices.

Every metric is known by name in :data:`METRICS`, which says what it reads (labels, scores or
values), whether higher is better, and how to compute it with scikit-learn. The same names are
used by gate thresholds, margins, slices and the paired bootstrap
(:mod:`modelyard.evaluate.stats`).

Predictions travel as :class:`Predictions`: hard labels (or regression values) plus, for
classifiers, the probability of the positive class (binary) or a probability matrix (multiclass).
:func:`predict` builds one from any model with ``predict_proba`` / ``predict``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "CLASSIFICATION_METRICS",
    "METRICS",
    "REGRESSION_METRICS",
    "MetricSpec",
    "Predictions",
    "Task",
    "compute_metrics",
    "metric_spec",
    "predict",
]

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Predictions:
    """What a model said about a test set.

    Attributes:
        y_pred: hard labels (classification) or predicted values (regression), shape ``(n,)``.
        y_score: classification only: probability of ``positive_label`` for a binary task, shape
            ``(n,)``, or a probability matrix ``(n, k)`` ordered like ``classes``; None when the
            model only gives labels.
        classes: class labels in the column order of a probability matrix, when known.
        raw: the model's own output, as returned, for the output-schema check.
    """

    y_pred: npt.NDArray[Any]
    y_score: npt.NDArray[Any] | None = None
    classes: tuple[Any, ...] | None = None
    raw: Any = None

    def __len__(self) -> int:
        return int(self.y_pred.shape[0])

    def take(self, mask_or_index: npt.NDArray[Any]) -> Predictions:
        """The predictions of a subset of the rows (boolean mask or integer index)."""
        score = None if self.y_score is None else self.y_score[mask_or_index]
        return Predictions(self.y_pred[mask_or_index], score, self.classes, None)


@dataclass(frozen=True)
class MetricSpec:
    """A named metric.

    Attributes:
        name: the name used in policies and reports.
        task: classification or regression.
        reads: ``"label"`` (hard labels), ``"score"`` (probabilities) or ``"value"`` (regression).
        higher_is_better: the direction of improvement.
        fn: ``fn(y_true, predictions, positive_label) -> float``; NaN when undefined on the data
            (for example ROC AUC on a slice holding one class).
    """

    name: str
    task: Task
    reads: Literal["label", "score", "value"]
    higher_is_better: bool
    fn: Callable[[Any, Predictions, Any], float]


def _np() -> Any:
    import numpy

    return numpy


def _binary(y_true: Any, preds: Predictions) -> bool:
    if preds.y_score is not None:
        return bool(preds.y_score.ndim == 1)
    return len(_np().unique(y_true)) <= 2


def _accuracy(y_true: Any, preds: Predictions, pos: Any) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, preds.y_pred))


def _prf(kind: str) -> Callable[[Any, Predictions, Any], float]:
    def fn(y_true: Any, preds: Predictions, pos: Any) -> float:
        from sklearn import metrics as skm

        func = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[
            kind
        ]
        if _binary(y_true, preds):
            return float(func(y_true, preds.y_pred, pos_label=pos, zero_division=0))
        return float(func(y_true, preds.y_pred, average="macro", zero_division=0))

    return fn


def _need_score(name: str, preds: Predictions) -> Any:
    if preds.y_score is None:
        raise InvalidInputError(
            f"metric {name!r} needs probabilities but the model gave only labels",
            hint="give the model a predict_proba method, or gate on accuracy/f1 instead",
            metric=name,
        )
    return preds.y_score


def _roc_auc(y_true: Any, preds: Predictions, pos: Any) -> float:
    from sklearn.metrics import roc_auc_score

    np = _np()
    score = _need_score("roc_auc", preds)
    y = np.asarray(y_true)
    if len(np.unique(y)) < 2:
        return math.nan
    if score.ndim == 1:
        return float(roc_auc_score(y == pos, score))
    return float(roc_auc_score(y, score, multi_class="ovr", labels=list(preds.classes or ())))


def _log_loss(y_true: Any, preds: Predictions, pos: Any) -> float:
    from sklearn.metrics import log_loss

    np = _np()
    score = _need_score("log_loss", preds)
    y = np.asarray(y_true)
    if score.ndim == 1:
        p = np.clip(score.astype(float), 1e-15, 1 - 1e-15)
        t = (y == pos).astype(float)
        return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))
    return float(log_loss(y, score, labels=list(preds.classes or ())))


def _brier(y_true: Any, preds: Predictions, pos: Any) -> float:
    np = _np()
    score = _need_score("brier", preds)
    if score.ndim != 1:
        raise InvalidInputError(
            "metric 'brier' is defined here for binary classifiers only",
            hint="use log_loss for a multiclass model",
            metric="brier",
        )
    t = (np.asarray(y_true) == pos).astype(float)
    return float(np.mean((score.astype(float) - t) ** 2))


def _rmse(y_true: Any, preds: Predictions, pos: Any) -> float:
    np = _np()
    err = np.asarray(y_true, dtype=float) - preds.y_pred.astype(float)
    return float(np.sqrt(np.mean(err**2)))


def _mae(y_true: Any, preds: Predictions, pos: Any) -> float:
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(y_true, preds.y_pred))


def _r2(y_true: Any, preds: Predictions, pos: Any) -> float:
    from sklearn.metrics import r2_score

    if len(preds) < 2:
        return math.nan
    return float(r2_score(y_true, preds.y_pred))


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("accuracy", "classification", "label", True, _accuracy),
        MetricSpec("precision", "classification", "label", True, _prf("precision")),
        MetricSpec("recall", "classification", "label", True, _prf("recall")),
        MetricSpec("f1", "classification", "label", True, _prf("f1")),
        MetricSpec("roc_auc", "classification", "score", True, _roc_auc),
        MetricSpec("log_loss", "classification", "score", False, _log_loss),
        MetricSpec("brier", "classification", "score", False, _brier),
        MetricSpec("rmse", "regression", "value", False, _rmse),
        MetricSpec("mae", "regression", "value", False, _mae),
        MetricSpec("r2", "regression", "value", True, _r2),
    )
}
"""Every metric modelyard knows, by name."""

CLASSIFICATION_METRICS = tuple(n for n, s in METRICS.items() if s.task == "classification")
REGRESSION_METRICS = tuple(n for n, s in METRICS.items() if s.task == "regression")


def metric_spec(name: str) -> MetricSpec:
    """The :class:`MetricSpec` called ``name``.

    Raises:
        InvalidInputError: unknown name; the message lists the known ones.
    """
    try:
        return METRICS[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown metric {name!r}",
            hint=f"use one of: {', '.join(sorted(METRICS))}",
            metric=name,
        ) from None


def compute_metrics(
    y_true: Any,
    preds: Predictions,
    *,
    task: Task = "classification",
    names: Iterable[str] | None = None,
    positive_label: Any = 1,
) -> dict[str, float]:
    """Compute metrics of ``preds`` against ``y_true``.

    Args:
        y_true: the true labels or values, shape ``(n,)``.
        preds: the model's predictions on the same rows.
        task: picks the default metrics when ``names`` is None.
        names: which metrics; default every metric of ``task`` that the predictions allow
            (probability metrics are left out for a model that gives labels only).
        positive_label: the positive class of a binary task.

    Returns:
        name -> value; NaN where a metric is undefined on these rows.

    Raises:
        InvalidInputError: unknown metric, lengths differ, or a metric needs probabilities the
            model did not give.
    """
    np = _np()
    y = np.asarray(y_true)
    if y.shape[0] != len(preds):
        raise InvalidInputError(
            f"{y.shape[0]} true values but {len(preds)} predictions",
            hint="predict on exactly the rows of the test set",
        )
    if names is None:
        wanted = [
            n
            for n, s in METRICS.items()
            if s.task == task
            and (s.reads != "score" or preds.y_score is not None)
            and not (n == "brier" and preds.y_score is not None and preds.y_score.ndim != 1)
        ]
    else:
        wanted = list(names)
    finite_scores = preds.y_score is None or bool(np.all(np.isfinite(preds.y_score)))
    finite_values = preds.y_pred.dtype.kind not in "fc" or bool(np.all(np.isfinite(preds.y_pred)))
    out: dict[str, float] = {}
    for name in wanted:
        spec = metric_spec(name)
        # a model that answers NaN has no defined metric; the output-schema rule says why
        undefined = len(y) == 0 or not (finite_scores if spec.reads == "score" else finite_values)
        out[name] = math.nan if undefined else spec.fn(y, preds, positive_label)
    return out


def predict(
    model: Any, frame: Any, *, task: Task = "classification", positive_label: Any = 1
) -> Predictions:
    """Run ``model`` on ``frame`` and package its answers as :class:`Predictions`.

    A classifier with ``predict_proba`` gives probabilities and labels (the most probable class);
    one with only ``predict`` gives labels, or, when its output is a 1-D array of fractional
    numbers, the positive-class probability (labels then threshold it at 0.5 onto
    ``positive_label`` / 0).

    Raises:
        InvalidInputError: the model has neither method, or gave a number of rows that differs
            from the frame's.
    """
    np = _np()
    n = len(frame)
    if task == "classification" and hasattr(model, "predict_proba"):
        raw = model.predict_proba(frame)
        proba = np.asarray(raw, dtype=float)
        if proba.ndim == 1:
            proba = np.column_stack([1 - proba, proba])
        classes = getattr(model, "classes_", None)
        if classes is None:
            classes = np.arange(proba.shape[1])
        classes = np.asarray(classes)
        _check_rows(model, proba, n)
        labels = classes[np.argmax(proba, axis=1)]
        if proba.shape[1] == 2:
            idx = [i for i, c in enumerate(classes.tolist()) if c == positive_label]
            col = idx[0] if idx else 1
            return Predictions(labels, proba[:, col], tuple(classes.tolist()), raw)
        return Predictions(labels, proba, tuple(classes.tolist()), raw)
    if not hasattr(model, "predict"):
        raise InvalidInputError(
            f"{type(model).__name__} has no predict() or predict_proba() method",
            hint="pass a fitted estimator or a loaded model package",
        )
    raw = model.predict(frame)
    out = np.asarray(raw)
    _check_rows(model, out, n)
    if task == "regression":
        return Predictions(out.astype(float).reshape(n), None, None, raw)
    if out.ndim == 2 and out.shape[1] >= 2 and out.dtype.kind == "f":
        classes = tuple(range(out.shape[1]))
        labels = np.argmax(out, axis=1)
        score = out[:, 1] if out.shape[1] == 2 else out
        return Predictions(labels, score, classes, raw)
    flat = out.reshape(n) if out.ndim == 2 and out.shape[1] == 1 else out
    if flat.dtype.kind == "f" and not np.all(np.mod(flat[np.isfinite(flat)], 1) == 0):
        # fractional numbers are scores, whatever their range: the output-schema rule is
        # where a score outside [0, 1] is judged
        labels = np.where(flat >= 0.5, positive_label, 0)
        return Predictions(labels, flat, (0, positive_label), raw)
    return Predictions(flat, None, None, raw)


def _check_rows(model: Any, out: npt.NDArray[Any] | np.ndarray[Any, Any], n: int) -> None:
    if out.ndim == 0 or out.shape[0] != n:
        raise InvalidInputError(
            f"{type(model).__name__} returned {0 if out.ndim == 0 else out.shape[0]} rows "
            f"for {n} inputs",
            hint="a model must return one prediction per input row",
        )


def metrics_table(rows: Mapping[str, Mapping[str, float]]) -> list[list[str]]:
    """Format ``{row: {metric: value}}`` as text cells (for reports)."""
    names = sorted({m for r in rows.values() for m in r})
    table = [["", *names]]
    for label, values in rows.items():
        table.append([label, *(_fmt(values.get(m)) for m in names)])
    return table


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}"
