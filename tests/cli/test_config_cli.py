"""`modelyard config show`: every value, where it came from, and secrets masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.cli import main
from modelyard.cli.state import state


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with a serving table in its pyproject.toml, the CLI pointed at it."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        "[tool.modelyard]\nexperiment = 'from-file'\n\n[tool.modelyard.serving]\nport = 7000\n"
    )
    monkeypatch.chdir(root)
    monkeypatch.setenv("MODELYARD_SERVING__ADMIN_TOKEN", "hunter2")
    # the CLI caches its settings per process: start each test from a clean state
    monkeypatch.setattr(state, "_settings", None)
    monkeypatch.setattr(state, "overrides", {})
    return root


def test_show_text_masks_the_secret(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    lines = {line.split()[0]: line.split() for line in out.splitlines()}
    assert lines["serving.admin_token"][1:] == [
        "**********",
        "(env",
        "MODELYARD_SERVING__ADMIN_TOKEN)",
    ]
    assert lines["serving.port"][1] == "7000"
    assert lines["experiment"][1] == "from-file"
    assert lines["project_root"][1] == str(project.resolve())


def test_show_json_masks_the_secret(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--json"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    values = json.loads(out)["values"]
    assert values["serving.admin_token"] == {
        "value": "**********",
        "source": "env MODELYARD_SERVING__ADMIN_TOKEN",
    }
    assert values["serving.port"]["value"] == 7000
    assert values["home"] == {"value": None, "source": "default"}


def test_bad_setting_exits_2_naming_key_and_source(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELYARD_SERVING__PORT", "70000")
    assert main(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert "serving.port = '70000' (from env MODELYARD_SERVING__PORT)" in err
    assert "modelyard config show" in err
