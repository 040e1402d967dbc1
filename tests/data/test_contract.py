"""Data contracts: inference, the TOML file, and every violation kind on pandas and polars."""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.data.contract import ColumnSpec, Contract, infer_contract, validate
from modelyard.errors import ConfigError, InvalidInputError, ValidationFailed

Frame = Callable[[pd.DataFrame], Any]


def test_infer_describes_each_column(reference: pd.DataFrame) -> None:
    c = infer_contract(reference, name="customers")
    assert list(c.columns) == list(reference.columns)
    assert c.columns["id"] == ColumnSpec("id", "int", nullable=False, min=1, max=8, unique=True)
    assert c.columns["age"].unique is False  # 35 and 61 repeat
    assert (c.columns["age"].min, c.columns["age"].max) == (21, 70)
    income = c.columns["income"]
    assert (income.dtype, income.nullable, income.min, income.max) == ("float", True, 1.5, 7.75)
    assert income.unique is False  # floats are never inferred unique
    assert c.columns["plan"].categories == ("basic", "pro", "team")
    assert c.columns["active"].dtype == "bool"
    signup = c.columns["signup"]
    assert signup.dtype == "datetime"
    assert signup.max == dt.datetime(2024, 1, 8, 12, 30, 0, 123456)


def test_infer_polars_matches_pandas(reference: pd.DataFrame) -> None:
    import polars as pl

    a = infer_contract(reference, name="x")
    b = infer_contract(pl.from_pandas(reference), name="x")
    assert a == b


def test_round_trip_through_toml_validates_clean(
    reference: pd.DataFrame, to_frame: Frame, tmp_path: Path
) -> None:
    path = infer_contract(to_frame(reference), name="customers").to_file(tmp_path / "c.toml")
    loaded = Contract.from_file(path)
    assert loaded == infer_contract(reference, name="customers")
    report = loaded.validate(to_frame(reference))
    assert report.ok, report.to_text()
    assert (report.rows, report.columns) == (8, 6)
    report.raise_for_errors()  # does not raise


def test_toml_is_stable_and_reviewable(reference: pd.DataFrame) -> None:
    text = infer_contract(reference, name="customers").to_toml()
    assert text == infer_contract(reference, name="customers").to_toml()
    assert text.startswith("# modelyard data contract")
    headers = [line for line in text.splitlines() if line.startswith("[")]
    assert headers == [f"[columns.{c}]" for c in reference.columns]
    block = text.split("[columns.plan]\n", 1)[1].split("\n\n", 1)[0]
    assert block.splitlines() == [
        'dtype = "string"',
        "nullable = false",
        'categories = ["basic", "pro", "team"]',
        "unique = false",
    ]
    assert "max = 2024-01-08T12:30:00.123456" in text
    assert tomllib.loads(text)["columns"]["income"]["nullable"] is True


def test_odd_column_names_and_values_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            'weird "name".x': ["a\tb", 'q"uote', "back\\slash", "naïve", "a\tb", "naïve"],
            "big": [0, 1, 2, 3, 4, 2**62],
            "inf": [1.0, np.inf, -np.inf, 0.5, 0.25, 2.0],
        }
    )
    c = infer_contract(df, categorical_max=10)
    path = c.to_file(tmp_path / "odd.toml")
    loaded = Contract.from_file(path)
    assert loaded == c
    assert loaded.columns["inf"].min == -np.inf
    assert loaded.validate(df).ok


def test_long_category_lists_are_one_per_line() -> None:
    df = pd.DataFrame({"c": [f"v{i}" for i in range(6)] * 2})
    text = infer_contract(df).to_toml()
    assert 'categories = [\n  "v0",\n  "v1",\n' in text


def test_unique_argument_controls_inference(reference: pd.DataFrame) -> None:
    assert infer_contract(reference, unique=False).columns["id"].unique is False
    chosen = infer_contract(reference, unique=["plan"])
    assert [n for n, s in chosen.columns.items() if s.unique] == ["plan"]
    everything = infer_contract(reference, unique=True)
    assert everything.columns["income"].unique is True
    with pytest.raises(InvalidInputError, match="nope"):
        infer_contract(reference, unique=["nope"])


