"""The Workspace: one root over the stores; verified fetches; contracts and profiles of versions;
the gate policy of ``[tool.modelyard.gate]``; gate-and-register (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

import modelyard
from modelyard import models
from modelyard.config import load_settings
from modelyard.data.contract import infer_contract
from modelyard.data.profile import build_profile
from modelyard.errors import (
    ConfigError,
    GateFailed,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)
from modelyard.workspace import Workspace


def _frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] + x[:, 1] > 0).astype(int)})


def _constant(label: int, frame: pd.DataFrame) -> DummyClassifier:
    model = DummyClassifier(strategy="constant", constant=label)
    return model.fit(frame[["a", "b"]], frame["y"])


def test_top_level_exports_are_lazy_and_the_same_objects() -> None:
    from modelyard.registry.registry import Registry

    assert modelyard.Workspace is Workspace
    assert modelyard.Registry is Registry
    assert {"Workspace", "Registry"} <= set(modelyard.__all__)


def test_resolve_every_ref_form_and_fetch_a_verified_package(settings: Any) -> None:
    ws = Workspace.open(settings)
    frame = _frame()
    v1 = models.register(_constant(0, frame), ws.registry, name="churn", aliases=["production"])
    v2 = models.register(_constant(1, frame), ws.registry, name="churn")
    assert ws.resolve("churn").version == v2.version
    assert ws.resolve("churn@production").version == v1.version
    assert ws.resolve("churn:1").version == v1.version
    with pytest.raises(NotFoundError, match="no alias 'shadow'"):
        ws.resolve("churn@shadow")

    folder = ws.fetch("churn@production")
    assert folder == settings.resolved_home / "cache" / "packages" / v1.manifest_sha256
    loaded = models.load(folder)
    assert loaded.predict(frame[["a", "b"]].head(3)).tolist() == [0, 0, 0]
    assert ws.fetch(v1) == folder  # a ModelVersion works as well as a ref


def test_fetch_refuses_a_tampered_cache_and_fetches_the_registered_bytes_again(
    settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9 item 9: the cached model file replaced and its hash rewritten in the cached
    manifest: the manifest no longer matches the metadata store, so the copy is not used."""
    ws = Workspace.open(settings)
    frame = _frame()
    version = models.register(_constant(0, frame), ws.registry, name="churn")
    folder = ws.fetch("churn:1")

    # an attacker (or a bad sync) swaps in another model and fixes up the cached manifest
    other = models.save(_constant(1, frame), tmp_path / "other", name="churn")
    manifest = json.loads((folder / "modelyard.json").read_text())
    for rel in manifest["files"]:
        (folder / rel).write_bytes((other / rel).read_bytes())
    manifest["files"] = json.loads((other / "modelyard.json").read_text())["files"]
    (folder / "modelyard.json").write_text(json.dumps(manifest))
    assert models.load(folder).predict(frame[["a", "b"]].head(2)).tolist() == [1, 1]

    with caplog.at_level(logging.WARNING, logger="modelyard"):
        again = ws.fetch("churn:1")
    assert again == folder
    assert any("failed verification" in r.getMessage() for r in caplog.records)
    assert models.load(again).predict(frame[["a", "b"]].head(2)).tolist() == [0, 0]
    assert (again / "modelyard.json").read_bytes() == ws.artifact_store.get_bytes(
        version.manifest_sha256
    )

    # bytes changed in the artifact store itself are refused, never cached or served
    model_file = next(p for p in version.files if p != "modelyard.json")
    obj = Path(ws.artifact_store.uri(version.files[model_file]).removeprefix("file://"))
    obj.write_bytes(b"not the model")
    (folder / model_file).unlink()
    with pytest.raises(IntegrityError, match=version.files[model_file]):
        ws.fetch("churn:1")


def test_contract_and_profile_are_part_of_the_version(settings: Any) -> None:
    ws = Workspace.open(settings)
    frame = _frame()
    contract = infer_contract(frame[["a", "b"]], name="churn")
    profile = build_profile(frame[["a", "b"]])
    version = models.register(
        _constant(0, frame), ws.registry, name="churn", contract=contract, profile=profile
    )
    for got in (version, ws.resolve("churn:1"), ws.registry.list_versions("churn")[0]):
        assert got.contract is not None
        assert got.contract.to_dict() == contract.to_dict()
        assert got.reference_profile is not None
        assert got.reference_profile.to_dict() == profile.to_dict()
    body = ws.resolve("churn:1").to_dict()
    assert body["contract_sha256"] == version.contract_sha256
    assert "store" not in body
    json.dumps(body)

    # without them, there is nothing to read; a wrong type is refused naming the argument
    plain = models.register(_constant(0, frame), ws.registry, name="plain")
    assert plain.contract is None
    assert plain.reference_profile is None
    with pytest.raises(InvalidInputError, match="contract= is a dict"):
        ws.registry.register_version(
            "plain",
            ws.fetch(plain),
            contract={"columns": []},  # type: ignore[arg-type]
        )

    # the stored contract is hash-checked when read back
    obj = Path(ws.artifact_store.uri(version.contract_sha256 or "").removeprefix("file://"))
    obj.write_bytes(b'{"columns": []}')
    with pytest.raises(IntegrityError):
        _ = ws.resolve("churn:1").contract


