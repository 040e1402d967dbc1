"""The credit example: its data generator, contract, pipeline, gate and serving class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from examples.credit import data
from examples.credit.pipeline import CONTRACT_FILE, GATE_FILE, MODEL_NAME, credit_training
from examples.credit.serve import CreditModel, package_signature

from modelyard.data.contract import Contract
from modelyard.errors import PipelineError
from modelyard.evaluate.policy import GatePolicy
from modelyard.evaluate.verdict import GateVerdict


def test_generator_is_seeded_and_has_the_documented_columns() -> None:
    a = data.generate(500, seed=3)
    b = data.generate(500, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == [data.ID, data.TIME, *data.FEATURES, data.TARGET]
    assert a[data.ID].is_unique
    assert a[data.TIME].is_monotonic_increasing
    assert set(a[data.TARGET].unique()) == {0, 1}
    assert 0.05 < a[data.TARGET].mean() < 0.35
    assert not data.generate(500, seed=4).equals(a)


def test_drift_knobs_move_the_data() -> None:
    base = data.generate(4000, seed=0)
    shifted = data.generate(4000, seed=0, shift={"income": -0.5})
    assert shifted["income"].mean() < base["income"].mean() * 0.9
    wide = data.generate(4000, seed=0, scale={"debt_to_income": 2.0})
    assert wide["debt_to_income"].std() > base["debt_to_income"].std() * 1.5
    mix = data.generate(
        4000, seed=0, category_mix={"region": {"north": 1.0, "south": 0, "east": 0, "west": 0}}
    )
    assert set(mix["region"]) == {"north"}
    risky = data.generate(4000, seed=0, risk_shift={"region": {"south": 2.0}})
    south = risky["region"] == "south"
    assert (
        risky.loc[south, data.TARGET].mean()
        > base.loc[base["region"] == "south", data.TARGET].mean()
    )
    noisy = data.generate(4000, seed=0, label_noise=0.5)
    assert abs(noisy[data.TARGET].mean() - 0.5) < 0.05


def test_generator_rejects_unknown_knobs() -> None:
    with pytest.raises(ValueError, match="unknown numeric features \\['salary'\\]"):
        data.generate(10, shift={"salary": 1.0})
    with pytest.raises(ValueError, match="label_noise must be in"):
        data.generate(10, label_noise=0.9)


def test_split_is_by_time() -> None:
    frame = data.generate(1000, seed=1)
    train, test = data.split(frame, 0.25)
    assert len(train) == 750
    assert len(test) == 250
    assert train[data.TIME].max() <= test[data.TIME].min()


@pytest.mark.parametrize("scenario", sorted(data.SCENARIOS))
def test_contract_accepts_every_scenario(scenario: str) -> None:
    frame = data.generate(3000, seed=2, **data.SCENARIOS[scenario])
    assert Contract.from_file(CONTRACT_FILE).validate(frame).ok


def test_contract_names_bad_rows() -> None:
    frame = data.generate(300, seed=2)
    frame.loc[3, "region"] = "atlantis"
    report = Contract.from_file(CONTRACT_FILE).validate(frame)
    assert not report.ok
    assert [(v.column, v.count) for v in report.violations] == [("region", 1)]


def test_gate_policy_file_parses() -> None:
    policy = GatePolicy.from_file(GATE_FILE)
    assert policy.margin is not None
    assert policy.margin.metric == "roc_auc"
    assert [s.name for s in policy.slices][:2] == ["salaried", "self-employed or contract"]


def test_signature_carries_contract_categories() -> None:
    from modelyard.serving._model import normalize_signature

    sig = normalize_signature(package_signature())
    assert sig is not None
    fields = {f["name"]: f for f in sig["fields"]}
    assert list(fields) == data.FEATURES
    assert fields["region"]["categories"] == ["central", "east", "north", "south", "west"]
    assert fields["age"]["type"] == "integer"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the pipeline once (baseline), again (cached), then with a crippled model."""
    from modelyard.config import load_settings
    from modelyard.registry.registry import Registry

    root = tmp_path_factory.mktemp("credit")
    home = root / "home"
    project = root / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.modelyard]\n")
    settings = load_settings(
        start=project,
        home=str(home),
        db_url=f"sqlite:///{home / 'modelyard.db'}",
        artifact_url=str(home / "artifacts"),
    )
    params = {"rows": 3000, "seed": 0}
    first = credit_training.run(settings=settings, **params)
    second = credit_training.run(settings=settings, **params)
    registry = Registry.from_settings(settings)
    before = [(v.version, v.aliases) for v in registry.list_versions(MODEL_NAME)]
    with pytest.raises(PipelineError) as refused:
        credit_training.run(
            settings=settings, drop_features=["debt_to_income", "late_payments_12m"], **params
        )
    after = [(v.version, v.aliases) for v in registry.list_versions(MODEL_NAME)]
    return {
        "first": first,
        "second": second,
        "registry": registry,
        "home": home,
        "refused": refused.value,
        "before": before,
        "after": after,
    }