# ------------------------------------------------------------------------------------------
# violations, one kind at a time


@pytest.fixture
def contract(reference: pd.DataFrame) -> Contract:
    return infer_contract(reference, name="customers")


def test_missing_column(contract: Contract, reference: pd.DataFrame, to_frame: Frame) -> None:
    report = contract.validate(to_frame(reference.drop(columns=["plan"])))
    [v] = report.violations
    assert (v.column, v.rule) == ("plan", "missing_column")
    assert "'plan' (string) is missing" in v.message


def test_unexpected_column_is_configurable(
    contract: Contract, reference: pd.DataFrame, to_frame: Frame
) -> None:
    frame = to_frame(reference.assign(extra=1))
    [v] = contract.validate(frame).violations
    assert (v.column, v.rule, v.actual) == ("extra", "unexpected_column", "int")
    assert contract.validate(frame, allow_extra_columns=True).ok
    from dataclasses import replace

    assert replace(contract, allow_extra_columns=True).validate(frame).ok


def test_wrong_dtype_names_column_expected_and_actual(
    contract: Contract, reference: pd.DataFrame, to_frame: Frame
) -> None:
    bad = reference.assign(age=["21", "35", "x", "40", "52", "?", "61", "70"])
    [v] = contract.validate(to_frame(bad)).violations
    assert (v.column, v.rule, v.expected, v.actual) == ("age", "dtype", "int", "string")
    assert v.count == 2  # the values that do not parse as int
    assert [e["row"] for e in v.examples] == [2, 5]
    assert [e["value"] for e in v.examples] == ["x", "?"]
    assert "expected dtype int, got string" in v.message


def test_int_column_read_as_float_with_nulls_is_accepted(contract: Contract) -> None:
    spec = contract.columns["age"]
    df = pd.DataFrame({"age": [21.0, np.nan, 70.0]})
    c = Contract(columns={"age": ColumnSpec("age", "int", nullable=True, min=spec.min)})
    assert c.validate(df).ok
    [v] = c.validate(pd.DataFrame({"age": [21.5, 30.0]})).violations
    assert (v.rule, v.expected, v.actual) == ("dtype", "int", "float")


def test_nulls_where_not_nullable(
    contract: Contract, reference: pd.DataFrame, to_frame: Frame
) -> None:
    bad = reference.copy()
    bad["plan"] = bad["plan"].astype(object)
    bad.loc[[1, 4], "plan"] = None
    [v] = contract.validate(to_frame(bad)).violations
    assert (v.column, v.rule, v.count) == ("plan", "nullable", 2)
    assert [e["row"] for e in v.examples] == [1, 4]


def test_nan_counts_as_missing_in_polars_too(contract: Contract) -> None:
    import polars as pl

    c = Contract(columns={"x": ColumnSpec("x", "float", nullable=False)})
    frame = pl.DataFrame({"x": [1.0, float("nan"), None, 2.0]})
    [v] = c.validate(frame).violations
    assert (v.rule, v.count) == ("nullable", 2)


def test_out_of_range(contract: Contract, reference: pd.DataFrame, to_frame: Frame) -> None:
    bad = reference.copy()
    bad.loc[[0, 3], "age"] = [5, 7]
    bad.loc[6, "age"] = 200
    bad.loc[2, "signup"] = pd.Timestamp("2030-01-01")
    report = contract.validate(to_frame(bad))
    rules = [(v.column, v.rule, v.count) for v in report.violations]
    assert rules == [("age", "min", 2), ("age", "max", 1), ("signup", "max", 1)]
    low = report.violations[0]
    assert low.examples == ({"row": 0, "value": 5}, {"row": 3, "value": 7})
    assert (low.expected, low.actual) == (21, 5)
    assert report.violations[2].examples[0]["value"].startswith("2030-01-01T00:00:00")


