"""The README's two commands: the test command is exactly what .ci/run runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    found = {}
    for label, command in re.findall(r"<!-- (\w+)-command -->\s*```(?:bash|sh)\n(.+?)\n```", text):
        found[label] = command.strip()
    return found


def test_readme_has_the_two_commands() -> None:
    commands = _readme_commands()
    assert "modelyard demo" in commands["demo"]
    assert "pytest" in commands["test"]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "set ", "cd ", "export "))
    ]
    assert ci_lines == [_readme_commands()["test"]]


def _python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.+?)\n```", text, flags=re.S)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_blocks_run(index: int, tmp_path: Path) -> None:
    """Each Python block of the README runs as written, in a fresh project."""
    (tmp_path / "pyproject.toml").write_text("[tool.modelyard]\n")
    script = tmp_path / "block.py"
    script.write_text(_python_blocks()[index])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip(), "the block prints what it did"
