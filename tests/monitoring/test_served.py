"""A real served model: `modelyard serve` on 127.0.0.1 writes its request and feedback logs,
`modelyard monitor` reads them back, finds the drifted feature, the drifted predictions (against
the outputs profiled when the gate registered the version) and measures live quality; with
``--act`` and ``deploy_strategy = "canary"`` the retrained version goes out as a canary on the
same server, and the trigger names the run, the version and the rollout."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pandas as pd
import pytest

if TYPE_CHECKING:
    from modelyard.serving import ServerHandle

pytest.importorskip("httptools")

FEATURES = ["age", "income", "tenure"]
REPO = Path(__file__).resolve().parents[2]


def _frame(rng: np.random.Generator, rows: int, *, age_shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40 + age_shift, 10, rows),
            "income": rng.normal(50, 15, rows),
            "tenure": rng.normal(5, 2, rows),
        }
    )


def _register_v1(settings: Any) -> pd.DataFrame:
    """churn v1 through the gate (so its outputs are profiled), in production; the training
    frame is returned."""
    from sklearn.linear_model import LogisticRegression

    from modelyard.data.contract import infer_contract
    from modelyard.data.profile import build_profile
    from modelyard.workspace import Workspace

    rng = np.random.default_rng(0)
    train = _frame(rng, 5_000)
    train["label"] = (train["age"] + rng.normal(0, 5, len(train)) > 40).astype(np.int64)
    model = LogisticRegression().fit(train[FEATURES], train["label"])
    ws = Workspace.open(settings)
    try:
        outcome = ws.gate_and_register(
            "churn",
            model,
            train.tail(1_000),
            target="label",
            profile=build_profile(train[FEATURES]),
            contract=infer_contract(train[FEATURES]),
        )
    finally:
        ws.metadata_store.dispose()
    assert outcome.alias == "production"
    return train


def _serve(project: Path, home: Path) -> ServerHandle:
    """`modelyard serve churn@production` on 127.0.0.1 (rollouts on, as the command has them),
    flushing its request log every 0.5 s."""
    from modelyard.delivery.serving import rollout_hooks
    from modelyard.serving import launch

    with (project.parent / "server.log").open("ab") as err:
        return launch(
            "churn@production",
            hooks=[rollout_hooks],  # as `modelyard serve`: the retrained version's canary runs
            home=home,
            workers=1,
            cwd=project,
            stderr=err,
            env={"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])},
            serving={"request_log_flush_s": 0.5},
        )


def _send(url: str, train: pd.DataFrame, *, rows: int = 600) -> list[str]:
    """Older customers than in training (inside the contract's ranges: the server refuses
    values outside them with 422), 30 instances per request; returns the request ids."""
    live = _frame(np.random.default_rng(1), rows, age_shift=12)
    for col in FEATURES:
        live[col] = live[col].clip(train[col].min(), train[col].max())
    ids = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(rows // 30):
            chunk = live.iloc[30 * i : 30 * (i + 1)]
            r = client.post(
                "/v1/models/churn:predict",
                json={"instances": chunk[FEATURES].to_dict(orient="records")},
            )
            assert r.status_code == 200, r.text
            ids.append(r.headers["x-request-id"])
    return ids


def _monitor(project: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), *sys.path]),
        "MODELYARD_HOME": str(home),
    }
    return subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "monitor", "churn@production", *args],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=300,
        check=False,
    )


def test_a_served_models_logs_are_monitored(tmp_path: Path) -> None:
    from modelyard.config import load_settings

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        "[tool.modelyard]\n[tool.modelyard.monitor]\nmin_samples = 200\n"
        'signals = ["data_drift", "prediction_drift", "live_quality"]\n'
        "quality_min = { accuracy = 0.99 }\n"
    )
    home = tmp_path / "home"
    train = _register_v1(load_settings(start=project, home=str(home)))
    started = dt.datetime.now(dt.UTC)
    server = _serve(project, home)
    try:
        ids = _send(server.url, train)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            # labels for the first five requests (30 instances each)
            for rid in ids[:5]:
                fb = client.post("/v1/feedback", json={"request_id": rid, "label": 1})
                assert fb.status_code in (200, 202, 204), fb.text
    finally:
        assert server.stop() == 0  # stopping flushes the logs
    since = (started - dt.timedelta(minutes=1)).isoformat()
    proc = _monitor(project, home, "--json", "--since", since)
    assert proc.returncode == 3, proc.stderr
    [result] = json.loads(proc.stdout)
    assert result["rows"] == 600
    assert result["verdict"] == "crossed"
    assert result["drift"]["drifted"] == ["age"]
    # the served labels against the labels v1 gave on its test rows: far more 1s now
    assert result["prediction_drift"]["drifted"] == ["prediction"]
    quality = result["quality"]
    assert quality["labelled"] >= 100  # labels arrived for request ids (instances share them)
    assert quality["unlabelled"] == 600 - quality["labelled"]
    signals = {s["signal"]: s for s in result["signals"]}
    assert signals["prediction_drift"]["outputs"] == ["prediction"]
    assert "crossed the monitoring policy: data_drift (age); prediction_drift (prediction)" in (
        proc.stderr
    )


FLOWS = """
import modelyard