def test_range_ignores_nulls_in_integer_columns(to_frame: Frame) -> None:
    c = Contract(columns={"n": ColumnSpec("n", "int", nullable=True, min=10, max=20)})
    df = pd.DataFrame({"n": pd.array([10, None, 20, 5], dtype="Int64")})
    [v] = c.validate(to_frame(df)).violations
    assert (v.rule, v.count, v.examples) == ("min", 1, ({"row": 3, "value": 5},))


def test_unknown_category(contract: Contract, reference: pd.DataFrame, to_frame: Frame) -> None:
    bad = reference.assign(plan=["basic", "gold", "basic", "pro", "gold", "free", "pro", "team"])
    [v] = contract.validate(to_frame(bad)).violations
    assert (v.column, v.rule, v.count) == ("plan", "categories", 3)
    assert v.actual == ["free", "gold"]
    assert [e["row"] for e in v.examples] == [1, 4, 5]
    assert "unknown: free, gold" in v.message


def test_duplicates_where_unique(
    contract: Contract, reference: pd.DataFrame, to_frame: Frame
) -> None:
    bad = reference.assign(id=[1, 2, 3, 1, 5, 2, 7, 1])
    [v] = contract.validate(to_frame(bad)).violations
    assert (v.column, v.rule, v.count) == ("id", "unique", 3)
    assert v.examples == ({"row": 3, "value": 1}, {"row": 5, "value": 2}, {"row": 7, "value": 1})


def test_unique_string_and_nulls_do_not_count_as_duplicates(to_frame: Frame) -> None:
    c = Contract(columns={"k": ColumnSpec("k", "string", nullable=True, unique=True)})
    assert c.validate(to_frame(pd.DataFrame({"k": ["a", None, "b", None]}))).ok
    [v] = c.validate(to_frame(pd.DataFrame({"k": ["a", "b", "a", None]}))).violations
    assert (v.rule, v.count) == ("unique", 1)


def test_row_count_bounds(to_frame: Frame) -> None:
    c = Contract(columns={"a": ColumnSpec("a", "int")}, min_rows=3, max_rows=4)
    [v] = c.validate(to_frame(pd.DataFrame({"a": [1, 2]}))).violations
    assert (v.column, v.rule, v.count) == (None, "row_count", 2)
    [v] = c.validate(to_frame(pd.DataFrame({"a": list(range(5))}))).violations
    assert "more than max_rows = 4" in v.message


def test_many_violations_at_once_are_all_reported(
    contract: Contract, reference: pd.DataFrame, to_frame: Frame
) -> None:
    bad = reference.copy()
    bad["id"] = [1, 1, 3, 4, 5, 6, 7, 7]
    bad.loc[0, "age"] = 1
    bad["plan"] = ["basic", "gold", "basic", "pro", "team", "basic", "pro", "basic"]
    bad["active"] = ["y", "n", "y", "y", "n", "y", "y", "n"]
    bad = bad.drop(columns=["income"]).assign(note="x")
    report = contract.validate(to_frame(bad), max_examples=1)
    found = [(v.column, v.rule, v.count) for v in report.violations]
    assert found == [
        ("id", "unique", 2),
        ("age", "min", 1),
        ("income", "missing_column", 8),
        ("plan", "categories", 1),
        ("active", "dtype", 8),
        ("note", "unexpected_column", 8),
    ]
    assert all(len(v.examples) <= 1 for v in report.violations)
    with pytest.raises(ValidationFailed) as info:
        report.raise_for_errors()
    assert info.value.exit_code == 3
    assert len(info.value.details["violations"]) == 6
    assert "[categories] column 'plan'" in str(info.value)


def test_report_to_dict_is_json_ready(contract: Contract, reference: pd.DataFrame) -> None:
    import orjson

    bad = reference.assign(signup=pd.Timestamp("2031-05-05"))
    body = orjson.loads(orjson.dumps(contract.validate(bad).to_dict()))
    assert body["ok"] is False
    assert body["violations"][0]["rule"] == "max"
    assert body["violations"][0]["examples"][0] == {"row": 0, "value": "2031-05-05T00:00:00"}


