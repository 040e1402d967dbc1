from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelyard.evaluate.gate import Gate
from modelyard.evaluate.policy import GatePolicy
from modelyard.evaluate.verdict import GateVerdict
from tests.evaluate._models import FakeClock, RawModel, TableModel, frame_and_scores


def _rule(verdict: GateVerdict, rule: str) -> list[tuple[str, str, str]]:
    return [(r.name, r.status, r.message) for r in verdict.rules if r.rule == rule]


def test_thresholds_pass_and_fail() -> None:
    frame, score = frame_and_scores()
    policy = GatePolicy(thresholds={"roc_auc": (">=", 0.7), "accuracy": (">=", 0.99)})
    v = Gate(policy).evaluate(TableModel(score), frame, target="label")
    rules = _rule(v, "threshold")
    assert rules[0][:2] == ("roc_auc >= 0.7", "pass")
    assert rules[1][:2] == ("accuracy >= 0.99", "fail")
    assert "misses >= 0.99" in rules[1][2]
    assert not v.passed
    assert [r.name for r in v.failures] == ["accuracy >= 0.99"]
    assert v.metrics["roc_auc"] > 0.7


def test_margin_is_skipped_without_production() -> None:
    frame, score = frame_and_scores()
    policy = GatePolicy(margin={"metric": "roc_auc"})
    v = Gate(policy).evaluate(TableModel(score), frame, target="label")
    assert _rule(v, "margin")[0][1] == "skip"
    assert v.passed
    assert v.production_version is None


def test_margin_bootstrap_large_improvement_passes_tiny_one_fails() -> None:
    frame, score = frame_and_scores(n=1500)
    y = frame["label"].to_numpy()
    rng = np.random.default_rng(3)
    weak = 1 / (1 + np.exp(-(0.3 * (2 * y - 1) + rng.normal(0, 1.5, len(y)))))
    policy = GatePolicy(margin={"metric": "roc_auc", "n_resamples": 500, "seed": 1})
    strong = Gate(policy).evaluate(
        TableModel(score), frame, target="label", production=TableModel(weak), production_version=1
    )
    (_name, status, message) = _rule(strong, "margin")[0]
    assert status == "pass"
    assert "vs v1" in message
    assert "90% CI" in message
    evidence = strong.rules[0].evidence
    assert evidence["test"] == "bootstrap"
    assert evidence["p_value"] < 0.05
    assert strong.production_metrics is not None
    assert strong.production_version == 1

    tiny = np.clip(score + rng.normal(0, 0.01, len(y)), 0, 1)
    v = Gate(policy).evaluate(
        TableModel(tiny), frame, target="label", production=TableModel(score), production_version=1
    )
    (_name, status, message) = _rule(v, "margin")[0]
    assert status == "fail"
    assert "not significantly above +0" in message
    assert not v.passed


def test_margin_mcnemar_on_accuracy() -> None:
    frame, _ = frame_and_scores(n=400)
    y = frame["label"].to_numpy()
    base = np.where(y == 1, 0.9, 0.1)
    base[:40] = 1 - base[:40]  # production wrong on the first 40 rows
    cand = np.where(y == 1, 0.8, 0.2)  # candidate right everywhere
    policy = GatePolicy(margin={"metric": "accuracy", "test": "mcnemar"})
    v = Gate(policy).evaluate(
        TableModel(cand), frame, target="label", production=TableModel(base), production_version=2
    )
    rule = v.rules[0]
    assert rule.status == "pass"
    assert rule.evidence["candidate_only"] == 40
    assert rule.evidence["baseline_only"] == 0
    assert "discordant pairs 40 vs 0" in rule.message
    # swap: the production model is the better one -> fail
    v2 = Gate(policy).evaluate(
        TableModel(base), frame, target="label", production=TableModel(cand), production_version=2
    )
    assert v2.rules[0].status == "fail"


