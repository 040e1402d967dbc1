"""Settings precedence, sources and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.config import find_project_root, load_settings
from modelyard.errors import ConfigError


def _project(tmp_path: Path, table: str = "") -> Path:
    root = tmp_path / "proj"
    (root / "sub").mkdir(parents=True)
    (root / "pyproject.toml").write_text(f"[project]\nname='x'\n\n[tool.modelyard]\n{table}")
    return root


def test_defaults_put_home_at_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELYARD_HOME", raising=False)
    root = _project(tmp_path)
    s = load_settings(start=root / "sub")
    assert s.project_root == root.resolve()
    assert s.resolved_home == root.resolve() / ".modelyard"
    assert s.resolved_db_url == f"sqlite:///{root.resolve() / '.modelyard' / 'modelyard.db'}"
    assert s.source_of("home") == "default"


def test_precedence_argument_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(
        tmp_path,
        'log_level = "ERROR"\nexperiment = "file"\n'
        "[tool.modelyard.serving]\nport = 7000\nmax_wait_ms = 5\n",
    )
    monkeypatch.setenv("MODELYARD_EXPERIMENT", "env")
    monkeypatch.setenv("MODELYARD_SERVING__PORT", "7100")
    s = load_settings(start=root, log_level="DEBUG")
    assert s.log_level == "DEBUG"
    assert s.source_of("log_level") == "argument"
    assert s.experiment == "env"
    assert s.source_of("experiment") == "env MODELYARD_EXPERIMENT"
    assert s.serving.port == 7100
    assert s.source_of("serving.port") == "env MODELYARD_SERVING__PORT"
    # a nested value the env did not set keeps the file's value and says so
    assert s.serving.max_wait_ms == 5
    assert "pyproject.toml [tool.modelyard]" in s.source_of("serving.max_wait_ms")


def test_pyproject_without_our_table_does_not_count(tmp_path: Path) -> None:
    outer = _project(tmp_path, 'experiment = "outer"\n')
    inner = outer / "sub"
    (inner / "pyproject.toml").write_text("[project]\nname='inner'\n")
    root, cfg = find_project_root(inner)
    assert root == outer.resolve()
    assert cfg == outer.resolve() / "pyproject.toml"


def test_relative_home_in_file_is_relative_to_project_root(tmp_path: Path) -> None:
    root = _project(tmp_path, 'home = "state"\n')
    s = load_settings(start=root / "sub")
    assert s.resolved_home == root.resolve() / "state"


def test_bad_value_names_key_and_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path)
    monkeypatch.setenv("MODELYARD_SERVING__PORT", "eighty")
    with pytest.raises(ConfigError) as info:
        load_settings(start=root)
    assert "serving.port" in info.value.message
    assert "MODELYARD_SERVING__PORT" in info.value.message
    assert "modelyard config show" in (info.value.hint or "")


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    root = _project(tmp_path, "no_such_setting = 1\n")
    with pytest.raises(ConfigError, match="no_such_setting"):
        load_settings(start=root)


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.modelyard\n")
    with pytest.raises(ConfigError, match=r"pyproject\.toml"):
        load_settings(start=root)


def test_secret_is_not_shown(tmp_path: Path) -> None:
    root = _project(tmp_path)
    s = load_settings(start=root, serving={"admin_token": "hunter2"})
    assert "hunter2" not in repr(s)
    assert s.serving.admin_token is not None
    assert s.serving.admin_token.get_secret_value() == "hunter2"
