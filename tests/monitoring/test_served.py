"""A real served model: `modelyard serve` on 127.0.0.1 writes its request and feedback logs,
`modelyard monitor` reads them back, finds the drifted feature and measures live quality."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("httptools")

FEATURES = ["age", "income", "tenure"]


def _frame(rng: np.random.Generator, rows: int, *, age_shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40 + age_shift, 10, rows),
            "income": rng.normal(50, 15, rows),
            "tenure": rng.normal(5, 2, rows),
        }
    )


def test_a_served_models_logs_are_monitored(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    import modelyard.models
    from modelyard.config import load_settings
    from modelyard.data.contract import infer_contract
    from modelyard.data.profile import build_profile
    from modelyard.serving import launch
    from modelyard.workspace import Workspace

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        "[tool.modelyard]\n[tool.modelyard.monitor]\nmin_samples = 200\n"
        'signals = ["data_drift", "live_quality"]\nquality_min = { accuracy = 0.99 }\n'
    )
    home = tmp_path / "home"
    settings = load_settings(start=project, home=str(home))
    rng = np.random.default_rng(0)
    train = _frame(rng, 5_000)
    label = (train["age"] + rng.normal(0, 5, len(train)) > 40).astype(np.int64)
    model = LogisticRegression().fit(train[FEATURES], label)
    ws = Workspace.open(settings)
    modelyard.models.register(
        model,
        ws.registry,
        name="churn",
        input_example=train[FEATURES].head(5),
        aliases=["production"],
        profile=build_profile(train[FEATURES]),
        contract=infer_contract(train[FEATURES]),
    )
    started = dt.datetime.now(dt.UTC)
    with (tmp_path / "server.log").open("wb") as err:
        server = launch(
            "churn@production",
            home=home,
            workers=1,
            cwd=project,
            stderr=err,
            serving={"request_log_flush_s": 0.5},
        )
    try:
        live = _frame(np.random.default_rng(1), 600, age_shift=12)  # older customers now
        # inside the contract's ranges (the server refuses values outside them with 422)
        for col in FEATURES:
            live[col] = live[col].clip(train[col].min(), train[col].max())
        with httpx.Client(base_url=server.url, timeout=30) as client:
            ids = []
            for i in range(20):
                chunk = live.iloc[30 * i : 30 * (i + 1)]
                r = client.post(
                    "/v1/models/churn:predict",
                    json={"instances": chunk[FEATURES].to_dict(orient="records")},
                )
                assert r.status_code == 200, r.text
                ids.append(r.headers["x-request-id"])
            # labels for the first five requests (30 instances each)
            for rid in ids[:5]:
                fb = client.post("/v1/feedback", json={"request_id": rid, "label": 1})
                assert fb.status_code in (200, 202, 204), fb.text
    finally:
        assert server.stop() == 0  # stopping flushes the logs
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "MODELYARD_HOME": str(home),
    }
    since = (started - dt.timedelta(minutes=1)).isoformat()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelyard.cli",
            "monitor",
            "churn@production",
            "--json",
            "--since",
            since,
        ],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    [result] = json.loads(proc.stdout)
    assert result["rows"] == 600
    assert result["verdict"] == "crossed"
    assert result["drift"]["drifted"] == ["age"]
    quality = result["quality"]
    assert quality["labelled"] >= 100  # labels arrived for request ids (instances share them)
    assert quality["unlabelled"] == 600 - quality["labelled"]
    signals = {s["signal"] for s in result["signals"]}
    assert "data_drift" in signals
    assert "crossed the monitoring policy: data_drift (age)" in proc.stderr
