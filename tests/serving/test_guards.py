"""Who may write labels, which names a server accepts, and what its workers say they serve."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelyard.errors import ServiceUnavailable
from modelyard.serving import ServerHandle, launch

from .conftest import HERE, log_lines


def test_feedback_needs_the_admin_token_when_one_is_set(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    h = server_factory(
        "Linear", home=tmp_path / "home", request_log=True, serving={"admin_token": "adm1n"}
    )
    label = {"request_id": "r-1", "label": 1}
    with httpx.Client(base_url=h.url, timeout=30) as c:
        anyone = c.post("/v1/feedback", json=label)
        assert anyone.status_code == 401
        assert "serving.admin_token" in anyone.json()["message"]
        wrong = c.post("/v1/feedback", json=label, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = c.post("/v1/feedback", json=label, headers={"authorization": "Bearer adm1n"})
        assert ok.status_code == 202, ok.text


def test_a_separate_feedback_token_opens_only_feedback(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    h = server_factory(
        "Linear",
        home=tmp_path / "home",
        request_log=True,
        serving={"admin_token": "adm1n", "feedback_token": "label5"},
    )
    label = {"request_id": "r-1", "label": 1}
    fb = {"authorization": "Bearer label5"}
    with httpx.Client(base_url=h.url, timeout=30) as c:
        refused = c.post("/v1/feedback", json=label)
        assert refused.status_code == 401
        assert "serving.feedback_token" in refused.json()["message"]
        assert c.post("/v1/feedback", json=label, headers=fb).status_code == 202
        admin = c.post("/v1/feedback", json=label, headers={"authorization": "Bearer adm1n"})
        assert admin.status_code == 202  # the admin token opens everything
        assert c.post("/v1/admin/flush", headers=fb).status_code == 401  # not management


def test_a_name_that_escapes_its_folder_is_refused_at_start_up(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "--home", str(tmp_path / "home"), "serve",
         "--model", "models:Linear", "--python-path", str(HERE), "--name", "../../x",
         "--port", "0"],
        capture_output=True, text=True, cwd=tmp_path, check=False, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr[-2000:]
    assert "'../../x' is not a valid name" in run.stderr
    assert "listening" not in run.stderr  # refused before it served anything


def test_a_version_label_that_escapes_its_folder_is_refused_at_start_up(tmp_path: Path) -> None:
    with (tmp_path / "server.log").open("ab") as err, pytest.raises(ServiceUnavailable) as info:
        launch(model_class="models:Linear", python_path=[HERE], version="../v", workers=1,
               request_log=False, cwd=tmp_path, stderr=err)  # fmt: skip
    assert "exited with code 2" in str(info.value)
    log = (tmp_path / "server.log").read_text()
    assert "version label '../v' is not valid" in log
    assert "listening" not in log


def test_workers_log_the_registry_version_they_serve(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    import modelyard.models
    from modelyard.config import load_settings
    from modelyard.registry.registry import Registry

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.modelyard]\n")
    home = tmp_path / "home"
    reg = Registry.from_settings(load_settings(start=project, home=str(home)))
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    for k in (1, 2):
        modelyard.models.register(LinearRegression().fit(x, x[:, 0] * k), reg, name="lr")
    with (tmp_path / "err.log").open("wb") as err:
        h = launch("lr:2", home=home, workers=1, cwd=project, stderr=err, request_log=False)
    try:
        r = httpx.post(f"{h.url}/v1/models/lr:predict", json={"instances": [[1.0, 2.0]]})
        assert r.headers["x-model-version"] == "2"
    finally:
        assert h.stop() == 0
    lines = log_lines(tmp_path / "err.log")
    worker = [line for line in lines if line["msg"] == "worker ready"]
    assert worker
    assert {line["version"] for line in worker} == {"2"}
