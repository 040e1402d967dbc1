"""Fixtures for sweeps: a project with a pipeline module written into it, on real stores."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# load and features take no swept parameter: a sweep runs them once; fit takes C, depth and kind
PIPELINE = """
import time
from pathlib import Path

import modelyard
from modelyard.pipelines import log_metric


@modelyard.step
def load(rows: int = 200) -> list[float]:
    return [i / rows for i in range(rows)]


@modelyard.step
def features(data: list[float]) -> list[float]:
    return [x * x for x in data]


def _wait_for_peer(folder: str) -> None:
    # a barrier for two trials: each leaves a mark and waits (bounded) for another one's mark
    me = Path(folder) / f"{time.time_ns()}-{id(object())}"
    me.touch()
    deadline = time.monotonic() + 60
    while len(list(Path(folder).iterdir())) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("no other trial ran at the same time")
        time.sleep(0.02)


@modelyard.step
def fit(feats: list[float], C: float = 1.0, depth: int = 2, kind: str = "a",
        barrier: str = "") -> dict:
    if barrier:
        _wait_for_peer(barrier)
    score = -((C - 2.0) ** 2) - (depth - 3) ** 2 + (0.5 if kind == "b" else 0.0)
    log_metric("score", score)
    return {"score": score, "n": len(feats)}


@modelyard.pipeline
def train(rows: int = 200, C: float = 1.0, depth: int = 2, kind: str = "a", barrier: str = ""):
    data = load(rows=rows)
    return fit(features(data), C=C, depth=depth, kind=kind, barrier=barrier)
"""

# a real model and test rows, for the gate
MODEL_PIPELINE = """
import numpy as np
import pandas as pd

import modelyard
from modelyard.pipelines import log_metric


@modelyard.step
def load(rows: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.5, rows) > 0).astype(int)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})


@modelyard.step(outputs=2)
def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return frame.iloc[:400], frame.iloc[400:]


@modelyard.step
def fit(train_frame: pd.DataFrame, C: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C).fit(train_frame[["a", "b", "c"]], train_frame["y"])


@modelyard.step
def evaluate(model, test_frame: pd.DataFrame) -> float:
    accuracy = float((model.predict(test_frame[["a", "b", "c"]]) == test_frame["y"]).mean())
    log_metric("accuracy", accuracy)
    return accuracy


@modelyard.pipeline
def churn(rows: int = 600, C: float = 1.0):
    train_frame, test_frame = split(load(rows=rows))
    model = fit(train_frame, C=C)
    return evaluate(model, test_frame)
"""


def depth_pipeline(misbehave: str, *, imports: str = "") -> str:
    """A pipeline ``train(depth)``: ``fit(load(), depth)`` logs score = depth, after running
    ``misbehave`` (Python with ``depth`` in scope: fail, die or hang for some depths)."""
    body = textwrap.indent(textwrap.dedent(misbehave).strip(), " " * 4)
    return (
        f"{textwrap.dedent(imports).strip()}\n"
        "import modelyard\n"
        "from modelyard.pipelines import log_metric\n\n\n"
        "@modelyard.step\n"
        "def load() -> int:\n"
        "    return 1\n\n\n"
        "@modelyard.step\n"
        "def fit(x: int, depth: int = 1) -> int:\n"
        f"{body}\n"
        '    log_metric("score", float(depth))\n'
        "    return depth\n\n\n"
        "@modelyard.pipeline\n"
        "def train(depth: int = 1):\n"
        "    return fit(load(), depth=depth)\n"
    )


class Project:
    """A project folder with a pyproject.toml, importable pipeline modules and its settings."""

    def __init__(self, root: Path, home: Path, db_url: str) -> None:
        self.root = root
        self.home = home
        self.db_url = db_url
        self.modules: list[str] = []

    def settings(self, toml: str = "") -> Any:
        from modelyard.config import load_settings

        (self.root / "pyproject.toml").write_text("[tool.modelyard]\n" + textwrap.dedent(toml))
        return load_settings(
            start=self.root,
            home=str(self.home),
            db_url=self.db_url,
            artifact_url=str(self.home / "artifacts"),
        )

    def module(self, source: str = PIPELINE) -> ModuleType:
        name = f"sweep_pipeline_{uuid.uuid4().hex[:8]}"
        (self.root / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        self.modules.append(name)
        return importlib.import_module(name)


@pytest.fixture
def project(
    tmp_path: Path, home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    """A project on SQLite (and PostgreSQL when MODELYARD_TEST_POSTGRES_URL is set)."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    proj = Project(root, home, db_url)
    yield proj
    for name in proj.modules:
        sys.modules.pop(name, None)


@pytest.fixture
def sqlite_project(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    """A project on SQLite only (checks that do not depend on the database kind)."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    proj = Project(root, home, f"sqlite:///{home / 'meta.db'}")
    yield proj
    for name in proj.modules:
        sys.modules.pop(name, None)


def step_runs(settings: Any, study_run: str) -> dict[str, list[tuple[str, bool]]]:
    """step name -> [(trial run id, cached?)] from the runs table: what the study's trials did."""
    from modelyard.store.db import MetadataStore

    ms = MetadataStore.open(settings.resolved_db_url)
    with ms.query() as q:
        rows = q.execute(
            "SELECT s.name, t.id, c.value FROM runs s JOIN runs t ON t.id = s.parent_run_id "
            "LEFT JOIN run_tags c ON c.run_id = s.id AND c.key = 'cached' "
            "WHERE t.parent_run_id = :study AND s.kind = 'step'",
            {"study": study_run},
        )
    out: dict[str, list[tuple[str, bool]]] = {}
    for name, trial_run, cached in rows:
        out.setdefault(name, []).append((trial_run, cached == "true"))
    return out


StepRuns = Callable[[Any, str], dict[str, list[tuple[str, bool]]]]
