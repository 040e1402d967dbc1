"""Small real models for gate tests: each answers from a fixed table of per-row outputs.

The test frame carries a ``row`` column; a model looks up its answer for each row, so a test
can construct exactly the predictions a rule should pass or fail on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class TableModel:
    """A binary classifier whose P(y=1) for row ``i`` is ``scores[i]``."""

    classes_ = np.array([0, 1])

    def __init__(self, scores: Any, clock: Any = None, cost_ms: float = 0.0) -> None:
        self.scores = np.asarray(scores, dtype=float)
        self.clock = clock
        self.cost_ms = cost_ms

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        if self.clock is not None:
            self.clock.advance(self.cost_ms / 1000.0)
        p = self.scores[frame["row"].to_numpy()]
        return np.column_stack([1 - p, p])

    def predict(self, frame: pd.DataFrame) -> Any:
        return (self.predict_proba(frame)[:, 1] >= 0.5).astype(int)


class RawModel:
    """A model with only ``predict`` returning ``out[rows]`` as given (any shape/dtype)."""

    def __init__(self, out: Any) -> None:
        self.out = np.asarray(out)

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.out[frame["row"].to_numpy()]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def frame_and_scores(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A test frame (row, region, age, label) and a moderately good score per row."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    region = rng.choice(["north", "south", "east"], n)
    age = rng.integers(18, 80, n)
    score = 1 / (1 + np.exp(-(1.2 * (y - 0.5) * 2 + rng.normal(0, 1.5, n))))
    frame = pd.DataFrame({"row": np.arange(n), "region": region, "age": age, "label": y})
    return frame, score
