"""A model class whose versions behave as a rollout test needs (python flavor, saved config)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np


class Scorer:
    """Answers ``[factor * sum(row), worker pid]`` per row.

    Args:
        factor: scales the prediction (1.0: agrees with another version of factor 1.0).
        fail_when: raise on every batch while this file exists (a candidate that breaks in
            production; saving it, which predicts on the input example, still works).
        sleep_ms: sleep per batch (a slow candidate).
        load_s: sleep while loading (a large model), once the file ``slow_when`` exists (not
            while it is registered, which loads it too).
    """

    def __init__(
        self,
        factor: float = 1.0,
        *,
        fail_when: str | None = None,
        sleep_ms: float = 0.0,
        load_s: float = 0.0,
        slow_when: str | None = None,
    ) -> None:
        self.factor = factor
        self.fail_when = fail_when
        self.sleep_ms = sleep_ms
        self.load_s = load_s
        self.slow_when = slow_when

    def save(self, path: Path) -> None:
        cfg = {"factor": self.factor, "fail_when": self.fail_when, "sleep_ms": self.sleep_ms}
        slow = {"load_s": self.load_s, "slow_when": self.slow_when}
        (path / "scorer.json").write_text(json.dumps({**cfg, **slow}))

    @classmethod
    def load(cls, path: Path) -> Scorer:
        cfg = json.loads((path / "scorer.json").read_text())
        if cfg.get("slow_when") and os.path.exists(cfg["slow_when"]):
            time.sleep(cfg["load_s"])
        return cls(cfg["factor"], fail_when=cfg["fail_when"], sleep_ms=cfg["sleep_ms"])

    def predict(self, batch: Any) -> Any:
        if self.sleep_ms:
            time.sleep(self.sleep_ms / 1000.0)
        if self.fail_when is not None and os.path.exists(self.fail_when):
            raise RuntimeError("this candidate is broken")
        x = np.asarray(batch, dtype=np.float64)
        return np.stack([self.factor * x.sum(axis=1), np.full(len(x), float(os.getpid()))], 1)


class Classifier:
    """A binary classifier of rows ``[true_label, u]``: right unless ``u < miss``, so its
    accuracy on uniform ``u`` is ``1 - miss`` (two versions with one ``miss`` are identical).
    """

    def __init__(self, miss: float = 0.1) -> None:
        self.miss = miss

    def save(self, path: Path) -> None:
        (path / "classifier.json").write_text(json.dumps({"miss": self.miss}))

    @classmethod
    def load(cls, path: Path) -> Classifier:
        return cls(json.loads((path / "classifier.json").read_text())["miss"])

    def predict(self, batch: Any) -> Any:
        x = np.asarray(batch, dtype=np.float64)
        truth = x[:, 0].astype(np.int64)
        return np.where(x[:, 1] < self.miss, 1 - truth, truth)
