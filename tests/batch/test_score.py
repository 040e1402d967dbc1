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


def _assert_same_parts(one: Path, other: Path) -> None:
    """The same part files, scored and quarantined, with the same rows in the same order."""
    for sub in ("", "_quarantine"):
        names = sorted(p.name for p in (one / sub).glob("part-*.parquet"))
        assert names
        assert names == sorted(p.name for p in (other / sub).glob("part-*.parquet"))
        for name in names:
            assert pq.read_table(one / sub / name).equals(pq.read_table(other / sub / name)), name


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


def test_one_process_per_core_writes_the_parts_of_one_thread_per_core(
    sqlite_settings: Any, tmp_path: Path
) -> None:
    """``executor="processes"`` (for models whose predict holds the GIL): the same parts."""
    from modelyard.batch import score

    ws, _, _ = _register(sqlite_settings)
    frame = _frame(900, seed=15)
    frame.loc[2, "x1"] = 5.0
    src = _write(frame, tmp_path / "in.parquet", row_group_size=300)
    threads = score(ws, "churn", [src], tmp_path / "threads", chunk_rows=300, track=False)
    procs = score(ws, "churn", [src], tmp_path / "procs", chunk_rows=300, executor="processes")
    assert (procs.rows_scored, procs.rows_quarantined, procs.chunks) == (899, 1, 3)
    _assert_same_parts(tmp_path / "threads", tmp_path / "procs")
    assert threads.rows_scored == procs.rows_scored


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


def _cli_project(settings: Any) -> Path:
    """The registered model's project, its home written down for the ``modelyard`` command."""
    _register(settings)
    project = Path(settings.project_root)
    (project / "pyproject.toml").write_text(
        f'[tool.modelyard]\nhome = "{settings.resolved_home}"\n'
    )
    return project


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
    project = _cli_project(sqlite_settings)
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


def test_ctrl_c_stops_every_thread_and_the_job_resumes(
    sqlite_settings: Any, tmp_path: Path
) -> None:
    """SIGINT mid-job: exit 130 soon, no output presented, no temporary part left; --resume."""
    project = _cli_project(sqlite_settings)
    src = _write(_frame(400_000, seed=16), tmp_path / "big.parquet", row_group_size=100_000)
    out = tmp_path / "scored"
    args = ["churn", str(src), "--out", str(out), "--chunk-rows", "100000", "--workers", "2"]
    proc = _cli(project, *args)
    partial = tmp_path / "scored.partial"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(partial.glob(".part-*.tmp")):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert not out.exists()
    assert not list(partial.glob(".*.tmp"))
    assert not list((partial / "_quarantine").glob(".*.tmp"))
    from modelyard.workspace import Workspace

    assert Workspace.open(sqlite_settings).tracking.search_runs("scoring")[0].status == "KILLED"

    resumed = _cli(project, *args, "--resume", "--json")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert json.loads(stdout)["rows_scored"] == 400_000
    assert _read_parts(out)["customer_id"].is_unique


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


def test_a_file_missing_a_column_is_refused_before_anything_is_written(
    sqlite_settings: Any, tmp_path: Path
) -> None:
    """The second file of a folder misses a feature: no part of the first is scored either."""
    from modelyard.batch import score

    ws, _, _ = _register(sqlite_settings)
    folder = tmp_path / "day"
    folder.mkdir()
    _write(_frame(100, seed=3), folder / "a.parquet")
    _frame(60, seed=4).drop(columns=["color"]).to_csv(folder / "b.csv", index=False)
    with pytest.raises(InvalidInputError, match=r"b\.csv has no column 'color'") as info:
        score(ws, "churn", [folder], tmp_path / "out")
    assert info.value.details["column"] == "color"
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out.partial").exists()


def test_text_in_a_number_column_of_a_csv_quarantines_its_row_wherever_it_is(
    sqlite_settings: Any, tmp_path: Path
) -> None:
    """Arrow infers CSV types from the first block; a bad value past it is still one row."""
    from modelyard.batch import score

    ws, _, _ = _register(sqlite_settings)
    frame = _frame(150_000, seed=8)  # about 11 MB of CSV: more than one 8 MiB read block
    text = frame.astype({"x1": object})
    text.loc[5, "x1"] = "abc"
    text.loc[149_990, "x1"] = "12,5"
    src = tmp_path / "in.csv"
    text.to_csv(src, index=False)
    assert src.stat().st_size > 9 << 20
    result = score(ws, "churn", [src], tmp_path / "out", workers=1, track=False)

    assert (result.rows_scored, result.rows_quarantined) == (149_998, 2)
    bad = pq.read_table(next((tmp_path / "out" / "_quarantine").glob("*.parquet"))).to_pandas()
    reasons = dict(zip(bad["customer_id"], bad["_reason"], strict=True))
    assert reasons == {
        8005: "x1: 'abc' is not a number",
        8000 + 149_990: "x1: '12,5' is not a number",
    }
    # a kept number feature comes out as the number it was checked as, not as the CSV's text
    kept = score(ws, "churn", [src], tmp_path / "kept", keep_columns=["customer_id", "x1"])
    got = _read_parts(tmp_path / "kept").set_index("customer_id").sort_index()
    assert got["x1"].dtype == np.float64
    expected = frame.set_index("customer_id").sort_index()["x1"].drop([8005, 8000 + 149_990])
    np.testing.assert_allclose(got["x1"], expected)
    assert kept.rows_scored == 149_998


