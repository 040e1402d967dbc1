"""Data tests and statistics: contracts, split checks, reference profiles and drift.

* :mod:`modelyard.data.contract`: infer a contract from reference data, keep it as a reviewable
  TOML file, validate pandas or polars frames against it (every violation, with examples).
* :mod:`modelyard.data.splits`: id leakage, label balance and time order of a train/test split.
* :mod:`modelyard.data.profile`: the training data reduced to per-feature bins and counts.
* :mod:`modelyard.data.drift`: PSI and a two-sample chi-square test on binned counts.

Importing this package is light: numpy, pandas and polars load on first use.
"""

from __future__ import annotations

from modelyard.data.contract import ColumnSpec, Contract, infer_contract, validate
from modelyard.data.drift import DriftResult, compare_counts, psi
from modelyard.data.profile import DriftReport, FeatureProfile, Profile, build_profile
from modelyard.data.report import ValidationReport, Violation
from modelyard.data.splits import check_splits

__all__ = [
    "ColumnSpec",
    "Contract",
    "DriftReport",
    "DriftResult",
    "FeatureProfile",
    "Profile",
    "ValidationReport",
    "Violation",
    "build_profile",
    "check_splits",
    "compare_counts",
    "infer_contract",
    "psi",
    "validate",
]
