"""evaluate_and_register against a real registry (SQLite file and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from modelyard.errors import GateFailed, InvalidNameError, NotFoundError
from modelyard.evaluate.policy import GatePolicy
from modelyard.evaluate.register import evaluate_and_register, refusals
from modelyard.evaluate.verdict import GateVerdict
from modelyard.registry.registry import Registry


def _data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + 0.7 * x[:, 1] + rng.normal(0, 0.8, n) > 0).astype(int)
    return pd.DataFrame(
        {"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "group": rng.integers(0, 2, n), "y": y}
    )


def _fit(frame: pd.DataFrame, columns: list[str]) -> Any:
    """A real scikit-learn pipeline that reads only ``columns`` of the frame."""
    model = make_pipeline(
        ColumnTransformer([("keep", "passthrough", columns)]), LogisticRegression()
    )
    return model.fit(frame.drop(columns=["y"]), frame["y"])


POLICY = GatePolicy(
    thresholds={"roc_auc": (">=", 0.6)},
    margin={"metric": "roc_auc", "min_delta": -0.01, "n_resamples": 300},
    slices={"g0": ("group", "==", 0)},
    slice_tolerance=0.05,
)


def test_first_pass_becomes_production_then_candidate_then_refusal(settings: Any) -> None:
    registry = Registry.from_settings(settings)
    train, test = _data(1500, 0), _data(800, 1)
    good = _fit(train, ["a", "b"])
    first = evaluate_and_register(
        registry, "scorer", good, test, policy=POLICY, target="y",
        extra={"note": "first"},
    )  # fmt: skip
    assert first.alias == "production"
    assert first.version.version == 1
    assert "production" in first.version.aliases
    stored = GateVerdict.from_dict(first.version.extra["gate"])
    assert stored.passed
    assert first.version.extra["note"] == "first"
    assert first.version.flavor == "sklearn"
    assert [r.status for r in stored.rules if r.rule == "margin"] == ["skip"]
    history = registry.alias_history("scorer", "production")
    assert (history[-1].to_version, history[-1].action) == (1, "set")
    assert (history[-1].reason or "").startswith("gate passed")

    # the same model again is not worse than production: candidate
    second = evaluate_and_register(
        registry, "scorer", _fit(train, ["a", "b"]), test, policy=POLICY, target="y"
    )
    assert second.alias == "candidate"
    assert second.version.version == 2
    assert second.verdict.production_version == 1

    # a model missing the strongest feature is refused; nothing moves
    weak = _fit(train, ["c"])
    with pytest.raises(GateFailed, match="did not pass the gate") as info:
        evaluate_and_register(registry, "scorer", weak, test, policy=POLICY, target="y")
    assert "roc_auc >= 0.6" in info.value.message
    assert "margin roc_auc over production" in info.value.message
    verdict = info.value.details["verdict"]
    assert verdict["passed"] is False
    assert verdict["production_version"] == 1
    assert info.value.exit_code == 10
    kept = refusals(registry, "scorer")
    assert len(kept) == 1
    assert kept[0].to_dict() == verdict
    assert info.value.details["verdict_file"].startswith("gate-refusals/scorer/")
    assert [v.version for v in registry.list_versions("scorer")] == [1, 2]
    assert registry.resolve("scorer@production").version == 1
    assert registry.resolve("scorer@candidate").version == 2


def test_first_model_stays_candidate_when_policy_says_so(settings: Any) -> None:
    registry = Registry.from_settings(settings)
    policy = GatePolicy(thresholds={"roc_auc": (">=", 0.6)}, allow_first_production=False)
    out = evaluate_and_register(
        registry, "cautious", _fit(_data(500, 0), ["a", "b"]), _data(300, 1),
        policy=policy, target="y",
    )  # fmt: skip
    assert out.alias == "candidate"
    with pytest.raises(NotFoundError):
        registry.resolve("cautious@production")


def test_a_first_model_below_threshold_registers_nothing(sqlite_settings: Any) -> None:
    registry = Registry.from_settings(sqlite_settings)
    with pytest.raises(GateFailed):
        evaluate_and_register(
            registry, "never", _fit(_data(500, 0), ["c"]), _data(300, 1),
            policy=POLICY, target="y",
        )  # fmt: skip
    assert "never" not in [m.name for m in registry.list_models()]


def test_judging_without_a_baseline_never_replaces_production(sqlite_settings: Any) -> None:
    # production=None skips the comparison; it must not promote the candidate over the
    # production version that exists
    registry = Registry.from_settings(sqlite_settings)
    policy = GatePolicy(thresholds={"roc_auc": (">=", 0.4)})
    train, test = _data(800, 0), _data(400, 1)
    first = evaluate_and_register(
        registry, "kept", _fit(train, ["a", "b"]), test, policy=policy, target="y"
    )
    assert first.alias == "production"
    second = evaluate_and_register(
        registry, "kept", _fit(train, ["c"]), test, policy=policy, target="y", production=None
    )
    assert second.alias == "candidate"
    assert registry.resolve("kept@production").version == 1
    assert registry.resolve("kept@candidate").version == 2


def test_a_passing_candidate_is_registered_with_its_alias_in_one_step(
    sqlite_settings: Any,
) -> None:
    registry = Registry.from_settings(sqlite_settings)
    policy = GatePolicy(thresholds={"roc_auc": (">=", 0.6)})
    out = evaluate_and_register(
        registry, "atomic", _fit(_data(500, 0), ["a", "b"]), _data(300, 1),
        policy=policy, target="y", reason="nightly retrain",
    )  # fmt: skip
    stored = registry.get_version("atomic", 1)
    assert stored.aliases == ("production",)
    assert GateVerdict.from_dict(stored.extra["gate"]).passed
    assert out.version == stored
    [event] = registry.alias_history("atomic", "production")
    assert (event.from_version, event.to_version, event.action) == (None, 1, "set")
    assert event.reason == "nightly retrain"  # in the history, in the same transaction


def test_an_alias_the_registry_refuses_registers_nothing(sqlite_settings: Any) -> None:
    # "latest" is reserved by the registry: the alias step fails, and it must not leave a
    # version behind without its alias
    registry = Registry.from_settings(sqlite_settings)
    policy = GatePolicy(thresholds={"roc_auc": (">=", 0.6)}, alias="latest")
    train, test = _data(500, 0), _data(300, 1)
    evaluate_and_register(
        registry, "orphan", _fit(train, ["a", "b"]), test, policy=policy, target="y"
    )  # production did not exist yet: the first pass becomes production
    with pytest.raises(InvalidNameError, match="alias 'latest' is reserved"):
        evaluate_and_register(
            registry, "orphan", _fit(train, ["a", "b"]), test, policy=policy, target="y"
        )
    assert [v.version for v in registry.list_versions("orphan")] == [1]
    assert registry.get_model("orphan").latest_version == 1
    assert registry.get_model("orphan").aliases == {"production": 1}
