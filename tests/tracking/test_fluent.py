"""The fluent API (modelyard.start_run, log_metric, ...) and what happens at process exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import modelyard
from modelyard.errors import ConflictError, InvalidInputError, NotFoundError
from modelyard.tracking import fluent
from modelyard.tracking.client import TrackingClient


def test_public_names_resolve_to_the_fluent_api() -> None:
    assert modelyard.start_run is fluent.start_run
    assert modelyard.log_metric is fluent.log_metric
    from modelyard.tracking.run import Run

    assert modelyard.Run is Run


def test_context_manager_and_nesting(fluent_client: TrackingClient, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    with modelyard.start_run(experiment="exp", name="outer", tags={"t": 1}) as outer:
        assert modelyard.active_run() is outer
        modelyard.log_param("lr", 0.1)
        modelyard.log_params({"depth": 3})
        modelyard.log_metric("loss", 0.5, step=1)
        modelyard.log_metrics({"loss": 0.4, "acc": 0.8}, step=2)
        modelyard.set_tag("stage", "dev")
        modelyard.set_tags({"owner": "me"})
        ref = modelyard.log_artifact(tmp_path / "a.txt")
        modelyard.log_artifacts(tmp_path, prefix="all")
        fp = modelyard.log_dataset(pd.DataFrame({"a": [1, 2]}), "train", context="train")
        with modelyard.start_run(run_name="inner", nested=True) as inner:
            assert modelyard.active_run() is inner
            modelyard.log_metric("loss", 0.1)
        assert modelyard.active_run() is outer
    assert modelyard.active_run() is None
    info = modelyard.get_run(outer.id)
    assert info.params == {"depth": "3", "lr": "0.1"}
    assert info.metrics == {"acc": 0.8, "loss": 0.4}
    assert info.tags == {"owner": "me", "stage": "dev", "t": "1"}
    assert info.artifacts["a.txt"]["sha256"] == ref.sha256
    assert "all/a.txt" in info.artifacts
    assert info.datasets[0]["digest"] == fp["digest"]
    child = modelyard.get_run(inner.id)
    assert child.parent_run_id == outer.id
    assert child.experiment == "exp"
    assert child.name == "inner"
    found = modelyard.search_runs(experiment="exp", filter="metrics.loss < 0.2")
    assert [r.id for r in found] == [inner.id]


def test_logging_without_a_run_starts_one(fluent_client: TrackingClient) -> None:
    modelyard.log_metric("m", 1.0)
    run = modelyard.active_run()
    assert run is not None
    modelyard.end_run()
    assert modelyard.active_run() is None
    assert modelyard.get_run(run.id).status == "FINISHED"
    modelyard.end_run()  # nothing active: no-op


def test_not_nested_refuses_a_second_run(fluent_client: TrackingClient) -> None:
    with modelyard.start_run(), pytest.raises(InvalidInputError, match="already active"):
        modelyard.start_run()  # nested=False by default, as in MLflow


def test_start_run_with_a_run_id_resumes_that_run(fluent_client: TrackingClient) -> None:
    """MLflow's meaning of the first argument: start_run("abc") used to create a run named abc."""
    with pytest.raises(NotFoundError, match="run 'abc' not found") as missing:
        modelyard.start_run("abc")
    assert "run_name=" in (missing.value.hint or "")
    assert modelyard.active_run() is None

    with modelyard.start_run(run_name="first", experiment="resume") as run:
        modelyard.log_param("lr", 0.1)
        modelyard.log_metric("loss", 0.5, step=0)
    assert modelyard.get_run(run.id).status == "FINISHED"

    with modelyard.start_run(run.id, tags={"resumed": "yes"}) as again:
        assert again.id == run.id
        assert modelyard.active_run() is again
        assert modelyard.get_run(run.id).status == "RUNNING"
        modelyard.log_metric("loss", 0.25, step=1)
        modelyard.log_param("lr", 0.1)  # the same value again is fine
        with pytest.raises(InvalidInputError, match=r"already '0\.1'"):
            modelyard.log_param("lr", 0.2)  # params stay immutable across the resume
    info = modelyard.get_run(run.id)
    assert info.status == "FINISHED"
    assert info.name == "first"
    assert info.tags["resumed"] == "yes"
    assert info.metrics == {"loss": 0.25}
    assert [s for s, _, _ in fluent_client.metric_history(run.id, "loss")] == [0, 1]


