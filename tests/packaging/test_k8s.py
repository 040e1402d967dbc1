"""`modelyard k8s`: manifests that kubernetes-validate and the CRD schemas accept, carrying the
project's serving, delivery and packaging settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from modelyard.serving import launch
from tests.packaging.conftest import clean_env, modelyard, registered_project, schemas_dir

SETTINGS = """
[tool.modelyard.serving]
max_body_bytes = 33554432
grace_s = 20
timeout_s = 45

[tool.modelyard.delivery]
steps = [10, 50, 100]
interval_s = 45

[tool.modelyard.packaging]
image = "registry.example.com/ml/churn"
replicas = 3
host = "churn.example.com"
"""
CRDS = {
    "Rollout": "argoproj.io_v1alpha1_Rollout.json",
    "AnalysisTemplate": "argoproj.io_v1alpha1_AnalysisTemplate.json",
    "HTTPRoute": "gateway.networking.k8s.io_v1_HTTPRoute.json",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registered_project(tmp_path_factory.mktemp("k8s") / "churn", pyproject_extra=SETTINGS)


def _objects(project: Path, *args: str) -> dict[str, dict[str, Any]]:
    stream = modelyard("k8s", "churn@production", *args, cwd=project).stdout
    return {doc["kind"]: doc for doc in yaml.safe_load_all(stream)}


@pytest.fixture(scope="module")
def objects(project: Path) -> dict[str, dict[str, Any]]:
    return _objects(project)


def _closed(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` wherever it lists properties and does not
    keep unknown fields: the API server prunes unknown fields silently, so a misspelt field
    would be lost without an error; here it fails."""
    if isinstance(schema, dict):
        out = {key: _closed(value) for key, value in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


def _crd_errors(obj: dict[str, Any]) -> list[str]:
    import jsonschema

    folder = schemas_dir()
    if folder is None:
        pytest.skip("no shared/schemas beside the checkout (CI has a copy)")
    schema = _closed(json.loads((folder / CRDS[obj["kind"]]).read_text()))
    validator = jsonschema.Draft4Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]


def test_every_object_validates(objects: dict[str, dict[str, Any]]) -> None:
    import kubernetes_validate

    assert set(objects) == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Ingress",
        "Rollout",
        "AnalysisTemplate",
    }
    for kind, obj in objects.items():
        if kind in CRDS:
            assert _crd_errors(obj) == [], kind
        else:
            kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_a_misspelt_field_is_caught(objects: dict[str, dict[str, Any]]) -> None:
    """The validation above can fail: a field the API would drop is an error."""
    import kubernetes_validate

    rollout = json.loads(json.dumps(objects["Rollout"]))
    rollout["spec"]["strategy"]["canary"]["steps"][0]["setWieght"] = 5
    assert any("setWieght" in e for e in _crd_errors(rollout))
    deployment = json.loads(json.dumps(objects["Deployment"]))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 5
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.30.0", strict=True)


