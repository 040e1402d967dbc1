"""What a running step sees: the run's settings and run ids; a gate refusal keeps its class."""

from __future__ import annotations

from typing import Any

import pytest

import modelyard
from modelyard.cli import main
from modelyard.errors import GateFailed
from modelyard.pipelines import current_context, current_run_id, current_settings


@modelyard.step
def where(tag: str) -> dict[str, Any]:
    ctx = current_context()
    assert ctx is not None
    return {
        "home": str(current_settings().resolved_home),
        "db": current_settings().resolved_db_url,
        "pipeline_run": current_run_id(),
        "step_run": ctx.run_id,
        "step": ctx.step,
    }


@modelyard.pipeline
def locate(tag: str = "x") -> Any:
    return where(tag=tag)


@modelyard.step
def refuse(x: int) -> int:
    raise GateFailed("candidate refused", hint="look at the verdict")


@modelyard.pipeline
def gated(x: int = 1) -> Any:
    return refuse(x=x)


def test_a_step_sees_the_settings_and_runs_of_its_pipeline(settings: Any) -> None:
    result = locate.run(settings=settings, tag="a")
    seen = result["where"]
    assert seen["home"] == str(settings.resolved_home)
    assert seen["db"] == settings.resolved_db_url
    assert seen["pipeline_run"] == result.run_id
    assert seen["step_run"] == result.steps["where"].run_id
    assert seen["step"] == "where"


def test_outside_a_run_there_is_no_context() -> None:
    assert current_context() is None
    assert current_run_id() is None
    with pytest.raises(modelyard.errors.PipelineError, match="only known inside a running"):
        current_settings()  # no settings read deep inside: the caller passes its own


def test_stores_tracking_and_executor_are_parameters_of_the_runner(
    sqlite_settings: Any, tmp_path: Any
) -> None:
    """A composition root hands the runner its own stores and executor."""
    from modelyard.pipelines.executors.local import LocalExecutor
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.store.db import MetadataStore
    from modelyard.tracking.client import TrackingClient

    elsewhere = tmp_path / "elsewhere"
    metadata = MetadataStore.open(f"sqlite:///{elsewhere / 'meta.db'}")
    artifacts = ArtifactStore.open(str(elsewhere / "artifacts"))
    executor = LocalExecutor(artifacts, max_parallel=1)
    result = locate.run(
        settings=sqlite_settings,
        tracking=TrackingClient(metadata, artifacts),
        executor=executor,
        tag="wired",
    )
    assert executor.inline == 1  # the executor passed in ran the step
    assert result["where"]["step"] == "where"
    ref = result.steps["where"].outputs["ref"]  # type: ignore[index]
    assert artifacts.exists(ref["sha256"])
    with metadata.query() as q:
        assert q.execute("SELECT count(*) FROM runs WHERE id = :id", {"id": result.run_id}) == [
            (1,)
        ]
    assert not (sqlite_settings.resolved_home / "modelyard.db").exists()  # settings' own store


def test_a_refused_gate_surfaces_as_gate_failed_with_its_exit_code(
    sqlite_settings: Any,
) -> None:
    with pytest.raises(GateFailed, match="candidate refused") as info:
        gated.run(settings=sqlite_settings)
    assert info.value.exit_code == GateFailed.exit_code
    assert "modelyard run --resume" in (info.value.hint or "")


def test_cli_exit_code_of_a_refused_gate(sqlite_settings: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(sqlite_settings.project_root)
    code = main(
        [
            "--home",
            str(sqlite_settings.resolved_home),
            "run",
            f"{__name__}:gated",
        ]
    )
    assert code == GateFailed.exit_code


@modelyard.step
def fit_inline(n: int) -> int:
    modelyard.log_metric("loss", 0.5)  # the fluent API, as in a plain training script
    modelyard.log_param("n_seen", n)
    return n


@modelyard.step(timeout_s=120)  # a timeout: this one runs in a forked child
def fit_forked(n: int) -> int:
    modelyard.log_metric("loss", 0.25)
    return n


@modelyard.pipeline
def fluent(n: int = 3) -> Any:
    return fit_inline(n=n), fit_forked(n=n)


def test_modelyard_log_metric_inside_a_step_logs_to_the_steps_run(settings: Any) -> None:
    from modelyard.tracking.client import TrackingClient

    result = fluent.run(settings=settings, max_parallel=1)
    client = TrackingClient.from_settings(settings)
    inline = client.get_run(result.steps["fit_inline"].run_id)  # type: ignore[arg-type]
    forked = client.get_run(result.steps["fit_forked"].run_id)  # type: ignore[arg-type]
    assert inline.metrics["loss"] == 0.5
    assert inline.params["n_seen"] == "3"
    assert forked.metrics["loss"] == 0.25
    assert "loss" not in client.get_run(result.run_id).metrics  # type: ignore[arg-type]
    # no stray run was started for the fluent calls: the pipeline's run and its two steps
    with settings_store(settings).query() as q:
        assert q.execute("SELECT count(*) FROM runs") == [(3,)]
    assert modelyard.active_run() is None


def settings_store(settings: Any) -> Any:
    from modelyard.store.db import MetadataStore

    return MetadataStore.from_settings(settings)
