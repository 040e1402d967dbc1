"""`modelyard runs list` and `modelyard runs show`: output, JSON and exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from modelyard.cli import main
from modelyard.cli.state import state
from modelyard.tracking.client import TrackingClient


@pytest.fixture
def runs(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """Three runs in 'exp' (auc 0.5, 0.7, 0.9) and one in 'other'; the CLI pointed at them."""
    monkeypatch.setenv("MODELYARD_HOME", str(settings.resolved_home))
    monkeypatch.setenv("MODELYARD_DB_URL", settings.resolved_db_url)
    monkeypatch.setenv("MODELYARD_ARTIFACT_URL", settings.resolved_artifact_url)
    monkeypatch.chdir(settings.project_root)
    # the CLI caches its settings per process: start each test from a clean state
    monkeypatch.setattr(state, "_settings", None)
    monkeypatch.setattr(state, "overrides", {})
    client = TrackingClient.from_settings(settings)
    ids = []
    for i, auc in enumerate([0.5, 0.7, 0.9]):
        with client.start_run(experiment="exp", name=f"r{i}", capture_lineage=i == 2) as run:
            run.log_param("lr", f"0.{i + 1}")
            run.log_metric("auc", auc)
            run.set_tag("team", "core")
        ids.append(run.id)
    with client.start_run(experiment="other", name="x", capture_lineage=False) as run:
        run.log_metric("loss", 1.0)
    ids.append(run.id)
    try:
        yield ids
    finally:
        client.metadata_store.dispose()


def test_list_table(runs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list", "--experiment", "exp", "--order-by", "metrics.auc DESC"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RUN", "EXPERIMENT", "NAME", "STATUS", "STARTED", "DURATION", "auc"]
    assert [line.split()[2] for line in lines[1:]] == ["r2", "r1", "r0"]
    assert lines[1].split()[0] == runs[2][:12]
    assert lines[1].split()[-1] == "0.9"


def test_list_json_filter_and_pages(runs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["runs", "list", "--filter", "metrics.auc > 0.6", "-o", "metrics.auc", "--json"]
    assert main([*args, "--max", "1"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in first["runs"]] == ["r1"]
    assert first["runs"][0]["params"] == {"lr": "0.2"}
    assert first["runs"][0]["metrics"] == {"auc": 0.7}
    token = first["next_page_token"]
    assert token
    assert main([*args, "--max", "1", "--page-token", token]) == 0
    second = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in second["runs"]] == ["r2"]
    assert second["next_page_token"] is None


def test_list_bad_filter_exits_2_pointing_at_the_token(
    runs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "list", "--filter", "metrics.auc > 'high'"]) == 2
    err = capsys.readouterr().err
    assert "invalid filter at character 14" in err
    assert "metrics.auc is a number" in err
    assert "hint:" in err


def test_list_unknown_experiment_exits_4(
    runs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "list", "-e", "nope"]) == 4
    assert "experiment 'nope' not found" in capsys.readouterr().err


def test_show_text_and_json(runs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    run_id = runs[2]
    assert main(["runs", "show", run_id[:8]]) == 0
    out = capsys.readouterr().out
    assert f"run         {run_id}" in out
    assert "experiment  exp" in out
    assert "status      FINISHED" in out
    assert "params\n  lr  0.3" in out
    assert "metrics (latest)\n  auc  0.9" in out
    assert "tags\n  team  core" in out
    assert "lineage" in out
    assert "python" in out
    assert main(["runs", "show", run_id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["id"] == run_id
    assert data["params"] == {"lr": "0.3"}
    assert data["lineage"]["environment"]["packages"]


def test_show_unknown_run_exits_4(runs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "show", "abcdef12"]) == 4
    assert "no run id starts with 'abcdef12'" in capsys.readouterr().err