def test_empty_and_unreadable_inputs_leave_no_output(sqlite_settings: Any, tmp_path: Path) -> None:
    from modelyard.batch import score

    ws, _, _ = _register(sqlite_settings)
    header_only = tmp_path / "header.csv"
    _frame(0).to_csv(header_only, index=False)
    with pytest.raises(InvalidInputError, match="the input holds no rows"):
        score(ws, "churn", [header_only], tmp_path / "out1")
    assert not (tmp_path / "out1").exists()
    assert not (tmp_path / "out1.partial").exists()

    blank = tmp_path / "blank.csv"
    blank.write_text("")
    with pytest.raises(InvalidInputError, match=r"blank\.csv is not a readable CSV file"):
        score(ws, "churn", [blank], tmp_path / "out2", track=False)
    assert not (tmp_path / "out2").exists()

    not_parquet = tmp_path / "fake.parquet"
    not_parquet.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InvalidInputError, match=r"fake\.parquet is not a readable Parquet file"):
        score(ws, "churn", [not_parquet], tmp_path / "out3", track=False)
    assert not (tmp_path / "out3").exists()


def test_a_job_failing_midway_is_never_presented_as_complete(
    sqlite_settings: Any, tmp_path: Path
) -> None:
    """A CSV whose later block is malformed: the error names the file; OUT does not appear."""
    from modelyard.batch import score

    ws, _, _ = _register(sqlite_settings)
    folder = tmp_path / "day"
    folder.mkdir()
    _write(_frame(1000, seed=3), folder / "a.parquet")
    broken = folder / "b.csv"
    _frame(150_000, seed=9).to_csv(broken, index=False)
    with broken.open("a") as fh:
        fh.write("1,2,3\n")  # a line with 3 of the header's 6 columns, far past the first block
    with pytest.raises(InvalidInputError, match=r"b\.csv cannot be read as CSV") as info:
        score(ws, "churn", [folder], tmp_path / "out", workers=1)
    assert info.value.details["file"] == str(broken)
    assert not (tmp_path / "out").exists()
    partial = tmp_path / "out.partial"
    assert not (partial / "_SUCCESS.json").exists()
    assert not list(partial.glob(".*.tmp"))  # no half-written part left behind
    assert [p.name for p in partial.glob("part-*.parquet")] == ["part-00000.parquet"]
    run = ws.tracking.search_runs(experiment="scoring")[0]
    assert run.status == "FAILED"


def test_an_existing_output_is_refused_by_the_command_and_replaced_with_overwrite(
    sqlite_settings: Any, tmp_path: Path
) -> None:
    project = _cli_project(sqlite_settings)
    src = _write(_frame(50), tmp_path / "in.parquet")
    out = tmp_path / "scored"
    out.write_text("yesterday's report\n")  # a file, not even a folder
    proc = _cli(project, "churn", str(src), "--out", str(out))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 5, stderr
    assert f"output '{out}' already exists" in stderr
    assert "--overwrite" in stderr
    assert out.read_text() == "yesterday's report\n"

    proc = _cli(project, "churn", str(src), "--out", str(out), "--overwrite", "--json")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert json.loads(stdout)["rows_scored"] == 50
    assert len(_read_parts(out)) == 50


@pytest.mark.ray
def test_on_ray_the_same_rows_and_quarantine_as_the_local_executor(
    ray_session: Any, sqlite_settings: Any, tmp_path: Path
) -> None:
    """Ray Data runs the same chunks on actors (a real local Ray): same parts, same rejects."""
    from modelyard.batch import score

    ws, _, model = _register(sqlite_settings)
    folder = tmp_path / "day"
    folder.mkdir()
    frame = _frame(3000, seed=10)
    frame.loc[3, "x0"] = 1e9
    frame.loc[1500, "color"] = "green"
    _write(frame, folder / "a.parquet", row_group_size=500)
    _frame(400, seed=20).to_csv(folder / "b.csv", index=False)

    local = score(ws, "churn@production", [folder], tmp_path / "local", chunk_rows=1000)
    on_ray = score(
        ws, "churn@production", [folder], tmp_path / "ray", chunk_rows=1000, executor="ray"
    )
    assert (on_ray.rows_scored, on_ray.rows_quarantined, on_ray.chunks) == (3398, 2, 4)
    assert (local.rows_scored, local.rows_quarantined, local.chunks) == (3398, 2, 4)
    _assert_same_parts(tmp_path / "local", tmp_path / "ray")
    got = _read_parts(tmp_path / "ray").set_index("customer_id").sort_index()
    ids = set(frame["customer_id"]) - {10_003, 11_500}
    expected = frame[frame["customer_id"].isin(ids)].set_index("customer_id").sort_index()
    np.testing.assert_allclose(
        got.loc[expected.index, "proba_1"],
        model.predict_proba(expected[[*FEATURES, "color"]])[:, 1],
    )
    run = ws.tracking.get_run(on_ray.run_id)
    assert run.metrics["rows_quarantined"] == 2


