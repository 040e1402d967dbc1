"""Explanations stored with a version through the gate path, shown by `modelyard models show`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from modelyard.errors import InvalidInputError
from modelyard.evaluate.explain import Explanation, explain
from modelyard.evaluate.policy import GatePolicy
from modelyard.evaluate.verdict import GateVerdict
from modelyard.monitoring import References
from modelyard.workspace import Workspace

POLICY = GatePolicy(thresholds={"roc_auc": (">=", 0.6)})


def _data(n: int, seed: int) -> pd.DataFrame:
    """``a`` drives the label, ``b`` a little, ``c`` not at all."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (2.0 * x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.3, n) > 0).astype(int)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})


def _cli(settings: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        MODELYARD_HOME=str(settings.resolved_home),
        MODELYARD_DB_URL=settings.resolved_db_url,
        MODELYARD_ARTIFACT_URL=settings.resolved_artifact_url,
    )
    return subprocess.run(
        [sys.executable, "-m", "modelyard.cli", *args],
        cwd=settings.project_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("model", "method"),
    [
        (RandomForestClassifier(n_estimators=20, random_state=0), "shap-tree"),
        (LogisticRegression(), "shap-linear"),
        (KNeighborsClassifier(), "permutation"),
    ],
)
def test_gate_path_stores_and_shows_the_explanation(
    sqlite_settings: Any, model: Any, method: str
) -> None:
    pytest.importorskip("shap")
    train, test = _data(600, 0), _data(300, 1)
    model.fit(train.drop(columns=["y"]), train["y"])
    ws = Workspace.open(sqlite_settings)
    outcome = ws.gate_and_register(
        "risk", model, test, target="y", policy=POLICY, production=None, explain_rows=80
    )
    stored = outcome.version.extra["gate"]["explanation"]
    explanation = Explanation.from_dict(stored)
    assert explanation.error is None
    assert explanation.method == method
    assert explanation.n_rows == 80
    assert explanation.features[0][0] == "a"
    assert {f for f, _ in explanation.features} == {"a", "b", "c"}
    # the gate report shows it, and monitoring's drift verdict weighs features by it
    report = GateVerdict.from_dict(outcome.version.extra["gate"]).render_text()
    assert f"explanation: {method} on 80 rows" in report
    importances = References.of_version(ws.registry.resolve("risk@production")).importances
    assert importances == pytest.approx(explanation.importances)
    assert importances["a"] > importances["c"]

    shown = _cli(sqlite_settings, "models", "show", "risk:1")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    head = lines.index(f"  explanation: {method} on 80 rows (mean |attribution|)")
    assert lines[head + 1].split()[0] == "a"


def test_without_the_extra_the_version_is_registered_with_the_reason(sqlite_settings: Any) -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["shap"] = None  # the `explain` extra is not installed
        from pathlib import Path
        import numpy as np, pandas as pd
        from sklearn.ensemble import RandomForestClassifier
        from modelyard.config import load_settings
        from modelyard.errors import MissingExtraError
        from modelyard.evaluate.explain import explain
        from modelyard.evaluate.policy import GatePolicy
        from modelyard.workspace import Workspace

        rng = np.random.default_rng(0)
        x = rng.normal(size=(400, 2))
        frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] > 0).astype(int)})
        model = RandomForestClassifier(n_estimators=5, random_state=0)
        model.fit(frame[["a", "b"]], frame["y"])
        try:
            explain(model, frame[["a", "b"]])
        except MissingExtraError as exc:
            print("raised:", exc.hint)
        ws = Workspace.open(load_settings(start=Path(sys.argv[1]), home=sys.argv[2]))
        out = ws.gate_and_register(
            "risk", model, frame, target="y", production=None, explain_rows=50,
            policy=GatePolicy(thresholds={"roc_auc": (">=", 0.6)}),
        )
        print("version:", out.version.version)
        print("error:", out.version.extra["gate"]["explanation"]["error"])
        print("importance:", "feature_importance" in out.version.extra)
        """
    )
    s = sqlite_settings
    run = subprocess.run(
        [sys.executable, "-c", script, str(s.project_root), str(s.resolved_home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "raised: pip install 'modelyard[explain]'" in run.stdout
    assert "version: 1" in run.stdout
    assert "error: 'shap' is not installed" in run.stdout
    assert "pip install 'modelyard[explain]'" in run.stdout.split("error:")[1]
    assert "importance: False" in run.stdout

    shown = _cli(sqlite_settings, "models", "show", "risk:1")
    assert shown.returncode == 0, shown.stderr
    assert "explanation: none ('shap' is not installed" in shown.stdout


def test_bad_input_is_named() -> None:
    model = KNeighborsClassifier().fit(_data(50, 0)[["a", "b"]], _data(50, 0)["y"])
    with pytest.raises(InvalidInputError, match="empty frame"):
        explain(model, pd.DataFrame({"a": [], "b": []}))
    with pytest.raises(InvalidInputError, match="needs the labels"):
        explain(model, _data(20, 1)[["a", "b"]])


def test_the_projects_gate_table_turns_explanations_on(tmp_path: Any) -> None:
    """``explain_rows`` in ``[tool.modelyard.gate]``: every gated version gets its explanation."""
    pytest.importorskip("shap")
    from modelyard.config import load_settings

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        "[tool.modelyard]\n[tool.modelyard.gate]\nexplain_rows = 60\n"
        '[tool.modelyard.gate.thresholds]\nroc_auc = ">= 0.6"\n'
    )
    settings = load_settings(start=project, home=str(tmp_path / "home"))
    train, test = _data(600, 0), _data(300, 1)
    model = RandomForestClassifier(n_estimators=20, random_state=0)
    model.fit(train.drop(columns=["y"]), train["y"])
    ws = Workspace.open(settings)
    outcome = ws.gate_and_register("risk", model, test, target="y", production=None)
    stored = Explanation.from_dict(outcome.version.extra["gate"]["explanation"])
    assert (stored.method, stored.n_rows, stored.features[0][0]) == ("shap-tree", 60, "a")
    assert outcome.version.extra["gate"]["policy"]["explain_rows"] == 60
    assert outcome.version.extra["feature_importance"] == pytest.approx(stored.importances)
    report = GateVerdict.from_dict(outcome.version.extra["gate"]).render_text()
    assert "explanation: shap-tree on 60 rows" in report
    shown = _cli(settings, "models", "show", "risk:1")
    assert shown.returncode == 0, shown.stderr
    assert "  explanation: shap-tree on 60 rows (mean |attribution|)" in shown.stdout.splitlines()

    # an explicit 0 turns them off for one call, whatever the table says
    off = ws.gate_and_register("risk", model, test, target="y", production=None, explain_rows=0)
    assert off.version.extra["gate"].get("explanation") is None
    assert "feature_importance" not in off.version.extra


def test_a_bad_explain_rows_in_the_gate_table_is_named(tmp_path: Any) -> None:
    from modelyard.config import load_settings
    from modelyard.errors import ConfigError

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.modelyard.gate]\nexplain_rows = -5\n")
    ws = Workspace.open(load_settings(start=project, home=str(tmp_path / "home")))
    with pytest.raises(ConfigError, match=r"\[tool.modelyard.gate\]: explain_rows must be >= 0"):
        ws.gate_policy()