def test_validate_function_accepts_a_path(
    contract: Contract, reference: pd.DataFrame, tmp_path: Path
) -> None:
    path = contract.to_file(tmp_path / "sub" / "c.toml")
    assert validate(reference, path).ok
    assert not validate(reference.head(3).assign(id=1), contract).ok


def test_contract_dict_round_trip(contract: Contract) -> None:
    import orjson

    data = orjson.loads(orjson.dumps(contract.to_dict()))
    assert Contract.from_dict(data) == contract


def test_unsupported_frame_type() -> None:
    with pytest.raises(InvalidInputError, match=r"cannot validate a builtins\.list"):
        Contract().validate([1, 2, 3])


# ------------------------------------------------------------------------------------------
# malformed contract files


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, 'version = 1\n\n[columns.a]\ndtype = "int\n')
    with pytest.raises(ConfigError) as info:
        Contract.from_file(path)
    assert str(path) in info.value.message
    assert "invalid TOML" in info.value.message
    assert "line 4" in info.value.message
    assert info.value.exit_code == 2


def test_unknown_key_names_file_key_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '[columns.a]\ndtype = "int"\nnulable = false\n')
    with pytest.raises(ConfigError) as info:
        Contract.from_file(path)
    msg = info.value.message
    assert msg.startswith(f"{path} (line 3): unknown key 'nulable' in column 'a'")
    assert info.value.details["key"] == "columns.a.nulable"
    assert "nullable" in (info.value.hint or "")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = _write(tmp_path, 'version = 1\nstrict = true\n[columns.a]\ndtype = "int"\n')
    with pytest.raises(ConfigError, match=r"\(line 2\): unknown key 'strict'"):
        Contract.from_file(path)


@pytest.mark.parametrize(
    ("body", "key", "line"),
    [
        ('dtype = "int"\nnullable = "no"\n', "columns.a.nullable", 3),
        ('dtype = "integer-ish"\n', "columns.a.dtype", 2),
        ('dtype = "int"\nmin = "zero"\n', "columns.a.min", 3),
        ('dtype = "string"\ncategories = "a,b"\n', "columns.a.categories", 3),
        ('dtype = "int"\nmin = 5\nmax = 1\n', "columns.a.min", 3),
        ('dtype = "datetime"\nmax = 5\n', "columns.a.max", 3),
        ("nullable = true\n", "columns.a", 1),
    ],
)
def test_wrong_value_type_names_key(tmp_path: Path, body: str, key: str, line: int) -> None:
    path = _write(tmp_path, "[columns.a]\n" + body)
    with pytest.raises(ConfigError) as info:
        Contract.from_file(path)
    assert info.value.details["key"] == key
    assert info.value.message.startswith(f"{path} (line {line}):")


def test_wrong_top_level_type(tmp_path: Path) -> None:
    path = _write(tmp_path, 'version = "one"\n')
    with pytest.raises(ConfigError, match=r"\(line 1\): 'version' must be an integer"):
        Contract.from_file(path)


def test_missing_contract_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Contract.from_file(tmp_path / "nope.toml")
    assert "does not exist" in info.value.message
    assert "--infer" in (info.value.hint or "")


def test_dtype_aliases_and_iso_bounds_are_accepted() -> None:
    c = Contract.from_toml(
        '[columns.t]\ndtype = "timestamp"\nmin = "2024-01-01T00:00:00"\n'
        '[columns.n]\ndtype = "int64"\n'
    )
    assert c.columns["t"].dtype == "datetime"
    assert c.columns["t"].min == dt.datetime(2024, 1, 1)
    assert c.columns["n"].dtype == "int"


# ------------------------------------------------------------------------------------------
# property: any names and categories survive the TOML file

