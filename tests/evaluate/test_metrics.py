from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from modelyard.errors import InvalidInputError
from modelyard.evaluate.metrics import METRICS, Predictions, compute_metrics, predict
from modelyard.evaluate.stats import weighted_metric
from tests.evaluate._models import RawModel, TableModel


@pytest.fixture
def binary() -> tuple[np.ndarray, Predictions]:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    # rounded scores create ties, which the weighted AUC must count as one half
    score = np.round(np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1), 1)
    return y, Predictions((score >= 0.5).astype(int), score, (0, 1))


def test_classification_metrics_match_sklearn(binary: tuple[np.ndarray, Predictions]) -> None:
    y, p = binary
    got = compute_metrics(y, p)
    assert set(got) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier"}
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, p.y_pred))
    assert got["precision"] == pytest.approx(skm.precision_score(y, p.y_pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, p.y_pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, p.y_pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p.y_score))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(p.y_score, 1e-15, 1 - 1e-15)))
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, p.y_score))


@pytest.mark.parametrize("name", ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"])
def test_weighted_metric_equals_metric_on_repeated_rows(
    name: str, binary: tuple[np.ndarray, Predictions]
) -> None:
    y, p = binary
    rng = np.random.default_rng(2)
    W = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=4).astype(float)
    got = weighted_metric(name, W, y, p)
    for b in range(4):
        idx = np.repeat(np.arange(len(y)), W[b].astype(int))
        expected = METRICS[name].fn(y[idx], p.take(idx), 1)
        assert got[b] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", ["rmse", "mae", "r2"])
def test_regression_metrics_and_weighted_forms(name: str) -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=200)
    p = Predictions(y + rng.normal(0, 0.3, 200))
    got = compute_metrics(y, p, task="regression")
    expected = {
        "rmse": math.sqrt(skm.mean_squared_error(y, p.y_pred)),
        "mae": skm.mean_absolute_error(y, p.y_pred),
        "r2": skm.r2_score(y, p.y_pred),
    }[name]
    assert got[name] == pytest.approx(expected)
    W = np.ones((1, 200)) * 2
    assert weighted_metric(name, W, y, p)[0] == pytest.approx(expected)


def test_probability_metrics_need_scores() -> None:
    y = np.array([0, 1, 1, 0])
    labels_only = Predictions(np.array([0, 1, 0, 0]))
    assert "roc_auc" not in compute_metrics(y, labels_only)
    with pytest.raises(InvalidInputError, match="'roc_auc' needs probabilities"):
        compute_metrics(y, labels_only, names=["roc_auc"])


def test_unknown_metric_and_length_mismatch_are_named() -> None:
    y = np.array([0, 1])
    p = Predictions(np.array([0, 1]))
    with pytest.raises(InvalidInputError, match="unknown metric 'auc'") as info:
        compute_metrics(y, p, names=["auc"])
    assert "roc_auc" in (info.value.hint or "")
    with pytest.raises(InvalidInputError, match="3 true values but 2 predictions"):
        compute_metrics(np.array([0, 1, 1]), p)


def test_auc_on_one_class_is_nan() -> None:
    p = Predictions(np.array([1, 1]), np.array([0.7, 0.9]), (0, 1))
    assert math.isnan(compute_metrics(np.array([1, 1]), p, names=["roc_auc"])["roc_auc"])


def test_predict_reads_predict_proba_and_classes() -> None:
    frame = pd.DataFrame({"row": [0, 1, 2]})
    p = predict(TableModel([0.2, 0.9, 0.6]), frame)
    assert p.y_pred.tolist() == [0, 1, 1]
    assert p.y_score is not None
    assert p.y_score.tolist() == pytest.approx([0.2, 0.9, 0.6])
    assert p.raw.shape == (3, 2)


def test_predict_with_float_vector_output_is_probability() -> None:
    frame = pd.DataFrame({"row": [0, 1]})
    p = predict(RawModel([0.1, 0.8]), frame)
    assert p.y_pred.tolist() == [0, 1]
    assert p.y_score is not None


def test_predict_rejects_wrong_row_count() -> None:
    class Short:
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return np.zeros(len(frame) - 1)

    with pytest.raises(InvalidInputError, match="returned 2 rows for 3 inputs"):
        predict(Short(), pd.DataFrame({"x": [1, 2, 3]}))
