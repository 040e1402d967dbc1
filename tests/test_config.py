"""Settings precedence, sources and errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.config import SecretStr, find_project_root, load_settings
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
    assert info.value.message == (
        "invalid setting serving.port = 'eighty' (from env MODELYARD_SERVING__PORT): "
        "Expected `int`, got `str`"
    )


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    root = _project(tmp_path, "no_such_setting = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(start=root)
    assert info.value.message.startswith(
        f"invalid setting no_such_setting (from {root.resolve() / 'pyproject.toml'} "
        "[tool.modelyard]): unknown key; known keys here: project_root, home, "
    )


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


def test_bad_type_in_file_names_key_file_and_expected_type(tmp_path: Path) -> None:
    root = _project(tmp_path, '[tool.modelyard.serving]\nport = "eighty"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(start=root)
    assert info.value.message == (
        f"invalid setting serving.port = 'eighty' (from {root.resolve() / 'pyproject.toml'} "
        "[tool.modelyard]): Expected `int`, got `str`"
    )
    assert info.value.details == {
        "key": "serving.port",
        "source": f"{root.resolve() / 'pyproject.toml'} [tool.modelyard]",
    }


def test_bad_type_in_argument_names_key_and_argument(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings(start=root, serving={"max_batch_size": "many"})
    assert info.value.message == (
        "invalid setting serving.max_batch_size = 'many' (from argument): Expected `int`, got `str`"
    )


def test_bad_item_in_a_list_names_the_item(tmp_path: Path) -> None:
    root = _project(tmp_path, "[tool.modelyard.pipeline]\ndata_sources = ['a.csv', 3]\n")
    with pytest.raises(
        ConfigError, match=r"pipeline\.data_sources\[1\] .*Expected `str`, got `int`"
    ):
        load_settings(start=root)


def test_out_of_bounds_names_the_bound(tmp_path: Path) -> None:
    root = _project(tmp_path, "[tool.modelyard.serving]\nport = 70000\n")
    with pytest.raises(ConfigError) as info:
        load_settings(start=root)
    assert "invalid setting serving.port = 70000 (from " in info.value.message
    assert "pyproject.toml [tool.modelyard]): Expected `int` <= 65535" in info.value.message


def test_bad_choice_lists_the_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path)
    monkeypatch.setenv("MODELYARD_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError) as info:
        load_settings(start=root)
    assert "log_level = 'loud' (from env MODELYARD_LOG_LEVEL)" in info.value.message
    assert "expected one of 'DEBUG', 'INFO', 'WARNING', 'ERROR'" in info.value.message


def test_unknown_key_in_a_file_table_is_an_error(tmp_path: Path) -> None:
    root = _project(tmp_path, "[tool.modelyard.serving]\nprot = 9000\n")
    with pytest.raises(ConfigError) as info:
        load_settings(start=root)
    assert info.value.message.startswith("invalid setting serving.prot (from ")
    assert "unknown key; known keys here: host, port, " in info.value.message


def test_unknown_nested_env_var_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path)
    monkeypatch.setenv("MODELYARD_SERVING__PROT", "9000")
    with pytest.raises(ConfigError, match=r"serving\.prot \(from env MODELYARD_SERVING__PROT\)"):
        load_settings(start=root)


def test_unknown_top_level_env_var_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MODELYARD_TEST_POSTGRES_URL and friends share the prefix without being settings
    root = _project(tmp_path)
    monkeypatch.setenv("MODELYARD_TEST_SOMETHING_ELSE", "x")
    s = load_settings(start=root)
    assert not any("SOMETHING_ELSE" in origin for origin in s.sources().values())


def test_env_names_are_case_insensitive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path)
    monkeypatch.setenv("modelyard_Serving__Port", "9100")
    s = load_settings(start=root)
    assert s.serving.port == 9100
    assert s.source_of("serving.port") == "env MODELYARD_SERVING__PORT"


def test_env_json_for_dicts_lists_and_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path, "[tool.modelyard.serving]\nhost = '0.0.0.0'\n")
    monkeypatch.setenv("MODELYARD_STORAGE_OPTIONS", '{"a": 1}')
    monkeypatch.setenv("MODELYARD_PIPELINE__DATA_SOURCES", '["data/*.csv"]')
    monkeypatch.setenv("MODELYARD_SERVING", '{"port": 9200, "timeout_s": 5}')
    monkeypatch.setenv("MODELYARD_SERVING__TIMEOUT_S", "7")
    s = load_settings(start=root)
    assert s.storage_options == {"a": 1}
    assert s.source_of("storage_options") == "env MODELYARD_STORAGE_OPTIONS"
    assert s.pipeline.data_sources == ["data/*.csv"]
    # a table from JSON merges with the file's table; a deeper name wins over the JSON
    assert (s.serving.host, s.serving.port, s.serving.timeout_s) == ("0.0.0.0", 9200, 7.0)
    assert s.source_of("serving.port") == "env MODELYARD_SERVING"
    assert s.source_of("serving.timeout_s") == "env MODELYARD_SERVING__TIMEOUT_S"


def test_env_key_inside_a_dict_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path)
    monkeypatch.setenv("MODELYARD_STORAGE_OPTIONS__ENDPOINT_URL", "http://127.0.0.1:9000")
    s = load_settings(start=root)
    assert s.storage_options == {"endpoint_url": "http://127.0.0.1:9000"}
    assert s.source_of("storage_options") == "env MODELYARD_STORAGE_OPTIONS"


def test_env_value_that_is_not_json_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path)
    monkeypatch.setenv("MODELYARD_STORAGE_OPTIONS", "anon=true")
    with pytest.raises(ConfigError) as info:
        load_settings(start=root)
    assert info.value.message == (
        "invalid setting storage_options (from env MODELYARD_STORAGE_OPTIONS): "
        "expected JSON, got 'anon=true'"
    )


@pytest.mark.parametrize(("word", "expected"), [("yes", True), ("off", False), ("TRUE", True)])
def test_flag_words_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, word: str, expected: bool
) -> None:
    root = _project(tmp_path)
    monkeypatch.setenv("MODELYARD_GIT_TAGS", word)
    assert load_settings(start=root).git_tags is expected


def test_numbers_from_env_may_carry_surrounding_whitespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a value from a file or a Kubernetes secret often ends with a newline; pydantic took it
    root = _project(tmp_path)
    monkeypatch.setenv("MODELYARD_SERVING__PORT", "9000\n")
    monkeypatch.setenv("MODELYARD_SERVING__MAX_WAIT_MS", " 2.5 ")
    monkeypatch.setenv("MODELYARD_PIPELINE__MAX_PARALLEL", "3 ")
    monkeypatch.setenv("MODELYARD_SERVING__HOST", " 0.0.0.0 ")  # strings are kept as given
    s = load_settings(start=root)
    assert (s.serving.port, s.serving.max_wait_ms, s.pipeline.max_parallel) == (9000, 2.5, 3)
    assert s.serving.host == " 0.0.0.0 "


def test_argument_home_wins_over_a_relative_home_in_the_file(tmp_path: Path) -> None:
    root = _project(tmp_path, 'home = "state"\n')
    s = load_settings(start=root, home=str(tmp_path / "elsewhere"))
    assert s.resolved_home == tmp_path / "elsewhere"
    assert s.source_of("home") == "argument"


def test_secret_is_masked_everywhere_but_get_secret_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path)
    monkeypatch.setenv("MODELYARD_SERVING__ADMIN_TOKEN", "hunter2")
    s = load_settings(start=root)
    token = s.serving.admin_token
    assert isinstance(token, SecretStr)
    assert token.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s) + str(token) + repr(s.serving) + repr(token)
    assert s.source_of("serving.admin_token") == "env MODELYARD_SERVING__ADMIN_TOKEN"


def test_bad_secret_is_not_echoed(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings(start=root, serving={"admin_token": 12345})
    assert "12345" not in str(info.value)
    assert "serving.admin_token = '**********' (from argument)" in info.value.message


def test_importing_config_does_not_import_pydantic() -> None:
    code = (
        "import modelyard.config, sys; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'pydantic_settings'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"