_text = st.text(min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(_text, min_size=1, max_size=4, unique=True),
    cats=st.lists(_text, min_size=1, max_size=6, unique=True),
    bound=st.floats(allow_nan=False),
)
def test_any_names_and_values_round_trip(names: list[str], cats: list[str], bound: float) -> None:
    columns = {
        n: ColumnSpec(n, "string", nullable=i % 2 == 0, categories=tuple(cats), unique=True)
        for i, n in enumerate(names)
    }
    columns["__num"] = ColumnSpec("__num", "float", min=min(bound, 0.0), max=max(bound, 0.0))
    c = Contract(columns=columns, name=names[0], description=cats[0])
    assert Contract.from_toml(c.to_toml()) == c


def test_zone_aware_datetimes_are_bounded_in_utc(tmp_path: Path) -> None:
    import polars as pl

    df = pd.DataFrame(
        {"t": pd.to_datetime(["2024-01-01T00:00:00+02:00", "2024-06-01T12:00:00+02:00"])}
    )
    a, b = infer_contract(df), infer_contract(pl.from_pandas(df))
    assert a == b
    assert a.columns["t"].min == dt.datetime(2023, 12, 31, 22, 0, tzinfo=dt.UTC)
    assert "min = 2023-12-31T22:00:00Z" in a.to_toml()
    loaded = Contract.from_file(a.to_file(tmp_path / "tz.toml"))
    assert loaded.validate(pl.from_pandas(df)).ok
    later = pd.DataFrame({"t": pd.to_datetime(["2024-06-01T13:00:00+02:00"])})
    [v] = loaded.validate(later).violations
    assert (v.rule, v.count) == ("max", 1)


def test_polars_dates_and_enums() -> None:
    import polars as pl

    frame = pl.DataFrame(
        {
            "d": [dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 2, 1)],
            "e": pl.Series(["a", "b", "a"], dtype=pl.Enum(["a", "b", "c"])),
        }
    )
    c = Contract.from_toml(infer_contract(frame).to_toml())
    assert (c.columns["d"].dtype, c.columns["d"].max) == ("date", dt.date(2024, 2, 1))
    assert c.columns["e"].categories == ("a", "b")
    assert c.validate(frame).ok
    later = frame.with_columns(pl.Series("d", [dt.date(2025, 1, 1)] * 3))
    [v] = c.validate(later).violations
    assert (v.column, v.rule, v.count) == ("d", "max", 3)


@pytest.mark.parametrize("values", [[1, 2, 2, 3], [*range(2000), 1999], [3, 2, 1, 1]])
def test_sorted_ids_with_a_tie_are_duplicates(values: list[int], to_frame: Frame) -> None:
    c = Contract(columns={"id": ColumnSpec("id", "int", nullable=False, unique=True)})
    [v] = c.validate(to_frame(pd.DataFrame({"id": values}))).violations
    assert (v.rule, v.count) == ("unique", 1)
    assert c.validate(to_frame(pd.DataFrame({"id": sorted(set(values))}))).ok


