"""A store filled the way users fill it (pipeline runs, tracked runs, registry alias moves), a
real ``modelyard ui`` process over it, and a real headless Chromium driven by Selenium."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests._system_tools import require_tool
from tests.conftest import _postgres_database

TOKEN = "s3cret-admin-token"
PAGE_SIZE = 10
EVIL_NAME = '<script>document.title="pwned"</script>run'
EVIL_TAG = "<img src=x onerror=\"document.title='pwned'\">"


@contextlib.contextmanager
def database_url(kind: str, root: Path) -> Iterator[str]:
    """An empty store's URL: a SQLite file in ``root``, or a throw-away PostgreSQL database."""
    if kind == "sqlite":
        yield f"sqlite:///{root / 'meta.db'}"
    else:
        yield from _postgres_database()


@dataclass
class Filled:
    """What the fill made, for the tests to look for."""

    settings: Any
    sweep_ids: list[str]
    evil_id: str
    pipeline_ids: list[str]
    model: str


def fill(settings: Any) -> Filled:
    """Real pipeline runs, a sweep of tracked runs with metric histories, a registry with moves."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from modelyard import Workspace
    from modelyard.data import build_profile, infer_contract
    from modelyard.evaluate import GatePolicy
    from modelyard.models import save
    from modelyard.tracking.client import TrackingClient
    from tests.ui import _project

    pipeline_ids = []
    for lr in (0.1, 0.2, 0.1):  # the third is fully cached
        result = _project.training.run(settings=settings, lr=lr)
        assert result.run_id is not None
        pipeline_ids.append(result.run_id)

    tc = TrackingClient.from_settings(settings)
    sweep_ids = []
    for i in range(25):
        run = tc.start_run(experiment="sweep", name=f"trial-{i:02d}", capture_lineage=False)
        run.log_params({"lr": str(0.01 * (i + 1)), "depth": str(2 + i % 4)})
        run.set_tag("team", "vision" if i % 2 else "nlp")
        for step in range(30):
            run.log_metric("loss", 1.0 / (1 + step * (i + 1) / 25), step=step)
        run.log_metric("auc", 0.5 + i / 50)
        if i == 0:
            report = Path(str(settings.project_root)) / "report.txt"
            report.write_text("confusion matrix: [[40, 2], [3, 55]]\n")
            run.log_artifact(report, name="eval/report.txt")
        run.end("FINISHED" if i != 7 else "FAILED")
        sweep_ids.append(run.id)
    evil = tc.start_run(experiment="sweep", name=EVIL_NAME, capture_lineage=False)
    evil.set_tag("note", EVIL_TAG)
    evil.log_param("lr", "<b>0.5</b>")
    evil.log_metric("auc", 0.1)
    evil.end("FINISHED")

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["y"] = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(int)
    ws = Workspace.open(settings)
    reg = ws.registry
    for i, c in enumerate((0.01, 1.0)):
        model = LogisticRegression(C=c).fit(frame[["a", "b", "c"]], frame["y"])
        package = save(model, Path(str(settings.project_root)) / f"package-{i}")
        reg.register_version("churn", package, run_id=sweep_ids[0])
    reg.set_alias("churn", "production", 1, reason="first release")
    reg.set_alias("churn", "production", 2, reason="better auc")
    reg.rollback("churn", alias="production", reason="latency regression")
    model = LogisticRegression(C=10.0).fit(frame[["a", "b", "c"]], frame["y"])
    features = frame[["a", "b", "c"]]
    ws.gate_and_register(
        "churn",
        model,
        frame,
        target="y",
        policy=GatePolicy(thresholds={"accuracy": (">=", 0.6)}, alias="candidate"),
        contract=infer_contract(features, name="churn"),
        profile=build_profile(features),
    )
    return Filled(settings, sweep_ids, evil.id, pipeline_ids, "churn")


@dataclass
class UIServer:
    """A running ``modelyard ui`` process."""

    url: str
    proc: subprocess.Popen[bytes]
    filled: Filled


def start_ui(filled: Filled, *, token: str | None) -> Iterator[UIServer]:
    """Start ``python -m modelyard.cli ui --port 0`` on the filled store; stop it with SIGTERM."""
    s = filled.settings
    env = {
        **os.environ,
        "MODELYARD_DB_URL": s.resolved_db_url,
        "MODELYARD_ARTIFACT_URL": s.resolved_artifact_url,
        "MODELYARD_UI__PAGE_SIZE": str(PAGE_SIZE),
        "MODELYARD_UI__REFRESH_S": "1",
    }
    env.pop("MODELYARD_UI__ADMIN_TOKEN", None)
    if token is not None:
        env["MODELYARD_UI__ADMIN_TOKEN"] = token
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard.cli", "ui", "--port", "0"],
        cwd=s.project_root,
        env=env,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    url = None
    deadline = time.monotonic() + 60
    seen = b""
    while url is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        found = re.search(rb"modelyard ui on (http://\S+)", line)
        if found:
            url = found.group(1).decode()
    if url is None:
        proc.kill()
        pytest.fail(f"modelyard ui did not start: {seen.decode(errors='replace')}")
    # keep reading its log so a chatty server never blocks on a full pipe
    drain = threading.Thread(target=proc.stderr.read, daemon=True)
    drain.start()
    _wait_http(url)
    try:
        yield UIServer(url, proc, filled)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        drain.join(timeout=5)
        proc.stderr.close()


def _wait_http(url: str, timeout_s: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(url + "/static/app.css", timeout=5.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    from modelyard.config import load_settings

    root = tmp_path_factory.mktemp("uiproject")
    project = root / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.modelyard]\n")
    home = root / "home"
    settings = load_settings(start=project, home=str(home), experiment="training")
    return fill(settings)


@pytest.fixture(scope="module")
def ui(filled: Filled) -> Iterator[UIServer]:
    yield from start_ui(filled, token=TOKEN)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = require_tool("chromium", "chromium")
    driver_path = require_tool("chromedriver", "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot_dir() -> Path | None:
    """Where ``MODELYARD_UI_SCREENSHOTS`` asks the tests to save screenshots (docs/img)."""
    value = os.environ.get("MODELYARD_UI_SCREENSHOTS")
    return Path(value) if value else None


def start_rollout(settings: Any) -> str:
    """A canary of churn v3 over v1, moved to its second step with an analysis; its id."""
    from modelyard.delivery.store import RolloutStore
    from modelyard.delivery.strategies import Step
    from modelyard.store.db import MetadataStore

    store = RolloutStore(MetadataStore.from_settings(settings), actor="ci")
    steps = [
        Step(weight=5.0, mode="split", pause_s=30.0),
        Step(weight=25.0, mode="split", pause_s=30.0),
    ]
    r = store.create(
        model="churn", stable_version=1, candidate_version=3, strategy="canary", steps=steps,
        config={"max_error_rate": 0.01},
    )  # fmt: skip
    moved = store.transition(r, "progressing", reason="load test passed")
    assert moved is not None
    moved = store.transition(
        moved, "progressing", step_index=1, reason="analysis passed",
        evidence={"error_rate": {"stable": 0.001, "candidate": 0.002}},
    )  # fmt: skip
    assert moved is not None
    return moved.id


def record_monitoring(settings: Any) -> int:
    """Two monitored windows of churn v1: one fine, one drifted; and a real drifted window of
    churn v3 (the gated version, with a reference profile) scored from its request log, whose
    HTML report is kept in the artifact store. Returns that window's stored id."""
    import datetime as dt

    import numpy as np
    import pandas as pd

    from modelyard.monitoring import Monitor, MonitorStore
    from modelyard.store.db import MetadataStore
    from modelyard.workspace import Workspace
    from tests.monitoring._logs import write_requests

    monitor = MonitorStore(MetadataStore.from_settings(settings))
    for i, (verdict, drift) in enumerate((("ok", 0.02), ("crossed", 0.4))):
        monitor.record(
            model="churn", version=1, window_start=1.7e9 + 3600 * i,
            window_end=1.7e9 + 3600 * (i + 1), verdict=verdict, rows=800, drift_score=drift,
            signals=[{"signal": "data_drift", "features": ["a"]}] if verdict == "crossed" else [],
            summary={"quality": {"accuracy": 0.9 - 0.1 * i}},
        )  # fmt: skip
    ws = Workspace.open(settings)
    start = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    rng = np.random.default_rng(7)
    live = pd.DataFrame({"a": rng.normal(2.0, 1, 1_000), "b": rng.normal(size=1_000)})
    live["c"] = rng.normal(size=1_000)
    write_requests(ws.artifact_store, "churn", 3, live, ts_s=start.timestamp() + 60)
    mon = Monitor.from_workspace(ws)
    [result] = mon.check("churn:3", since=start, until=start + dt.timedelta(hours=1))
    stored = mon.report(result)
    ws.metadata_store.dispose()
    return stored.id
