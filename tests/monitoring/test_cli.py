"""`modelyard monitor` from the user's side: exit codes, --json, --history, --report, --grafana,
--act starting the project's training pipeline, and --watch serving Prometheus gauges."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pytest
from tests.monitoring._logs import write_requests

from modelyard.cli import main
from modelyard.cli.state import state
from modelyard.data.contract import infer_contract
from modelyard.data.profile import build_profile
from modelyard.logs import configure_logging
from modelyard.workspace import Workspace

HOUR = 3600.0
T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


class _CurrentStderr:
    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _frame(rng: np.random.Generator, rows: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40 + shift, 10, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "plan": rng.choice(["basic", "pro", "team"], rows, p=[0.6, 0.3, 0.1]),
        }
    )


@pytest.fixture
def ws(settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Workspace]:
    """Model 'churn' v1 with a profile and contract, production alias; the CLI on its stores."""
    monkeypatch.setenv("MODELYARD_HOME", str(settings.resolved_home))
    monkeypatch.setenv("MODELYARD_DB_URL", settings.resolved_db_url)
    monkeypatch.setenv("MODELYARD_ARTIFACT_URL", settings.resolved_artifact_url)
    monkeypatch.chdir(settings.project_root)
    monkeypatch.setattr(state, "_settings", None)
    monkeypatch.setattr(state, "overrides", {})
    configure_logging("WARNING", stream=_CurrentStderr(), force=True)  # type: ignore[arg-type]
    workspace = Workspace.open(settings)
    reference = _frame(np.random.default_rng(0), 20_000)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "modelyard.json").write_text("{}")
    workspace.registry.register_version(
        "churn",
        pkg,
        profile=build_profile(reference),
        contract=infer_contract(reference),
        aliases=["production"],
    )
    (pkg / "modelyard.json").write_text('{"bare": true}')
    workspace.registry.register_version("churn", pkg)  # v2: no reference profile
    try:
        yield workspace
    finally:
        workspace.metadata_store.dispose()


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _log_hours(ws: Workspace, *, drift_hour: bool) -> None:
    rng = np.random.default_rng(1)
    store = ws.artifact_store
    write_requests(store, "churn", 1, _frame(rng, 2_000), ts_s=T0.timestamp() + 10)
    write_requests(
        store,
        "churn",
        1,
        _frame(rng, 2_000, shift=15 if drift_hour else 0),
        ts_s=T0.timestamp() + HOUR + 10,
    )


def test_exit_0_within_policy_and_3_naming_the_drifted_features(
    ws: Workspace, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _log_hours(ws, drift_hour=True)
    since, until = T0.isoformat(), (T0 + dt.timedelta(hours=1)).isoformat()
    code, out, _ = _run(capsys, "monitor", "churn@production", "--since", since, "--until", until)
    assert code == 0, out
    assert "churn:1 [2026-03-01T12:00:00+00:00, 2026-03-01T13:00:00+00:00) rows=2,000" in out
    assert "verdict=ok" in out
    until2 = (T0 + dt.timedelta(hours=2)).isoformat()
    report = tmp_path / "out" / "report.html"
    code, out, err = _run(
        capsys,
        "monitor",
        "churn@production",
        "--since",
        since,
        "--until",
        until2,
        "--json",
        "--report",
        str(report),
    )
    assert code == 3
    results = json.loads(out)  # stdout is only JSON with --json
    assert [r["verdict"] for r in results] == ["ok", "crossed"]
    assert results[1]["signals"][0] == {
        "signal": "data_drift",
        "score": pytest.approx(1 / 3),
        "features": ["age"],
    }
    assert "crossed the monitoring policy: data_drift (age)" in err
    assert f"report: {report.resolve()}" in err
    html = report.read_text()
    assert html.startswith("<!doctype html>")
    assert "<svg" in html
    assert "<script" not in html  # offline, no JavaScript
    assert len(html) < 400_000
    # the history: one stored row per window, oldest first
    code, out, _ = _run(capsys, "monitor", "churn", "--history", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["version"], r["verdict"], r["rows"]) for r in rows] == [
        (1, "ok", 2_000),
        (1, "crossed", 2_000),
    ]


def test_a_version_without_a_profile_gets_a_stored_no_verdict(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    until = (T0 + dt.timedelta(hours=1)).isoformat()
    code, out, _ = _run(capsys, "monitor", "churn:2", "--since", T0.isoformat(), "--until", until)
    assert code == 0
    assert "verdict=no_verdict: model 'churn' version 2 has no reference profile" in out
    assert {r.verdict for r in _history(ws, "churn", 2)} == {"no_verdict"}


def _history(ws: Workspace, name: str, version: int) -> list[Any]:
    from modelyard.monitoring import MonitorStore

    return MonitorStore(ws.metadata_store).history(name, version)


def test_bad_arguments_are_named(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "monitor", "churn", "--since", "yesterday")
    assert code == 2
    assert "--since 'yesterday' is not an ISO time" in err
    code, _, err = _run(capsys, "monitor", "churn", "--window", "an hour")
    assert code == 2
    assert "window 'an hour' is not a duration" in err
    code, _, err = _run(capsys, "monitor", "nope@production")
    assert code == 4


def test_grafana_dashboard_names_the_gauges(tmp_path: Path, ws: Workspace) -> None:
    path = tmp_path / "dash.json"
    assert main(["monitor", "churn@production", "--grafana", str(path)]) == 0
    dash = json.loads(path.read_text())
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for gauge in (
        "modelyard_monitor_drift_score",
        "modelyard_monitor_feature_drift",
        "modelyard_monitor_quality",
        "modelyard_monitor_violation_rate",
    ):
        assert gauge in exprs
    assert dash["templating"]["list"][1]["query"] == "churn"


PIPELINE = """
import json
from pathlib import Path

