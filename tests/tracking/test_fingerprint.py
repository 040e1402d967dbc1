"""Data fingerprints: stable across processes, sensitive to any change."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import polars as pl
import pytest

from modelyard.errors import InvalidInputError
from modelyard.tracking.fingerprint import fingerprint_frame


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "x": rng.random(1_000),
            "n": np.arange(1_000),
            "flag": rng.random(1_000) > 0.5,
            "city": rng.choice(["paris", "oslo", "lima"], 1_000),
            "when": pd.date_range("2024-01-01", periods=1_000, freq="h"),
            "cat": pd.Categorical(rng.choice(["a", "b"], 1_000)),
            "maybe": pd.array([None if i % 7 == 0 else i for i in range(1_000)], dtype="Int64"),
        }
    )


def test_shape_and_schema() -> None:
    fp = fingerprint_frame(_frame())
    assert fp["rows"] == 1_000
    assert fp["columns"] == 7
    assert fp["schema"]["x"] == "float64"
    assert fp["schema"]["maybe"] == "Int64"
    assert len(fp["digest"]) == 64


def test_stable_across_calls_and_processes() -> None:
    first = fingerprint_frame(_frame())["digest"]
    assert fingerprint_frame(_frame())["digest"] == first
    code = (
        "import sys; sys.path.insert(0, 'tests/tracking');"
        "from test_fingerprint import _frame;"
        "from modelyard.tracking.fingerprint import fingerprint_frame;"
        "print(fingerprint_frame(_frame())['digest'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == first


def _set(df: pd.DataFrame, col: str, values: object) -> pd.DataFrame:
    out = df.copy()
    out[col] = values
    return out


@pytest.mark.parametrize(
    "change",
    [
        lambda df: _set(df, "x", df["x"].where(df.index != 500, df["x"] + 1e-12)),
        lambda df: _set(df, "city", df["city"].where(df.index != 3, "rome")),
        lambda df: _set(df, "maybe", df["maybe"].where(df.index != 1, None)),
        lambda df: df.rename(columns={"x": "x2"}),
        lambda df: _set(df, "n", df["n"].astype("int32")),
        lambda df: df.set_index(df.index + 1),
    ],
    ids=["float", "string", "null", "rename", "dtype", "index"],
)
def test_any_change_changes_the_digest(change) -> None:  # type: ignore[no-untyped-def]
    base = fingerprint_frame(_frame())["digest"]
    assert fingerprint_frame(change(_frame()))["digest"] != base


def test_row_order_matters() -> None:
    df = _frame()
    shuffled = df.iloc[::-1].reset_index(drop=True)
    assert fingerprint_frame(shuffled)["digest"] != fingerprint_frame(df)["digest"]


def test_polars() -> None:
    df = pl.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"], "c": [0.5, 1.5, 2.5]})
    fp = fingerprint_frame(df)
    assert fp["rows"] == 3
    assert fp["schema"] == {"a": "Int64", "b": "String", "c": "Float64"}
    assert fingerprint_frame(df.clone())["digest"] == fp["digest"]
    changed = df.with_columns(pl.Series("b", ["x", "y", "z"]))
    assert fingerprint_frame(changed)["digest"] != fp["digest"]
    assert fingerprint_frame(df["a"])["rows"] == 3
    with pytest.raises(InvalidInputError, match="collect"):
        fingerprint_frame(df.lazy())


def test_numpy_layout_independent_and_sensitive() -> None:
    a = np.random.default_rng(1).random((200, 5))
    fp = fingerprint_frame(a)
    assert fp["rows"] == 200
    assert fp["columns"] == 5
    assert fingerprint_frame(np.asfortranarray(a))["digest"] == fp["digest"]
    b = a.copy()
    b[10, 2] += 1e-9
    assert fingerprint_frame(b)["digest"] != fp["digest"]
    assert fingerprint_frame(a.astype(np.float32))["digest"] != fp["digest"]
    assert fingerprint_frame(a.reshape(100, 10))["digest"] != fp["digest"]
    objs = np.array(["a", 1, None], dtype=object)
    assert fingerprint_frame(objs)["digest"] == fingerprint_frame(objs.copy())["digest"]
    assert fingerprint_frame(np.arange(5))["rows"] == 5


def test_large_frame_parallel_path_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    df = pd.DataFrame({f"c{i}": rng.random(100_000) for i in range(8)})  # > 4 MiB: threads
    assert fingerprint_frame(df)["digest"] == fingerprint_frame(df.copy())["digest"]


def test_unsupported_type() -> None:
    with pytest.raises(InvalidInputError, match=r"cannot fingerprint a builtins\.dict"):
        fingerprint_frame({"a": [1]})
