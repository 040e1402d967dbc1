"""Running pipelines on real stores: caching, invalidation, failures, resume, retries, timeouts."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import modelyard
from modelyard.errors import InvalidInputError, PipelineError
from modelyard.pipelines import log_metric


def _bump(path: str) -> int:
    """Append one byte to ``path``; return how many bytes it holds now (runs so far)."""
    with open(path, "ab") as fh:
        fh.write(b".")
    return os.path.getsize(path)


def _runs(path: Path) -> int:
    return path.stat().st_size


@modelyard.step
def source(n: int, counter: str) -> list[int]:
    _bump(counter)
    return list(range(n))


@modelyard.step
def total(data: list[int], counter: str) -> int:
    _bump(counter)
    log_metric("total", sum(data))
    return sum(data)


@modelyard.pipeline
def simple(n: int, c1: str, c2: str) -> Any:
    return total(source(n=n, counter=c1), counter=c2)


def _tracking(settings: Any) -> Any:
    from modelyard.tracking.client import TrackingClient

    return TrackingClient.from_settings(settings)


def _children(settings: Any, parent: str) -> dict[str, Any]:
    import sqlalchemy as sa

    from modelyard.store.db import MetadataStore
    from modelyard.store.schema import runs

    ms = MetadataStore.from_settings(settings)
    with ms.read() as conn:
        rows = conn.execute(
            sa.select(runs.c.id, runs.c.name, runs.c.kind, runs.c.status).where(
                runs.c.parent_run_id == parent
            )
        ).all()
    return {r.name: r for r in rows}


def test_rerun_with_nothing_changed_does_no_step_work(settings: Any, counter_file: Any) -> None:
    c1, c2 = counter_file("source"), counter_file("total")
    first = simple.run(settings=settings, n=4, c1=str(c1), c2=str(c2))
    assert first.status == "FINISHED"
    assert first.ran == ["source", "total"]
    assert first["total"] == 6
    assert first["source"] == [0, 1, 2, 3]
    assert first.output() == 6
    assert first.metrics == {"total": 6.0}

    second = simple.run(settings=settings, n=4, c1=str(c1), c2=str(c2))
    assert second.cached == ["source", "total"]
    assert second.ran == []
    assert (_runs(c1), _runs(c2)) == (1, 1)
    assert second["total"] == 6
    # lineage: every run is tracked, cached steps point at the run that produced them
    assert second.steps["total"].source_run == first.steps["total"].run_id
    tc = _tracking(settings)
    info = tc.get_run(second.run_id)
    assert (info.kind, info.status, info.name) == ("pipeline", "FINISHED", "simple")
    assert info.params == {"n": "4", "c1": str(c1), "c2": str(c2)}
    assert info.tags["steps.cached"] == "2"
    children = _children(settings, second.run_id)
    assert {n: (r.kind, r.status) for n, r in children.items()} == {
        "source": ("step", "FINISHED"),
        "total": ("step", "FINISHED"),
    }
    step_info = tc.get_run(children["total"].id)
    assert step_info.tags["cache.source_run"] == first.steps["total"].run_id
    assert tc.get_run(first.run_id).metrics == {"total": 6.0}


def test_changed_parameter_reruns_the_step_and_its_dependents(
    sqlite_settings: Any, counter_file: Any
) -> None:
    c1, c2 = counter_file("source"), counter_file("total")
    simple.run(settings=sqlite_settings, n=3, c1=str(c1), c2=str(c2))
    again = simple.run(settings=sqlite_settings, n=5, c1=str(c1), c2=str(c2))
    assert again.ran == ["source", "total"]
    assert again["total"] == 10


def test_force_reruns_everything_and_cache_false_always_runs(
    sqlite_settings: Any, counter_file: Any
) -> None:
    c1, c2 = counter_file("source"), counter_file("total")
    simple.run(settings=sqlite_settings, n=3, c1=str(c1), c2=str(c2))
    forced = simple.run(settings=sqlite_settings, force=True, n=3, c1=str(c1), c2=str(c2))
    assert forced.ran == ["source", "total"]
    assert (_runs(c1), _runs(c2)) == (2, 2)

    uncached = total.with_options(cache=False)

    @modelyard.pipeline
    def flow(c1: str, c2: str) -> Any:
        return uncached(source(n=3, counter=c1), counter=c2)

    flow.run(settings=sqlite_settings, c1=str(c1), c2=str(c2))
    result = flow.run(settings=sqlite_settings, c1=str(c1), c2=str(c2))
    assert result.cached == ["source"]
    assert result.ran == ["total"]


FLOW = """
import modelyard
{imports}

