"""Reference profiles: bins, counts, bytes, and drift scoring against new data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelyard.data.profile import Profile, build_profile
from modelyard.errors import InvalidInputError

Frame = Callable[[pd.DataFrame], Any]


def _frame(n: int, seed: int, *, shift: float = 0.0, scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, scale, n)
    x[rng.random(n) < 0.01] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 5, n),
            "plan": rng.choice(["basic", "pro", "team"], n, p=[0.6, 0.3, 0.1]),
            "active": rng.random(n) < 0.3,
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 100, n), "D"),
        }
    )


def test_numeric_bins_cover_the_reference_with_open_ends() -> None:
    df = pd.DataFrame({"x": np.arange(100, dtype=float)})
    fp = build_profile(df, bins=4).features["x"]
    assert fp.kind == "numeric"
    # min, three quantiles, and just above max: bins (-inf, 0), [0, q1) ... [max+, inf)
    assert fp.edges[0] == 0.0
    assert fp.edges[1:4] == (24.75, 49.5, 74.25)
    # float data is compared in float32: the top edge is the next float32 above max
    assert fp.precision == "float32"
    assert fp.edges[-1] == float(np.nextafter(np.float32(99.0), np.float32(np.inf)))
    assert fp.counts == (0, 25, 25, 25, 25, 0)
    assert fp.nulls == 0
    assert fp.labels()[0] == "< 0"
    assert fp.labels()[-1] == "null"


def test_profile_skips_datetimes_unless_named() -> None:
    df = _frame(200, 0)
    assert list(build_profile(df).features) == ["x", "k", "plan", "active"]
    named = build_profile(df, columns=["when"], bins=5)
    assert named.features["when"].kind == "numeric"
    assert sum(named.features["when"].counts) == 200


def test_categorical_counts_with_other_and_nulls(to_frame: Frame) -> None:
    df = pd.DataFrame({"c": ["a", "a", "a", "b", "b", "c", None, "d"]})
    fp = build_profile(to_frame(df), categorical_max=2).features["c"]
    assert fp.kind == "categorical"
    assert fp.categories == ("a", "b")
    assert fp.counts == (3, 2, 2)  # a, b, other (c and d)
    assert fp.nulls == 1
    assert fp.vector().tolist() == [3, 2, 2, 1]
    assert fp.labels() == ["a", "b", "other", "null"]


def test_bytes_round_trip(to_frame: Frame) -> None:
    profile = build_profile(to_frame(_frame(500, 1)))
    blob = profile.to_bytes()
    assert isinstance(blob, bytes)
    assert Profile.from_bytes(blob) == profile
    assert Profile.from_bytes(blob).to_bytes() == blob


def test_bin_counts_of_reference_reproduce_its_counts(to_frame: Frame) -> None:
    df = _frame(1000, 2)
    profile = build_profile(to_frame(df))
    counts = profile.bin_counts(to_frame(df))
    for name, fp in profile.features.items():
        assert counts[name].tolist() == fp.vector().tolist(), name
    assert counts["x"][-1] == int(df["x"].isna().sum())


def test_bin_counts_put_new_values_in_the_same_bins(to_frame: Frame) -> None:
    ref = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "c": ["a", "a", "b", "b"]})
    profile = build_profile(to_frame(ref), bins=2)
    top = float(np.nextafter(np.float32(3.0), np.float32(np.inf)))
    assert profile.features["x"].edges == (0.0, 1.5, top)
    new = pd.DataFrame(
        {"x": [-5.0, 0.0, 1.5, 3.0, 99.0, np.nan], "c": ["a", "z", None, "b", "b", "q"]}
    )
    counts = profile.bin_counts(to_frame(new))
    assert counts["x"].tolist() == [1, 1, 2, 1, 1]  # <0, [0,1.5), [1.5,3], >3, null
    assert counts["c"].tolist() == [1, 2, 2, 1]  # a, b, other (z, q), null


def test_pandas_and_polars_count_alike() -> None:
    import polars as pl

    ref, cur = _frame(2000, 3), _frame(700, 4, shift=0.3)
    profile = build_profile(ref)
    a = profile.bin_counts(cur)
    b = profile.bin_counts(pl.from_pandas(cur))
    assert {k: v.tolist() for k, v in a.items()} == {k: v.tolist() for k, v in b.items()}
    assert build_profile(pl.from_pandas(ref)) == profile


def test_score_flags_the_shifted_feature_only() -> None:
    ref, cur = _frame(20_000, 5), _frame(20_000, 6)
    cur["x"] = cur["x"] + 0.6
    report = build_profile(ref).score(cur)
    assert report.drifted == ["x"]
    assert report["x"].psi > 0.25
    assert report["plan"].psi < 0.01
    assert 0 < report.share_drifted < 1
    body = report.to_dict()
    assert body["drifted"] == ["x"]
    assert len(body["features"]) == 4


def test_score_accepts_accumulated_counts() -> None:
    ref = _frame(5000, 7)
    profile = build_profile(ref)
    parts = [profile.bin_counts(_frame(1000, s)) for s in (8, 9, 10)]
    total = {k: sum(p[k] for p in parts) for k in parts[0]}
    report = profile.score(total)
    assert report.drifted == []
    assert report["x"].n_cur == 3000


def test_rising_nulls_are_drift() -> None:
    ref = _frame(20_000, 11)
    cur = _frame(20_000, 12)
    cur.loc[cur.index[:8000], "x"] = np.nan
    assert "x" in build_profile(ref).score(cur).drifted


def test_errors_name_the_problem() -> None:
    profile = build_profile(_frame(100, 13))
    with pytest.raises(InvalidInputError, match=r"\['plan'\].*missing"):
        profile.bin_counts(_frame(10, 14).drop(columns=["plan"]))
    with pytest.raises(InvalidInputError, match="not in the frame"):
        build_profile(_frame(10, 14), columns=["nope"])
    with pytest.raises(InvalidInputError, match="bins must be at least 2"):
        build_profile(_frame(10, 14), bins=1)
    with pytest.raises(InvalidInputError, match="not JSON"):
        Profile.from_bytes(b"\x00garbage")
    with pytest.raises(InvalidInputError, match="unknown profile format"):
        Profile.from_bytes(b'{"format": 99, "features": [], "rows": 0}')
    with pytest.raises(InvalidInputError, match="counts"):
        Profile.from_bytes(
            b'{"format": 1, "rows": 1, "features": [{"name": "a", "kind": "numeric",'
            b' "dtype": "float", "edges": [1.0], "counts": [1], "nulls": 0}]}'
        )


def test_integer_columns_bin_like_their_float_copy(to_frame: Frame) -> None:
    rng = np.random.default_rng(15)
    ints = rng.integers(-50, 50, 3000)
    ref = pd.DataFrame({"n": ints})
    profile = build_profile(to_frame(ref), bins=7)
    as_float = build_profile(ref.astype({"n": "float64"}), bins=7).features["n"]
    assert profile.features["n"].edges[:-1] == as_float.edges[:-1]
    assert profile.features["n"].counts == as_float.counts
    new = pd.DataFrame({"n": rng.integers(-80, 80, 1000)})
    got = profile.bin_counts(to_frame(new))["n"].tolist()
    want = profile.bin_counts(new.astype({"n": "float64"}))["n"].tolist()
    assert got == want
    assert sum(got) == 1000


def test_large_values_with_a_small_spread_keep_double_precision() -> None:
    rng = np.random.default_rng(16)
    ref = pd.DataFrame({"t": 1e9 + rng.normal(0, 1, 20_000)})
    profile = build_profile(ref)
    fp = profile.features["t"]
    assert fp.precision == "float64"  # float32 would merge every bin here
    assert max(fp.counts) < 2_000
    assert profile.score(pd.DataFrame({"t": 1e9 + rng.normal(0, 1, 20_000)})).drifted == []
    shifted = pd.DataFrame({"t": 1e9 + rng.normal(1, 1, 20_000)})
    assert profile.score(shifted).drifted == ["t"]
    assert Profile.from_bytes(profile.to_bytes()) == profile


def test_float32_profile_round_trips_and_counts_consistently(to_frame: Frame) -> None:
    df = _frame(3000, 17)
    profile = build_profile(to_frame(df))
    assert profile.features["x"].precision == "float32"
    assert b'"precision":"float32"' in profile.to_bytes()
    again = Profile.from_bytes(profile.to_bytes())
    assert again == profile
    assert again.bin_counts(to_frame(df))["x"].tolist() == profile.features["x"].vector().tolist()


def test_infinite_values_are_counted_and_the_profile_round_trips(to_frame: Frame) -> None:
    # inf used to become an edge, which JSON stores as null: from_bytes then refused the profile
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(size=1000), np.inf, np.inf, -np.inf]
    frame = to_frame(pd.DataFrame({"x": x}))
    profile = build_profile(frame)
    fp = profile.features["x"]
    assert all(np.isfinite(fp.edges))
    assert fp.counts[0] == 1  # -inf is below the reference's finite minimum
    assert fp.counts[-1] == 2  # +inf above its maximum
    again = Profile.from_bytes(profile.to_bytes())
    assert again == profile
    assert again.score(frame).drifted == []
