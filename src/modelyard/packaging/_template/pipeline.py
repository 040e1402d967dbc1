"""The training pipeline: load ► validate ► split ► train ► evaluate ► gate and register.

``modelyard run`` runs it with the parameters of ``[tool.modelyard.pipeline.params]`` in
``pyproject.toml`` (override one with ``-p C=0.5``). Every step is cached under its code, its
parameters and its inputs, so a re-run with nothing changed does no work; editing a step re-runs
it and what depends on it. The data contract and the gate policy are passed to the steps as text,
so editing ``contract.toml`` or ``gate.toml`` re-runs exactly the steps that read them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pandas as pd

import modelyard
from modelyard.pipeline import log_metric

HERE = Path(__file__).resolve().parent
CONTRACT_FILE = HERE / "contract.toml"
GATE_FILE = HERE / "gate.toml"
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
    test_frame: pd.DataFrame,
    metrics: dict[str, float],
    *,
    gate_toml: str,
    model_name: str,
) -> int:
    """Gate the model against ``production`` on the same rows; register it if it passes.

    The first version that passes becomes ``production``, later ones ``candidate``. A failing
    gate raises ``GateFailed``: nothing is registered and no alias moves.
    """
    from modelyard.evaluate.gate import evaluate_and_register
    from modelyard.evaluate.policy import GatePolicy
    from modelyard.models import infer_signature
    from modelyard.pipeline import current_run_id, current_settings
    from modelyard.registry.registry import Registry

    registry = Registry.from_settings(current_settings())
    policy = GatePolicy.from_mapping(tomllib.loads(gate_toml), source=str(GATE_FILE))
    outcome = evaluate_and_register(
        registry,
        model_name,
        model,
        test_frame,
        target=TARGET,
        policy=policy,
        run_id=current_run_id(),
        extra={"metrics": metrics},
        signature=infer_signature(test_frame.drop(columns=[TARGET]).head(2)),
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
    return register(
        model, test_frame, metrics, gate_toml=GATE_FILE.read_text(), model_name=model_name
    )
