"""`modelyard sweep` from the command line: output, JSON, resuming, the runs it leaves, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelyard.cli import main
from tests.sweep.conftest import MODEL_PIPELINE, Project

pytest.importorskip("optuna")


@pytest.fixture
def cli_project(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """The project, with the CLI pointed at its stores from its folder."""
    settings = project.settings()
    monkeypatch.setenv("MODELYARD_HOME", str(settings.resolved_home))
    monkeypatch.setenv("MODELYARD_DB_URL", settings.resolved_db_url)
    monkeypatch.setenv("MODELYARD_ARTIFACT_URL", settings.resolved_artifact_url)
    monkeypatch.chdir(project.root)
    return project


def _json(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def test_sweep_prints_trials_and_the_shared_steps(
    cli_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    mod = cli_project.module()
    args = ["sweep", f"{mod.__name__}:train", "--space", "C=float:0.1:4", "--space",
            "depth=int:1:5", "-s", "kind=choice:a,b", "--trials", "4", "--metric", "score",
            "--sampler", "random", "--seed", "0", "--parallel", "2"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    trial_lines = [line for line in out if line.startswith("trial")]
    assert len(trial_lines) == 4
    assert "ran: load, features, fit" in trial_lines[0]  # the first trial fills the cache
    assert all(line.endswith("ran: fit") for line in trial_lines[1:])
    assert any(line.startswith("best: trial") for line in out)
    steps = {line.split()[0]: line.split()[2] for line in out if "from the cache" in line}
    assert steps == {"load": "1x", "features": "1x", "fit": "4x"}

    # again, by name and without the space: the study continues where it stopped
    assert main(["sweep", f"{mod.__name__}:train", "--study", "train", "-n", "2", "--json"]) == 0
    summary = _json(capsys)
    assert summary["trials"] == 6
    assert summary["new_trials"] == 2
    assert [t["number"] for t in summary["all_trials"]] == list(range(6))
    assert summary["step_runs"] == {"features": 1, "fit": 6, "load": 1}
    assert summary["space"]["kind"] == {"choices": ["a", "b"]}

    # `modelyard runs` shows the study and its trials beneath it
    study = summary["run_id"]
    assert main(["runs", "list", "--filter", f"parent_run_id = '{study}'", "--json"]) == 0
    children = _json(capsys)["runs"]
    assert len(children) == 6
    assert {r["kind"] for r in children} == {"pipeline"}
    assert all("score" in r["metrics"] and "C" in r["params"] for r in children)
    assert main(["runs", "show", study, "--json"]) == 0
    shown = _json(capsys)
    assert shown["tags"]["sweep.trials"] == "6"


def test_sweep_registers_the_best_trial_through_the_gate(
    cli_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    mod = cli_project.module(MODEL_PIPELINE)
    args = ["sweep", f"{mod.__name__}:churn", "-s", "C=float:0.01:10:log", "-n", "2", "-m",
            "accuracy", "--register-best", "churn", "--test-step", "split[1]", "--target", "y",
            "--json"]  # fmt: skip
    assert main(args) == 0
    summary = _json(capsys)
    assert summary["registered"]["name"] == "churn"
    assert summary["registered"]["trial"] == summary["best"]["number"]
    assert main(["models", "show", "churn:1", "--json"]) == 0
    shown = _json(capsys)
    assert shown["run_id"] == summary["best"]["run_id"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-s", "lr=float:0:1", "-m", "score"], ["'lr'", "declares no such parameter"]),
        (["-s", "depth=float:0:1", "-m", "score"], ["declares it an int"]),
        (["-s", "C=float:1", "-m", "score"], ["needs LOW:HIGH"]),
        (["-s", "C=float:0:1"], ["needs the metric"]),
        (["-s", "C=float:0:1", "-m", "score", "--register-best", "m"], ["--test-step"]),
        (["-s", "C=float:0:1", "-m", "score", "--pruner", "hyperband"], ["not median or none"]),
        (["-s", "C=float:0:1", "-m", "score", "--pruner", "median", "--threads"], ["pruning"]),
        (["-s", "C=float:0:1", "-m", "score", "-p", "rows=many"], ["'rows'", "must be a int"]),
    ],
)
def test_bad_sweeps_exit_2_with_the_reason(
    cli_project: Project, capsys: pytest.CaptureFixture[str], args: list[str], words: list[str]
) -> None:
    mod = cli_project.module()
    assert main(["sweep", f"{mod.__name__}:train", *args]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err
