"""A synthetic credit-risk data set: loan applications and whether the loan defaulted.

Everything is generated with numpy from a seed, so the example needs no download and every run
is reproducible. Knobs make the data drift the way real data does:

- ``shift`` / ``scale``: move or widen numeric features (``{"income": -0.3}`` shifts income by
  -0.3 of its standard deviation; ``{"debt_to_income": 1.5}`` widens its spread by 50%);
- ``category_mix``: new proportions of a categorical feature
  (``{"employment_type": {"self_employed": 0.4, ...}}``);
- ``risk_shift``: a change in the true relation (concept drift): extra log-odds of default per
  category, e.g. ``{"region": {"east": 1.0}}``;
- ``label_noise``: the share of labels flipped at random (a broken labelling process).

The frame has an ``application_id``, an ``applied_at`` timestamp, ten features (three of them
categorical) and the label ``default``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORICAL",
    "FEATURES",
    "ID",
    "NUMERIC",
    "SCENARIOS",
    "TARGET",
    "TIME",
    "generate",
    "split",
]

ID = "application_id"
TIME = "applied_at"
TARGET = "default"
CATEGORICAL = ["employment_type", "region", "home_ownership"]
NUMERIC = [
    "age",
    "income",
    "loan_amount",
    "loan_term_months",
    "credit_history_years",
    "debt_to_income",
    "late_payments_12m",
]
FEATURES = NUMERIC + CATEGORICAL

SCENARIOS: dict[str, dict[str, Any]] = {
    # the applications the first model is trained on
    "baseline": {},
    # a quarter later: lower incomes, more self-employed and contract workers, and renters in
    # the south defaulting more often than before (covariate and concept drift)
    "drifted": {
        "start": "2026-04-01",
        "shift": {"income": -0.4, "debt_to_income": 0.3},
        "category_mix": {
            "employment_type": {
                "salaried": 0.4,
                "self_employed": 0.28,
                "contract": 0.2,
                "unemployed": 0.05,
                "retired": 0.07,
            }
        },
        "risk_shift": {"region": {"south": 0.8}, "home_ownership": {"rent": 0.4}},
    },
}
"""Named data scenarios: keyword arguments of :func:`generate`."""

_CATEGORIES: dict[str, dict[str, float]] = {
    "employment_type": {
        "salaried": 0.55,
        "self_employed": 0.2,
        "contract": 0.12,
        "unemployed": 0.05,
        "retired": 0.08,
    },
    "region": {"north": 0.25, "south": 0.25, "east": 0.2, "west": 0.2, "central": 0.1},
    "home_ownership": {"rent": 0.4, "mortgage": 0.4, "own": 0.2},
}
# log-odds of default added by each category
_RISK: dict[str, dict[str, float]] = {
    "employment_type": {
        "salaried": 0.0,
        "self_employed": 0.35,
        "contract": 0.5,
        "unemployed": 1.4,
        "retired": 0.2,
    },
    "region": {"north": 0.0, "south": 0.25, "east": -0.1, "west": 0.1, "central": 0.0},
    "home_ownership": {"rent": 0.3, "mortgage": 0.0, "own": -0.3},
}


def _pick(rng: np.random.Generator, n: int, mix: Mapping[str, float]) -> np.ndarray:
    names = list(mix)
    p = np.array([float(mix[k]) for k in names])
    if (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"category proportions must be >= 0 and not all 0, got {dict(mix)}")
    return np.asarray(rng.choice(names, size=n, p=p / p.sum()), dtype=object)


def generate(
    n: int = 5000,
    *,
    seed: int = 0,
    start: str = "2026-01-01",
    days: int = 90,
    shift: Mapping[str, float] | None = None,
    scale: Mapping[str, float] | None = None,
    category_mix: Mapping[str, Mapping[str, float]] | None = None,
    risk_shift: Mapping[str, Mapping[str, float]] | None = None,
    label_noise: float = 0.0,
    id_offset: int = 0,
) -> pd.DataFrame:
    """Generate ``n`` loan applications.

    Args:
        n: rows.
        seed: random seed; the same arguments give the same frame.
        start: first application date (ISO); ``applied_at`` is spread over ``days`` days.
        days: length of the application window.
        shift: numeric feature -> shift in units of its standard deviation.
        scale: numeric feature -> factor on its spread around the mean.
        category_mix: categorical feature -> {category: weight}; weights are normalised.
        risk_shift: categorical feature -> {category: extra log-odds of default}.
        label_noise: probability that a row's label is flipped, in [0, 0.5].
        id_offset: first ``application_id`` number, to keep ids unique across batches.

    Returns:
        A pandas frame: ``application_id``, ``applied_at``, the features and ``default``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 <= label_noise <= 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5], got {label_noise}")
    for name, table in (("shift", shift), ("scale", scale)):
        unknown = set(table or {}) - set(NUMERIC)
        if unknown:
            raise ValueError(f"{name}: unknown numeric features {sorted(unknown)}; use {NUMERIC}")
    for name, table in (("category_mix", category_mix), ("risk_shift", risk_shift)):
        unknown = set(table or {}) - set(CATEGORICAL)
        if unknown:
            raise ValueError(f"{name}: unknown categorical features {sorted(unknown)}")
    rng = np.random.default_rng(seed)
    cats: dict[str, np.ndarray] = {}
    for col, mix in _CATEGORIES.items():
        cats[col] = _pick(rng, n, (category_mix or {}).get(col, mix))

    employed = ~np.isin(cats["employment_type"], ["unemployed", "retired"])
    age = np.where(
        cats["employment_type"] == "retired",
        rng.normal(68, 5, n),
        rng.normal(40, 11, n),
    )
    income = np.exp(rng.normal(10.9, 0.45, n)) * np.where(employed, 1.0, 0.45)
    loan_amount = np.exp(rng.normal(9.4, 0.6, n)) * (0.6 + 0.4 * income / 55_000)
    term = rng.choice([12, 24, 36, 48, 60], size=n, p=[0.1, 0.2, 0.35, 0.15, 0.2]).astype(float)
    history = np.clip(rng.gamma(2.0, 4.0, n), 0, None)
    dti = np.clip(rng.beta(2.2, 6.0, n) + 0.15 * (loan_amount / income), 0, None)
    late = rng.poisson(0.35 + 0.9 * dti, n).astype(float)
    numeric: dict[str, np.ndarray] = {
        "age": age,
        "income": income,
        "loan_amount": loan_amount,
        "loan_term_months": term,
        "credit_history_years": history,
        "debt_to_income": dti,
        "late_payments_12m": late,
    }
    for col, factor in (scale or {}).items():
        v = numeric[col]
        numeric[col] = v.mean() + (v - v.mean()) * float(factor)
    for col, amount in (shift or {}).items():
        v = numeric[col]
        numeric[col] = v + float(amount) * v.std()
    numeric["age"] = np.clip(np.round(numeric["age"]), 18, 90)
    numeric["income"] = np.clip(numeric["income"], 3_000, None).round(2)
    numeric["loan_amount"] = np.clip(numeric["loan_amount"], 500, None).round(2)
    numeric["credit_history_years"] = np.minimum(
        numeric["credit_history_years"], numeric["age"] - 17
    ).round(1)
    numeric["late_payments_12m"] = np.clip(np.round(numeric["late_payments_12m"]), 0, None)
    numeric["debt_to_income"] = np.clip(numeric["debt_to_income"], 0, None).round(4)

    # the true risk: non-linear in debt-to-income and history, with interactions
    dti_v = numeric["debt_to_income"]
    logit = (
        -2.6
        + 2.2 * np.maximum(dti_v - 0.35, 0) * 4
        + 0.55 * numeric["late_payments_12m"]
        - 0.55 * np.log(numeric["income"] / 50_000)
        + 0.35 * np.log(numeric["loan_amount"] / 12_000)
        - 0.9 * (1 - np.exp(-numeric["credit_history_years"] / 4))
        + 0.01 * (numeric["loan_term_months"] - 36)
        + 0.6 * ((numeric["age"] < 25) & (dti_v > 0.4))
    )
    for col, risks in _RISK.items():
        extra = {**risks}
        for k, v in ((risk_shift or {}).get(col) or {}).items():
            extra[k] = extra.get(k, 0.0) + float(v)
        logit = logit + np.vectorize(lambda c, e=extra: e.get(c, 0.0), otypes=[float])(cats[col])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    if label_noise:
        flip = rng.random(n) < label_noise
        y = np.where(flip, 1 - y, y)

    seconds = np.sort(rng.uniform(0, days * 86_400, n))
    applied = pd.Timestamp(start) + pd.to_timedelta(seconds.round(), unit="s")
    frame: dict[str, Any] = {
        ID: [f"A{id_offset + i:08d}" for i in range(n)],
        TIME: applied,
    }
    frame.update({c: numeric[c] for c in NUMERIC})
    frame["age"] = frame["age"].astype(np.int64)
    frame["loan_term_months"] = frame["loan_term_months"].astype(np.int64)
    frame["late_payments_12m"] = frame["late_payments_12m"].astype(np.int64)
    for col in CATEGORICAL:
        frame[col] = pd.array(cats[col].astype(str), dtype="str")
    frame[TARGET] = y
    return pd.DataFrame(frame)


def split(frame: pd.DataFrame, test_fraction: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split by time: the latest ``test_fraction`` of applications is the test set."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    ordered = frame.sort_values(TIME, kind="stable").reset_index(drop=True)
    cut = round(len(ordered) * (1 - test_fraction))
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)
