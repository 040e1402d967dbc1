"""The Ray executor on a real local Ray: same results, cache, failures and retries as local."""

from __future__ import annotations

import os
from typing import Any

import pytest

import modelyard
from modelyard.errors import PipelineError

pytestmark = pytest.mark.ray


@modelyard.step
def numbers(n: int) -> Any:
    import numpy as np

    return np.arange(n, dtype="int64")


@modelyard.step
def pid() -> int:
    return os.getpid()


@modelyard.step
def total(values: Any, worker: int) -> dict[str, int]:
    modelyard.pipelines.log_metric("total", float(values.sum()))
    return {"total": int(values.sum()), "worker": worker}


@modelyard.pipeline
def on_ray(n: int = 5) -> Any:
    return total(numbers(n=n), worker=pid())


def test_a_pipeline_runs_on_ray_workers_and_is_cached(
    ray_session: Any, sqlite_settings: Any
) -> None:
    result = on_ray.run(settings=sqlite_settings, executor="ray", n=5)
    assert result.status == "FINISHED"
    out = result["total"]
    assert out["total"] == 10
    assert out["worker"] != os.getpid()  # ran in a Ray worker process
    assert result.metrics == {"total": 10.0}

    again = on_ray.run(settings=sqlite_settings, executor="ray", n=5)
    assert again.cached == ["numbers", "pid", "total"]
    # the local executor shares the cache: same keys, same artifacts
    local = on_ray.run(settings=sqlite_settings, executor="local", n=5)
    assert local.cached == ["numbers", "pid", "total"]


def _bump(path: str) -> int:
    with open(path, "ab") as fh:
        fh.write(b".")
    return os.path.getsize(path)


@modelyard.step(retries=1, retry_backoff_s=0.01)
def flaky(counter: str, fail_times: int) -> str:
    if _bump(counter) <= fail_times:
        raise RuntimeError("worker hiccup")
    return "ok"


@modelyard.pipeline
def flaky_flow(counter: str, fail_times: int) -> Any:
    return flaky(counter=counter, fail_times=fail_times)


def test_retries_and_failures_on_ray(ray_session: Any, sqlite_settings: Any, tmp_path: Any) -> None:
    counter = tmp_path / "count"
    counter.touch()
    ok = flaky_flow.run(
        settings=sqlite_settings, executor="ray", counter=str(counter), fail_times=1
    )
    assert ok["flaky"] == "ok"
    assert ok.steps["flaky"].attempts == 2

    counter2 = tmp_path / "count2"
    counter2.touch()
    with pytest.raises(PipelineError, match=r"step 'flaky'.*RuntimeError: worker hiccup") as info:
        flaky_flow.run(
            settings=sqlite_settings, executor="ray", counter=str(counter2), fail_times=5
        )
    assert info.value.result.status == "FAILED"  # type: ignore[attr-defined]
    assert counter2.stat().st_size == 2


@modelyard.step(timeout_s=1.0)
def stuck() -> str:
    import time

    time.sleep(120)
    return "never"


@modelyard.pipeline
def stuck_flow() -> Any:
    return stuck()


def test_a_ray_task_past_its_timeout_is_cancelled(ray_session: Any, sqlite_settings: Any) -> None:
    with pytest.raises(PipelineError, match="TimeoutExceeded"):
        stuck_flow.run(settings=sqlite_settings, executor="ray")


def test_fan_in_on_ray(ray_session: Any, sqlite_settings: Any) -> None:
    from tests.pipelines.test_fan_in import fan

    result = fan.run(settings=sqlite_settings, executor="ray", width=3)
    assert result.status == "FINISHED"
    assert result.output()["parts"] == [10, 11, 12]
    assert result.output()["named"] == {"first": 10, "last": 12}
