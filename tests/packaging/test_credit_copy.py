"""The credit example runs when copied out of this repository (as a user would start from it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.packaging.conftest import ROOT, modelyard


@pytest.mark.slow
def test_a_copy_of_the_credit_example_runs_on_its_own(tmp_path: Path) -> None:
    copy = tmp_path / "credit"
    shutil.copytree(
        ROOT / "examples" / "credit",
        copy,
        ignore=shutil.ignore_patterns(".modelyard", "__pycache__"),
    )
    first = modelyard("run", "-p", "rows=3000", cwd=copy).stdout
    assert "steps: 6 ran, 0 cached, 0 failed" in first
    assert (copy / ".modelyard" / "modelyard.db").is_file()  # its own home, beside the project
    shown = modelyard("models", "show", "credit-risk", cwd=copy).stdout
    assert "production" in shown
