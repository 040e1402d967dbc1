"""Frames for the data tests, in pandas and in polars."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest


def _identity(df: pd.DataFrame) -> Any:
    return df


def _to_polars(df: pd.DataFrame) -> Any:
    import polars as pl

    return pl.from_pandas(df)


@pytest.fixture(params=["pandas", "polars"])
def to_frame(request: pytest.FixtureRequest) -> Callable[[pd.DataFrame], Any]:
    """Turn a pandas frame into the library under test (pandas itself, or polars)."""
    return _identity if request.param == "pandas" else _to_polars


@pytest.fixture
def reference() -> pd.DataFrame:
    """A small, clean reference frame with one column of each kind."""
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6, 7, 8],
            "age": [21, 35, 35, 40, 52, 61, 61, 70],
            "income": [1.5, 2.0, np.nan, 3.25, 4.0, 5.5, 6.0, 7.75],
            "plan": ["basic", "pro", "basic", "pro", "team", "basic", "pro", "basic"],
            "active": [True, False, True, True, False, True, True, False],
            "signup": pd.to_datetime(
                [
                    "2024-01-01",
                    "2024-01-02",
                    "2024-01-03",
                    "2024-01-04",
                    "2024-01-05",
                    "2024-01-06",
                    "2024-01-07",
                    "2024-01-08 12:30:00.123456",
                ],
                format="ISO8601",
            ),
        }
    )