def test_large_frames_take_the_same_rules(to_frame: Frame) -> None:
    # above the small-frame threshold the category check goes through distinct values first
    n = 5000
    df = pd.DataFrame(
        {"c": (["a", "b", None, "c"] * n)[:n], "k": pd.Categorical(["x", "y"] * (n // 2))}
    )
    c = Contract(
        columns={
            "c": ColumnSpec("c", "string", categories=("a", "b", "c")),
            "k": ColumnSpec("k", "string", nullable=False, categories=("x", "y")),
        }
    )
    assert c.validate(to_frame(df)).ok
    df.loc[4321, "c"] = "zz"
    [v] = c.validate(to_frame(df)).violations
    assert (v.column, v.rule, v.count, v.examples) == (
        "c",
        "categories",
        1,
        ({"row": 4321, "value": "zz"},),
    )


@settings(max_examples=40, deadline=None)
@given(
    ints=st.lists(st.one_of(st.none(), st.integers(-5, 5)), min_size=1, max_size=30),
    seed=st.integers(0, 2**16),
)
def test_pandas_and_polars_report_the_same_violations(ints: list[int | None], seed: int) -> None:
    import polars as pl

    rng = np.random.default_rng(seed)
    n = len(ints)
    floats = rng.normal(0, 3, n)
    floats[rng.random(n) < 0.2] = np.nan
    words = rng.choice(["a", "b", "c", None], n).tolist()
    df = pd.DataFrame(
        {"i": pd.array(ints, dtype="Int64"), "f": floats, "s": pd.array(words, dtype="str")}
    )
    c = Contract(
        columns={
            "i": ColumnSpec("i", "int", nullable=False, min=-3, max=3, unique=True),
            "f": ColumnSpec("f", "float", nullable=False, min=-2.0, max=2.0),
            "s": ColumnSpec("s", "string", nullable=True, categories=("a", "b"), unique=True),
        }
    )
    a = c.validate(df).to_dict()
    b = c.validate(pl.from_pandas(df)).to_dict()
    assert a == b
    assert infer_contract(df) == infer_contract(pl.from_pandas(df))
    from modelyard.data.profile import build_profile

    assert build_profile(df, bins=4) == build_profile(pl.from_pandas(df), bins=4)


def test_with_columns_and_report_lookups(contract: Contract, reference: pd.DataFrame) -> None:
    stricter = contract.with_columns(ColumnSpec("age", "int", nullable=False, min=30))
    assert list(stricter.columns) == list(contract.columns)  # replaced in place, order kept
    assert contract.columns["age"].min == 21  # the original is unchanged
    report = stricter.validate(reference.assign(note=1))
    assert [v.count for v in report.by_column("age")] == [1]
    assert [v.column for v in report.by_rule("unexpected_column")] == ["note"]
    assert report.summary() == "customers: 2 violation(s) in 2 column(s) (8 rows checked)"


def test_csv_timestamps_across_a_dst_change_are_one_datetime_column(tmp_path: Path) -> None:
    # pandas refuses mixed offsets without utc=True; the column stayed text, so the inferred
    # contract held it as a string (its timestamps as categories)
    from modelyard.data._frames import read_table

    path = tmp_path / "events.csv"
    path.write_text("ts,x\n2024-03-30T10:00:00+01:00,1\n2024-04-01T10:00:00+02:00,2\n")
    spec = infer_contract(read_table(path)).columns["ts"]
    assert spec.dtype == "datetime"
    assert spec.min == dt.datetime(2024, 3, 30, 9, tzinfo=dt.UTC)
    assert spec.max == dt.datetime(2024, 4, 1, 8, tzinfo=dt.UTC)


# ------------------------------------------------------------------------------------------
# parser loopholes: a bound that turns a rule off, bounds no frame can meet


@pytest.mark.parametrize(
    ("body", "key", "line", "words"),
    [
        ('dtype = "float"\nmin = nan\n', "columns.a.min", 3, "'min' = nan is not a number"),
        ('dtype = "int"\nmax = nan\n', "columns.a.max", 3, "'max' = nan is not a number"),
        ('dtype = "float"\nmin = -nan\nmax = 1.0\n', "columns.a.min", 3, "'min' = nan is"),
    ],
)
def test_a_nan_bound_is_refused(tmp_path: Path, body: str, key: str, line: int, words: str) -> None:
    # NaN compares false with everything, so it would silently switch the range rule off
    path = _write(tmp_path, "[columns.a]\n" + body)
    with pytest.raises(ConfigError) as info:
        Contract.from_file(path)
    assert info.value.details["key"] == key
    assert info.value.message.startswith(f"{path} (line {line}): column 'a': {words}")
    assert "a number, inf or -inf" in info.value.message
    assert info.value.exit_code == 2


def test_a_nan_bound_in_a_dict_is_refused() -> None:
    data = {"columns": {"a": {"dtype": "float", "max": float("nan")}}}
    with pytest.raises(ConfigError, match=r"^contracts/a\.json: column 'a': 'max' = nan") as info:
        Contract.from_dict(data, source="contracts/a.json")
    assert info.value.details["key"] == "columns.a.max"


def test_min_rows_above_max_rows_is_refused(tmp_path: Path) -> None:
    # no frame could ever pass such a contract
    path = _write(
        tmp_path, 'version = 1\nmin_rows = 10\nmax_rows = 5\n[columns.a]\ndtype = "int"\n'
    )
    with pytest.raises(ConfigError) as info:
        Contract.from_file(path)
    assert info.value.details["key"] == "min_rows"
    assert info.value.message == (
        f"{path} (line 2): 'min_rows' = 10 is above 'max_rows' = 5; expected min_rows <= max_rows"
    )
    assert Contract.from_toml("min_rows = 5\nmax_rows = 5\n").min_rows == 5


@pytest.mark.parametrize(
    "body",
    [
        'dtype = "float"\nmin = 1.5\nmax = -2\n',
        'dtype = "float"\nmin = inf\nmax = 10\n',
        'dtype = "date"\nmin = 2024-02-01\nmax = 2024-01-01\n',
        'dtype = "datetime"\nmin = 2024-01-01T00:00:01\nmax = "2024-01-01T00:00:00"\n',
    ],
)
def test_min_above_max_is_refused(tmp_path: Path, body: str) -> None:
    path = _write(tmp_path, "[columns.a]\n" + body)
    with pytest.raises(ConfigError, match=r"\(line 3\): column 'a': min .* is above max") as info:
        Contract.from_file(path)
    assert info.value.details["key"] == "columns.a.min"


def test_infinite_bounds_still_bound(to_frame: Frame) -> None:
    c = Contract.from_toml('[columns.a]\ndtype = "float"\nmin = -inf\nmax = 10.0\n')
    assert (c.columns["a"].min, c.columns["a"].max) == (-np.inf, 10.0)
    assert Contract.from_toml(c.to_toml()) == c
    assert Contract.from_dict(c.to_dict()) == c
    [v] = c.validate(to_frame(pd.DataFrame({"a": [-1e300, 3.0, 11.0]}))).violations
    assert (v.rule, v.count, v.examples) == ("max", 1, ({"row": 2, "value": 11.0},))
    open_ended = Contract.from_toml('[columns.a]\ndtype = "float"\nmin = -inf\nmax = inf\n')
    assert open_ended.validate(to_frame(pd.DataFrame({"a": [-1e300, 1e300]}))).ok


# ------------------------------------------------------------------------------------------
# dates: a contract inferred from Parquet dates meets the same dates read from CSV


def _dates_contract(tmp_path: Path) -> Contract:
    from modelyard.data._frames import read_table

    path = tmp_path / "reference.parquet"
    days = [dt.date(2024, 1, 1), dt.date(2024, 1, 15), None, dt.date(2024, 2, 1)]
    pd.DataFrame({"day": days, "n": [1, 2, 3, 4]}).to_parquet(path)
    contract = infer_contract(read_table(path))
    assert contract.columns["day"].dtype == "date"
    assert (contract.columns["day"].min, contract.columns["day"].max) == (
        dt.date(2024, 1, 1),
        dt.date(2024, 2, 1),
    )
    return contract


def test_a_date_contract_accepts_csv_dates_read_as_midnight_datetimes(
    tmp_path: Path, to_frame: Frame
) -> None:
    from modelyard.data._frames import read_table

    contract = _dates_contract(tmp_path)
    csv = tmp_path / "batch.csv"
    csv.write_text("day,n\n2024-01-01,1\n2024-01-15,2\n,3\n2024-02-01,4\n")
    batch = read_table(csv)
    assert batch["day"].dtype.kind == "M"  # what CSV gives: datetimes at midnight
    assert contract.validate(to_frame(batch)).ok

    # the date bounds still hold on them
    csv.write_text("day,n\n2023-12-31,1\n2024-01-15,2\n2024-03-01,3\n")
    report = contract.validate(to_frame(read_table(csv)))
    got = [(v.column, v.rule, v.count, v.actual) for v in report.violations]
    assert got == [("day", "min", 1, "2023-12-31"), ("day", "max", 1, "2024-03-01")]
    assert report.violations[1].examples[0]["row"] == 2


@pytest.mark.parametrize("suffix", ["", "Z"])
def test_polars_reads_midnight_timestamps_that_meet_a_date_contract(
    tmp_path: Path, suffix: str
) -> None:
    import polars as pl

    contract = _dates_contract(tmp_path)
    csv = tmp_path / "batch.csv"
    csv.write_text(f"day,n\n2024-01-01T00:00:00{suffix},1\n2024-02-01T00:00:00{suffix},2\n")
    frame = pl.read_csv(csv, try_parse_dates=True)
    assert isinstance(frame.schema["day"], pl.Datetime)
    assert contract.validate(frame).ok


def test_a_datetime_with_a_time_of_day_is_still_a_dtype_violation_for_a_date(
    tmp_path: Path, to_frame: Frame
) -> None:
    from modelyard.data._frames import read_table

    contract = _dates_contract(tmp_path)
    csv = tmp_path / "batch.csv"
    csv.write_text(
        "day,n\n2024-01-01 00:00:00,1\n2024-01-02 10:30:00,2\n,3\n2024-01-04 00:00:00.000001,4\n"
    )
    [v] = contract.validate(to_frame(read_table(csv))).violations
    assert (v.column, v.rule, v.count, v.expected, v.actual) == (
        "day",
        "dtype",
        2,
        "date",
        "datetime",
    )
    assert [e["row"] for e in v.examples] == [1, 3]
    assert v.examples[0]["value"].startswith("2024-01-02T10:30:00")
    assert v.message.startswith("column 'day': expected dtype date, got datetime")
    assert "2 value(s) have a time of day" in v.message


def test_midnight_in_another_zone_is_not_a_date(tmp_path: Path, to_frame: Frame) -> None:
    # 2024-01-02T00:00+02:00 is 22:00 UTC on the 1st: which date is meant is not clear
    from modelyard.data._frames import read_table

    contract = _dates_contract(tmp_path)
    csv = tmp_path / "batch.csv"
    csv.write_text("day,n\n2024-01-02T00:00:00+02:00,1\n2024-01-03T00:00:00Z,2\n")
    [v] = contract.validate(to_frame(read_table(csv))).violations
    assert (v.column, v.rule, v.count) == ("day", "dtype", 1)
    assert [e["row"] for e in v.examples] == [0]


# ------------------------------------------------------------------------------------------
# a column of the wrong numeric dtype is still held to its range


def test_floats_in_an_int_column_are_range_checked_too(tmp_path: Path, to_frame: Frame) -> None:
    from modelyard.data._frames import read_table

    path = tmp_path / "contract.toml"
    path.write_text('[columns.n]\ndtype = "int"\nnullable = true\nmin = 0\nmax = 10\n')
    contract = Contract.from_file(path)
    csv = tmp_path / "batch.csv"
    csv.write_text("n\n2.5\n11.0\nNA\n-1\n4\n")
    report = contract.validate(to_frame(read_table(csv)))
    found = [(v.column, v.rule, v.count) for v in report.violations]
    assert found == [("n", "dtype", 4), ("n", "min", 1), ("n", "max", 1)]
    dtype, low, high = report.violations
    assert (dtype.expected, dtype.actual) == ("int", "float")
    assert (low.examples, low.expected, low.actual) == (({"row": 3, "value": -1.0},), 0, -1.0)
    assert (high.examples, high.expected, high.actual) == (({"row": 1, "value": 11.0},), 10, 11.0)
    assert high.message == "column 'n': 1 value(s) above max = 10"


def test_a_wrong_dtype_that_is_not_a_number_is_not_range_checked(to_frame: Frame) -> None:
    # text and booleans have no numeric values to hold to an int range: only the dtype
    c = Contract(columns={"n": ColumnSpec("n", "int", min=0, max=10)})
    for values in (["2", "x", "30"], [True, False, True]):
        [v] = c.validate(to_frame(pd.DataFrame({"n": values}))).violations
        assert v.rule == "dtype"
