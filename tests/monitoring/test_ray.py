"""``--executor ray``: a window's counts fanned out over a real local Ray, each task reading its
files (or row groups) from the artifact store, give the local executor's result."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.monitoring._logs import write_requests

from modelyard.data.contract import infer_contract
from modelyard.data.profile import build_profile
from modelyard.monitoring import (
    Monitor,
    MonitorPolicy,
    RayCounter,
    References,
    Window,
    WindowResult,
    monitor_window,
)
from modelyard.requestlog import RequestLog
from modelyard.store.artifacts import ArtifactStore

pytestmark = pytest.mark.ray

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
WINDOW = Window(T0, T0 + dt.timedelta(hours=1))


def _frame(rng: np.random.Generator, rows: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40 + shift, 10, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "plan": rng.choice(["basic", "pro", "team"], rows, p=[0.6, 0.3, 0.1]),
        }
    )


def _outputs(rng: np.random.Generator, rows: int) -> dict[str, Any]:
    p = rng.beta(2, 5, rows)
    return {"prediction": (p > 0.5).astype(np.int64), "proba__0": 1 - p, "proba__1": p}


@pytest.fixture(scope="module")
def refs() -> References:
    rng = np.random.default_rng(0)
    reference = _frame(rng, 20_000)
    outputs = pd.DataFrame(_outputs(rng, 5_000))
    return References(
        profile=build_profile(reference),
        predictions=build_profile(outputs),
        contract=infer_contract(reference),
    )


def _fill(store: ArtifactStore) -> None:
    """Four files, one of them in row groups of 1,000, one drifted, one corrupt, one outside
    the window."""
    rng = np.random.default_rng(1)
    for i, (rows, shift) in enumerate(((3_000, 0.0), (2_500, 12.0), (1_200, 0.0))):
        write_requests(
            store,
            "churn",
            1,
            _frame(rng, rows, shift),
            ts_s=T0.timestamp() + 60 * (i + 1),
            outputs=_outputs(rng, rows),
            row_group_rows=1_000 if i == 0 else None,
        )
    write_requests(store, "churn", 1, _frame(rng, 900, 30.0), ts_s=T0.timestamp() - 60)
    store.write_named(
        "requests/model=churn/version=1/hour=2026-03-01T12/broken.parquet", b"PAR1 truncated"
    )


def _same(local: WindowResult, fanned: WindowResult) -> None:
    assert (fanned.verdict, fanned.rows, fanned.skipped_files) == (
        local.verdict,
        local.rows,
        local.skipped_files,
    )
    assert fanned.signals == local.signals
    a, b = local.counts, fanned.counts
    assert a is not None
    assert b is not None
    for key in a.features:
        np.testing.assert_array_equal(a.features[key], b.features[key])
    for key in a.predictions:
        np.testing.assert_array_equal(a.predictions[key], b.predictions[key])
    assert (a.ranges, a.violations) == (b.ranges, b.violations)
    for key in a.scores:
        np.testing.assert_allclose(a.scores[key], b.scores[key], rtol=1e-12)
    assert local.drift is not None
    assert fanned.drift is not None
    for f, g in zip(local.drift.features, fanned.drift.features, strict=True):
        assert (f.feature, f.drifted) == (g.feature, g.drifted)
        assert g.psi == pytest.approx(f.psi, rel=1e-9)
        assert g.p_value == pytest.approx(f.p_value, rel=1e-9)
    assert fanned.prediction_drift is not None
    assert local.prediction_drift is not None
    assert fanned.prediction_drift.to_dict() == local.prediction_drift.to_dict()
    assert local.quality is not None
    assert fanned.quality is not None
    for name, est in local.quality.estimated.items():
        assert fanned.quality.estimated[name].value == pytest.approx(est.value, rel=1e-9)


def _both(store: ArtifactStore, refs: References, **ray: Any) -> tuple[WindowResult, WindowResult]:
    def score(counter: Any) -> WindowResult:
        return monitor_window(
            RequestLog(store, "churn", "1"),
            refs,
            MonitorPolicy(),
            model="churn",
            version=1,
            window=WINDOW,
            batch_rows=700,
            counter=counter,
        )

    local = score(None)
    fanned = score(RayCounter(store.url, storage_options=store.storage_options, **ray))
    return local, fanned


def test_a_window_fanned_out_over_ray_scores_as_the_local_one(
    ray_session: Any, tmp_path: Path, refs: References
) -> None:
    store = ArtifactStore.open(tmp_path / "artifacts")
    _fill(store)
    for parts in (2, 8):  # whole files per task, then the row groups of a file split too
        local, fanned = _both(store, refs, parts=parts)
        assert (local.verdict, local.rows, local.skipped_files) == ("crossed", 6_700, 1)
        assert local.drift is not None
        assert local.drift.drifted == ["age"]
        _same(local, fanned)


def test_a_log_that_does_not_fit_is_no_verdict_on_ray_too(
    ray_session: Any, tmp_path: Path, refs: References
) -> None:
    store = ArtifactStore.open(tmp_path / "artifacts")
    frame = _frame(np.random.default_rng(4), 600).rename(columns={"plan": "tier"})
    write_requests(store, "churn", 1, frame, ts_s=T0.timestamp())
    local, fanned = _both(store, refs, parts=2)
    assert fanned.verdict == local.verdict == "no_verdict"
    assert "no column for the features ['plan']" in str(fanned.error)


def test_monitor_with_executor_ray_stores_the_same_result(
    ray_session: Any, sqlite_settings: Any, refs: References, tmp_path: Path
) -> None:
    from modelyard.workspace import Workspace

    assert refs.predictions is not None
    ws = Workspace.open(sqlite_settings)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "modelyard.json").write_text("{}")
    ws.registry.register_version(
        "churn",
        pkg,
        profile=refs.profile,
        contract=refs.contract,
        extra={"prediction_profile": refs.predictions.to_dict()},
    )
    _fill(ws.artifact_store)
    until = WINDOW.end
    [local] = Monitor.from_workspace(ws).check("churn:1", since=T0, until=until, record=False)
    [fanned] = Monitor.from_workspace(ws, executor="ray").check("churn:1", since=T0, until=until)
    _same(local, fanned)
    [stored] = Monitor.from_workspace(ws).history("churn:1")
    assert (stored.verdict, stored.rows) == ("crossed", 6_700)
    ws.metadata_store.dispose()


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    from modelyard.testing.s3 import moto_s3_server

    with moto_s3_server() as server:
        server.create_bucket("modelyard-ray")
        yield server


def test_ray_tasks_read_their_parts_from_s3(ray_session: Any, s3: Any, refs: References) -> None:
    store = ArtifactStore.open(f"s3://modelyard-ray/{uuid.uuid4().hex}", s3.storage_options)
    _fill(store)
    local, fanned = _both(store, refs, parts=4)
    assert (local.verdict, local.rows, local.skipped_files) == ("crossed", 6_700, 1)
    _same(local, fanned)


@pytest.mark.usefixtures("ray_session")
def test_the_command_fans_out_with_executor_ray(
    sqlite_settings: Any,
    refs: References,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from modelyard.cli import main
    from modelyard.cli.state import state
    from modelyard.workspace import Workspace

    ws = Workspace.open(sqlite_settings)
    pkg = sqlite_settings.project_root / "pkg"
    pkg.mkdir()
    (pkg / "modelyard.json").write_text("{}")
    ws.registry.register_version("churn", pkg, profile=refs.profile, contract=refs.contract)
    _fill(ws.artifact_store)
    ws.metadata_store.dispose()
    monkeypatch.setenv("MODELYARD_HOME", str(sqlite_settings.resolved_home))
    monkeypatch.chdir(sqlite_settings.project_root)
    monkeypatch.setattr(state, "_settings", None)
    monkeypatch.setattr(state, "overrides", {})
    window = ["--since", T0.isoformat(), "--until", WINDOW.end.isoformat(), "--json"]
    assert main(["monitor", "churn:1", *window, "--executor", "ray"]) == 3
    [fanned] = json.loads(capsys.readouterr().out)
    assert main(["monitor", "churn:1", *window]) == 3
    [local] = json.loads(capsys.readouterr().out)
    assert (fanned["rows"], fanned["skipped_files"], fanned["drift"]) == (
        local["rows"],
        local["skipped_files"],
        local["drift"],
    )
    assert main(["monitor", "churn:1", *window, "--executor", "spark"]) == 2
    assert "unknown executor 'spark'" in capsys.readouterr().err
