"""Model packages: integrity, path safety, version warnings, registry save/load and its cache."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelyard.models as mm
from modelyard.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    NotFoundError,
)
from modelyard.registry.packages import LibraryVersionWarning
from tests.models.helpers import Scaler


@pytest.fixture
def package(tmp_path: Path) -> Path:
    from sklearn.linear_model import LinearRegression

    x = np.arange(20, dtype=float).reshape(10, 2)
    reg = LinearRegression().fit(x, x.sum(axis=1))
    return Path(mm.save(reg, tmp_path / "pkg", name="lin", input_example=x[:2]))


def _edit_manifest(path: Path, **changes: Any) -> dict[str, Any]:
    manifest = json.loads((path / "modelyard.json").read_text())
    manifest.update(changes)
    (path / "modelyard.json").write_text(json.dumps(manifest))
    return manifest


def test_tampered_model_file_raises_integrity_error(package: Path) -> None:
    model_file = package / "model.skops"
    raw = bytearray(model_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    model_file.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError) as info:
        mm.load(package)
    message = str(info.value)
    assert "'model.skops'" in message
    assert json.loads((package / "modelyard.json").read_text())["files"]["model.skops"] in message
    assert "save the model again" in message


def test_missing_file_and_bad_manifest(package: Path, tmp_path: Path) -> None:
    (package / "model.skops").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        mm.load(package)
    with pytest.raises(NotFoundError, match=r"no modelyard\.json"):
        mm.load(tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "modelyard.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        mm.load(tmp_path / "broken")


def test_newer_package_format_is_refused(package: Path) -> None:
    _edit_manifest(package, format_version=99)
    with pytest.raises(InvalidInputError, match="format 99"):
        mm.load(package)


@pytest.mark.parametrize("bad", ["../outside.skops", "/etc/passwd", "a/../../x", "a\\b"])
def test_manifest_paths_cannot_escape_the_package(package: Path, tmp_path: Path, bad: str) -> None:
    outside = tmp_path / "outside.skops"
    outside.write_bytes((package / "model.skops").read_bytes())
    manifest = json.loads((package / "modelyard.json").read_text())
    manifest["files"][bad] = manifest["files"]["model.skops"]
    manifest["flavor_options"]["model_file"] = bad
    (package / "modelyard.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidNameError, match="package file path"):
        mm.load(package)


def test_flavor_cannot_read_an_unhashed_file(package: Path) -> None:
    (package / "other.skops").write_bytes((package / "model.skops").read_bytes())
    manifest = json.loads((package / "modelyard.json").read_text())
    manifest["flavor_options"]["model_file"] = "other.skops"
    (package / "modelyard.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidInputError, match="not among its hashed files"):
        mm.load(package)


def test_extra_files(tmp_path: Path) -> None:
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    (tmp_path / "contract.toml").write_text("[columns]\n")
    path = mm.save(
        Scaler(1.0),
        tmp_path / "pkg",
        extra_files={"data/vocab.txt": tmp_path / "vocab.txt"},
    )
    assert (path / "extra" / "data" / "vocab.txt").read_text() == "a\nb\n"
    manifest = json.loads((path / "modelyard.json").read_text())
    assert "extra/data/vocab.txt" in manifest["files"]
    path2 = mm.save(Scaler(1.0), tmp_path / "pkg2", extra_files=[tmp_path / "contract.toml"])
    assert (path2 / "extra" / "contract.toml").is_file()
    for bad in ("../escape.txt", "/abs.txt", "a//b"):
        with pytest.raises(InvalidNameError):
            mm.save(Scaler(1.0), tmp_path / "bad", extra_files={bad: tmp_path / "vocab.txt"})
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "bad").exists()
    with pytest.raises(NotFoundError, match=r"nope\.txt"):
        mm.save(Scaler(1.0), tmp_path / "bad", extra_files=[tmp_path / "nope.txt"])


def test_save_refuses_a_non_empty_folder(package: Path, tmp_path: Path) -> None:
    with pytest.raises(ConflictError, match="not an empty folder"):
        mm.save(Scaler(1.0), package)
    (tmp_path / "empty").mkdir()
    assert mm.save(Scaler(1.0), tmp_path / "empty") == tmp_path / "empty"
    assert (tmp_path / "empty" / "modelyard.json").is_file()


def test_library_version_mismatch_warns_and_logs(
    package: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sklearn

    manifest = json.loads((package / "modelyard.json").read_text())
    manifest["libraries"]["scikit-learn"] = "0.24.0"
    (package / "modelyard.json").write_text(json.dumps(manifest))
    with (
        caplog.at_level(logging.WARNING, logger="modelyard"),
        pytest.warns(LibraryVersionWarning) as record,
    ):
        model = mm.load(package)
    assert len(record) == 1
    text = str(record[0].message)
    assert "scikit-learn 0.24.0" in text
    assert f"scikit-learn {sklearn.__version__} is installed" in text
    assert record[0].filename == __file__  # points at the caller's load()
    logged = [r for r in caplog.records if getattr(r, "library", None) == "scikit-learn"]
    assert len(logged) == 1
    assert logged[0].saved_version == "0.24.0"  # type: ignore[attr-defined]
    assert logged[0].installed_version == sklearn.__version__  # type: ignore[attr-defined]
    np.testing.assert_allclose(model.predict([[1.0, 2.0]]), [3.0])


def test_python_version_mismatch_warns(package: Path) -> None:
    manifest = json.loads((package / "modelyard.json").read_text())
    manifest["libraries"]["python"] = "3.6.15"
    (package / "modelyard.json").write_text(json.dumps(manifest))
    with pytest.warns(LibraryVersionWarning, match=r"python 3\.6\.15"):
        mm.load(package)


def test_same_versions_do_not_warn(package: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mm.load(package)


def test_signature_argument_is_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="signature"):
        mm.save(Scaler(1.0), tmp_path / "pkg", signature={"x": 1})
    with pytest.raises(InvalidInputError, match="JSON-able"):
        mm.save(Scaler(1.0), tmp_path / "pkg", signature={"inputs": [{"name": object()}]})
    contract = {"fields": [{"name": "age", "type": "int", "min": 0}]}
    path = mm.save(Scaler(1.0), tmp_path / "contract", signature=contract)
    assert mm.load(path).signature == contract
    sig = mm.infer_signature(np.zeros((2, 3), dtype=np.float32), np.zeros(2))
    path = mm.save(Scaler(1.0), tmp_path / "pkg", signature=sig)
    assert mm.load(path).signature == {
        "inputs": [{"name": "input", "dtype": "float32", "shape": [-1, 3]}],
        "outputs": [{"name": "output", "dtype": "float64", "shape": [-1]}],
    }


# ------------------------------------------------------------------------ registry
@pytest.fixture
def registry(tmp_path: Path) -> Any:
    from modelyard.registry.registry import Registry
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.store.db import MetadataStore

    return Registry(
        MetadataStore.open(f"sqlite:///{tmp_path / 'meta.db'}"),
        ArtifactStore.open(tmp_path / "artifacts"),
        user="tester",
    )


def test_save_to_registry_and_load_by_alias(registry: Any, tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    x = np.arange(20, dtype=float).reshape(10, 2)
    reg = LinearRegression().fit(x, x[:, 0] * 3)
    version = mm.register(
        reg, registry, name="lin", input_example=x[:2], aliases=["production"], extra={"r2": 1.0}
    )
    assert version.name == "lin"
    assert version.version == 1
    assert version.flavor == "sklearn"
    assert version.aliases == ("production",)
    assert version.extra == {"r2": 1.0}
    assert set(version.files) == {"modelyard.json", "model.skops"}
    assert version.signature["inputs"][0]["shape"] == [-1, 2]

    cache = tmp_path / "cache"
    for ref in ("models:/lin@production", "lin@production", "lin:1", "models:/lin/1"):
        model = mm.load(ref, registry=registry, cache_dir=cache)
        assert model.version is not None
        assert model.version.version == 1
        np.testing.assert_allclose(model.predict(x), reg.predict(x))
    assert [p.name for p in cache.iterdir()] == [version.manifest_sha256]
    assert model.path == cache / version.manifest_sha256

    # a second version moves the alias; the cache keeps both packages side by side
    v2 = mm.register(Scaler(2.0), registry, name="lin")
    registry.set_alias("lin", "production", 2)
    model = mm.load("lin@production", registry=registry, cache_dir=cache)
    assert model.flavor == "python"
    assert v2.manifest_sha256 != version.manifest_sha256
    assert len(list(cache.iterdir())) == 2


def test_registry_cache_is_verified_and_healed(
    registry: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    version = mm.register(Scaler(3.0), registry, name="scaler")
    cache = tmp_path / "cache"
    model = mm.load("scaler:1", registry=registry, cache_dir=cache)
    params = model.path / "model" / "params.json"
    params.write_text('{"factor": 100.0}')  # tampered cache: noticed, downloaded again
    with caplog.at_level(logging.WARNING, logger="modelyard"):
        again = mm.load("scaler:1", registry=registry, cache_dir=cache)
    assert any("failed verification" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(again.predict([[1.0, 1.0]]), [6.0])
    assert json.loads(params.read_text()) == {"factor": 3.0}
    # a damaged cached manifest is noticed too
    (cache / version.manifest_sha256 / "modelyard.json").write_text("{}")
    params.unlink()
    again = mm.load("scaler:1", registry=registry, cache_dir=cache)
    np.testing.assert_allclose(again.predict([[1.0, 1.0]]), [6.0])
    # but bytes changed in the artifact store itself are an error, never served
    sha = version.files["model/params.json"]
    obj = Path(registry.artifact_store.uri(sha).removeprefix("file://"))
    obj.write_text('{"factor": 100.0}')
    params.unlink()
    with pytest.raises(IntegrityError, match=sha):
        mm.load("scaler:1", registry=registry, cache_dir=cache)


def test_save_writes_folders_and_points_at_register(registry: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"modelyard\.models\.register\(model, registry"):
        mm.save(Scaler(1.0), registry)
    with pytest.raises(InvalidInputError, match="not a folder path"):
        mm.save(Scaler(1.0), "registry:scaler")
    with pytest.raises(NotFoundError):
        mm.load("nope@production", registry=registry, cache_dir=tmp_path / "cache")


def test_registry_target_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.modelyard]\nhome = ".my"\n')
    monkeypatch.chdir(project)
    version = mm.register(Scaler(1.5), name="scaler")
    assert version.version == 1
    model = mm.load("models:/scaler/1")
    assert model.path.is_relative_to(project / ".my" / "cache" / "packages")
    np.testing.assert_allclose(model.predict([[2.0, 0.0]]), [3.0])


def test_local_path_wins_over_registry_syntax(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mm.save(Scaler(1.0), tmp_path / "a@b")
    assert mm.load("a@b").flavor == "python"
    assert os.path.isdir("a@b")


def test_a_loaded_model_can_be_saved_again(package: Path, tmp_path: Path) -> None:
    loaded = mm.load(package)
    again = mm.load(mm.save(loaded, tmp_path / "copy"))
    assert again.flavor == "sklearn"
    np.testing.assert_allclose(again.predict([[1.0, 2.0]]), loaded.predict([[1.0, 2.0]]))


def test_infer_signature_of_frames_and_records() -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "age": [1, 2],
            "city": pd.Series(["a", "b"], dtype="category"),
            "name": ["x", "y"],
            "score": [0.5, 1.5],
        }
    )
    sig = mm.infer_signature(frame, np.array([0, 1]))
    assert sig["inputs"] == [
        {"name": "age", "dtype": "int64", "shape": [-1]},
        {"name": "city", "dtype": "str", "shape": [-1]},
        {"name": "name", "dtype": "str", "shape": [-1]},
        {"name": "score", "dtype": "float64", "shape": [-1]},
    ]
    assert sig["outputs"] == [{"name": "output", "dtype": "int64", "shape": [-1]}]
    records = mm.infer_signature([{"a": 1.0, "b": 2}], None)
    assert records == {
        "inputs": [
            {"name": "a", "dtype": "float64", "shape": [-1]},
            {"name": "b", "dtype": "int64", "shape": [-1]},
        ],
        "outputs": [],
    }
    tensors = mm.infer_signature({"ids": np.zeros((2, 5), dtype=np.int32)})
    assert tensors["inputs"] == [{"name": "ids", "dtype": "int32", "shape": [-1, 5]}]