@pytest.mark.ray
def test_on_ray_a_chunks_error_reaches_the_caller_and_nothing_is_complete(
    ray_session: Any, sqlite_settings: Any, tmp_path: Path
) -> None:
    from modelyard.batch import score

    ws, _, _ = _register(sqlite_settings)
    broken = tmp_path / "b.csv"
    _frame(150_000, seed=9).to_csv(broken, index=False)
    with broken.open("a") as fh:
        fh.write("1,2,3\n")
    with pytest.raises(InvalidInputError, match=r"b\.csv cannot be read as CSV"):
        score(ws, "churn", [broken], tmp_path / "out", executor="ray", track=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(InvalidInputError, match="executor must be one of local, processes, ray"):
        score(ws, "churn", [broken], tmp_path / "out2", executor="dask")


def _s3_settings(tmp_path: Path, storage_options: dict[str, Any]) -> Any:
    """A project whose inputs may be read from the moto S3 server."""
    from modelyard.config import load_settings

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.modelyard]\n")
    return load_settings(
        start=project, home=str(tmp_path / "home"), storage_options=storage_options
    )


def _upload(storage_options: dict[str, Any], files: dict[str, Path]) -> None:
    import fsspec

    fs = fsspec.filesystem("s3", **storage_options)
    for url, path in files.items():
        fs.put_file(str(path), url)


def test_inputs_on_s3_are_scored_like_local_files(tmp_path: Path) -> None:
    """A folder URL on the moto S3 server: its files are listed, fingerprinted and streamed."""
    from modelyard.batch import score
    from modelyard.testing.s3 import moto_s3_server

    with moto_s3_server() as s3:
        bucket = s3.create_bucket("data")
        settings = _s3_settings(tmp_path, s3.storage_options)
        ws, _, model = _register(settings)
        frame = _frame(700, seed=12)
        frame.loc[4, "x3"] = -7.0
        extra = _frame(90, seed=13)
        _write(frame, tmp_path / "a.parquet", row_group_size=200)
        extra.to_csv(tmp_path / "b.csv", index=False)
        (tmp_path / "_SUCCESS").write_text("")
        _upload(
            s3.storage_options,
            {
                f"{bucket}/day/a.parquet": tmp_path / "a.parquet",
                f"{bucket}/day/b.csv": tmp_path / "b.csv",
                f"{bucket}/day/_SUCCESS": tmp_path / "_SUCCESS",
            },
        )
        result = score(ws, "churn", [f"{bucket}/day/"], tmp_path / "out", chunk_rows=400)

        assert (result.rows_scored, result.rows_quarantined, result.chunks) == (789, 1, 3)
        assert [f["path"] for f in result.inputs] == [
            f"{bucket}/day/a.parquet",
            f"{bucket}/day/b.csv",
        ]
        local = score(ws, "churn", [tmp_path / "a.parquet"], tmp_path / "local", track=False)
        assert result.inputs[0]["sha256"] == local.inputs[0]["sha256"]
        got = _read_parts(tmp_path / "out").set_index("customer_id").sort_index()
        both = pd.concat([frame.drop(index=4), extra]).set_index("customer_id").sort_index()
        np.testing.assert_allclose(
            got["proba_1"], model.predict_proba(both[[*FEATURES, "color"]])[:, 1]
        )
        with pytest.raises(NotFoundError, match="does not exist"):
            score(ws, "churn", [f"{bucket}/nothing-here.parquet"], tmp_path / "out2")


@pytest.mark.ray
def test_on_ray_inputs_on_s3(ray_session: Any, tmp_path: Path) -> None:
    from modelyard.batch import score
    from modelyard.testing.s3 import moto_s3_server

    with moto_s3_server() as s3:
        bucket = s3.create_bucket("data")
        settings = _s3_settings(tmp_path, s3.storage_options)
        ws, _, _ = _register(settings)
        frame = _frame(900, seed=14)
        frame.loc[8, "color"] = "green"
        _write(frame, tmp_path / "a.parquet", row_group_size=300)
        _upload(s3.storage_options, {f"{bucket}/day/a.parquet": tmp_path / "a.parquet"})
        on_ray = score(ws, "churn", [f"{bucket}/day/"], tmp_path / "ray", chunk_rows=300,
                       executor="ray")  # fmt: skip
        local = score(ws, "churn", [f"{bucket}/day/"], tmp_path / "local", chunk_rows=300)
        assert (on_ray.rows_scored, on_ray.rows_quarantined, on_ray.chunks) == (899, 1, 3)
        assert on_ray.inputs == local.inputs
        a = _read_parts(tmp_path / "ray").sort_values("customer_id").reset_index(drop=True)
        b = _read_parts(tmp_path / "local").sort_values("customer_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)