def test_pipeline_registers_v1_as_production(trained: dict[str, Any]) -> None:
    first = trained["first"]
    assert first.status == "FINISHED"
    assert first.ran == ["load", "validate", "split", "train", "evaluate", "register"]
    assert first.registered == [{"name": MODEL_NAME, "version": 1, "step": "register"}]
    assert first.metrics["roc_auc"] > 0.75
    v1 = trained["registry"].resolve(f"{MODEL_NAME}@production")
    assert v1.version == 1
    verdict = GateVerdict.from_dict(v1.extra["gate"])
    assert verdict.passed
    assert {r.rule for r in verdict.rules} == {
        "output_schema",
        "threshold",
        "margin",
        "slice",
        "latency",
    }
    assert "modelyard.json" in v1.files
    assert v1.contract is not None
    assert v1.contract.to_dict() == Contract.from_file(CONTRACT_FILE).to_dict()
    assert v1.contract_sha256 is not None
    assert v1.profile_sha256 is not None
    assert v1.extra["features"] == data.FEATURES
    assert v1.flavor == "sklearn"
    assert [i["name"] for i in v1.signature["inputs"]] == data.FEATURES
    assert v1.extra["metrics"]["roc_auc"] == pytest.approx(first.metrics["roc_auc"])


def test_rerun_with_nothing_changed_is_all_cached(trained: dict[str, Any]) -> None:
    second = trained["second"]
    assert second.ran == []
    assert len(second.cached) == 6
    assert second.registered[-1]["version"] == 1


def test_worse_model_is_refused_and_no_alias_moves(trained: dict[str, Any]) -> None:
    err = trained["refused"]
    assert "GateFailed: model 'credit-risk': the candidate did not pass the gate" in err.message
    assert "margin roc_auc over production" in err.message
    assert err.details["step"] == "register"
    assert trained["before"] == trained["after"] == [(1, ("production",))]


def test_reference_profile_of_the_version_scores_drift(trained: dict[str, Any]) -> None:
    registry = trained["registry"]
    v1 = registry.resolve(f"{MODEL_NAME}@production")
    profile = v1.reference_profile
    assert profile is not None
    same = profile.score(data.generate(3000, seed=9))
    drifted = profile.score(data.generate(3000, seed=9, **data.SCENARIOS["drifted"]))
    assert "income" in drifted.drifted
    assert len(drifted.drifted) > len(same.drifted)


def test_serving_class_loads_production_and_predicts(trained: dict[str, Any]) -> None:
    model = CreditModel(home=str(trained["home"]))
    model.load()
    assert model.version == "1"
    rows = data.generate(4, seed=5)[data.FEATURES].to_dict(orient="records")
    out = model.predict(rows)
    assert out.shape == (4,)
    assert np.all((out >= 0) & (out <= 1))
    frame_out = model.predict(pd.DataFrame.from_records(rows))
    assert np.allclose(out, frame_out)


@pytest.mark.slow
def test_serving_class_over_http(trained: dict[str, Any]) -> None:
    """`modelyard serve --model examples.credit.serve:CreditModel`, as a user starts it."""
    import json
    import urllib.error
    import urllib.request

    from modelyard.serving import launch

    home = str(trained["home"])
    repo = str(Path(data.__file__).resolve().parents[2])
    handle = launch(
        model_class="examples.credit.serve:CreditModel",
        name="credit-risk",
        workers=1,
        python_path=[repo],
        home=home,
        env={"MODELYARD_HOME": home},
        ready_timeout_s=120,
    )
    try:
        rows = data.generate(3, seed=8)[data.FEATURES].to_dict(orient="records")
        url = f"{handle.url}/v1/models/credit-risk:predict"

        def post(instances: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
            req = urllib.request.Request(
                url,
                data=json.dumps({"instances": instances}).encode(),
                headers={"content-type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read())

        status, body = post(rows)
        assert status == 200
        assert len(body["predictions"]) == 3
        assert all(0 <= p <= 1 for p in body["predictions"])
        rows[1]["employment_type"] = "astronaut"
        status, body = post(rows)
        assert status == 422
        assert (
            "instances[1].employment_type = 'astronaut' is not an allowed category"
            in (body["message"])
        )
    finally:
        assert handle.stop() == 0


def test_readme_python_block_runs(
    trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    readme = Path(data.__file__).with_name("README.md").read_text()
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert '"/tmp/credit"' in block
    exec(block.replace('"/tmp/credit"', repr(str(trained["home"]))), {})
    out = capsys.readouterr().out
    assert out.startswith("gate PASSED")
    assert "roc_auc >= 0.72" in out
