"""The README's two commands: the test command is exactly what .ci/run runs."""

from __future__ import annotations

import re
from pathlib import Path

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