def test_the_deployment_carries_the_settings(objects: dict[str, dict[str, Any]]) -> None:
    pod = objects["Deployment"]["spec"]["template"]
    assert pod["metadata"]["labels"]["modelyard.dev/version"] == "1"
    spec = pod["spec"]
    (server,) = spec["containers"]
    (fetch,) = spec["initContainers"]
    assert server["image"] == fetch["image"] == "registry.example.com/ml/churn:1.2.0"
    assert fetch["args"] == ["fetch", "churn:1", "--out", "/models/current"]
    assert server["args"][:2] == ["serve", "/models/current"]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert server["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    # SIGKILL only after the drain delay and the 20 s grace of the settings
    from modelyard.config import ServingSettings
    from modelyard.packaging.k8s import DEFAULT_DRAIN_DELAY_S

    drain_s = getattr(ServingSettings(), "drain_delay_s", DEFAULT_DRAIN_DELAY_S)
    assert spec["terminationGracePeriodSeconds"] > drain_s + 20
    assert "nvidia.com/gpu" not in server["resources"]["limits"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert objects["Deployment"]["spec"]["replicas"] == 3
    assert objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["kind"] == "Rollout"
    ingress = objects["Ingress"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "33554432"
    assert ingress["spec"]["rules"][0]["host"] == "churn.example.com"


def test_the_rollout_has_the_delivery_steps(objects: dict[str, dict[str, Any]]) -> None:
    steps = objects["Rollout"]["spec"]["strategy"]["canary"]["steps"]
    kinds = [next(iter(step)) for step in steps]
    assert kinds == ["setWeight", "pause", "analysis"] * 2 + ["setWeight"]
    assert [s["setWeight"] for s in steps if "setWeight" in s] == [10, 50, 100]
    assert steps[1]["pause"] == {"duration": "45s"}
    assert objects["Rollout"]["spec"]["workloadRef"]["name"] == "churn"
    template = objects["AnalysisTemplate"]
    assert steps[2]["analysis"]["templates"] == [{"templateName": template["metadata"]["name"]}]
    job = template["spec"]["metrics"][0]["provider"]["job"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    assert container["args"][:2] == ["analyze", "churn"]
    assert "--prometheus" in container["args"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_gpu_and_gateway_api(project: Path) -> None:
    import kubernetes_validate

    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text() + 'route = "gateway"\ngateway = "public"\n'
    )
    try:
        objects = _objects(project, "--gpu", "--no-rollout")
    finally:
        text = (project / "pyproject.toml").read_text()
        (project / "pyproject.toml").write_text(text.replace('route = "gateway"\n', ""))
    assert "Rollout" not in objects
    assert "Ingress" not in objects
    route = objects["HTTPRoute"]
    assert _crd_errors(route) == []
    assert route["spec"]["parentRefs"] == [{"name": "public"}]
    assert objects["ClientSettingsPolicy"]["spec"]["body"]["maxSize"] == "33554432"
    assert objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    server = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    kubernetes_validate.validate(objects["Deployment"], "1.30.0", strict=True)


def test_a_model_image_is_mounted_instead_of_fetched(project: Path) -> None:
    import kubernetes_validate

    objects = _objects(project, "--model-image", "registry.example.com/ml/churn-model:v1")
    spec = objects["Deployment"]["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    models = next(v for v in spec["volumes"] if v["name"] == "models")
    assert models["image"]["reference"] == "registry.example.com/ml/churn-model:v1"
    assert spec["containers"][0]["args"][:2] == ["serve", "/models/model"]
    kubernetes_validate.validate(objects["Deployment"], "1.33.0", strict=True)


def test_the_pod_commands_fetch_and_serve_on_the_probed_paths(
    project: Path, objects: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The init container's and the server's arguments, run as written: the probes answer."""
    spec = objects["Deployment"]["spec"]["template"]["spec"]
    fetch = spec["initContainers"][0]["args"]
    folder = tmp_path / "models" / "current"
    modelyard(*[str(folder) if a == "/models/current" else a for a in fetch], cwd=project)
    server = spec["containers"][0]
    name = server["args"][server["args"].index("--name") + 1]
    handle = launch(folder, name=name, cwd=project, env=clean_env(), workers=1, request_log=False)
    try:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = server[probe]["httpGet"]["path"]
            assert httpx.get(handle.url + path, timeout=10).status_code == 200, path
    finally:
        assert handle.stop() == 0


def test_out_folder_is_written_once_and_refused_with_other_files(
    project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "k8s"
    modelyard("k8s", "churn@production", "--out", str(out), cwd=project)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "rollout.yaml" in first
    modelyard("k8s", "churn@production", "--out", str(out), cwd=project)  # regenerate: same
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    (out / "mine.yaml").write_text("keep: me\n")
    done = modelyard("k8s", "churn@production", "--out", str(out), cwd=project, check=False)
    assert done.returncode == 5
    assert "is not empty (it holds" in done.stderr
    assert (out / "mine.yaml").read_text() == "keep: me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k8s"]


def test_unknown_model_alias_or_no_project(project: Path, tmp_path: Path) -> None:
    done = modelyard("k8s", "churn@canary", cwd=project, check=False)
    assert done.returncode == 4
    assert "has no alias 'canary'" in done.stderr
    done = modelyard("k8s", "fraud@production", cwd=project, check=False)
    assert done.returncode == 4
    assert "fraud" in done.stderr
    (tmp_path / ".git").mkdir()  # a repository without [tool.modelyard]
    done = modelyard("k8s", "churn@production", cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert "needs a modelyard project" in done.stderr
    assert "modelyard init" in done.stderr