import modelyard


@modelyard.step
def retrain(window_start: str, window_end: str) -> dict:
    Path("retrained.json").write_text(json.dumps([window_start, window_end]))
    return {"window": [window_start, window_end]}


@modelyard.pipeline
def train(window_start: str = "", window_end: str = ""):
    return retrain(window_start, window_end)
"""


def test_act_starts_the_pipeline_with_the_window_once_per_cooldown(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    project = ws.settings.project_root
    (project / "flows.py").write_text(PIPELINE)
    (project / "pyproject.toml").write_text(
        '[tool.modelyard.pipeline]\nentrypoint = "flows:train"\n'
        "[tool.modelyard.monitor]\nconsecutive = 1\ncooldown_s = 3600\n"
    )
    _log_hours(ws, drift_hour=True)
    args = ["--since", (T0 + dt.timedelta(hours=1)).isoformat()]
    args += ["--until", (T0 + dt.timedelta(hours=2)).isoformat()]
    code, out, _ = _run(capsys, "monitor", "churn@production", *args, "--act")
    assert code == 3
    assert "retraining 1: succeeded, run " in out
    window = json.loads((project / "retrained.json").read_text())
    assert window == ["2026-03-01T13:00:00+00:00", "2026-03-01T14:00:00+00:00"]
    from modelyard.monitoring import MonitorStore

    triggers = MonitorStore(ws.metadata_store).triggers("churn")
    assert len(triggers) == 1
    t = triggers[0]
    assert (t.status, t.version, t.window_start) == ("succeeded", 1, T0.timestamp() + HOUR)
    assert t.run_id is not None
    assert t.evidence["signals"][0]["features"] == ["age"]
    assert ws.tracking.get_run(t.run_id).status == "FINISHED"
    # the same crossing again, within the cooldown: recorded, no second retraining
    (project / "retrained.json").unlink()
    code, out, _ = _run(capsys, "monitor", "churn@production", *args, "--act")
    assert code == 3
    assert "retraining" not in out
    assert not (project / "retrained.json").exists()
    assert len(MonitorStore(ws.metadata_store).triggers("churn")) == 1


def test_no_verdict_never_retrains(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    project = ws.settings.project_root
    (project / "pyproject.toml").write_text(
        '[tool.modelyard.pipeline]\nentrypoint = "flows:missing"\n'
    )
    code, out, _ = _run(capsys, "monitor", "churn:2", "--since", T0.isoformat(), "--act")
    assert code == 2  # thousands of hourly windows until now: refused, naming the fix
    until = (T0 + dt.timedelta(hours=2)).isoformat()
    code, out, _ = _run(
        capsys, "monitor", "churn:2", "--since", T0.isoformat(), "--until", until, "--act"
    )
    assert code == 0
    assert "retraining" not in out
    from modelyard.monitoring import MonitorStore

    assert MonitorStore(ws.metadata_store).triggers("churn") == []


def test_watch_serves_gauges_and_stops_on_sigterm(ws: Workspace, tmp_path: Path) -> None:
    # a window that is now: --watch scores the current, filling window
    rng = np.random.default_rng(3)
    write_requests(ws.artifact_store, "churn", 1, _frame(rng, 1_000, shift=15), ts_s=time.time())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = ["monitor", "churn@production", "--watch", "--window", "1d", "--metrics-port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard.cli", *argv, "--interval-s", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ws.settings.project_root,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("metrics: http://127.0.0.1:"), first
        url = first.split(" ", 1)[1].strip()
        deadline = time.monotonic() + 60
        body = ""
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url, timeout=5) as resp:
                body = resp.read().decode()
            if "modelyard_monitor_rows{" in body:
                break
            time.sleep(0.2)
        assert 'modelyard_monitor_verdict{model="churn",verdict="crossed",version="1"} 1.0' in body
        assert (
            'modelyard_monitor_feature_drifted{feature="age",model="churn",version="1"} 1.0' in body
        )
        assert 'modelyard_monitor_rows{model="churn",version="1"} 1000.0' in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


REGISTERING = """
from pathlib import Path

