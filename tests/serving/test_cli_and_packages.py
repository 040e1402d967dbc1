"""`modelyard serve` for model packages and registered models; the CLI surface stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelyard.serving import launch


@pytest.fixture
def iris_like() -> tuple[object, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return LogisticRegression().fit(x, y), x


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.modelyard]\n")
    return root


def test_serve_a_package_folder(
    iris_like: tuple[object, np.ndarray], tmp_path: Path, project: Path
) -> None:
    import modelyard.models

    model, x = iris_like
    folder = modelyard.models.save(model, tmp_path / "pkg", name="clf", input_example=x[:5])
    with (tmp_path / "err.log").open("wb") as err:
        h = launch(folder, workers=1, request_log=False, cwd=project, stderr=err)
    try:
        r = httpx.post(f"{h.url}/v1/models/clf:predict", json={"instances": x[:4].tolist()})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == model.predict(x[:4]).tolist()  # type: ignore[attr-defined]
        meta = httpx.get(f"{h.url}/v2/models/clf").json()
        assert meta["inputs"][0]["shape"] == [-1, 3]
        bad = httpx.post(f"{h.url}/v1/models/clf:predict", json={"instances": [[1, 2]]})
        assert bad.status_code == 400
        assert "expected a list of 3 numbers" in bad.json()["message"]
    finally:
        assert h.stop() == 0


def test_serve_a_registered_model_by_alias(
    iris_like: tuple[object, np.ndarray], tmp_path: Path, project: Path
) -> None:
    import modelyard.models
    from modelyard.config import load_settings
    from modelyard.registry.registry import Registry

    model, x = iris_like
    home = tmp_path / "home"
    settings = load_settings(start=project, home=str(home))
    reg = Registry.from_settings(settings)
    mv = modelyard.models.register(
        model, reg, name="churn", input_example=x[:5], aliases=["production"]
    )
    with (tmp_path / "err.log").open("wb") as err:
        h = launch("churn@production", home=home, workers=1, cwd=project, stderr=err)
    try:
        meta = httpx.get(f"{h.url}/v2/models/churn").json()
        assert meta["versions"] == [str(mv.version)]
        r = httpx.post(f"{h.url}/v2/models/churn/versions/{mv.version}/infer", json={
            "inputs": [{"name": meta["inputs"][0]["name"], "shape": [2, 3], "datatype": "FP32",
                        "data": x[:2].reshape(-1).tolist()}]})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == model.predict(x[:2]).tolist()  # type: ignore[attr-defined]
    finally:
        assert h.stop() == 0


def test_serve_never_serves_a_tampered_cached_package(tmp_path: Path, project: Path) -> None:
    """Issue 9 item 9: replacing the cached model file and its hash in the cached manifest used
    to make `modelyard serve NAME:VERSION` serve other bytes as that version."""
    import json

    from sklearn.dummy import DummyClassifier

    import modelyard.models
    from modelyard.config import load_settings
    from modelyard.workspace import Workspace

    x = np.zeros((4, 2))
    zero = DummyClassifier(strategy="constant", constant=0).fit(x, [0, 1, 0, 1])
    one = DummyClassifier(strategy="constant", constant=1).fit(x, [0, 1, 0, 1])
    home = tmp_path / "home"
    ws = Workspace.open(load_settings(start=project, home=str(home)))
    modelyard.models.register(zero, ws.registry, name="churn", input_example=x[:2])
    cached = ws.fetch("churn:1")
    other = modelyard.models.save(one, tmp_path / "other", name="churn", input_example=x[:2])
    for rel in json.loads((other / "modelyard.json").read_text())["files"]:
        (cached / rel).write_bytes((other / rel).read_bytes())
    (cached / "modelyard.json").write_bytes((other / "modelyard.json").read_bytes())

    with (tmp_path / "err.log").open("wb") as err:
        h = launch("churn:1", home=home, workers=1, cwd=project, stderr=err, request_log=False)
    try:
        r = httpx.post(f"{h.url}/v1/models/churn:predict", json={"instances": x[:2].tolist()})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == [0, 0]
    finally:
        assert h.stop() == 0
    assert "failed verification" in (tmp_path / "err.log").read_text()


def test_serve_needs_exactly_one_model(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "serve"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 2
    assert "give either MODEL" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "serve", "--model", "nocolon"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 2
    assert "'module:Class'" in run.stderr


def test_serve_help_lists_the_flags_and_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "import modelyard.serving\n"
        "from modelyard.cli import main\n"
        "try:\n"
        "    main(['serve', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('numpy', 'torch', 'uvloop', 'httptools', 'sqlalchemy', 'pandas')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for flag in ("--max-batch-size", "--max-wait-ms", "--queue-size", "--timeout-s", "--workers"):
        assert flag in run.stdout
    assert "HEAVY []" in run.stdout


def test_torch_model_in_workers_only(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    here = Path(__file__).parent
    with (tmp_path / "err.log").open("wb") as err:
        h = launch(model_class="models:TinyTorch", python_path=[here], workers=1,
                   request_log=False, cwd=tmp_path, stderr=err)  # fmt: skip
    try:
        r = httpx.post(f"{h.url}/v1/models/tinytorch:predict", json={"instances": [[1, 2], [3, 4]]})
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": [[3.0], [7.0]]}
        modules = Path(f"/proc/{h.pid}/maps").read_text()
        assert "libtorch" not in modules, "the front process must not load torch"
    finally:
        assert h.stop() == 0
