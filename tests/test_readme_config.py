"""The README's configuration section: its TOML examples are settings modelyard accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelyard.config import load_settings

ROOT = Path(__file__).resolve().parents[1]


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Configuration\n", 1)[1].split("\n## ", 1)[0]


def _toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.+?)\n```", _section(), flags=re.S)


@pytest.mark.parametrize("index", range(len(_toml_blocks())))
def test_each_toml_block_loads(index: int, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(_toml_blocks()[index])
    settings = load_settings(start=tmp_path)  # an unknown key or a bad value raises
    assert any("pyproject.toml" in source for source in settings.sources().values())


def test_the_s3_compatible_endpoint_reaches_storage_options(tmp_path: Path) -> None:
    block = next(b for b in _toml_blocks() if "storage_options" in b)
    (tmp_path / "pyproject.toml").write_text(block)
    settings = load_settings(start=tmp_path)
    assert settings.storage_options["endpoint_url"].startswith("http://")
    assert settings.resolved_artifact_url.startswith("s3://")


def test_the_section_says_how_to_install_extras_and_prepare_postgres() -> None:
    section = _section()
    assert "-c\n  requirements/constraints.txt" in section or (
        "-c requirements/constraints.txt" in section
    )
    assert (ROOT / "requirements" / "constraints.txt").is_file()
    assert "modelyard db upgrade" in section