import modelyard


@modelyard.step
def retrain(window_start: str) -> object:
    from modelyard.pipelines import current_settings
    from modelyard.workspace import Workspace

    pkg = Path("pkg-retrained")
    pkg.mkdir(exist_ok=True)
    (pkg / "modelyard.json").write_text('{"window": "%s"}' % window_start)
    return Workspace.open(current_settings()).registry.register_version("churn", pkg)


@modelyard.pipeline
def train(window_start: str = ""):
    return retrain(window_start)
"""


def test_a_rollout_that_cannot_start_is_recorded_with_the_trigger(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    project = ws.settings.project_root
    # a module name of its own: another test's `flows` may be imported in this process
    (project / "registering_flows.py").write_text(REGISTERING)
    (project / "pyproject.toml").write_text(
        '[tool.modelyard.pipeline]\nentrypoint = "registering_flows:train"\n'
        '[tool.modelyard.monitor]\ndeploy_strategy = "canary"\n'
    )
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    _log_hours(ws, drift_hour=True)
    args = ["--since", (T0 + dt.timedelta(hours=1)).isoformat()]
    args += ["--until", (T0 + dt.timedelta(hours=2)).isoformat()]
    code, out, _ = _run(capsys, "monitor", "churn@production", *args, "--act", "--deploy-url", url)
    assert code == 3  # the window's verdict, whatever became of the rollout
    assert "registered version 3" in out
    assert f"not rolled out (canary): no modelyard server answered at {url}" in out
    from modelyard.monitoring import MonitorStore

    [trigger] = MonitorStore(ws.metadata_store).triggers("churn")
    assert (trigger.status, trigger.new_version) == ("succeeded", 3)
    assert trigger.rollout is not None
    assert trigger.rollout["strategy"] == "canary"
    assert "no modelyard server answered" in trigger.rollout["error"]


def test_the_python_loop_sends_the_version_out_through_its_deployer(ws: Workspace) -> None:
    from modelyard.errors import ServiceUnavailable
    from modelyard.monitoring import Monitor
    from modelyard.testing.monitoring import RecordingDeployer

    project = ws.settings.project_root
    (project / "registering_flows.py").write_text(REGISTERING)
    settings = ws.settings
    pipeline = msgspec.structs.replace(settings.pipeline, entrypoint="registering_flows:train")
    workspace = Workspace(
        msgspec.structs.replace(settings, pipeline=pipeline), ws.metadata_store, ws.artifact_store
    )
    _log_hours(ws, drift_hour=True)
    rng = np.random.default_rng(5)
    for hour in (2, 3):  # two more drifted hours: one retraining per crossed window
        ts = T0.timestamp() + hour * HOUR + 10
        write_requests(ws.artifact_store, "churn", 1, _frame(rng, 2_000, shift=15), ts_s=ts)
    deployer = RecordingDeployer()
    monitor = Monitor.from_workspace(
        workspace, deployer=deployer, deploy_strategy="blue-green", cooldown_s=0
    )
    since = T0 + dt.timedelta(hours=1)
    first, second, third = monitor.check(
        "churn@production", since=since, until=since + dt.timedelta(hours=3)
    )
    trigger = monitor.act(first)
    assert trigger is not None
    assert deployer.calls == [("churn", 3, "blue-green")]
    assert trigger.rollout is not None
    assert (trigger.rollout["strategy"], trigger.rollout["state"]) == ("blue-green", "progressing")
    # a server that is not there: recorded, the version stays registered, nothing raises
    deployer.error = ServiceUnavailable("no modelyard server answered at http://127.0.0.1:9")
    again = monitor.act(second)
    assert again is not None
    assert (again.new_version, again.rollout) == (
        4,
        {"strategy": "blue-green", "error": "no modelyard server answered at http://127.0.0.1:9"},
    )
    # no deployer at all: the same, naming how to wire one
    bare = Monitor.from_workspace(workspace, deploy_strategy="canary", cooldown_s=0)
    last = bare.act(third)
    assert last is not None
    assert last.rollout is not None
    assert "no deployer" in last.rollout["error"]


def test_watch_acts_and_hands_each_trigger_over(ws: Workspace) -> None:
    import threading

    from modelyard.monitoring import Monitor, MonitorPolicy, Trigger, WindowResult, watch
    from modelyard.testing.monitoring import RecordingDeployer

    project = ws.settings.project_root
    (project / "registering_flows.py").write_text(REGISTERING)
    pipeline = msgspec.structs.replace(ws.settings.pipeline, entrypoint="registering_flows:train")
    workspace = Workspace(
        msgspec.structs.replace(ws.settings, pipeline=pipeline),
        ws.metadata_store,
        ws.artifact_store,
    )
    _log_hours(ws, drift_hour=True)
    deployer = RecordingDeployer()
    monitor = Monitor(
        workspace,
        MonitorPolicy(deploy_strategy="canary", cooldown_s=3600),
        clock=lambda: T0.timestamp() + 1.5 * HOUR,  # the current window is the drifted hour
        deployer=deployer,
    )
    stop = threading.Event()
    results: list[WindowResult] = []
    triggers: list[Trigger] = []

    def on_result(result: WindowResult) -> None:
        results.append(result)
        if len(results) == 3:
            stop.set()

    rounds = watch(
        monitor,
        "churn@production",
        stop=stop,
        act=True,
        interval_s=0,
        on_result=on_result,
        on_trigger=triggers.append,
    )
    assert rounds == 3
    assert [r.verdict for r in results] == ["crossed"] * 3
    [trigger] = triggers  # once: the next rounds are within the cooldown
    assert (trigger.status, trigger.new_version) == ("succeeded", 3)
    assert trigger.rollout is not None
    assert trigger.rollout["state"] == "progressing"
    assert deployer.calls == [("churn", 3, "canary")]
