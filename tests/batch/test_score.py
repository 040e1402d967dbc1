"""Batch scoring from the user's side: real stores, real files, the real CLI and real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelyard.errors import ConflictError, InvalidInputError, NotFoundError

FEATURES = [f"x{i}" for i in range(4)]


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {name: rng.uniform(-1, 1, size=n) for name in FEATURES}
    data["color"] = rng.choice(["red", "blue"], size=n)
    frame = pd.DataFrame(data)
    frame.insert(0, "customer_id", np.arange(n, dtype=np.int64) + 1000 * seed)
    return frame


def _register(settings: Any) -> Any:
    """A logistic regression on x0..x3 + color, registered with its inferred contract."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from modelyard import models
    from modelyard.data import infer_contract
    from modelyard.workspace import Workspace

    train = _frame(400)
    train.loc[0, FEATURES] = -1.0  # the inferred contract's ranges: [-1, 1], as scored data
    train.loc[1, FEATURES] = 1.0
    y = (train["x0"] + train["x1"] > 0).astype(int)
    features = train[[*FEATURES, "color"]]
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(), ["color"]), remainder="passthrough", verbose_feature_names_out=False
        ),
        LogisticRegression(),
    ).fit(features, y)
    ws = Workspace.open(settings)
    version = models.register(
        model,
        ws.registry,
        name="churn",
        input_example=features.head(5),
        contract=infer_contract(features),
        aliases=["production"],
    )
    return ws, version, model


def _write(frame: pd.DataFrame, path: Path, row_group_size: int = 250) -> Path:
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_size
    )
    return path


def _read_parts(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("part-*.parquet"))
    return pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)


def test_scores_every_row_with_the_models_own_answers(settings: Any, tmp_path: Path) -> None:
    from modelyard.batch import score

    ws, version, model = _register(settings)
    frame = _frame(1000, seed=1)
    src = _write(frame, tmp_path / "in.parquet")
    result = score(ws, "churn@production", [src], tmp_path / "out", chunk_rows=300, workers=2)

    assert result.rows_scored == 1000
    assert result.rows_quarantined == 0
    assert result.chunks == 4
    got = _read_parts(tmp_path / "out").sort_values("customer_id").reset_index(drop=True)
    expected = model.predict_proba(frame[[*FEATURES, "color"]])
    np.testing.assert_allclose(got["proba_1"], expected[:, 1])
    assert list(got["customer_id"]) == list(frame["customer_id"])
    assert set(got.columns) == {"customer_id", "prediction", "proba_0", "proba_1"}
    manifest = json.loads((tmp_path / "out" / "_SUCCESS.json").read_text())
    assert manifest["version"] == version.version
    assert manifest["rows_scored"] == 1000
    assert not (tmp_path / "out.partial").exists()
    # a tracked run with the version, the input's fingerprint and the counts
    run = ws.tracking.get_run(result.run_id)
    assert run.params["version"] == str(version.version)
    assert run.tags["input.0.sha256"] == manifest["inputs"][0]["sha256"]
    assert run.metrics["rows_scored"] == 1000


def test_rows_breaking_the_contract_are_quarantined_with_the_reason(
    sqlite_settings: Any, tmp_path: Path
) -> None:
    from modelyard.batch import score

    ws, _, _ = _register(sqlite_settings)
    frame = _frame(50, seed=2)
    frame.loc[3, "x0"] = 1e9  # far above the training range
    frame.loc[7, "color"] = "green"  # a category never seen
    frame.loc[9, "x2"] = np.nan  # the contract was inferred without nulls
    src = tmp_path / "in.csv"
    frame.to_csv(src, index=False)
    result = score(ws, "churn", [src], tmp_path / "out", workers=1)

    assert (result.rows_scored, result.rows_quarantined) == (47, 3)
    bad = pq.read_table(next((tmp_path / "out" / "_quarantine").glob("*.parquet"))).to_pandas()
    reasons = dict(zip(bad["customer_id"], bad["_reason"], strict=True))
    assert "x0=1e+09 is above the maximum" in reasons[2003]
    assert "color: 'green' is not one of" in reasons[2007]
    assert reasons[2009] == "x2 is null; the contract does not allow nulls"
    good = _read_parts(tmp_path / "out")
    assert sorted(good["customer_id"]) == sorted(set(frame["customer_id"]) - {2003, 2007, 2009})


def test_a_folder_of_files_is_one_job(sqlite_settings: Any, tmp_path: Path) -> None:
    from modelyard.batch import score

    ws, _, _ = _register(sqlite_settings)
    folder = tmp_path / "day"
    folder.mkdir()
    _write(_frame(100, seed=3), folder / "a.parquet")
    _frame(60, seed=4).to_csv(folder / "b.csv", index=False)
    result = score(ws, "churn:1", [folder], tmp_path / "out")
    assert result.rows_scored == 160
    assert len(_read_parts(tmp_path / "out")) == 160


