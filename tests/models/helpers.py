"""Importable model classes for the package tests (packages name classes by module path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def double(x: Any) -> Any:
    """A user function: skops does not trust it by default."""
    return np.asarray(x) * 2.0


class Scaler:
    """A 'python' flavor model: saves and loads itself."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def save(self, path: Path) -> None:
        (path / "params.json").write_text(json.dumps({"factor": self.factor}))

    @classmethod
    def load(cls, path: Path) -> Scaler:
        return cls(json.loads((path / "params.json").read_text())["factor"])

    def predict(self, batch: Any) -> Any:
        return np.asarray(batch, dtype=float).sum(axis=1) * self.factor


class Bad:
    """Returns one output for any number of rows."""

    def save(self, path: Path) -> None:
        pass

    @classmethod
    def load(cls, path: Path) -> Bad:
        return cls()

    def predict(self, batch: Any) -> Any:
        return np.zeros(1)


class Opaque:
    """No safe flavor knows this class: only pickle can store it."""

    def __init__(self, bias: float) -> None:
        self.bias = bias

    def predict(self, batch: Any) -> Any:
        return np.asarray(batch, dtype=float).sum(axis=1) + self.bias