def test_slice_regression_is_detected() -> None:
    frame, score = frame_and_scores(n=3000)
    y = frame["label"].to_numpy()
    north = (frame["region"] == "north").to_numpy()
    degraded = score.copy()
    rng = np.random.default_rng(0)
    degraded[north] = rng.random(int(north.sum()))  # candidate is random on the north
    policy = GatePolicy(
        slices={"north": ("region", "==", "north"), "south": ("region", "==", "south")},
        slice_tolerance=0.02,
        slice_metric="roc_auc",
    )
    v = Gate(policy).evaluate(
        TableModel(degraded), frame, target="label", production=TableModel(score)
    )
    rules = {name: (status, msg) for name, status, msg in _rule(v, "slice")}
    assert rules["slice north"][0] == "fail"
    assert "worse by" in rules["slice north"][1]
    assert "> tolerance 0.02" in rules["slice north"][1]
    assert rules["slice south"][0] == "pass"
    assert not v.passed
    rows = {s["name"]: s for s in v.slices}
    assert rows["north"]["rows"] == int(north.sum())
    assert rows["north"]["candidate"] < rows["north"]["production"]
    assert y.shape[0] == v.n_rows


def test_small_slices_are_reported_not_judged() -> None:
    frame, score = frame_and_scores(n=500)
    policy = GatePolicy(slices={"tiny": ("age", "between", (18, 19))}, min_slice_rows=50)
    v = Gate(policy).evaluate(
        TableModel(score), frame, target="label", production=TableModel(score)
    )
    assert _rule(v, "slice")[0][1] == "skip"
    assert "fewer than min_slice_rows=50" in _rule(v, "slice")[0][2]


def test_output_schema_checks_range_shape_and_dtype() -> None:
    frame, score = frame_and_scores(n=100)
    ok = Gate(GatePolicy(output_schema={"kind": "probability", "n_columns": 2})).evaluate(
        TableModel(score), frame, target="label"
    )
    assert ok.rules[0].status == "pass"
    bad_range = RawModel(score * 3 - 1)  # values outside [0, 1]
    v = Gate(GatePolicy(output_schema={"kind": "probability"})).evaluate(
        bad_range, frame, target="label"
    )
    assert v.rules[0].status == "fail"
    assert "probabilities outside [0, 1]" in v.rules[0].message
    v = Gate(GatePolicy(output_schema={"kind": "probability", "n_columns": 2})).evaluate(
        RawModel(score), frame, target="label"
    )
    assert "1 output columns, expected 2" in v.rules[0].message
    labels = RawModel(np.where(score > 0.5, 1, 0))
    v = Gate(GatePolicy(output_schema={"kind": "label", "dtype": "float"})).evaluate(
        labels, frame, target="label"
    )
    assert "dtype int64, expected float" in v.rules[0].message
    nan = score.copy()
    nan[3] = np.nan
    v = Gate(GatePolicy(output_schema={"kind": "value"})).evaluate(
        RawModel(nan), frame, target="label"
    )
    assert "1 NaN/inf values" in v.rules[0].message


def test_latency_budget_uses_the_median_of_timed_calls() -> None:
    frame, score = frame_and_scores(n=200)
    clock = FakeClock()
    slow = TableModel(score, clock=clock, cost_ms=40.0)
    policy = GatePolicy(latency_budget_ms=25, batch_size=32, latency_calls=5)
    v = Gate(policy, clock=clock).evaluate(slow, frame, target="label")
    rule = _rule(v, "latency")[0]
    assert rule[1] == "fail"
    assert "median 40.00 ms over 5 calls over budget 25 ms" in rule[2]
    assert v.rules[-1].evidence["batch_rows"] == 32
    fast = TableModel(score, clock=clock, cost_ms=5.0)
    assert Gate(policy, clock=clock).evaluate(fast, frame, target="label").passed


def test_throughput_floor_on_the_timed_batches() -> None:
    frame, score = frame_and_scores(n=200)
    clock = FakeClock()
    policy = GatePolicy(min_throughput_rows_s=1000, batch_size=50, latency_calls=3)
    # 50 rows in 100 ms = 500 rows/s: below the floor
    slow = Gate(policy, clock=clock).evaluate(
        TableModel(score, clock=clock, cost_ms=100.0), frame, target="label"
    )
    (rule,) = [r for r in slow.rules if r.rule == "throughput"]
    assert rule.status == "fail"
    assert rule.message == "500 rows/s at batch 50 (median of 3 calls) below 1,000 rows/s"
    assert not [r for r in slow.rules if r.rule == "latency"]
    fast = Gate(policy, clock=clock).evaluate(
        TableModel(score, clock=clock, cost_ms=10.0), frame, target="label"
    )
    assert fast.passed
    assert fast.rules[-1].evidence["rows_per_s"] == pytest.approx(5000)


