"""Metrics exposition, typed request/feedback logs written by the workers, admin token."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from modelyard.requestlog import RequestLog
from modelyard.serving import ServerHandle
from modelyard.store.artifacts import ArtifactStore

from .conftest import metric

ROW = [1.0, 2.0, 3.0, 4.0]


def test_metrics_cover_requests_latency_sizes_batches_and_workers(client: httpx.Client) -> None:
    for _ in range(3):
        assert (
            client.post("/v1/models/linear:predict", json={"instances": [ROW]}).status_code == 200
        )
    client.post("/v1/models/linear:predict", json={"instances": [[1]]})
    text = client.get("/metrics").text
    labels = {"model": "linear", "version": "7", "route": "/v1/models/{name}:predict"}
    assert metric(text, "modelyard_requests_total", status="200", **labels) >= 3
    assert metric(text, "modelyard_requests_total", status="400", **labels) >= 1
    assert metric(text, "modelyard_request_duration_seconds_count", **labels) >= 4
    assert metric(text, "modelyard_request_size_bytes_sum", **labels) > 0
    assert metric(text, "modelyard_inference_duration_seconds_count", batch_size="1") >= 1
    assert metric(text, "modelyard_batch_size_count") >= 3
    assert metric(text, "modelyard_workers_alive") == 2
    assert metric(text, "modelyard_ready") == 1
    assert metric(text, "modelyard_queue_depth") == 0
    assert metric(text, "modelyard_inflight_requests") == 1  # this scrape
    assert metric(text, "modelyard_worker_restarts_total") == 0
    assert metric(text, "modelyard_log_records_dropped_total") == 0


def _promtool() -> str | None:
    """promtool from PATH, or from Debian's prometheus package unpacked into a cache folder.

    ``apt-get download`` + ``dpkg-deb -x`` fetch the binary without installing the package
    (which would also set up a Prometheus service); about 2 s once, then cached.
    """
    found = shutil.which("promtool")
    if found is not None:
        return found
    cached = Path(tempfile.gettempdir()) / "modelyard-test-tools" / "promtool"
    if cached.is_file():
        return str(cached)
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(
                ["apt-get", "download", "prometheus"],
                cwd=tmp,
                capture_output=True,
                timeout=180,
                check=True,
            )
            deb = next(Path(tmp).glob("prometheus_*.deb"))
            subprocess.run(
                ["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")],
                capture_output=True,
                timeout=180,
                check=True,
            )
        except (OSError, subprocess.SubprocessError, StopIteration):
            return None
        cached.parent.mkdir(parents=True, exist_ok=True)
        staged = cached.with_name(f"promtool.{os.getpid()}")
        shutil.copy2(Path(tmp) / "x" / "usr" / "bin" / "promtool", staged)
        os.replace(staged, cached)
    return str(cached)


def test_metrics_pass_promtool(client: httpx.Client, tmp_path: Path) -> None:
    promtool = _promtool()
    if promtool is None:
        pytest.skip("promtool is not on PATH and Debian's prometheus package cannot be fetched")
    client.post("/v1/models/linear:predict", json={"instances": [ROW]})
    text = client.get("/metrics").content
    run = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_request_and_feedback_logs_are_typed_parquet_on_the_store(
    server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    h = server_factory(
        "Linear",
        home=home,
        request_log=True,
        serving={"admin_token": "s3cret", "request_log_flush_s": 3600},
    )
    ids = []
    with httpx.Client(base_url=h.url, timeout=30) as c:
        r = c.post("/v1/models/linear:predict", json={"instances": [ROW, [0, 0, 0, 1]]})
        ids.append(r.headers["x-request-id"])
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ROW}]}
        r = c.post("/v2/models/linear/infer", json=body, headers={"x-request-id": "v2-one"})
        ids.append("v2-one")
        short = {"instances": [[1, 2]]}
        bad = c.post("/v1/models/linear:predict", json=short, headers={"x-request-id": "bad"})
        assert bad.status_code == 400
        fb = c.post(
            "/v1/feedback",
            json={"request_id": ids[0], "label": [12, 2], "source": "qa"},
            headers={"authorization": "Bearer s3cret"},
        )
        assert fb.status_code == 202
        assert fb.json() == {"request_id": ids[0], "accepted": True, "version": "7"}
        bad = c.post("/v1/feedback", json={"label": 1}, headers={"authorization": "Bearer s3cret"})
        assert bad.status_code == 400
        assert "'request_id'" in bad.json()["message"]
        assert c.post("/v1/admin/flush").status_code == 401
        wrong = c.post("/v1/admin/flush", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"] == "Bearer"
        r = c.post("/v1/admin/flush", headers={"authorization": "Bearer s3cret"})
        assert r.status_code == 200, r.text
        written = r.json()["written"]
        assert metric(c.get("/metrics").text, "modelyard_feedback_records_total") == 1
    store = ArtifactStore.open(str(home / "artifacts"))
    assert any(n.startswith("requests/model=linear/version=7/hour=") for n in written)
    assert any(n.startswith("feedback/model=linear/version=7/hour=") for n in written)
    assert set(store.list_named("requests/")) | set(store.list_named("feedback/")) == set(written)
    log = RequestLog(store, "linear", "7")
    requests = log.requests()
    assert _vector(requests.schema.field("in__x").type) == ("float32", 4)
    assert _vector(requests.schema.field("out__prediction").type) == ("float32", 2)
    rows = sorted(requests.to_pylist(), key=lambda r: (r["request_id"], r["instance"]))
    assert [(r["request_id"], r["instance"], r["status"]) for r in rows] == sorted(
        [(ids[0], 0, 200), (ids[0], 1, 200), ("v2-one", 0, 200), ("bad", 0, 400)]
    )
    by_key = {(r["request_id"], r["instance"]): r for r in rows}
    assert by_key[(ids[0], 0)]["in__x"] == ROW
    assert by_key[(ids[0], 0)]["out__prediction"] == [12.0, 1.0]
    assert by_key[("v2-one", 0)]["in__x"] == ROW
    assert by_key[("bad", 0)]["in__x"] is None
    assert all(r["latency_ms"] >= 0 for r in rows)
    assert all(r["model"] == "linear" and r["version"] == "7" for r in rows)
    joined = {(r["request_id"], r["instance"]): r for r in log.joined().to_pylist()}
    assert joined[(ids[0], 1)]["label"] == "[12,2]"  # not a number: kept as JSON text
    assert joined[(ids[0], 1)]["extra"] == '{"source":"qa"}'
    assert joined[("v2-one", 0)]["label"] is None


def test_feedback_without_a_store_says_how_to_enable_it(client: httpx.Client) -> None:
    r = client.post("/v1/feedback", json={"request_id": "x", "label": 1})
    assert r.status_code == 503
    assert "feedback log is off" in r.json()["message"]


def _vector(t: pa.DataType) -> tuple[str, int]:
    """A fixed-size list type as (element type, width): Parquet renames the element field."""
    assert pa.types.is_fixed_size_list(t)
    return t.value_type.to_pandas_dtype().__name__, t.list_size