def _bump(path):
    with open(path, "ab") as fh:
        fh.write(b".")

@modelyard.step
def load(counter: str) -> list[int]:
    _bump(counter)
    return [1, 2, 3]

@modelyard.step
def transform(data: list[int], counter: str) -> list[int]:
    _bump(counter)
    return [{expr} for x in data]

@modelyard.step
def report(data: list[int], counter: str) -> int:
    _bump(counter)
    return sum(data)

@modelyard.step
def other(counter: str) -> str:
    _bump(counter)
    return "independent"

@modelyard.pipeline
def flow(c: str) -> object:
    data = load(counter=c + ".load")
    side = other(counter=c + ".other")
    return report(transform(data, counter=c + ".transform"), counter=c + ".report"), side
"""


def _counts(base: Path) -> dict[str, int]:
    out = {}
    for name in ("load", "transform", "report", "other"):
        path = Path(f"{base}.{name}")
        out[name] = path.stat().st_size if path.exists() else 0
    return out


def test_changing_one_step_reruns_it_and_what_depends_on_it_only(
    sqlite_settings: Any, project_modules: Any, tmp_path: Path
) -> None:
    mod = project_modules.write("flow", FLOW.format(imports="", expr="x * 2"))
    base = tmp_path / "c"
    first = mod.flow.run(settings=sqlite_settings, c=str(base))
    assert sorted(first.ran) == ["load", "other", "report", "transform"]
    assert first.output() == (12, "independent")

    mod = project_modules.rewrite(mod, FLOW.format(imports="", expr="x * 3"))
    second = mod.flow.run(settings=sqlite_settings, c=str(base))
    assert sorted(second.ran) == ["report", "transform"]
    assert sorted(second.cached) == ["load", "other"]
    assert second.output() == (18, "independent")
    assert _counts(base) == {"load": 1, "transform": 2, "report": 2, "other": 1}


def test_a_change_with_identical_output_leaves_dependents_cached(
    sqlite_settings: Any, project_modules: Any, tmp_path: Path
) -> None:
    mod = project_modules.write("flow", FLOW.format(imports="", expr="x * 2"))
    base = tmp_path / "c"
    mod.flow.run(settings=sqlite_settings, c=str(base))
    mod = project_modules.rewrite(mod, FLOW.format(imports="", expr="x + x"))
    again = mod.flow.run(settings=sqlite_settings, c=str(base))
    assert again.ran == ["transform"]
    assert sorted(again.cached) == ["load", "other", "report"]


HELPERS = """
FACTOR = {factor}

def scale(x):
    return _inner(x) * FACTOR

def _inner(x):
    return x + {offset}
"""


@pytest.mark.parametrize("style", ["from-import", "module-attribute"])
def test_changing_a_helper_the_step_calls_invalidates_its_cache(
    sqlite_settings: Any, project_modules: Any, tmp_path: Path, style: str
) -> None:
    """zenml#1011: the cache must see code a step calls, not just the step's own source."""
    helper = f"helpers_{style.replace('-', '_')}_{os.getpid()}_{time.monotonic_ns()}"
    project_modules.write_named(helper, HELPERS.format(factor=2, offset=0))
    if style == "from-import":
        imports, expr = f"from {helper} import scale", "scale(x)"
    else:
        imports, expr = f"import {helper}", f"{helper}.scale(x)"
    mod = project_modules.write("flow", FLOW.format(imports=imports, expr=expr))
    base = tmp_path / "c"
    assert mod.flow.run(settings=sqlite_settings, c=str(base)).output()[0] == 12

    # a function two calls away changes
    project_modules.rewrite_named(helper, HELPERS.format(factor=2, offset=1))
    second = mod.flow.run(settings=sqlite_settings, c=str(base))
    assert sorted(second.ran) == ["report", "transform"]
    assert second.output()[0] == 18

    # a module-level constant changes
    project_modules.rewrite_named(helper, HELPERS.format(factor=3, offset=1))
    third = mod.flow.run(settings=sqlite_settings, c=str(base))
    assert sorted(third.ran) == ["report", "transform"]
    assert third.output()[0] == 27

    # nothing changes
    assert sorted(mod.flow.run(settings=sqlite_settings, c=str(base)).cached) == [
        "load",
        "other",
        "report",
        "transform",
    ]