def test_verdict_round_trips_through_json() -> None:
    frame, score = frame_and_scores(n=500)
    policy = GatePolicy(
        thresholds={"roc_auc": (">=", 0.6)},
        margin={"metric": "roc_auc", "n_resamples": 100},
        slices={"north": ("region", "==", "north")},
    )
    v = Gate(policy).evaluate(
        TableModel(score), frame, target="label", production=TableModel(score), model_name="m"
    )
    data = json.loads(v.to_json())
    assert data["model"] == "m"
    assert data["failures"] == ["margin roc_auc over production"]
    assert data["policy"]["thresholds"] == {"roc_auc": [">=", 0.6]}
    back = GateVerdict.from_dict(data)
    assert back.passed is False
    assert back.rules[0].name == v.rules[0].name
    text = v.render_text()
    assert text.startswith("gate FAILED: ")
    assert "[FAIL] margin roc_auc over production" in text


def test_missing_target_is_named() -> None:
    frame, score = frame_and_scores(n=50)
    from modelyard.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="target column 'default' is not in the test"):
        Gate(GatePolicy()).evaluate(TableModel(score), frame, target="default")


def test_gate_reads_polars_frames() -> None:
    import polars as pl

    frame, score = frame_and_scores(n=400)
    policy = GatePolicy(
        thresholds={"roc_auc": (">=", 0.6)},
        slices={"north": ("region", "==", "north")},
        latency_budget_ms=1000,
        batch_size=16,
    )
    clock = FakeClock()
    v = Gate(policy, clock=clock).evaluate(
        TableModel(score, clock=clock, cost_ms=1.0),
        pl.from_pandas(frame),
        target="label",
        production=TableModel(score),
    )
    assert v.passed
    assert v.rules[-1].evidence["batch_rows"] == 16
    assert v.slices[0]["rows"] == int((frame["region"] == "north").sum())


def test_verdict_prints_a_table_on_a_terminal_and_text_elsewhere() -> None:
    from rich.console import Console

    frame, score = frame_and_scores(n=300)
    v = Gate(GatePolicy(thresholds={"roc_auc": (">=", 0.99)})).evaluate(
        TableModel(score), frame, target="label"
    )
    tty = Console(record=True, force_terminal=True, width=200)
    v.print(tty)
    table = tty.export_text()
    assert "roc_auc >= 0.99" in table
    assert "fail" in table
    plain = Console(record=True, force_terminal=False, width=200)
    v.print(plain)
    assert plain.export_text().startswith("gate FAILED: roc_auc = ")


class _Regressor:
    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def predict(self, frame: Any) -> np.ndarray:
        return self.values[frame["row"].to_numpy()]


def test_regression_gate_treats_lower_error_as_better() -> None:
    rng = np.random.default_rng(0)
    n = 1000
    y = rng.normal(size=n)
    frame = pd.DataFrame({"row": np.arange(n), "target": y})
    good = _Regressor(y + rng.normal(0, 0.3, n))
    bad = _Regressor(y + rng.normal(0, 0.9, n))
    policy = GatePolicy(
        task="regression",
        thresholds={"rmse": ("<=", 0.5), "r2": (">=", 0.5)},
        margin={"metric": "mae", "n_resamples": 300},
    )
    better = Gate(policy).evaluate(good, frame, target="target", production=bad)
    assert better.passed
    assert better.metrics["rmse"] < 0.5
    margin = next(r for r in better.rules if r.rule == "margin")
    assert margin.evidence["improvement"] > 0
    worse = Gate(policy).evaluate(bad, frame, target="target", production=good)
    assert {r.name for r in worse.failures} == {
        "rmse <= 0.5",
        "r2 >= 0.5",
        "margin mae over production",
    }
