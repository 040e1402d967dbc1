"""Every flavor round-trips through a package and predicts the same numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelyard.models as mm
from modelyard.errors import InvalidInputError, UnsafeArtifactError
from tests.models.helpers import Bad, Opaque, Scaler


@pytest.fixture(scope="module")
def iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x, y


def _manifest(path: Path) -> dict[str, Any]:
    return json.loads((path / "modelyard.json").read_text())


def test_sklearn_round_trip(iris: tuple[Any, Any], tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = iris
    clf = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5, random_state=0))
    clf.fit(x, y)
    path = mm.save(clf, tmp_path / "pkg", input_example=x[:5], extra={"auc": 0.9})
    assert path == tmp_path / "pkg"
    manifest = _manifest(path)
    assert manifest["flavor"] == "sklearn"
    assert manifest["name"] == "pkg"
    assert manifest["format_version"] == 1
    assert manifest["extra"] == {"auc": 0.9}
    assert set(manifest["files"]) == {"model.skops"}
    assert not list(path.glob("*.pkl"))
    import sklearn

    assert manifest["libraries"]["scikit-learn"] == sklearn.__version__
    assert manifest["signature"] == {
        "inputs": [{"name": "input", "dtype": "float64", "shape": [-1, 4]}],
        "outputs": [{"name": "output", "dtype": "int64", "shape": [-1]}],
    }
    with pytest.raises(UnsafeArtifactError) as info:  # skops does not trust tree arrays
        mm.load(path)
    assert "trusted=['sklearn.tree._tree.Tree']" in str(info.value)
    assert "out-of-bounds" in str(info.value)  # skops' reason is passed on
    model = mm.load(path, trusted=["sklearn.tree._tree.Tree"])
    assert model.flavor == "sklearn"
    assert model.manifest == manifest
    np.testing.assert_array_equal(model.predict(x), clf.predict(x))
    np.testing.assert_array_equal(model.predict(x[:3].tolist()), clf.predict(x[:3]))
    assert type(model.raw).__name__ == "Pipeline"


def test_sklearn_predict_proba_and_named_columns(iris: tuple[Any, Any], tmp_path: Path) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    x, y = iris
    frame = pd.DataFrame(x, columns=["sl", "sw", "pl", "pw"])
    clf = LogisticRegression(max_iter=500).fit(frame, y)
    path = mm.save(
        clf, tmp_path / "pkg", input_example=frame[:3], flavor_options={"method": "predict_proba"}
    )
    model = mm.load(path)
    assert [i["name"] for i in model.signature["inputs"]] == ["sl", "sw", "pl", "pw"]  # type: ignore[index]
    assert model.signature["outputs"][0]["shape"] == [-1, 3]  # type: ignore[index]
    expected = clf.predict_proba(frame)
    np.testing.assert_allclose(model.predict(frame), expected)
    np.testing.assert_allclose(model.predict(x), expected)  # plain rows get the column names
    rows = frame[:2].to_dict(orient="records")
    np.testing.assert_allclose(model.predict(rows), expected[:2])


def test_sklearn_unknown_method_is_rejected(iris: tuple[Any, Any], tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    x, y = iris
    reg = LinearRegression().fit(x, y)
    with pytest.raises(InvalidInputError, match="predict_proba"):
        mm.save(reg, tmp_path / "pkg", flavor_options={"method": "predict_proba"})
    assert not (tmp_path / "pkg").exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left behind


def test_skops_untrusted_types_are_refused(iris: tuple[Any, Any], tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x, y = iris
    pipe = make_pipeline(
        FunctionTransformer(func="tests.models.helpers.double"), LinearRegression()
    )
    from tests.models.helpers import double

    pipe = make_pipeline(FunctionTransformer(func=double), LinearRegression()).fit(x, y)
    path = mm.save(pipe, tmp_path / "pkg")
    with pytest.raises(UnsafeArtifactError) as info:
        mm.load(path)
    message = str(info.value)
    assert "'tests.models.helpers.double'" in message
    assert "trusted=[" in message
    assert info.value.details["types"] == ["tests.models.helpers.double"]
    with pytest.raises(UnsafeArtifactError):
        mm.load(path, trusted=["some.other.Type"])
    model = mm.load(path, trusted=["tests.models.helpers.double"])
    np.testing.assert_allclose(model.predict(x), pipe.predict(x))
    np.testing.assert_allclose(mm.load(path, trusted=True).predict(x[:2]), pipe.predict(x[:2]))
    # trusting pickles from a source covers its skops types too
    np.testing.assert_allclose(mm.load(path, trust_pickle=True).predict(x[:2]), pipe.predict(x[:2]))


def test_onnx_from_sklearn(iris: tuple[Any, Any], tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = iris
    clf = LogisticRegression(max_iter=500).fit(x, y)
    path = mm.save(clf, tmp_path / "pkg", flavor="onnx", input_example=x[:4])
    manifest = _manifest(path)
    assert manifest["flavor"] == "onnx"
    assert set(manifest["files"]) == {"model.onnx"}
    assert "onnxruntime" in manifest["libraries"]
    model = mm.load(path)
    np.testing.assert_array_equal(model.predict(x), clf.predict(x))
    assert type(model.raw).__name__ == "InferenceSession"
    assert model.signature["inputs"][0]["dtype"] == "float32"  # type: ignore[index]
    assert model.signature["inputs"][0]["shape"] == [-1, 4]  # type: ignore[index]


def test_onnx_from_sklearn_regressor(iris: tuple[Any, Any], tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    x, y = iris
    reg = LinearRegression().fit(x, y)
    model = mm.load(mm.save(reg, tmp_path / "pkg", flavor="onnx", input_example=x[:2]))
    np.testing.assert_allclose(model.predict(x).ravel(), reg.predict(x), rtol=1e-4, atol=1e-4)


def test_onnx_model_proto_with_named_output(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Mul", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor("w", TensorProto.FLOAT, [3], [2.0, 2.0, 2.0])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    batch = np.arange(6, dtype=np.float64).reshape(2, 3)
    path = mm.save(proto, tmp_path / "pkg", input_example=batch, flavor_options={"output": "y"})
    model = mm.load(path)
    np.testing.assert_allclose(model.predict(batch), batch * 2)
    np.testing.assert_allclose(model.predict([[1, 1, 1]]), [[2, 2, 2]])
    assert model.signature == {  # declared by the ONNX graph, not guessed from the example
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 3]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, 3]}],
    }


def test_torch_state_dict_round_trip(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from tests.models.torch_helpers import make_mlp

    net = make_mlp()
    batch = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    path = mm.save(
        net,
        tmp_path / "pkg",
        input_example=batch,
        flavor_options={"init_kwargs": {"n_in": 4, "hidden": 8, "n_out": 3}},
    )
    manifest = _manifest(path)
    assert manifest["flavor_options"]["class"] == "tests.models.torch_helpers:MLP"
    assert manifest["flavor_options"]["format"] == "state_dict"
    assert manifest["libraries"]["torch"] == torch.__version__
    model = mm.load(path)
    with torch.no_grad():
        expected = net(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(model.predict(batch), expected, rtol=1e-6)
    np.testing.assert_allclose(model.predict(batch.tolist()), expected, rtol=1e-6)
    assert not model.raw.training


def test_torch_local_class_is_rejected(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")

    class Local(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return x

    with pytest.raises(InvalidInputError, match="importable module"):
        mm.save(Local(), tmp_path / "pkg")


def test_torch_export_and_torchscript(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import warnings

    from tests.models.torch_helpers import make_mlp

    net = make_mlp()
    example = torch.randn(3, 4)
    batch = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(batch)).numpy()

    program = torch.export.export(
        net, (example,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}}
    )
    exported = mm.save(program, tmp_path / "exported")
    assert _manifest(exported)["flavor_options"]["format"] == "export"
    np.testing.assert_allclose(mm.load(exported).predict(batch), expected, rtol=1e-5)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
        scripted = torch.jit.script(net)
    path = mm.save(scripted, tmp_path / "scripted")
    assert _manifest(path)["flavor_options"]["format"] == "torchscript"
    np.testing.assert_allclose(mm.load(path).predict(batch), expected, rtol=1e-5)


def test_python_flavor(tmp_path: Path) -> None:
    path = mm.save(Scaler(2.0), tmp_path / "pkg", input_example=[[1, 2], [3, 4]])
    manifest = _manifest(path)
    assert manifest["flavor"] == "python"
    assert manifest["flavor_options"]["class"] == "tests.models.helpers:Scaler"
    assert set(manifest["files"]) == {"model/params.json"}
    model = mm.load(path)
    np.testing.assert_allclose(model.predict([[1, 2], [3, 4]]), [6.0, 14.0])
    assert isinstance(model.raw, Scaler)


def test_predict_must_return_one_output_per_row(tmp_path: Path) -> None:
    path = mm.save(Bad(), tmp_path / "pkg")
    with pytest.raises(Exception, match="returned 1 outputs for 3 input rows"):
        mm.load(path).predict(np.zeros((3, 2)))


def test_pickle_needs_trust_to_save_and_to_load(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArtifactError, match="trust_pickle=True"):
        mm.save(Opaque(1.0), tmp_path / "a")
    with pytest.raises(UnsafeArtifactError, match="trust_pickle=True"):
        mm.save(Opaque(1.0), tmp_path / "a", flavor="pickle")
    assert not (tmp_path / "a").exists()
    path = mm.save(Opaque(1.0), tmp_path / "b", trust_pickle=True)
    assert _manifest(path)["flavor"] == "pickle"
    with pytest.raises(UnsafeArtifactError) as info:
        mm.load(path)
    assert "trust_pickle=True" in str(info.value)
    assert "model.pkl" in str(info.value)
    model = mm.load(path, trust_pickle=True)
    np.testing.assert_allclose(model.predict([[1, 2]]), [4.0])


def test_xgboost(iris: tuple[Any, Any], tmp_path: Path) -> None:
    xgb = pytest.importorskip("xgboost")
    x, y = iris
    clf = xgb.XGBClassifier(n_estimators=3).fit(x, y)
    path = mm.save(clf, tmp_path / "pkg")
    assert _manifest(path)["flavor"] == "xgboost"
    np.testing.assert_array_equal(mm.load(path).predict(x), clf.predict(x))


def test_lightgbm(iris: tuple[Any, Any], tmp_path: Path) -> None:
    lgb = pytest.importorskip("lightgbm")
    x, y = iris
    reg = lgb.LGBMRegressor(n_estimators=3, verbose=-1).fit(x, y)
    path = mm.save(reg, tmp_path / "pkg")
    assert _manifest(path)["flavor"] == "lightgbm"
    np.testing.assert_allclose(mm.load(path).predict(x), reg.predict(x))


def test_unknown_flavor_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="sklearn, onnx, torch"):
        mm.save(Scaler(1.0), tmp_path / "pkg", flavor="keras")


def test_torch_integer_inputs_keep_their_dtype(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from tests.models.torch_helpers import Embedder

    net = Embedder(vocab=10, dim=3)
    tokens = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    path = mm.save(
        net,
        tmp_path / "pkg",
        input_example=tokens,
        flavor_options={"init_kwargs": {"vocab": 10, "dim": 3}},
    )
    assert _manifest(path)["flavor_options"]["dtype"] == "int64"
    model = mm.load(path)
    out = model.predict(tokens.tolist())
    assert out.shape == (2, 3)
    import torch

    with torch.no_grad():
        np.testing.assert_allclose(out, net(torch.from_numpy(tokens)).numpy(), rtol=1e-6)
