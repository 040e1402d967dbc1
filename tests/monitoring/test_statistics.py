"""The statistics of monitoring: false alarms on unchanged data, and each kind of shift caught.

Windows are Arrow tables in the request log's column layout (``in__<feature>``), binned by the
same code that reads the real log.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelyard.data.profile import build_profile
from modelyard.monitoring import Binner, DriftThresholds, WindowCounts, score_counts

N_FEATURES = 20
CATEGORIES = ["a", "b", "c", "d", "e"]
CAT_P = [0.4, 0.25, 0.15, 0.12, 0.08]


def _frame(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    cols: dict[str, Any] = {}
    for i in range(N_FEATURES - 2):
        cols[f"x{i}"] = rng.normal(10.0 * i, 1.0 + i, rows)
    cols["n_items"] = rng.poisson(4.0, rows).astype(np.int64)
    cols["plan"] = rng.choice(CATEGORIES, rows, p=CAT_P)
    return pd.DataFrame(cols)


def _window(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame.add_prefix("in__"), preserve_index=False)


@pytest.fixture(scope="module")
def binner() -> Binner:
    reference = _frame(np.random.default_rng(0), 20_000)
    return Binner(profile=build_profile(reference))


def _score(binner: Binner, frame: pd.DataFrame, **kw: Any) -> Any:
    counts = binner.count(_window(frame))
    return score_counts(
        binner.profile, counts.features, ranges=counts.ranges, rows=counts.rows, **kw
    )


def test_unchanged_windows_raise_at_most_five_percent_false_alarms(binner: Binner) -> None:
    rng = np.random.default_rng(1)
    alarms = 0
    any_feature = 0
    for _ in range(200):
        result = _score(binner, _frame(rng, 2_000))
        assert result.verdict in ("drift", "no_drift")
        alarms += result.verdict == "drift"
        any_feature += bool(result.drifted)
    # the strict reading: a window with any feature flagged counts as a false alarm
    assert any_feature / 200 <= 0.05, any_feature
    assert alarms <= any_feature


@pytest.mark.parametrize(
    ("shift", "feature"),
    [
        ("mean", "x3"),
        ("variance", "x5"),
        ("new_category", "plan"),
        ("missing_rate", "x7"),
        ("integer_mean", "n_items"),
    ],
)
def test_each_kind_of_shift_is_caught(binner: Binner, shift: str, feature: str) -> None:
    rng = np.random.default_rng(2)
    frame = _frame(rng, 5_000)
    if shift == "mean":
        frame[feature] += 0.5 * (1.0 + 3)
    elif shift == "variance":
        mean = 10.0 * 5
        frame[feature] = mean + (frame[feature] - mean) * 1.3
    elif shift == "new_category":
        frame.loc[frame.sample(frac=0.1, random_state=0).index, feature] = "enterprise"
    elif shift == "missing_rate":
        frame.loc[frame.sample(frac=0.1, random_state=0).index, feature] = np.nan
    elif shift == "integer_mean":
        frame[feature] = rng.poisson(5.0, len(frame))
    importances = dict.fromkeys(binner.profile.features, 1.0) | {feature: 5.0}
    result = _score(binner, frame, importances=importances)
    assert result[feature].verdict == "drift", result[feature]
    assert result.drifted == [feature]
    # weighted by importance, one important feature trips the dataset verdict
    assert result.verdict == "drift"
    assert result.drift_score == pytest.approx(5.0 / (5.0 + N_FEATURES - 1))


def test_variance_change_is_read_by_wasserstein(binner: Binner) -> None:
    frame = _frame(np.random.default_rng(3), 20_000)
    frame["x5"] = 50.0 + (frame["x5"] - 50.0) * 1.3
    f = _score(binner, frame)["x5"]
    assert "wasserstein" in f.effects
    assert f.wasserstein == pytest.approx(0.3 * np.sqrt(2 / np.pi), rel=0.25)


def test_a_small_window_is_insufficient_data_never_no_drift(binner: Binner) -> None:
    frame = _frame(np.random.default_rng(4), 100)
    frame["x0"] += 50  # drifted beyond doubt, but too few rows to judge
    result = _score(binner, frame, thresholds=DriftThresholds(min_samples=500))
    assert result.verdict == "insufficient_data"
    assert {f.verdict for f in result.features} == {"insufficient_data"}


def test_window_counts_merge_to_the_counts_of_the_whole(binner: Binner) -> None:
    frame = _frame(np.random.default_rng(5), 3_000)
    whole = binner.count(_window(frame))
    parts = WindowCounts()
    for chunk in _window(frame).to_batches(max_chunksize=700):
        parts.merge(WindowCounts.from_dict(binner.count(chunk).to_dict()))
    assert parts.rows == whole.rows == 3_000
    for name, vec in whole.features.items():
        np.testing.assert_array_equal(parts.features[name], vec)
    assert parts.ranges == whole.ranges


def test_a_log_without_the_profiled_columns_is_refused_by_name(binner: Binner) -> None:
    from modelyard.errors import InvalidInputError

    table = _window(_frame(np.random.default_rng(6), 10)).drop_columns(["in__plan"])
    with pytest.raises(InvalidInputError, match=r"no column for the features \['plan'\]"):
        binner.count(table)


def test_arrow_batches_are_binned_as_frames_are() -> None:
    """The request log's Arrow columns land in the same bins as the pandas frame of the same
    values: NaN and None as missing, float32, nullable ints, unseen and missing categories,
    booleans, datetimes (named), dictionary-encoded strings."""
    import datetime as dt

    rng = np.random.default_rng(11)
    n = 5_000

    def frame(shift: float) -> pd.DataFrame:
        x = rng.normal(shift, 1, n)
        x[::17] = np.nan
        ints = pd.array(rng.integers(0, 40, n), dtype="Int64")
        ints[::13] = pd.NA
        plan = rng.choice(["basic", "pro", "team", "new"][: 3 + (shift > 0)], n).astype(object)
        plan[::11] = None
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        return pd.DataFrame(
            {
                "x": x,
                "x32": rng.normal(shift, 2, n).astype(np.float32),
                "ints": ints,
                "plan": plan,
                "flag": rng.random(n) < 0.3 + 0.1 * shift,
                "seen": pd.to_datetime(
                    [start + dt.timedelta(hours=float(h)) for h in rng.uniform(0, 500 + shift, n)]
                ),
            }
        )

    reference = frame(0.0)
    profile = build_profile(reference, columns=list(reference.columns))
    live = frame(0.5)
    table = pa.Table.from_pandas(live, preserve_index=False)
    table = table.rename_columns([f"in__{c}" for c in table.column_names])
    plan = table.column("in__plan").dictionary_encode()
    dictionary = table.set_column(table.schema.get_field_index("in__plan"), "in__plan", plan)
    want = profile.bin_counts(live)
    for batch in (table, dictionary):
        got = Binner(profile=profile).count(batch).features
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