# ---------------------------------------------------------------- failures, resume, retries
@modelyard.step
def fragile(data: list[int], flag: str) -> list[int]:
    if os.path.exists(flag):
        raise ValueError(f"flag file {flag} is present")
    return [x + 1 for x in data]


@modelyard.pipeline
def breaks(c1: str, c2: str, flag: str) -> Any:
    return total(fragile(source(n=3, counter=c1), flag=flag), counter=c2)


def test_a_failing_step_fails_the_run_and_resume_redoes_only_what_is_left(
    settings: Any, counter_file: Any, tmp_path: Path
) -> None:
    c1, c2 = counter_file("source"), counter_file("total")
    flag = tmp_path / "flag"
    flag.touch()
    with pytest.raises(PipelineError) as info:
        breaks.run(settings=settings, c1=str(c1), c2=str(c2), flag=str(flag))
    err = info.value
    assert "step 'fragile'" in err.message
    assert "ValueError: flag file" in err.message
    assert "--resume" in (err.hint or "")
    failed = err.result  # type: ignore[attr-defined]
    assert failed.status == "FAILED"
    assert failed.ran == ["source"]
    assert failed.failed == ["fragile"]
    assert failed.steps["total"].status == "skipped"
    tc = _tracking(settings)
    assert tc.get_run(failed.run_id).status == "FAILED"
    children = _children(settings, failed.run_id)
    assert children["fragile"].status == "FAILED"
    assert "total" not in children  # never started
    assert _runs(c2) == 0

    flag.unlink()
    resumed = breaks.run(settings=settings, resume=failed.run_id)
    assert resumed.status == "FINISHED"
    assert resumed.cached == ["source"]
    assert resumed.ran == ["fragile", "total"]
    assert resumed["total"] == 6
    assert resumed.params == failed.params
    assert tc.get_run(resumed.run_id).tags["resume.of"] == failed.run_id
    assert (_runs(c1), _runs(c2)) == (1, 1)


def test_resume_refuses_a_run_of_another_pipeline(sqlite_settings: Any, counter_file: Any) -> None:
    from modelyard.errors import InvalidInputError

    c1, c2 = counter_file("a"), counter_file("b")
    other = simple.run(settings=sqlite_settings, n=1, c1=str(c1), c2=str(c2))
    with pytest.raises(InvalidInputError, match="not a run of pipeline 'breaks'"):
        breaks.run(settings=sqlite_settings, resume=other.run_id)


@modelyard.step(retries=2, retry_backoff_s=0.01)
def flaky(counter: str, fail_times: int) -> str:
    if _bump(counter) <= fail_times:
        raise ConnectionError("transient")
    return "ok"


@modelyard.pipeline
def flaky_flow(counter: str, fail_times: int = 2) -> Any:
    return flaky(counter=counter, fail_times=fail_times)


def test_retries_recover_from_transient_failures(sqlite_settings: Any, counter_file: Any) -> None:
    counter = counter_file("flaky")
    result = flaky_flow.run(settings=sqlite_settings, counter=str(counter), fail_times=2)
    assert result["flaky"] == "ok"
    assert result.steps["flaky"].attempts == 3
    info = _tracking(sqlite_settings).get_run(result.steps["flaky"].run_id)
    assert info.tags["attempts"] == "3"


def test_retries_give_up_after_the_last_attempt(sqlite_settings: Any, counter_file: Any) -> None:
    counter = counter_file("flaky")
    with pytest.raises(PipelineError, match="ConnectionError: transient") as info:
        flaky_flow.run(settings=sqlite_settings, counter=str(counter), fail_times=5)
    assert info.value.result.steps["flaky"].attempts == 3  # type: ignore[attr-defined]
    assert _runs(counter) == 3


