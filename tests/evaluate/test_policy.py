from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelyard.errors import ConfigError, InvalidInputError
from modelyard.evaluate.policy import GatePolicy, Margin, OutputSchema
from modelyard.evaluate.slices import Slice, parse_slices


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"region": ["n", "s", "n", "e"], "age": [18, 30, 45, 70]})


def test_slice_forms_select_rows(frame: pd.DataFrame) -> None:
    assert Slice("n", column="region", equals="n").mask(frame).tolist() == [1, 0, 1, 0]
    assert Slice("ne", column="region", isin=("n", "e")).mask(frame).tolist() == [1, 0, 1, 1]
    assert Slice("mid", column="age", between=(30, 70)).mask(frame).tolist() == [0, 1, 1, 0]
    assert Slice("old", column="age", between=(45, None)).mask(frame).tolist() == [0, 0, 1, 1]
    old = Slice("fn", where=lambda df: df["age"] > 40)
    assert old.mask(frame).tolist() == [0, 0, 1, 1]


def test_slice_errors_name_the_slice_and_column(frame: pd.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match="slice 'x' reads column 'income'") as info:
        Slice("x", column="income", equals=1).mask(frame)
    assert "region, age" in (info.value.hint or "")
    with pytest.raises(InvalidInputError, match="exactly one of"):
        Slice("y", column="age", equals=1, between=(0, 1))
    with pytest.raises(InvalidInputError, match="where\\(\\) must return 4 booleans"):
        Slice("z", where=lambda df: np.ones(2, dtype=bool)).mask(frame)


def test_parse_slices_mapping_and_toml_forms(frame: pd.DataFrame) -> None:
    slices = parse_slices(
        {
            "north": ("region", "==", "n"),
            "young": ("age", "between", (18, 31)),
            "custom": lambda df: df["age"] > 60,
            "table": {"column": "region", "in": ["s"]},
        }
    )
    assert [s.name for s in slices] == ["north", "young", "custom", "table"]
    assert slices[1].mask(frame).tolist() == [1, 1, 0, 0]
    assert slices[3].mask(frame).tolist() == [0, 1, 0, 0]
    toml_form = parse_slices([{"name": "a", "column": "age", "range": [40, 100]}])
    assert toml_form[0].describe() == "40 <= age < 100"
    with pytest.raises(InvalidInputError, match="repeated: \\['a'\\]"):
        parse_slices([Slice("a", column="x", equals=1), Slice("a", column="x", equals=2)])


def test_policy_normalises_loose_forms() -> None:
    p = GatePolicy(
        thresholds={"roc_auc": (">=", 0.75), "log_loss": "<= 0.6"},
        margin={"metric": "roc_auc", "test": "bootstrap"},
        output_schema={"kind": "probability", "n_columns": 2},
        slices={"north": ("region", "==", "n")},
    )
    assert p.thresholds == {"roc_auc": (">=", 0.75), "log_loss": ("<=", 0.6)}
    assert isinstance(p.margin, Margin)
    assert isinstance(p.output_schema, OutputSchema)
    assert p.resolved_slice_metric == "roc_auc"
    d = p.to_dict()
    assert d["margin"]["metric"] == "roc_auc"
    assert d["slices"][0]["condition"] == "region == 'n'"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"thresholds": {"roc_auc": ("=>", 0.7)}}, "op one of >=, >, <=, <"),
        ({"thresholds": {"auc": (">=", 0.7)}}, "unknown metric 'auc'"),
        ({"margin": {"metric": "roc_auc", "test": "mcnemar"}}, "McNemar's test compares"),
        ({"margin": {"metric": "roc_auc", "significance": 0.9}}, "significance must be"),
        ({"thresholds": {"rmse": ("<=", 1.0)}}, "'rmse' is a regression metric"),
        ({"slice_tolerance": -1}, "slice_tolerance must be >= 0"),
        ({"latency_budget_ms": 0}, "latency_budget_ms must be > 0"),
    ],
)
def test_policy_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        GatePolicy(**kwargs)  # type: ignore[arg-type]


GATE_TOML = """
slice_tolerance = 0.03
latency_budget_ms = 50
[thresholds]
roc_auc = [">=", 0.7]
accuracy = ">= 0.6"
[margin]
metric = "roc_auc"
min_delta = -0.01
test = "bootstrap"
n_resamples = 500
[output_schema]
kind = "probability"
[[slices]]
name = "north"
column = "region"
equals = "n"
"""


def test_policy_from_gate_toml_and_pyproject(tmp_path: Path) -> None:
    gate = tmp_path / "gate.toml"
    gate.write_text(GATE_TOML)
    p = GatePolicy.from_file(gate)
    assert p.thresholds["accuracy"] == (">=", 0.6)
    assert p.margin is not None
    assert p.margin.min_delta == -0.01
    assert p.margin.n_resamples == 500
    assert p.slices[0].equals == "n"
    assert p.latency_budget_ms == 50
    pyproject = tmp_path / "pyproject.toml"
    body = GATE_TOML.replace("[thresholds]", "[tool.modelyard.gate.thresholds]")
    body = body.replace("[margin]", "[tool.modelyard.gate.margin]")
    body = body.replace("[output_schema]", "[tool.modelyard.gate.output_schema]")
    body = body.replace("[[slices]]", "[[tool.modelyard.gate.slices]]")
    head, _, rest = body.partition("[tool")
    pyproject.write_text("[tool.modelyard.gate]\n" + head + "[tool" + rest)
    assert GatePolicy.from_file(pyproject) == p


def test_policy_file_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "gate.toml"
    bad.write_text("treshold = 1\n")
    with pytest.raises(ConfigError, match="unknown gate keys \\['treshold'\\]") as info:
        GatePolicy.from_file(bad)
    assert str(bad) in info.value.message
    bad.write_text("[thresholds]\nroc_auc = 0.7\n")
    with pytest.raises(ConfigError, match="threshold for 'roc_auc'"):
        GatePolicy.from_file(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        GatePolicy.from_file(tmp_path / "missing.toml")
    py = tmp_path / "pyproject.toml"
    py.write_text("[tool.modelyard]\n")
    with pytest.raises(ConfigError, match=r"no \[tool.modelyard.gate\] table"):
        GatePolicy.from_file(py)


def test_mcnemar_refuses_a_non_inferiority_margin() -> None:
    # its p-value tests "no difference": with min_delta < 0 a candidate exactly as accurate
    # as production (no discordant pairs, p = 1) was refused every time
    with pytest.raises(InvalidInputError, match="non-inferiority") as info:
        Margin("accuracy", min_delta=-0.01, test="mcnemar")
    assert "bootstrap" in (info.value.hint or "")
    with pytest.raises(ConfigError, match="non-inferiority"):
        GatePolicy.from_mapping(
            {"margin": {"metric": "accuracy", "min_delta": -0.01, "test": "mcnemar"}},
            source="gate.toml",
        )
    assert Margin("accuracy", min_delta=0.0, test="mcnemar").min_delta == 0.0