def test_gate_table_in_pyproject_builds_the_policy(tmp_path: Path) -> None:
    """The documented [tool.modelyard.gate] table used to fail every load_settings()."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        "[tool.modelyard]\n"
        "[tool.modelyard.gate]\n"
        "slice_tolerance = 0.05\n"
        'alias = "staging"\n'
        "[tool.modelyard.gate.thresholds]\n"
        'roc_auc = [">=", 0.75]\n'
        'accuracy = ">= 0.6"\n'
        "[tool.modelyard.gate.margin]\n"
        'metric = "roc_auc"\n'
        "min_delta = -0.01\n"
        "[[tool.modelyard.gate.slices]]\n"
        'name = "north"\n'
        'column = "region"\n'
        'equals = "north"\n'
    )
    settings = load_settings(start=project, home=str(tmp_path / "home"))
    assert settings.gate.alias == "staging"
    policy = Workspace.open(settings).gate_policy()
    assert policy.thresholds == {"roc_auc": (">=", 0.75), "accuracy": (">=", 0.6)}
    assert policy.margin is not None
    assert policy.margin.min_delta == -0.01
    assert [s.name for s in policy.slices] == ["north"]
    assert policy.alias == "staging"
    assert policy.slice_tolerance == 0.05
    assert settings.source_of("gate.alias").startswith(str(project / "pyproject.toml"))


def test_bad_gate_table_names_the_table_and_key(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[tool.modelyard.gate]\nthresholds = {roc_auc = [">=", 0.7]}\nmargn = 1\n'
    )
    with pytest.raises(ConfigError, match="margn"):
        load_settings(start=project)
    (project / "pyproject.toml").write_text(
        '[tool.modelyard.gate]\nthresholds = {no_such_metric = [">=", 0.7]}\n'
    )
    settings = load_settings(start=project, home=str(tmp_path / "home"))
    with pytest.raises(ConfigError, match=r"\[tool\.modelyard\.gate\].*no_such_metric"):
        Workspace.open(settings).gate_policy()


def test_gate_and_register_stores_verdict_contract_and_profile(settings: Any) -> None:
    import msgspec

    gate = msgspec.convert({"thresholds": {"roc_auc": [">=", 0.8]}}, type(settings.gate))
    ws = Workspace.open(msgspec.structs.replace(settings, gate=gate))
    train, test = _frame(600, 0), _frame(300, 1)
    model = LogisticRegression().fit(train[["a", "b"]], train["y"])
    contract = infer_contract(train[["a", "b"]])
    outcome = ws.gate_and_register(
        "scorer",
        model,
        test,
        target="y",
        contract=contract,
        profile=build_profile(train[["a", "b"]]),
    )
    assert outcome.alias == "production"
    stored = ws.resolve("scorer@production")
    assert stored.extra is not None
    assert stored.extra["gate"]["policy"]["thresholds"] == {"roc_auc": [">=", 0.8]}
    assert stored.contract is not None
    assert stored.contract.to_dict() == contract.to_dict()
    assert stored.reference_profile is not None

    # the settings' policy refuses a model no better than chance: nothing registered
    with pytest.raises(GateFailed, match=r"roc_auc >= 0\.8"):
        ws.gate_and_register("scorer", _constant(1, train), test, target="y")
    assert [v.version for v in ws.registry.list_versions("scorer")] == [1]


def test_gate_and_register_takes_every_option_of_evaluate_and_register() -> None:
    """Workspace.gate_and_register passes RegisterOptions on as **options: its keys are
    evaluate_and_register's keyword parameters (but the policy the Workspace defaults)."""
    import inspect

    from modelyard.evaluate.register import RegisterOptions, evaluate_and_register

    params = inspect.signature(evaluate_and_register).parameters.values()
    keywords = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(RegisterOptions.__annotations__) == keywords - {"policy"}


# ---------------------------------------------------------------- the active workspace
def test_the_fluent_api_logs_to_the_workspace_set_active(settings: Any) -> None:
    from modelyard.tracking import fluent

    ws = Workspace.open(settings)
    modelyard.set_workspace(ws)
    try:
        assert modelyard.get_workspace() is ws
        assert fluent.get_client() is ws.tracking
        with modelyard.start_run(experiment="active", run_name="r") as run:
            modelyard.log_metric("loss", 0.5)
        stored = ws.tracking.get_run(run.id)
        assert stored.metrics["loss"] == 0.5
        assert stored.experiment == "active"
    finally:
        modelyard.set_workspace(None)
    assert fluent._client is None  # the next fluent call opens the project's workspace again


def test_the_fluent_api_without_a_workspace_says_how_to_set_one() -> None:
    """tracking/ reads no settings: with no client and no factory (nobody above wired it) the
    fluent API refuses with the call to make, instead of opening stores on its own."""
    from modelyard.tracking import fluent

    saved = (fluent._client, fluent._client_factory)
    fluent.set_client(None)
    fluent.set_client_factory(None)
    try:
        with pytest.raises(ConfigError, match="no tracking client") as info:
            fluent.get_client()
        assert "modelyard.set_workspace" in (info.value.hint or "")
    finally:
        fluent.set_client_factory(saved[1])
        fluent.set_client(saved[0])


def test_a_script_s_fluent_calls_open_the_project_s_workspace(tmp_path: Path) -> None:
    """The default: `import modelyard; modelyard.start_run()` in a project logs to its stores."""
    import os
    import subprocess
    import sys

    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.modelyard]\nhome = "home"\n')
    code = (
        "import modelyard\n"
        "with modelyard.start_run(run_name='scripted') as run:\n"
        "    modelyard.log_param('p', 1)\n"
        "ws = modelyard.get_workspace()\n"
        "assert ws.tracking.get_run(run.id).params == {'p': '1'}, ws.tracking.get_run(run.id)\n"
        "print(ws.settings.project_root.name)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "proj"
    assert (project / "home").is_dir()
