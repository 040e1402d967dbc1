"""`modelyard init`: a new project trains, caches, registers and serves at once; bad folders
are refused with nothing written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard.serving import launch
from tests.packaging.conftest import ROOT, clean_env, modelyard


def _quick_start() -> list[str]:
    """The commands of the README's quick start, one per line, comments removed."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quick-start -->\s*```bash\n(.+?)\n```", text, flags=re.S)
    assert block, "the README has a quick start"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The README's quick start, run as written up to `modelyard serve`."""
    where = tmp_path_factory.mktemp("init")
    outputs: list[str] = []
    commands = _quick_start()
    cwd = where
    for command in commands:
        if command.startswith(("modelyard serve", "curl")):
            break
        for part in command.split("&&"):
            words = part.split()
            if words[0] == "cd":
                cwd = cwd / words[1]
                continue
            assert words[0] == "modelyard", command
            outputs.append(modelyard(*words[1:], cwd=cwd).stdout)
    return {"root": cwd, "outputs": outputs, "commands": commands}


def test_init_writes_a_standalone_project(project: dict[str, Any]) -> None:
    root: Path = project["root"]
    assert root.name == "churn"
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".modelyard" not in p.parts)
    for expected in (
        ".gitignore",
        "README.md",
        "contract.toml",
        "example_request.json",
        "pipeline.py",
        "pyproject.toml",
        "tests/test_pipeline.py",
    ):
        assert expected in names
    assert ".modelyard/" in (root / ".gitignore").read_text().splitlines()
    import tomllib

    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["modelyard"]
    assert config["pipeline"]["entrypoint"] == "pipeline:training"
    assert config["pipeline"]["params"]["model_name"] == "churn"
    assert config["gate"]["thresholds"]["roc_auc"] == [">=", 0.95]
    assert {"delivery", "monitor", "packaging", "serving"} <= set(config)
    contract = (root / "contract.toml").read_text()
    assert "[columns.mean_radius]" in contract
    assert "[columns.target]" in contract


def test_run_trains_then_is_fully_cached(project: dict[str, Any]) -> None:
    first, second = (out for out in project["outputs"] if out.startswith("pipeline"))
    assert "steps: 6 ran, 0 cached, 0 failed" in first
    assert "steps: 0 ran, 6 cached, 0 failed" in second
    assert re.search(r"roc_auc=0\.9\d", first)


def test_the_registered_model_serves(project: dict[str, Any]) -> None:
    root: Path = project["root"]
    serve = next(c for c in project["commands"] if c.startswith("modelyard serve"))
    assert serve.split()[2] == "churn@production"
    body = json.loads((root / "example_request.json").read_text())
    with (root / "server.log").open("ab") as log:
        handle = launch("churn@production", cwd=root, env=clean_env(), workers=1, stderr=log)
    try:
        with httpx.Client(base_url=handle.url, timeout=30) as client:
            answer = client.post("/v1/models/churn:predict", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"] == [0]  # the first row is malignant
            assert client.get("/v2/models/churn/ready").status_code == 200
            row = dict(body["instances"][0])
            del row["mean_texture"]
            refused = client.post("/v1/models/churn:predict", json={"instances": [row]})
            assert refused.status_code in (400, 422), refused.text
            assert "mean_texture" in refused.text, refused.text
            # the inferred contract travels with the version: out of its range is refused
            row = {**body["instances"][0], "mean_radius": 1.0}
            refused = client.post("/v1/models/churn:predict", json={"instances": [row]})
            assert refused.status_code == 422, refused.text
            assert "mean_radius = 1.0 is out of range" in refused.text
    finally:
        assert handle.stop() == 0


@pytest.mark.slow
def test_the_project_passes_its_own_tests(project: dict[str, Any]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project["root"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


def test_init_refuses_a_folder_with_files_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    done = modelyard("init", str(target), cwd=tmp_path, check=False)
    assert done.returncode == 5
    assert f"folder {target} is not empty (it holds notes.txt)" in done.stderr
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no staging folder left


def test_init_into_an_empty_folder_and_a_bad_name(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    modelyard("init", "empty", "--name", "fraud", cwd=tmp_path)
    assert "fraud" in (tmp_path / "empty" / "pyproject.toml").read_text()
    done = modelyard("init", "other", "--name", "Not Valid", cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert "project name 'Not Valid' is not valid" in done.stderr
    assert not (tmp_path / "other").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
