"""TrackingClient and Run against real stores (SQLite file and PostgreSQL)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from modelyard.errors import ConflictError, InvalidInputError, InvalidNameError, NotFoundError
from modelyard.store import schema
from modelyard.tracking.client import TrackingClient
from modelyard.tracking.fingerprint import fingerprint_frame


def _count(client: TrackingClient, table: sa.Table, run_id: str) -> int:
    with client.metadata_store.read() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.run_id == run_id)
            ).scalar_one()
        )


def test_run_round_trip(client: TrackingClient) -> None:
    with client.start_run(experiment="exp", name="first", tags={"team": "core"}) as run:
        run.log_param("lr", 0.1)
        run.log_params({"depth": 6, "loss": "logloss"})
        run.log_metric("auc", 0.8, step=0)
        run.log_metrics({"auc": 0.85, "acc": 0.9}, step=1)
        run.set_tag("stage", "dev")
        run.set_tags({"stage": "review", "owner": "me"})
        assert run.status == "RUNNING"
    assert run.status == "FINISHED"
    info = client.get_run(run.id)
    assert info.id == run.id
    assert info.experiment == "exp"
    assert info.name == "first"
    assert info.kind == "run"
    assert info.status == "FINISHED"
    assert info.end_time is not None
    assert info.end_time >= info.start_time
    assert info.params == {"depth": "6", "loss": "logloss", "lr": "0.1"}
    assert info.tags == {"owner": "me", "stage": "review", "team": "core"}
    assert info.metrics == {"acc": 0.9, "auc": 0.85}
    assert info.user
    assert [v for _, v, _ in client.metric_history(run.id, "auc")] == [0.8, 0.85]
    assert client.metric_history(run.id, "nope") == []


def test_buffered_metrics_all_stored_at_end(client: TrackingClient) -> None:
    run = client.start_run(capture_lineage=False)
    for step in range(2_500):
        run.log_metric("loss", 1.0 / (step + 1), step=step)
    run.end()
    assert _count(client, schema.metrics, run.id) == 2_500
    history = client.metric_history(run.id, "loss")
    assert [s for s, _, _ in history] == list(range(2_500))
    assert client.get_run(run.id).metrics == {"loss": 1.0 / 2_500}


def test_size_threshold_flushes_in_background(client: TrackingClient) -> None:
    client.flush_every = 50
    run = client.start_run(capture_lineage=False)
    for step in range(120):
        run.log_metric("m", float(step), step=step)
    deadline = time.monotonic() + 20
    while _count(client, schema.metrics, run.id) < 100:  # two full batches, no end, no read
        assert time.monotonic() < deadline, "the background flusher wrote nothing"
        time.sleep(0.02)
    run.end()
    assert _count(client, schema.metrics, run.id) == 120


def test_latest_metric_is_highest_step_across_flushes(client: TrackingClient) -> None:
    run = client.start_run(capture_lineage=False)
    run.log_metric("auc", 0.7, step=5)
    run.log_metric("auc", 0.9, step=2)
    run.flush()
    run.log_metric("auc", 0.6, step=3)  # older step in a later flush: not the latest
    run.flush()
    assert client.get_run(run.id).metrics["auc"] == 0.7
    run.log_metric("auc", 0.5, step=5)  # same step, later timestamp: replaces
    run.end()
    assert client.get_run(run.id).metrics["auc"] == 0.5
    steps = [s for s, _, _ in client.metric_history(run.id, "auc")]
    assert steps == [2, 3, 5, 5]


def test_params_are_immutable(client: TrackingClient) -> None:
    with client.start_run(capture_lineage=False) as run:
        run.log_param("lr", 0.1)
        run.log_param("lr", "0.1")  # same value: fine
        with pytest.raises(InvalidInputError) as err:
            run.log_param("lr", 0.2)
        msg = str(err.value)
        assert "'lr'" in msg
        assert "'0.1'" in msg
        assert "'0.2'" in msg
    assert client.get_run(run.id).params == {"lr": "0.1"}


@pytest.mark.parametrize(
    ("key", "value", "step", "needle"),
    [
        ("loss", math.nan, 1, "finite"),
        ("loss", math.inf, 1, "finite"),
        ("loss", "high", 1, "must be a number"),
        ("loss", 1.0, 1.5, "step"),
        ("loss", 1.0, None, "divide milliseconds"),
        ("", 1.0, 0, "invalid metric key"),
        ("/abs", 1.0, 0, "invalid metric key"),
        ("bad\nkey", 1.0, 0, "invalid metric key"),
        ("x" * 256, 1.0, 0, "invalid metric key"),
    ],
)
def test_bad_metric_values_are_refused(
    sqlite_client: TrackingClient, key: str, value: object, step: object, needle: str
) -> None:
    client = sqlite_client
    with client.start_run(capture_lineage=False) as run:
        # step None stands for a timestamp in milliseconds, as MLflow takes them
        kwargs = {"step": step} if step is not None else {"timestamp": 1_700_000_000_000}
        with pytest.raises(InvalidInputError, match=needle):
            run.log_metric(key, value, **kwargs)  # type: ignore[arg-type]
        run.log_metric("ok", np.float32(0.5), step=np.int64(3))  # numpy scalars are fine
    assert client.get_run(run.id).metrics == {"ok": 0.5}


def test_values_the_database_cannot_store_are_refused_at_the_call(
    client: TrackingClient,
) -> None:
    """A record that would fail at flush must not reach the buffer and hold the run hostage."""
    with client.start_run(capture_lineage=False) as run:
        run.log_metric("good", 1.0, step=1)
        with pytest.raises(InvalidInputError, match="64-bit"):
            run.log_metric("bad", 1.0, step=2**63)
        with pytest.raises(InvalidInputError, match="64-bit"):
            run.log_metric("bad", 1.0, step=np.uint64(2**64 - 1))
        with pytest.raises(InvalidInputError, match="NUL"):
            run.log_param("p", "a\x00b")
        with pytest.raises(InvalidInputError, match="NUL"):
            run.set_tag("t", "a\x00b")
        run.log_metric("edge", 2.0, step=2**63 - 1)
    info = client.get_run(run.id)
    assert info.status == "FINISHED"
    assert info.metrics == {"good": 1.0, "edge": 2.0}


def test_long_param_value_is_refused(sqlite_client: TrackingClient) -> None:
    client = sqlite_client
    with client.start_run(capture_lineage=False) as run, pytest.raises(InvalidInputError) as err:
        run.log_param("blob", "x" * 8001)
    assert "8001" in str(err.value)
    assert "log_artifact" in str(err.value)


def test_failure_inside_context_manager_ends_failed(client: TrackingClient) -> None:
    run = client.start_run(capture_lineage=False)
    run.log_metric("loss", 1.0)

    def fail() -> None:
        with run:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    info = client.get_run(run.id)
    assert info.status == "FAILED"
    assert info.metrics == {"loss": 1.0}


def test_keyboard_interrupt_ends_killed(sqlite_client: TrackingClient) -> None:
    client = sqlite_client
    with pytest.raises(KeyboardInterrupt), client.start_run(capture_lineage=False) as run:
        raise KeyboardInterrupt
    assert client.get_run(run.id).status == "KILLED"


def test_ended_run_refuses_writes(sqlite_client: TrackingClient) -> None:
    client = sqlite_client
    run = client.start_run(capture_lineage=False)
    run.end()
    run.end()  # idempotent
    with pytest.raises(ConflictError, match=run.id):
        run.log_metric("loss", 1.0)
    with pytest.raises(ConflictError):
        run.log_param("a", 1)
    with pytest.raises(InvalidInputError, match="RUNNING"):
        client.start_run(capture_lineage=False).end("RUNNING")


def test_nested_runs_and_unknown_parent(client: TrackingClient) -> None:
    with client.start_run(experiment="e", kind="pipeline", capture_lineage=False) as parent:
        child = client.start_run(
            experiment="e", kind="step", parent_run_id=parent.id, capture_lineage=False
        )
        child.end()
    info = client.get_run(child.id)
    assert info.parent_run_id == parent.id
    assert info.kind == "step"
    with pytest.raises(NotFoundError, match="parent run 'f{32}'".replace("f{32}", "f" * 32)):
        client.start_run(parent_run_id="f" * 32, capture_lineage=False)
    with pytest.raises(InvalidInputError, match="kind"):
        client.start_run(kind="job", capture_lineage=False)


def test_get_run_unknown_and_prefix(client: TrackingClient) -> None:
    with pytest.raises(NotFoundError, match="modelyard runs list"):
        client.get_run("0" * 32)
    with pytest.raises(NotFoundError):
        client.metric_history("0" * 32, "loss")
    with client.start_run(capture_lineage=False) as run:
        pass
    assert client.resolve_run_id(run.id[:10]) == run.id
    with pytest.raises(InvalidInputError):
        client.resolve_run_id("xyz")


def test_artifacts_and_datasets(client: TrackingClient, tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    frame = pd.DataFrame({"x": np.arange(10), "y": np.linspace(0, 1, 10)})
    with client.start_run(capture_lineage=False) as run:
        ref = run.log_artifact(model)
        run.log_artifact(model, name="models/copy.bin")
        refs = run.log_artifacts(folder, prefix="plots")
        fp = run.log_dataset(frame, "train", context="train", source="s3://bucket/train.parquet")
        with pytest.raises(InvalidNameError):
            run.log_artifact(model, name="../escape")
    assert client.artifact_store.get_bytes(ref.sha256) == b"weights"
    assert sorted(refs) == ["plots/a.txt", "plots/sub/b.txt"]
    info = client.get_run(run.id)
    assert info.artifacts["model.bin"] == {"sha256": ref.sha256, "size_bytes": 7}
    assert sorted(info.artifacts) == [
        "model.bin",
        "models/copy.bin",
        "plots/a.txt",
        "plots/sub/b.txt",
    ]
    assert fp == fingerprint_frame(frame)
    [ds] = info.datasets
    assert ds["name"] == "train"
    assert ds["context"] == "train"
    assert ds["digest"] == fp["digest"]
    assert ds["rows"] == 10
    assert ds["schema"] == {"x": "int64", "y": "float64"}
    assert ds["source"] == "s3://bucket/train.parquet"


def test_logging_an_artifact_name_again_points_it_at_the_new_bytes(
    client: TrackingClient, tmp_path: Path
) -> None:
    model = tmp_path / "model.bin"
    with client.start_run(capture_lineage=False) as run:
        model.write_bytes(b"first")
        run.log_artifact(model)
        model.write_bytes(b"second, longer")
        second = run.log_artifact(model)
    info = client.get_run(run.id)
    assert info.artifacts == {"model.bin": {"sha256": second.sha256, "size_bytes": 14}}


def test_reads_see_buffered_records(client: TrackingClient) -> None:
    run = client.start_run(experiment="live", capture_lineage=False)
    run.log_metric("auc", 0.75)
    run.log_param("lr", "0.1")
    assert client.get_run(run.id).metrics == {"auc": 0.75}
    [found] = client.search_runs(experiment="live", filter="metrics.auc > 0.7")
    assert found.params == {"lr": "0.1"}
    assert found.status == "RUNNING"
    run.end()


def test_threads_log_into_one_run(sqlite_client: TrackingClient) -> None:
    import threading

    run = sqlite_client.start_run(capture_lineage=False)
    sqlite_client.flush_every = 100

    def work(worker: int) -> None:
        for step in range(1_500):
            run.log_metric(f"w{worker}", float(step), step=step)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.end()
    assert _count(sqlite_client, schema.metrics, run.id) == 6_000
    assert sqlite_client.get_run(run.id).metrics == {f"w{i}": 1_499.0 for i in range(4)}