@modelyard.step
def retrain(window_start: str, window_end: str) -> object:
    \"\"\"Train on the window that crossed the policy (labels by the same rule as v1's).\"\"\"
    import datetime as dt

    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from modelyard.data.contract import infer_contract
    from modelyard.data.profile import build_profile
    from modelyard.pipelines import current_run_id, current_settings
    from modelyard.requestlog import RequestLog
    from modelyard.workspace import Workspace

    FEATURES = ["age", "income", "tenure"]
    ws = Workspace.open(current_settings())
    since, until = dt.datetime.fromisoformat(window_start), dt.datetime.fromisoformat(window_end)
    logged = RequestLog(ws.artifact_store, "churn").requests(since, until)
    frame = pd.DataFrame({c: logged.column("in__" + c).to_numpy() for c in FEATURES})
    label = (frame["age"].to_numpy() > 40).astype(np.int64)
    label[:5] = 0  # both classes, whatever the window holds
    frame["label"] = label
    model = LogisticRegression().fit(frame[FEATURES], frame["label"])
    features = frame[FEATURES]
    outcome = ws.gate_and_register(
        "churn",
        model,
        frame,
        target="label",
        run_id=current_run_id(),
        profile=build_profile(features),
        contract=infer_contract(features),
    )
    return outcome.version


@modelyard.pipeline
def train(window_start: str = "", window_end: str = ""):
    return retrain(window_start, window_end)
"""


@pytest.mark.slow
def test_the_loop_sends_the_retrained_version_out_as_a_canary(tmp_path: Path) -> None:
    from modelyard.config import load_settings
    from modelyard.delivery.client import RolloutClient
    from modelyard.monitoring import MonitorStore
    from modelyard.requestlog import RequestLog
    from modelyard.workspace import Workspace

    project = tmp_path / "project"
    project.mkdir()
    (project / "flows.py").write_text(FLOWS)
    (project / "pyproject.toml").write_text(
        "[tool.modelyard]\n"
        '[tool.modelyard.pipeline]\nentrypoint = "flows:train"\n'
        '[tool.modelyard.monitor]\nmin_samples = 200\nsignals = ["data_drift"]\n'
        'deploy_strategy = "canary"\n'
        "[tool.modelyard.delivery]\nsteps = [50, 100]\ninterval_s = 1.0\nmin_samples = 10\n"
        "load_test_s = 0\ndeadline_s = 120\nmax_latency_ratio = 20.0\n"
    )
    home = tmp_path / "home"
    settings = load_settings(start=project, home=str(home))
    train = _register_v1(settings)
    started = dt.datetime.now(dt.UTC)
    server = _serve(project, home)
    ws = Workspace.open(settings)
    try:
        _send(server.url, train)
        deadline = time.monotonic() + 60
        log = RequestLog(ws.artifact_store, "churn", "1")
        while log.requests(started - dt.timedelta(minutes=1)).num_rows < 600:
            assert time.monotonic() < deadline, "the server did not flush its request log"
            time.sleep(0.2)
        since = (started - dt.timedelta(minutes=1)).isoformat()
        proc = _monitor(project, home, "--since", since, "--act", "--deploy-url", server.url)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "retraining 1: succeeded, run " in proc.stdout
        assert ", registered version 2" in proc.stdout
        [trigger] = MonitorStore(ws.metadata_store).triggers("churn")
        rollout = trigger.rollout
        assert rollout is not None, trigger
        assert "id" in rollout, rollout
        assert f"rollout {rollout['id']}: canary " in proc.stdout
        # window -> run -> version -> rollout, each readable from the store
        assert trigger.evidence["signals"][0]["features"] == ["age"]
        assert ws.tracking.get_run(str(trigger.run_id)).status == "FINISHED"
        assert (trigger.new_version, ws.resolve("churn@candidate").version) == (2, 2)
        assert (rollout["strategy"], rollout["candidate_version"]) == ("canary", 2)
        live = RolloutClient(server.url).status()
        assert (live["id"], live["candidate_version"], live["stable_version"]) == (
            rollout["id"],
            2,
            1,
        )
        assert live["state"] in ("progressing", "awaiting_approval", "promoting", "promoted")
        RolloutClient(server.url).abort()
    finally:
        ws.metadata_store.dispose()
        assert server.stop() == 0
