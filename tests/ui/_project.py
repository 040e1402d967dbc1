"""A small training pipeline the UI tests run for real (its runs fill the store)."""

from __future__ import annotations

from typing import Any

import modelyard
from modelyard.pipelines import log_metric


@modelyard.step
def prepare(n: int) -> list[list[float]]:
    return [[i / n, (i % 7) / 7.0, float(i % 2)] for i in range(n)]


@modelyard.step
def train(rows: list[list[float]], lr: float) -> dict[str, float]:
    weight = sum(r[0] * r[2] for r in rows) * lr
    log_metric("loss", 1.0 / (1.0 + weight))
    return {"weight": weight}


@modelyard.step
def evaluate(model: dict[str, float], rows: list[list[float]]) -> float:
    accuracy = min(0.99, 0.5 + model["weight"] / (10.0 * len(rows)))
    log_metric("accuracy", accuracy)
    return accuracy


@modelyard.pipeline
def training(n: int = 40, lr: float = 0.1) -> Any:
    rows = prepare(n=n)
    return evaluate(train(rows, lr=lr), rows)
