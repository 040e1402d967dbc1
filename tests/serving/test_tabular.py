"""A tabular scikit-learn classifier served with its version's data contract, as v1 and v2
clients call it: JSON objects, one FP64 [N, C] tensor, one tensor per column, probabilities."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelyard.serving import ServerHandle, launch

from .conftest import HERE


@pytest.fixture(scope="module")
def cancer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerHandle, Any, Any]]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import modelyard.models
    from modelyard.config import load_settings
    from modelyard.data.contract import infer_contract
    from modelyard.registry.registry import Registry

    tmp = tmp_path_factory.mktemp("cancer")
    project = tmp / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.modelyard]\n")
    frame = load_breast_cancer(as_frame=True).frame
    frame = frame.rename(columns=lambda c: str(c).replace(" ", "_"))
    x, y = frame.drop(columns=["target"]), frame["target"]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    contract = infer_contract(x, name="cancer")
    reg = Registry.from_settings(load_settings(start=project, home=str(tmp / "home")))
    modelyard.models.register(
        model, reg, name="cancer", input_example=x.head(2), contract=contract, aliases=["prod"]
    )
    with (tmp / "server.log").open("ab") as err:
        h = launch("cancer@prod", home=tmp / "home", workers=1, cwd=project, stderr=err)
    yield h, model, x
    assert h.stop() == 0


def _matrix(rows: Any) -> dict[str, Any]:
    values = rows.to_numpy(dtype=np.float64)
    return {"inputs": [{"name": "input-0", "shape": list(values.shape), "datatype": "FP64",
                        "data": values.reshape(-1).tolist()}]}  # fmt: skip


def _columns(rows: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].tolist()}
            for c in rows.columns
        ]
    }


def test_a_value_outside_the_contract_range_is_refused_naming_field_and_range(
    cancer: tuple[ServerHandle, Any, Any],
) -> None:
    h, _, x = cancer
    row = x.iloc[0].to_dict()
    lo, hi = x["mean_radius"].min(), x["mean_radius"].max()
    r = httpx.post(
        f"{h.url}/v1/models/cancer:predict", json={"instances": [{**row, "mean_radius": -500}]}
    )
    assert r.status_code == 422, r.text
    message = r.json()["message"]
    assert "instances[0].mean_radius = -500" in message
    assert f"{lo} <= value <= {hi}" in message
    assert r.json()["details"]["field"] == "instances[0].mean_radius"
    # the same check on the tensor forms a v2 client sends
    bad = x.head(2).copy()
    bad.loc[bad.index[1], "mean_radius"] = -500.0
    for body in (_matrix(bad), _columns(bad)):
        r = httpx.post(f"{h.url}/v2/models/cancer/infer", json=body)
        assert r.status_code == 422, r.text
        assert "rows[1].mean_radius = -500.0 is out of range" in r.json()["message"]
    missing = httpx.post(
        f"{h.url}/v1/models/cancer:predict", json={"instances": [{**row, "mean_radius": None}]}
    )
    assert missing.status_code == 400
    assert "instances[0].mean_radius is missing" in missing.json()["message"]


def test_v2_clients_send_one_matrix_or_one_tensor_per_column(
    cancer: tuple[ServerHandle, Any, Any],
) -> None:
    h, model, x = cancer
    rows = x.iloc[10:13]
    want = model.predict(rows).tolist()
    objects = httpx.post(
        f"{h.url}/v1/models/cancer:predict", json={"instances": rows.to_dict("records")}
    )
    assert objects.json()["predictions"] == want
    for body in (_matrix(rows), _columns(rows)):
        r = httpx.post(f"{h.url}/v2/models/cancer/infer", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == want
    short = _matrix(rows)
    short["inputs"][0]["data"] = short["inputs"][0]["data"][:-1]
    r = httpx.post(f"{h.url}/v2/models/cancer/infer", json=short)
    assert r.status_code == 400
    assert r.json()["message"] == "inputs[0].data has 89 values; shape [3, 30] needs 90"
    partial = _columns(rows)
    partial["inputs"] = partial["inputs"][1:]
    r = httpx.post(f"{h.url}/v2/models/cancer/infer", json=partial)
    assert r.status_code == 400
    assert "no tensor for the columns ['mean_radius']" in r.json()["message"]


def test_metadata_advertises_the_columns_and_the_probabilities(
    cancer: tuple[ServerHandle, Any, Any],
) -> None:
    h, _, x = cancer
    meta = httpx.get(f"{h.url}/v2/models/cancer").json()
    assert [i["name"] for i in meta["inputs"]] == list(x.columns)
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    assert meta["outputs"] == [
        {"name": "output", "datatype": "INT64", "shape": [-1]},
        {"name": "proba", "datatype": "FP64", "shape": [-1, 2], "parameters": {"classes": [0, 1]}},
    ]


def test_classifier_probabilities_are_one_output_away(
    cancer: tuple[ServerHandle, Any, Any],
) -> None:
    h, model, x = cancer
    rows = x.iloc[:4]
    want = model.predict_proba(rows)
    body = {**_columns(rows), "outputs": [{"name": "proba"}]}
    r = httpx.post(f"{h.url}/v2/models/cancer/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert (out["name"], out["shape"], out["parameters"]) == ("proba", [4, 2], {"classes": [0, 1]})
    assert np.allclose(np.array(out["data"]).reshape(4, 2), want)
    v1 = httpx.post(
        f"{h.url}/v1/models/cancer:predict",
        json={"instances": rows.to_dict("records"), "outputs": ["proba"]},
    )
    assert np.allclose(np.array(v1.json()["predictions"]), want)
    unknown = httpx.post(
        f"{h.url}/v1/models/cancer:predict",
        json={"instances": rows.to_dict("records"), "outputs": ["proba", "logits"]},
    )
    assert unknown.status_code == 400


def test_a_contract_file_bounds_each_column_of_a_tensor_model(
    tmp_path: Path,
) -> None:
    from modelyard.data.contract import ColumnSpec, Contract

    cols = [ColumnSpec(f"f{i}", "float", nullable=False, min=0.0, max=10.0) for i in range(4)]
    path = Contract(columns={c.name: c for c in cols}).to_file(tmp_path / "contract.toml")
    with (tmp_path / "server.log").open("ab") as err:
        h = launch(model_class="models:Linear", python_path=[HERE], workers=1, contract=path,
                   request_log=False, cwd=tmp_path, stderr=err)  # fmt: skip
    try:
        ok = httpx.post(f"{h.url}/v1/models/linear:predict", json={"instances": [[1, 2, 3, 4]]})
        assert ok.status_code == 200
        r = httpx.post(f"{h.url}/v1/models/linear:predict", json={"instances": [[1, 2, 30, 4]]})
        assert r.status_code == 422
        assert r.json()["message"] == (
            "instances[0][2] (f2) = 30.0 is out of range; expected a finite value, "
            "0.0 <= value <= 10.0"
        )
    finally:
        assert h.stop() == 0