def test_bad_input_is_refused_with_nothing_presented_as_complete(
    sqlite_settings: Any, tmp_path: Path
) -> None:
    from modelyard.batch import score

    ws, _, _ = _register(sqlite_settings)
    missing = _frame(10).drop(columns=["x2"])
    src = _write(missing, tmp_path / "missing.parquet")
    with pytest.raises(InvalidInputError, match="has no column 'x2'"):
        score(ws, "churn", [src], tmp_path / "out", track=False)
    assert not (tmp_path / "out").exists()

    wrong = _frame(10)
    wrong["x1"] = pd.Timestamp("2024-01-01")
    src = _write(wrong, tmp_path / "wrong.parquet")
    with pytest.raises(InvalidInputError, match="column 'x1' holds timestamp"):
        score(ws, "churn", [src], tmp_path / "out2", track=False)
    assert not (tmp_path / "out2").exists()

    empty = _write(_frame(0), tmp_path / "empty.parquet")
    with pytest.raises(InvalidInputError, match="no rows"):
        score(ws, "churn", [empty], tmp_path / "out3")

    good = _write(_frame(10), tmp_path / "good.parquet")
    (tmp_path / "exists").mkdir()
    with pytest.raises(ConflictError, match="already exists"):
        score(ws, "churn", [good], tmp_path / "exists")
    with pytest.raises(NotFoundError):
        score(ws, "churn", [tmp_path / "nope.parquet"], tmp_path / "out4")
    with pytest.raises(NotFoundError):
        score(ws, "nosuchmodel", [good], tmp_path / "out5")


def _cli(project: Path, *args: str, **kw: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "MODELYARD_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-m", "modelyard.cli", "score", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_a_killed_job_resumed_gives_exactly_the_rows_of_an_uninterrupted_one(
    sqlite_settings: Any, tmp_path: Path
) -> None:
    """SIGKILL mid-job (no clean-up at all), then --resume: same rows as one clean run."""
    _ws, _, _ = _register(sqlite_settings)
    project = sqlite_settings.project_root
    (project / "pyproject.toml").write_text(
        f'[tool.modelyard]\nhome = "{sqlite_settings.resolved_home}"\n'
    )
    frame = _frame(20_000, seed=5)
    src = _write(frame, tmp_path / "big.parquet", row_group_size=500)
    out = tmp_path / "scored"
    args = [
        "churn@production",
        str(src),
        "--out",
        str(out),
        "--chunk-rows",
        "500",
        "--workers",
        "1",
        "--json",
    ]
    proc = _cli(project, *args, start_new_session=True)
    partial = tmp_path / "scored.partial"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(partial.glob("part-*.parquet"))) < 3:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    done_before = len(list(partial.glob("part-*.parquet")))
    assert 3 <= done_before < 40
    assert not out.exists()  # a half-done job is never presented as the result

    again = _cli(project, *args)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode != 0
    assert "pass --resume to finish it" in stderr  # refused without --resume
    resumed = _cli(project, *args, "--resume")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["chunks_resumed"] >= done_before
    assert result["rows_scored"] == 20_000

    clean_out = tmp_path / "clean"
    clean = _cli(project, *args[:2], "--out", str(clean_out), "--json")
    clean.communicate(timeout=300)
    a = _read_parts(out).sort_values("customer_id").reset_index(drop=True)
    b = _read_parts(clean_out).sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 20_000
    assert a["customer_id"].is_unique


def test_resume_refuses_changed_inputs(sqlite_settings: Any, tmp_path: Path) -> None:
    from modelyard.batch import score

    ws, _, _ = _register(sqlite_settings)
    src = _write(_frame(100), tmp_path / "in.parquet")
    partial = tmp_path / "out.partial"
    partial.mkdir()
    (partial / "_plan.json").write_text("{}")
    with pytest.raises(ConflictError, match="unfinished scoring job"):
        score(ws, "churn", [src], tmp_path / "out")
    with pytest.raises(InvalidInputError, match="cannot resume"):
        score(ws, "churn", [src], tmp_path / "out", resume=True)


def test_scores_a_model_whose_artifacts_live_on_s3(tmp_path: Path) -> None:
    from modelyard.batch import score
    from modelyard.config import load_settings
    from modelyard.testing.s3 import moto_s3_server

    with moto_s3_server() as s3:
        bucket = s3.create_bucket("models")
        project = tmp_path / "project"
        project.mkdir()
        (project / "pyproject.toml").write_text("[tool.modelyard]\n")
        settings = load_settings(
            start=project,
            home=str(tmp_path / "home"),
            artifact_url=f"{bucket}/root",
            storage_options=s3.storage_options,
        )
        ws, _, model = _register(settings)
        frame = _frame(300, seed=6)
        src = _write(frame, tmp_path / "in.parquet")
        result = score(ws, "churn@production", [src], tmp_path / "out", workers=1)
        assert result.rows_scored == 300
        got = _read_parts(tmp_path / "out").sort_values("customer_id")
        np.testing.assert_allclose(
            got["proba_1"], model.predict_proba(frame[[*FEATURES, "color"]])[:, 1]
        )
