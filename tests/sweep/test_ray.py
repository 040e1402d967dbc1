"""A sweep whose trials' steps run on a real local Ray: the cache is shared the same way."""

from __future__ import annotations

import os
from typing import Any

import pytest

import modelyard
from modelyard.sweep import Choice, IntRange, run_sweep

pytestmark = pytest.mark.ray
pytest.importorskip("optuna")


@modelyard.step
def base(n: int = 50) -> list[int]:
    return list(range(n))


@modelyard.step
def score(values: list[int], depth: int = 1, kind: str = "a") -> int:
    modelyard.pipelines.log_metric("score", float(sum(values) % (depth + 7) + (kind == "b")))
    modelyard.pipelines.log_metric("pid", float(os.getpid()))
    return depth


@modelyard.pipeline
def on_ray(depth: int = 1, kind: str = "a") -> Any:
    return score(base(), depth=depth, kind=kind)


def test_trials_run_their_steps_on_ray_and_share_the_cache(
    ray_session: Any, sqlite_settings: Any
) -> None:
    from modelyard.workspace import Workspace

    result = run_sweep(
        on_ray, {"depth": IntRange(1, 3), "kind": Choice(["a", "b"])}, sampler="grid", trials=4,
        metric="score", parallel=2, executor="ray", settings=sqlite_settings,
    )  # fmt: skip
    assert result.mode == "threads"  # Ray's driver does not survive a fork
    assert [t.state for t in result.trials] == ["COMPLETE"] * 4
    assert result.step_runs == {"base": 1, "score": 4}
    ws = Workspace.open(sqlite_settings)
    for trial in result.trials:
        info = ws.tracking.get_run(str(trial.run_id))
        assert info.tags["pipeline.executor"] == "ray"
        assert info.metrics["pid"] != os.getpid()  # the step ran in a Ray worker
