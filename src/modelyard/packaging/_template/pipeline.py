"""The training pipeline: load ► validate ► split ► train ► evaluate ► gate and register.

``modelyard run`` runs it with the parameters of ``[tool.modelyard.pipeline.params]`` in
``pyproject.toml`` (override one with ``-p C=0.5``). Every step is cached under its code, its
parameters and its inputs, so a re-run with nothing changed does no work; editing a step re-runs
it and what depends on it. The data contract and the gate policy (``[tool.modelyard.gate]``) are
passed to the steps as parameters, so editing them re-runs exactly the steps that read them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pandas as pd

import modelyard
from modelyard.pipelines import log_metric

HERE = Path(__file__).resolve().parent
CONTRACT_FILE = HERE / "contract.toml"
PYPROJECT = HERE / "pyproject.toml"
TARGET = "target"


@modelyard.step
def load() -> pd.DataFrame:
    """The breast-cancer data set that ships with scikit-learn (no download): 569 rows, 30
    numeric features, ``target`` 1 for benign. Replace this step with your own data."""
    from sklearn.datasets import load_breast_cancer

    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    return frame.rename(columns=lambda column: str(column).replace(" ", "_"))


@modelyard.step
def validate(frame: pd.DataFrame, contract_toml: str) -> dict[str, Any]:
    """Check the data against the contract; stop the pipeline on any violation."""
    from modelyard.data.contract import Contract

    contract = Contract.from_toml(contract_toml, source=str(CONTRACT_FILE))
    contract.validate(frame, source="training data").raise_for_errors()
    log_metric("rows", float(len(frame)))
    return {"rows": len(frame), "contract": contract.name}


@modelyard.step(outputs=2)
def split(
    frame: pd.DataFrame, checked: dict[str, Any], test_fraction: float = 0.25, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out ``test_fraction`` of the rows (stratified) for evaluation and the gate."""
    from sklearn.model_selection import train_test_split

    train_frame, test_frame = train_test_split(
        frame, test_size=test_fraction, random_state=seed, stratify=frame[TARGET]
    )
    return train_frame, test_frame


@modelyard.step
def train(train_frame: pd.DataFrame, C: float = 1.0) -> Any:
    """Fit a scaled logistic regression on the training rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    return model.fit(train_frame.drop(columns=[TARGET]), train_frame[TARGET])


@modelyard.step
def evaluate(model: Any, test_frame: pd.DataFrame) -> dict[str, float]:
    """The model's metrics on the held-out rows, logged on the step's run."""
    from modelyard.evaluate.metrics import compute_metrics, predict

    predictions = predict(model, test_frame.drop(columns=[TARGET]))
    metrics: dict[str, float] = compute_metrics(test_frame[TARGET].to_numpy(), predictions)
    for key, value in metrics.items():
        log_metric(key, value)
    return metrics


@modelyard.step
def register(
    model: Any,
    train_frame: pd.DataFrame,
    test_frame: pd.DataFrame,
    metrics: dict[str, float],
    *,
    gate: dict[str, Any],
    contract_toml: str,
    model_name: str,
) -> int:
    """Gate the model against ``production`` on the same rows; register it if it passes.

    The first version that passes becomes ``production``, later ones ``candidate``. A failing
    gate raises ``GateFailed``: nothing is registered and no alias moves. The version keeps the
    verdict, the data contract and the training data's profile (what monitoring compares with).
    """
    from modelyard.data.contract import Contract
    from modelyard.data.profile import build_profile
    from modelyard.evaluate.policy import GatePolicy
    from modelyard.models import infer_signature
    from modelyard.pipelines import current_run_id, current_settings
    from modelyard.workspace import Workspace

    features = train_frame.drop(columns=[TARGET])
    outcome = Workspace.open(current_settings()).gate_and_register(
        model_name,
        model,
        test_frame,
        target=TARGET,
        policy=GatePolicy.from_mapping(gate, source=f"{PYPROJECT} [tool.modelyard.gate]"),
        run_id=current_run_id(),
        contract=Contract.from_toml(contract_toml, source=str(CONTRACT_FILE)),
        profile=build_profile(features),
        extra={"metrics": metrics},
        signature=infer_signature(features.head(2)),
    )
    return int(outcome.version.version)


@modelyard.pipeline
def training(*, model_name: str, test_fraction: float = 0.25, seed: int = 0, C: float = 1.0) -> Any:
    """Train, evaluate, gate and register the model."""
    frame = load()
    checked = validate(frame, contract_toml=CONTRACT_FILE.read_text())
    train_frame, test_frame = split(frame, checked, test_fraction=test_fraction, seed=seed)
    model = train(train_frame, C=C)
    metrics = evaluate(model, test_frame)
    gate = tomllib.loads(PYPROJECT.read_text())["tool"]["modelyard"]["gate"]
    return register(
        model,
        train_frame,
        test_frame,
        metrics,
        gate=gate,
        contract_toml=CONTRACT_FILE.read_text(),
        model_name=model_name,
    )
