"""The credit-risk continuous-training pipeline.

load ► validate (data contract) ► split by time ► train ► evaluate ► gate + register

Run it with ``modelyard run`` from this folder's ``pyproject.toml``, or from Python::

    from examples.credit.pipeline import credit_training
    result = credit_training.run(settings=settings, scenario="baseline")

Every step is cached under its code, parameters and inputs: a re-run with nothing changed does no
work. The contract and the gate policy are passed to the steps as text, so editing
``contract.toml`` or ``gate.toml`` invalidates exactly the steps that read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

import modelyard
from modelyard.errors import InvalidInputError
from modelyard.pipelines import log_metric

if __package__:
    from . import data
    from .serve import package_signature
else:  # a copy of this folder, run with `modelyard run` inside it: the modules are top-level
    from serve import package_signature

    import data

HERE = Path(__file__).resolve().parent
MODEL_NAME = "credit-risk"
CONTRACT_FILE = HERE / "contract.toml"
GATE_FILE = HERE / "gate.toml"


@modelyard.step
def load(rows: int = 6000, seed: int = 0, scenario: str = "baseline") -> pd.DataFrame:
    """The loan applications of one scenario (see :data:`data.SCENARIOS`)."""
    if scenario not in data.SCENARIOS:
        raise InvalidInputError(
            f"unknown scenario {scenario!r}",
            hint=f"use one of {sorted(data.SCENARIOS)}",
        )
    return data.generate(rows, seed=seed, **data.SCENARIOS[scenario])


@modelyard.step
def validate(frame: pd.DataFrame, contract_toml: str) -> dict[str, Any]:
    """Check the applications against the data contract; stop the pipeline on any violation."""
    from modelyard.data.contract import Contract

    contract = Contract.from_toml(contract_toml, source=str(CONTRACT_FILE))
    report = contract.validate(frame, source="applications")
    report.raise_for_errors()
    log_metric("rows", float(len(frame)))
    return {"rows": len(frame), "contract": contract.name, "ok": True}


@modelyard.step(outputs=2)
def split(
    frame: pd.DataFrame, checked: dict[str, Any], test_fraction: float = 0.3
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on the earlier applications, test on the latest ``test_fraction`` (by time)."""
    return data.split(frame, test_fraction)


def build_model(features: list[str], C: float = 1.0) -> Any:
    """The model: one-hot categories, scaled numbers, logistic regression."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    categorical = [c for c in data.CATEGORICAL if c in features]
    skewed = [c for c in ("income", "loan_amount") if c in features]
    numeric = [c for c in data.NUMERIC if c in features and c not in skewed]
    prep = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
            (
                "log",
                Pipeline([("log", FunctionTransformer(np.log1p)), ("scale", StandardScaler())]),
                skewed,
            ),
            ("numbers", StandardScaler(), numeric),
        ]
    )
    return Pipeline([("prep", prep), ("model", LogisticRegression(C=C, max_iter=2000))])


@modelyard.step
def train(train_frame: pd.DataFrame, C: float = 1.0, drop_features: list[str] | None = None) -> Any:
    """Fit the model on the training rows (``drop_features`` leaves features out)."""
    features = [f for f in data.FEATURES if f not in set(drop_features or [])]
    model = build_model(features, C=C)
    model.fit(train_frame[features], train_frame[data.TARGET])
    return model


@modelyard.step
def evaluate(model: Any, test_frame: pd.DataFrame) -> dict[str, float]:
    """Metrics of the model on the test rows (logged on the step's run)."""
    from modelyard.evaluate.metrics import compute_metrics, predict

    preds = predict(model, test_frame[data.FEATURES])
    metrics = compute_metrics(test_frame[data.TARGET].to_numpy(), preds)
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
    gate_toml: str,
    contract_toml: str,
    model_name: str = MODEL_NAME,
) -> Any:
    """Gate the model against production on the same test rows; register it if it passes.

    The version carries the gate verdict (``extra["gate"]``), the test metrics, the data
    contract (``version.contract``) and the reference profile of the training data
    (``version.reference_profile``) that serving checks requests with and monitoring compares
    live traffic with. The workspace is the one of the pipeline run (``modelyard --home X run``
    or ``credit_training.run(settings=...)``), and the version points at the pipeline's run.

    Raises:
        GateFailed: the candidate did not pass; nothing is registered and no alias moves.
    """
    import tempfile
    import tomllib

    from modelyard import models
    from modelyard.data.contract import Contract
    from modelyard.data.profile import build_profile
    from modelyard.evaluate.policy import GatePolicy
    from modelyard.pipelines import current_run_id, current_settings
    from modelyard.workspace import Workspace

    workspace = Workspace.open(current_settings())
    policy = GatePolicy.from_mapping(tomllib.loads(gate_toml), source=str(GATE_FILE))
    features = list(model.feature_names_in_)
    with tempfile.TemporaryDirectory(prefix="credit-") as tmp:
        package = models.save(
            model,
            Path(tmp) / "package",
            name=model_name,
            signature=package_signature(),
            flavor_options={"method": "predict_proba"},
        )
        outcome = workspace.gate_and_register(
            model_name,
            model,
            test_frame[[*data.FEATURES, data.TARGET]],
            target=data.TARGET,
            policy=policy,
            package=package,
            run_id=current_run_id(),
            contract=Contract.from_toml(contract_toml, source=str(CONTRACT_FILE)),
            profile=build_profile(train_frame[features]),
            extra={
                "metrics": metrics,
                "features": features,
                "train_rows": len(train_frame),
                "test_rows": len(test_frame),
            },
        )
    return outcome.version


@modelyard.pipeline
def credit_training(
    *,
    rows: int = 6000,
    seed: int = 0,
    scenario: str = "baseline",
    C: float = 1.0,
    drop_features: list[str] | None = None,
    model_name: str = MODEL_NAME,
) -> Any:
    """Train, evaluate, gate and register the credit-risk model."""
    frame = load(rows=rows, seed=seed, scenario=scenario)
    checked = validate(frame, contract_toml=CONTRACT_FILE.read_text())
    train_frame, test_frame = split(frame, checked)
    model = train(train_frame, C=C, drop_features=drop_features)
    metrics = evaluate(model, test_frame)
    return register(
        model,
        train_frame,
        test_frame,
        metrics,
        gate_toml=GATE_FILE.read_text(),
        contract_toml=CONTRACT_FILE.read_text(),
        model_name=model_name,
    )