def test_each_thread_has_its_own_active_run(fluent_client: TrackingClient) -> None:
    import threading

    barrier = threading.Barrier(2, timeout=30)
    seen: dict[str, tuple[str | None, str | None]] = {}
    errors: list[BaseException] = []

    def work(label: str) -> None:
        try:
            with modelyard.start_run(run_name=label, experiment="threads") as run:
                barrier.wait()  # both runs are active at once
                modelyard.log_metric("who", 1.0 if label == "a" else 2.0)
                active = modelyard.active_run()
                barrier.wait()
                seen[label] = (run.id, active.id if active is not None else None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(x,)) for x in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert modelyard.active_run() is None  # the main thread never had one
    for label, value in (("a", 1.0), ("b", 2.0)):
        run_id, active_id = seen[label]
        assert active_id == run_id
        info = modelyard.get_run(str(run_id))
        assert info.name == label
        assert info.parent_run_id is None
        assert info.metrics == {"who": value}


def test_activate_makes_a_run_active_inside_a_block_only(
    fluent_client: TrackingClient,
) -> None:
    """What a pipeline step's executor does around a step: modelyard.log_metric inside the
    block goes to the step's run, and the run is not ended by the block."""
    from modelyard import tracking

    step_run = fluent_client.start_run(experiment="steps", name="train", kind="step")
    with tracking.activate(step_run):
        assert modelyard.active_run() is step_run
        modelyard.log_metric("accuracy", 0.9)
    assert modelyard.active_run() is None
    assert step_run.status == "RUNNING"
    other = fluent_client.attach_run(step_run.id)  # the handle another process would use
    assert other is step_run
    step_run.end()
    assert modelyard.get_run(step_run.id).metrics == {"accuracy": 0.9}
    with pytest.raises(ConflictError, match="has ended"):
        TrackingClient(fluent_client.metadata_store, fluent_client.artifact_store).attach_run(
            step_run.id
        )


def test_failure_marks_failed(fluent_client: TrackingClient) -> None:
    with pytest.raises(ValueError, match="bad"), modelyard.start_run() as run:
        raise ValueError("bad")
    assert modelyard.get_run(run.id).status == "FAILED"


