"""Quality from feedback: a version's answers joined, by request id, with the labels that came.

:func:`feedback_stats` reads one version's request log since a time (``request_id``,
``instance``, ``out__prediction``) and the feedback of *every* version of the model (a label may
be posted to any version's ``/v1/feedback``; the request id says whose answer it judges), keeps
the latest label of each request, and scores each labelled instance (with no label in the
window, the requests are not even read):

- **classification**, when the predictions are classes (strings, booleans, integers, or floats
  that are all whole numbers while the labels are too) or vectors of class probabilities
  (their argmax is the class index): 1 when right, 0 when wrong, so the mean is the accuracy;
- **regression** otherwise: minus the absolute error, so the mean is minus the MAE.

Higher is better either way, as :class:`~modelyard.delivery.analysis.ArmStats` wants. A label
for a request of several instances is a list, one label per instance. The predicted classes of
the labelled answers are counted too, for the drift between the arms.
pyarrow is imported only when a log is read.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import orjson

from modelyard.delivery.analysis import ArmStats

__all__ = ["feedback_stats", "score_pairs"]

_PREDICTION = "out__prediction"


def feedback_stats(
    store: Any,
    model: str,
    version: str,
    since: dt.datetime,
    until: dt.datetime | None = None,
) -> ArmStats:
    """Quality and predicted-class counters of ``version``'s answers logged in the window.

    Args:
        store: the artifact store holding the request and feedback logs.
        model: the model's name.
        version: the version whose answers are judged.
        since: the window's start (requests and the feedback on them).
        until: the window's end for requests (default: now); feedback is read up to now.

    Returns:
        :class:`ArmStats` with only ``quality_*`` and ``predicted`` set (zeros when no label
        came, or the log has no predictions).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from modelyard.requestlog import RequestLog

    labels = _latest_labels(RequestLog(store, model).feedback(since))
    if not labels:  # no label yet: nothing to judge, and the requests need not be read
        return ArmStats()
    requests = RequestLog(store, model, version).requests(
        since, until, columns=["request_id", "instance", _PREDICTION]
    )
    if requests.num_rows == 0 or _PREDICTION not in requests.column_names:
        return ArmStats()
    ids = pa.array(list(labels), pa.string())
    requests = requests.filter(pc.is_in(requests.column("request_id"), value_set=ids))
    rids = requests.column("request_id").to_pylist()
    instances = requests.column("instance").to_pylist()
    predictions = requests.column(_PREDICTION).to_pylist()
    pairs: list[tuple[Any, Any]] = []
    for rid, inst, pred in zip(rids, instances, predictions, strict=True):
        if rid not in labels or pred is None:
            continue
        label = _label_of(labels[rid], inst or 0)
        if label is not None:
            pairs.append((pred, label))
    stats = score_pairs(pairs)
    return ArmStats(
        quality_n=stats.quality_n,
        quality_sum=stats.quality_sum,
        quality_sumsq=stats.quality_sumsq,
        predicted=_classes(predictions),
    )


def score_pairs(pairs: list[tuple[Any, Any]]) -> ArmStats:
    """Quality counters of ``(prediction, label)`` pairs (see the module docstring)."""
    if not pairs:
        return ArmStats()
    classify = _is_classification(pairs)
    n, total, sumsq = 0, 0.0, 0.0
    for pred, label in pairs:
        if classify:
            score = 1.0 if _same_class(_class_of(pred), label) else 0.0
        else:
            try:
                score = -abs(float(pred) - float(label))
            except (TypeError, ValueError):
                continue
            if not math.isfinite(score):
                continue
        n += 1
        total += score
        sumsq += score * score
    return ArmStats(quality_n=n, quality_sum=total, quality_sumsq=sumsq)


def _latest_labels(table: Any) -> dict[str, Any]:
    """Request id -> its latest label (feedback read in time order: later ones win)."""
    if table.num_rows == 0:
        return {}
    table = table.sort_by([("ts", "ascending")])
    out: dict[str, Any] = {}
    for rid, label in zip(
        table.column("request_id").to_pylist(), table.column("label").to_pylist(), strict=True
    ):
        if label is not None:
            out[rid] = label
    for rid, label in out.items():  # a list label (one per instance) is stored as JSON text
        if isinstance(label, str) and label.startswith("["):
            try:
                out[rid] = orjson.loads(label)
            except orjson.JSONDecodeError:
                pass
    return out


def _label_of(label: Any, instance: int) -> Any:
    """The label of one instance: a list label is indexed by it."""
    if isinstance(label, list):
        return label[instance] if 0 <= instance < len(label) else None
    return label


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _whole(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v) and float(v).is_integer()


def _is_classification(pairs: list[tuple[Any, Any]]) -> bool:
    preds = [p for p, _ in pairs]
    if any(isinstance(p, list | str | bool) for p in preds):
        return True
    if all(isinstance(p, int) for p in preds):
        return True
    labels = [y for _, y in pairs]
    return all(_whole(p) for p in preds) and all(_whole(y) or isinstance(y, str) for y in labels)


def _class_of(pred: Any) -> Any:
    """A probability vector's argmax (the class index), else the prediction itself."""
    if isinstance(pred, list):
        if len(pred) == 1:
            return pred[0]
        numbers = [v if _is_number(v) else -math.inf for v in pred]
        return max(range(len(numbers)), key=numbers.__getitem__) if numbers else None
    return pred


def _same_class(pred: Any, label: Any) -> bool:
    if pred is None:
        return False
    if _is_number(pred) and _is_number(label):
        return float(pred) == float(label)
    text = str(int(pred)) if _whole(pred) else str(pred).lower()
    lab = str(int(label)) if _whole(label) else str(label).lower()
    return text == lab


def _classes(predictions: list[Any]) -> dict[str, int]:
    """Counts of predicted classes (empty for regressors: no classes to compare)."""
    sample = [p for p in predictions if p is not None]
    if not sample or (isinstance(sample[0], float) and not all(_whole(p) for p in sample[:1000])):
        return {}
    counts: dict[str, int] = {}
    for p in sample:
        key = str(_class_of(p))
        counts[key] = counts.get(key, 0) + 1
    return counts
