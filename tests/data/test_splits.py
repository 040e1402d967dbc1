"""Split checks: id overlap, label balance, time order, on pandas and polars."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.data.splits import check_splits
from modelyard.errors import InvalidInputError

Frame = Callable[[pd.DataFrame], Any]


@pytest.fixture
def train() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "y": ["a", "a", "a", "a", "a", "b", "b", "b", "b", "b"],
            "ts": pd.date_range("2024-01-01", periods=10, freq="D"),
        }
    )


@pytest.fixture
def holdout() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [11, 12, 13, 14],
            "y": ["a", "a", "b", "b"],
            "ts": pd.date_range("2024-02-01", periods=4, freq="D"),
        }
    )


def test_clean_split_passes(train: pd.DataFrame, holdout: pd.DataFrame, to_frame: Frame) -> None:
    report = check_splits(
        to_frame(train), to_frame(holdout), id_column="id", label_column="y", time_column="ts"
    )
    assert report.ok, report.to_text()
    assert report.rows == 14


def test_id_overlap_names_count_and_examples(
    train: pd.DataFrame, holdout: pd.DataFrame, to_frame: Frame
) -> None:
    leaky = holdout.assign(id=[11, 3, 3, 9])
    [v] = check_splits(to_frame(train), to_frame(leaky), id_column="id").violations
    assert (v.column, v.rule, v.count) == ("id", "id_overlap", 3)
    assert v.actual == {"rows": 3, "distinct_ids": 2}
    assert [e["row"] for e in v.examples] == [1, 2, 3]
    assert "3 test row(s) (2 distinct id(s), e.g. 3, 9)" in v.message


def test_label_imbalance_beyond_tolerance(
    train: pd.DataFrame, holdout: pd.DataFrame, to_frame: Frame
) -> None:
    skewed = holdout.assign(y=["a", "a", "a", "b"])
    [v] = check_splits(to_frame(train), to_frame(skewed), label_column="y").violations
    assert (v.rule, v.count) == ("label_balance", 2)
    assert v.actual == {"a": {"train": 0.5, "test": 0.75}, "b": {"train": 0.5, "test": 0.25}}
    assert "by more than 0.05" in v.message
    loose = check_splits(to_frame(train), to_frame(skewed), label_column="y", tolerance=0.3)
    assert loose.ok


def test_class_missing_from_a_split(train: pd.DataFrame, holdout: pd.DataFrame) -> None:
    only_a = holdout.assign(y=["a", "a", "a", "a"])
    [v] = check_splits(train, only_a, label_column="y").violations
    assert v.actual["b"] == {"train": 0.5, "test": 0.0}


def test_label_balance_chi2(to_frame: Frame) -> None:
    big_train = pd.DataFrame({"y": ["a"] * 500 + ["b"] * 500})
    near = pd.DataFrame({"y": ["a"] * 52 + ["b"] * 48})
    far = pd.DataFrame({"y": ["a"] * 80 + ["b"] * 20})
    assert check_splits(to_frame(big_train), to_frame(near), label_column="y", method="chi2").ok
    [v] = check_splits(
        to_frame(big_train), to_frame(far), label_column="y", method="chi2"
    ).violations
    assert v.rule == "label_balance"
    assert "chi-square" in v.message


def test_time_order(train: pd.DataFrame, holdout: pd.DataFrame, to_frame: Frame) -> None:
    overlapping = holdout.assign(ts=pd.date_range("2024-01-08", periods=4, freq="D"))
    [v] = check_splits(to_frame(train), to_frame(overlapping), time_column="ts").violations
    assert (v.rule, v.count) == ("time_order", 3)
    assert v.actual == {"max_train": "2024-01-10T00:00:00", "min_test": "2024-01-08T00:00:00"}
    assert [e["row"] for e in v.examples] == [7, 8, 9]
    # equal times are not "before"
    touching = holdout.assign(ts=pd.date_range("2024-01-10", periods=4, freq="D"))
    assert not check_splits(to_frame(train), to_frame(touching), time_column="ts").ok


def test_time_order_on_iso_text_and_numbers(train: pd.DataFrame, holdout: pd.DataFrame) -> None:
    as_text = check_splits(
        train.assign(ts=train.ts.dt.strftime("%Y-%m-%d")),
        holdout.assign(ts=["2024-01-05", "2024-02-02", "2024-02-03", "2024-02-04"]),
        time_column="ts",
    )
    [v] = as_text.violations
    assert (v.rule, v.count) == ("time_order", 6)
    numeric = check_splits(
        train.assign(t=range(10)), holdout.assign(t=[9, 10, 11, 12]), time_column="t"
    )
    [v] = numeric.violations
    assert v.actual == {"max_train": "9", "min_test": "9"}


def test_every_problem_reported_together(train: pd.DataFrame, holdout: pd.DataFrame) -> None:
    bad = holdout.assign(id=[1, 2, 13, 14], y=["b", "b", "b", "b"]).drop(columns=["ts"])
    report = check_splits(train, bad, id_column="id", label_column="y", time_column="ts")
    assert [v.rule for v in report.violations] == [
        "id_overlap",
        "label_balance",
        "missing_column",
    ]
    assert "missing from the test split" in report.violations[2].message


def test_bad_arguments(train: pd.DataFrame, holdout: pd.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match="no split check"):
        check_splits(train, holdout)
    with pytest.raises(InvalidInputError, match="'ks'"):
        check_splits(train, holdout, label_column="y", method="ks")


@settings(max_examples=30, deadline=None)
@given(
    train_ids=st.lists(st.one_of(st.none(), st.integers(0, 20)), min_size=1, max_size=15),
    test_ids=st.lists(st.one_of(st.none(), st.integers(0, 20)), min_size=1, max_size=15),
)
def test_pandas_and_polars_agree(train_ids: list[int | None], test_ids: list[int | None]) -> None:
    import polars as pl

    def frame(ids: list[int | None]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "id": pd.array(ids, dtype="Int64"),
                "y": [i % 2 if i is not None else None for i in ids],
                "t": pd.array(ids, dtype="Int64"),
            }
        )

    a, b = frame(train_ids), frame(test_ids)
    kwargs = {"id_column": "id", "label_column": "y", "time_column": "t"}
    got_pd = check_splits(a, b, **kwargs).to_dict()
    got_pl = check_splits(pl.from_pandas(a), pl.from_pandas(b), **kwargs).to_dict()
    assert got_pd == got_pl


def test_int_ids_overlap_float_ids(to_frame: Frame) -> None:
    # an id column with a missing value arrives as floats; polars refused to compare it
    train = to_frame(pd.DataFrame({"id": [1, 2, 3]}))
    test = to_frame(pd.DataFrame({"id": [3.0, 4.0, float("nan")]}))
    report = check_splits(train, test, id_column="id")
    [v] = report.violations
    assert (v.rule, v.count, v.examples) == ("id_overlap", 1, ({"row": 0, "value": 3.0},))


def test_ids_of_different_types_fail_instead_of_passing(to_frame: Frame) -> None:
    # 3 and "3" never compare equal, so the check used to pass a leaking split (pandas) or
    # crash (polars)
    train = to_frame(pd.DataFrame({"id": [1, 2, 3]}))
    test = to_frame(pd.DataFrame({"id": ["3", "4"]}))
    report = check_splits(train, test, id_column="id")
    [v] = report.violations
    assert v.rule == "dtype"
    assert "is int" in v.message
    assert "string" in v.message
    assert "cast both to one type" in v.message


def test_datetimes_against_numbers_are_a_type_error(to_frame: Frame) -> None:
    # datetimes were compared as epoch microseconds with plain numbers: "max train time
    # 2024-01-05 is not before min test time 1970-01-01T00:00:00.000002"
    train = to_frame(pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-01-05"])}))
    test = to_frame(pd.DataFrame({"t": [2, 3]}))
    report = check_splits(train, test, time_column="t")
    [v] = report.violations
    assert v.rule == "dtype"
    assert "datetime" in v.message
    assert "int" in v.message
