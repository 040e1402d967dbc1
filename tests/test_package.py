"""The package surface: lazy public names, light imports, a fast CLI start."""

from __future__ import annotations

import json
import subprocess
import sys

import modelyard

HEAVY = (
    "sqlalchemy",
    "pandas",
    "numpy",
    "torch",
    "ray",
    "starlette",
    "uvicorn",
    "sklearn",
    "pyarrow",
    "polars",
    "fsspec",
    "alembic",
    "scipy",
    "matplotlib",
    "onnxruntime",
)


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {m.split(".")[0] for m in json.loads(out.splitlines()[-1])}


def test_import_modelyard_pulls_in_nothing_heavy() -> None:
    loaded = _modules_after("import modelyard")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert "pydantic" not in loaded


def test_cli_help_path_pulls_in_nothing_heavy() -> None:
    loaded = _modules_after("from modelyard.cli.app import app")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_help_runs_and_lists_the_command_groups() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "--help"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for group in ("config", "db", "runs", "models", "check", "run", "serve", "demo"):
        assert f" {group} " in out or f" {group}\n" in out, group


def test_every_public_name_resolves() -> None:
    assert len(modelyard.__all__) == len(set(modelyard.__all__))
    for name in modelyard.__all__:
        assert getattr(modelyard, name) is not None, name