@modelyard.step(timeout_s=0.5)
def sleepy(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@modelyard.pipeline
def sleepy_flow(seconds: float) -> Any:
    return sleepy(seconds=seconds)


def test_a_step_past_its_timeout_is_stopped(sqlite_settings: Any) -> None:
    with pytest.raises(PipelineError, match="TimeoutExceeded") as info:
        sleepy_flow.run(settings=sqlite_settings, seconds=60.0)
    assert "timeout_s=0.5" in info.value.message
    assert sleepy_flow.run(settings=sqlite_settings, seconds=0.0)["sleepy"] == "woke"


# ---------------------------------------------------------------- processes
@modelyard.step
def whoami(tag: str) -> int:
    return os.getpid()


@modelyard.step
def pair(a: int, b: int) -> list[int]:
    return [a, b, os.getpid()]


@modelyard.pipeline
def fan(salt: str) -> Any:
    return pair(whoami(tag="a" + salt), whoami(tag="b" + salt))


def test_independent_steps_run_in_parallel_child_processes(sqlite_settings: Any) -> None:
    result = fan.run(settings=sqlite_settings, max_parallel=2, salt="p")
    a, b, joined = result["pair"]
    assert a != b
    assert os.getpid() not in (a, b)
    assert joined == os.getpid()  # alone when it ran: in-process


def test_with_one_worker_everything_runs_in_process(sqlite_settings: Any) -> None:
    result = fan.run(settings=sqlite_settings, max_parallel=1, salt="s")
    assert result["pair"] == [os.getpid()] * 3


# ---------------------------------------------------------------- bad outputs
@modelyard.step
def gives_lambda() -> Any:
    return lambda x: x


@modelyard.step
def gives_lock() -> Any:
    import threading

    return threading.Lock()


def test_an_unstorable_output_fails_naming_the_step_and_type(sqlite_settings: Any) -> None:
    @modelyard.pipeline
    def flow() -> Any:
        return gives_lambda()

    with pytest.raises(PipelineError) as info:
        flow.run(settings=sqlite_settings)
    assert "'gives_lambda'" in info.value.message
    assert "lambda" in info.value.message

    @modelyard.pipeline
    def flow2() -> Any:
        return gives_lock()

    with pytest.raises(PipelineError, match=r"_thread\.lock") as info2:
        flow2.run(settings=sqlite_settings)
    assert "'gives_lock'" in info2.value.message
    assert "trust=True" in (info2.value.hint or "")


# ---------------------------------------------------------------- typed outputs between steps
@modelyard.step
def np_score(n: int) -> Any:
    import numpy as np

    return np.float64(n) / 4  # what sklearn's accuracy_score returns


@modelyard.step
def np_metrics(score: Any) -> Any:
    import numpy as np

    return {"score": score, "n": np.int64(3), "ok": np.bool_(True), "all": [np.float32(0.5)]}


@modelyard.pipeline
def numpy_scalars(n: int = 2) -> Any:
    return np_metrics(np_score(n=n))


def test_numpy_scalars_travel_as_json_numbers(sqlite_settings: Any) -> None:
    result = numpy_scalars.run(settings=sqlite_settings, max_parallel=1)
    assert result.ran == ["np_score", "np_metrics"]
    assert result["np_score"] == 0.5
    assert result.output() == {"score": 0.5, "n": 3, "ok": True, "all": [0.5]}


def test_a_numpy_scalar_parameter_is_refused_naming_it(sqlite_settings: Any) -> None:
    import numpy as np

    @modelyard.pipeline
    def flow() -> Any:
        return np_score(n=np.float64(2.0))

    with pytest.raises(InvalidInputError, match=r"parameter 'n' of step 'np_score'.*float64"):
        flow.run(settings=sqlite_settings)


@modelyard.step(outputs=("features", "labels"))
def make_data(rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    return {"features": frame, "labels": (x[:, 0] > 0).astype("int64")}


@modelyard.step
def fit(features: Any, labels: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(features.to_numpy(), labels)


@modelyard.step
def evaluate(model: Any, features: Any, labels: Any) -> dict[str, float]:
    score = float(model.score(features.to_numpy(), labels))
    log_metric("accuracy", score)
    return {"accuracy": score}


@modelyard.step
def to_polars(features: Any) -> Any:
    import polars as pl

    return pl.from_pandas(features)


@modelyard.step
def label_mean(labels: Any) -> float:
    return float(labels.mean())


@modelyard.pipeline
def frames(rows: int = 50) -> Any:
    features, labels = make_data(rows=rows)
    return to_polars(features), label_mean(labels)


def test_frames_and_arrays_travel_between_forked_steps(sqlite_settings: Any) -> None:
    import numpy as np
    import pandas as pd
    import polars as pl

    from modelyard.pipelines.executors.local import LocalExecutor

    # polars' thread pool is running in this process: forking it would hang the children, so
    # they must come from the forkserver (and get the step pickled, inputs from the store)
    assert pl.DataFrame({"a": list(range(1000))}).select(pl.col("a").sum()).item() == 499500
    assert not LocalExecutor.fork_is_safe()
    result = frames.run(settings=sqlite_settings, max_parallel=2)
    data = result["make_data"]
    assert isinstance(data["features"], pd.DataFrame)
    assert isinstance(data["labels"], np.ndarray)
    assert data["labels"].dtype == np.int64
    polars_frame, mean = result.output()
    assert isinstance(polars_frame, pl.DataFrame)
    assert polars_frame.shape == (50, 3)
    assert polars_frame["a"].to_list() == data["features"]["a"].to_list()
    assert mean == pytest.approx(float(data["labels"].mean()))


@modelyard.pipeline
def ml(rows: int = 200) -> Any:
    features, labels = make_data(rows=rows)
    model = fit(features, labels)
    to_polars(features)
    return evaluate(model, features, labels)


def test_models_travel_between_steps_as_packages(sqlite_settings: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    # one process: model packages import skops, which is slow to import in each child
    result = ml.run(settings=sqlite_settings, max_parallel=1)
    assert isinstance(result["fit"], LogisticRegression)
    assert result.steps["fit"].outputs["ref"]["codec"] == "model"  # type: ignore[index]
    assert result.output()["accuracy"] > 0.9
    assert result.metrics["accuracy"] > 0.9
    codecs = {
        r["codec"]
        for r in result.steps["make_data"].outputs["items"].values()  # type: ignore[index]
    }
    assert codecs == {"pandas", "npy"}
    assert ml.run(settings=sqlite_settings).cached == ["make_data", "fit", "to_polars", "evaluate"]


# ---------------------------------------------------------------- registration
@modelyard.step
def register(model: Any, db_url: str, artifact_url: str) -> Any:
    from modelyard import models
    from modelyard.registry.registry import Registry
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.store.db import MetadataStore

    reg = Registry(MetadataStore.open(db_url), ArtifactStore.open(artifact_url))
    return models.register(model, reg, name="clf")


@modelyard.step
def gate(metrics: dict[str, float], minimum: float) -> dict[str, float]:
    if metrics["accuracy"] < minimum:
        raise modelyard.errors.GateFailed(f"accuracy {metrics['accuracy']:.3f} < {minimum}")
    return metrics


@modelyard.pipeline
def release(db_url: str, artifact_url: str, minimum: float = 0.5) -> Any:
    features, labels = make_data(rows=200)
    model = fit(features, labels)
    checked = gate(evaluate(model, features, labels), minimum=minimum)
    return register(model, db_url=db_url, artifact_url=artifact_url).after(checked)


def test_a_registered_version_is_in_the_summary_and_a_failed_gate_registers_nothing(
    sqlite_settings: Any,
) -> None:
    from modelyard.pipelines.progress import summary_text
    from modelyard.registry.registry import Registry

    urls = {
        "db_url": sqlite_settings.resolved_db_url,
        "artifact_url": sqlite_settings.resolved_artifact_url,
    }
    with pytest.raises(PipelineError, match=r"step 'gate'.*GateFailed"):
        release.run(settings=sqlite_settings, minimum=1.01, **urls)
    registry = Registry.from_settings(sqlite_settings)
    assert registry.list_models() == []

    result = release.run(settings=sqlite_settings, **urls)
    assert result.registered == [{"name": "clf", "version": 1, "step": "register"}]
    assert "registered: clf version 1 (step register)" in summary_text(result)
    assert [v.version for v in registry.list_versions("clf")] == [1]
    tags = _tracking(sqlite_settings).get_run(result.run_id).tags
    assert tags["registered"] == "clf:1"

    cached = release.run(settings=sqlite_settings, **urls)
    assert cached.ran == []
    text = summary_text(cached)
    assert "registered:" not in text
    assert "reused: clf version 1 (step register was cached; nothing registered this run)" in text
    assert "registered" not in _tracking(sqlite_settings).get_run(cached.run_id).tags


# ---------------------------------------------------------------- triggers
def test_if_changed_runs_only_when_code_or_data_changed(
    tmp_path: Path, home: Path, project_modules: Any
) -> None:
    from modelyard.config import load_settings

    root = project_modules.root
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_text("a,b\n1,2\n")
    s = load_settings(start=root, home=str(home), pipeline={"data_sources": ["data/*.csv"]})
    mod = project_modules.write("flow", FLOW.format(imports="", expr="x * 2"))
    base = str(tmp_path / "c")

    first = mod.flow.run(settings=s, c=base, if_changed=True)
    assert first.status == "FINISHED"
    assert first.reasons == ["no successful run of pipeline 'flow' yet"]

    same = mod.flow.run(settings=s, c=base, if_changed=True)
    assert same.status == "UNCHANGED"
    assert same.run_id is None

    (root / "data" / "train.csv").write_text("a,b\n1,3\n")
    changed = mod.flow.run(settings=s, c=base, if_changed=True)
    assert changed.status == "FINISHED"
    assert changed.reasons == ["data changed: data/train.csv"]

    mod = project_modules.rewrite(mod, FLOW.format(imports="", expr="x * 5"))
    recoded = mod.flow.run(settings=s, c=base, if_changed=True)
    assert any(r.startswith("code changed") for r in recoded.reasons)
    assert mod.flow.run(settings=s, c=base, if_changed=True).status == "UNCHANGED"


def test_a_data_source_matching_nothing_is_a_config_error(
    home: Path, project_modules: Any, tmp_path: Path
) -> None:
    from modelyard.config import load_settings
    from modelyard.errors import ConfigError

    s = load_settings(
        start=project_modules.root, home=str(home), pipeline={"data_sources": ["nope/*.csv"]}
    )
    mod = project_modules.write("flow", FLOW.format(imports="", expr="x"))
    with pytest.raises(ConfigError, match=r"'nope/\*\.csv' matches no file"):
        mod.flow.run(settings=s, c=str(tmp_path / "c"), if_changed=True)


@modelyard.step
def echo(value: bool) -> bool:
    return value


@modelyard.pipeline
def clashing(force: bool = False) -> Any:
    return echo(value=force)


def test_parameters_named_like_run_options_go_through_params(sqlite_settings: Any) -> None:
    result = clashing.run(settings=sqlite_settings, params={"force": True})
    assert result.params == {"force": True}
    assert result.output() is True


class Scale(modelyard.pipelines.Step):
    """A class-form step: the constructor stores, run() works."""

    def __init__(self, factor: float = 2.0) -> None:
        self.factor = factor

    def run(self, data: list[int]) -> list[float]:
        return [x * self.factor for x in data]


@modelyard.pipeline
def scaled(factor: float = 2.0) -> Any:
    return Scale(factor=factor)(data=source(n=3, counter=os.devnull))


def test_class_form_steps_run_and_their_constructor_params_key_the_cache(
    sqlite_settings: Any,
) -> None:
    first = scaled.run(settings=sqlite_settings, factor=2.0)
    assert first["Scale"] == [0.0, 2.0, 4.0]
    assert scaled.run(settings=sqlite_settings, factor=2.0).cached == ["source", "Scale"]
    third = scaled.run(settings=sqlite_settings, factor=3.0)
    assert third.ran == ["Scale"]
    assert third.output() == [0.0, 3.0, 6.0]


@modelyard.step(timeout_s=1.0)
def spawns_and_hangs(pid_file: str) -> int:
    import subprocess

    child = subprocess.Popen(["sleep", "60"])  # e.g. a training job the step launched
    Path(pid_file).write_text(str(child.pid))
    time.sleep(60)
    return 0


@modelyard.pipeline
def hangs_with_a_subprocess(pid_file: str = "") -> Any:
    return spawns_and_hangs(pid_file=pid_file)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_a_timed_out_step_is_stopped_with_the_processes_it_started(
    sqlite_settings: Any, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    with pytest.raises(PipelineError, match=r"timeout_s=1\.0"):
        hangs_with_a_subprocess.run(settings=sqlite_settings, pid_file=str(pid_file))
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild):  # killed with its group; its parent's exit lets init reap it
        assert time.monotonic() < deadline, f"the step's subprocess {grandchild} still runs"
        time.sleep(0.05)