def _child_env(settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["MODELYARD_HOME"] = str(settings.resolved_home)
    env["MODELYARD_DB_URL"] = settings.resolved_db_url
    env["MODELYARD_ARTIFACT_URL"] = settings.resolved_artifact_url
    return env


def _run_child(settings, tail: str) -> str:  # type: ignore[no-untyped-def]
    """Run a child that logs without ending its run, then exits; return the run id."""
    code = textwrap.dedent(
        f"""
        import modelyard
        run = modelyard.start_run(experiment="child", name="no-end")
        print(run.id, flush=True)
        modelyard.log_param("p", "v")
        for step in range(2_345):
            modelyard.log_metric("loss", 1.0 / (step + 1), step=step)
        modelyard.set_tag("done", "yes")
        {tail}
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=_child_env(settings),
        cwd=settings.project_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1, 3), proc.stderr
    return proc.stdout.split()[0]


def _check_child_run(client: TrackingClient, run_id: str, status: str) -> None:
    info = client.get_run(run_id)
    assert info.status == status
    assert info.params == {"p": "v"}
    assert info.tags == {"done": "yes"}
    assert info.metrics == {"loss": 1.0 / 2_345}
    assert len(client.metric_history(run_id, "loss")) == 2_345


def test_child_process_exit_flushes_everything(settings, client: TrackingClient) -> None:  # type: ignore[no-untyped-def]
    _check_child_run(client, _run_child(settings, ""), "FINISHED")


@pytest.mark.parametrize(
    ("tail", "status"), [("raise SystemExit(3)", "FINISHED"), ("1 / 0", "FAILED")]
)
def test_child_process_exit_paths(
    sqlite_settings,  # type: ignore[no-untyped-def]
    sqlite_client: TrackingClient,
    tail: str,
    status: str,
) -> None:
    _check_child_run(sqlite_client, _run_child(sqlite_settings, tail), status)


def test_client_run_left_open_is_flushed_at_exit(
    sqlite_settings,  # type: ignore[no-untyped-def]
    sqlite_client: TrackingClient,
) -> None:
    code = textwrap.dedent(
        """
        from modelyard.config import load_settings
        from modelyard.tracking.client import TrackingClient
        run = TrackingClient.from_settings(load_settings()).start_run(experiment="c")
        print(run.id, flush=True)
        for step in range(1_234):
            run.log_metric("m", float(step), step=step)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env=_child_env(sqlite_settings),
        cwd=sqlite_settings.project_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    run_id = proc.stdout.split()[0]
    info = sqlite_client.get_run(run_id)
    assert info.status == "RUNNING"  # only the fluent API ends runs at exit
    assert info.metrics == {"m": 1_233.0}
    assert len(sqlite_client.metric_history(run_id, "m")) == 1_234
    assert info.lineage["environment"]["python"]  # captured in the background, stored at exit


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_neither_duplicates_nor_ends_the_parent_run(
    sqlite_client: TrackingClient,
) -> None:
    fluent.set_client(sqlite_client)
    try:
        run = modelyard.start_run(capture_lineage=False)
        for step in range(300):
            modelyard.log_metric("loss", float(step), step=step)
        pid = os.fork()
        if pid == 0:  # the child: what a normal exit would do, then leave without pytest
            code = 0
            try:
                from modelyard.tracking._flusher import flusher

                fluent._end_all_at_exit()
                flusher.flush_all()
                try:
                    run.log_metric("loss", 1.0)
                    code = 1
                except ConflictError:
                    pass
            except BaseException:
                code = 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert sqlite_client.get_run(run.id).status == "RUNNING"
        modelyard.end_run()
    finally:
        fluent.set_client(None)
    assert len(sqlite_client.metric_history(run.id, "loss")) == 300
    assert sqlite_client.get_run(run.id).status == "FINISHED"


def test_a_run_whose_process_died_ends_killed_when_the_next_run_starts(  # type: ignore[no-untyped-def]
    settings, client: TrackingClient
) -> None:
    """SIGKILL, out of memory, a native crash: nothing in the process can end its run."""
    import os

    crashed = _run_child(settings, "run.flush(wait_lineage=True); import os; os._exit(3)")
    info = client.get_run(crashed)
    assert info.status == "RUNNING"
    assert info.lineage["process_host"]
    assert info.lineage["process_pid"]  # pid, and its start time where the OS says
    mine = client.start_run(experiment="child", capture_lineage=False)  # a new top-level run
    try:
        ended = client.get_run(crashed)
        assert ended.status == "KILLED"
        assert ended.end_time is not None
        assert "process ended without ending the run" in ended.tags["ended.reason"]
        assert ended.metrics == {"loss": 1.0 / 2_345}  # what it logged is kept
        assert client.get_run(mine.id).lineage["process_pid"].split(":")[0] == str(os.getpid())
    finally:
        mine.end()
    # a live process's run is never touched: this one is still running
    live = client.start_run(experiment="child", capture_lineage=False)
    other = client.start_run(experiment="child", capture_lineage=False)
    assert client.get_run(live.id).status == "RUNNING"
    live.end()
    other.end()
