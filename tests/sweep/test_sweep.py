"""Sweeps on real stores (SQLite, and PostgreSQL when MODELYARD_TEST_POSTGRES_URL is set): the
steps no swept parameter reaches run once for the whole study, the study resumes where it
stopped, trials run side by side, and the best trial goes through the gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import ConflictError, GateFailed
from modelyard.sweep import Choice, FloatRange, IntRange, RegisterBest, run_sweep
from modelyard.workspace import Workspace
from tests.sweep.conftest import MODEL_PIPELINE, Project, depth_pipeline, step_runs

pytest.importorskip("optuna")

SPACE = {"C": FloatRange(0.1, 4.0), "depth": IntRange(1, 5), "kind": Choice(["a", "b"])}


def _trial_runs(settings: Any, study_run: str) -> list[Any]:
    page = Workspace.open(settings).tracking.search_runs(
        filter=f"parent_run_id = '{study_run}'", max_results=1000
    )
    return sorted(page.items, key=lambda r: int(r.tags["sweep.trial"]))


def test_shared_steps_run_once_across_all_trials(project: Project) -> None:
    settings = project.settings()
    mod = project.module()
    result = run_sweep(
        mod.train, SPACE, trials=6, metric="score", sampler="random", seed=1, parallel=2,
        settings=settings,
    )  # fmt: skip

    runs = step_runs(settings, result.run_id)
    # counted from the step runs the trials recorded: load and features did the work once
    ran = {step: sum(not cached for _, cached in rows) for step, rows in runs.items()}
    assert ran == {"load": 1, "features": 1, "fit": 6}
    assert {step: len(rows) for step, rows in runs.items()} == {"load": 6, "features": 6, "fit": 6}
    assert result.step_runs == {"load": 1, "features": 1, "fit": 6}
    assert result.step_cached == {"load": 5, "features": 5}

    # the study is a run, its trials are pipeline runs nested under it, with params and metric
    trial_runs = _trial_runs(settings, result.run_id)
    assert [r.tags["sweep.trial"] for r in trial_runs] == [str(n) for n in range(6)]
    assert {r.kind for r in trial_runs} == {"pipeline"}
    assert all(r.status == "FINISHED" for r in trial_runs)
    for run, trial in zip(trial_runs, result.trials, strict=True):
        assert run.id == trial.run_id
        assert float(run.params["C"]) == trial.params["C"]
        assert run.params["kind"] == trial.params["kind"]
        assert run.metrics["score"] == trial.value
    best = result.best
    assert best is not None
    assert best.value == max(t.value for t in result.trials if t.value is not None)

    study = Workspace.open(settings).tracking.get_run(result.run_id)
    assert study.status == "FINISHED"
    assert study.kind == "run"
    assert study.tags["sweep.study"] == "train"
    assert study.tags["sweep.best_run"] == best.run_id
    assert study.metrics["score"] == best.value


def test_a_resumed_study_continues_its_numbering_and_redoes_no_trial(project: Project) -> None:
    settings = project.settings()
    mod = project.module()
    first = run_sweep(
        mod.train, SPACE, trials=3, metric="score", study="s1", sampler="random", seed=0,
        settings=settings,
    )  # fmt: skip
    again = run_sweep(mod.train, trials=2, study="s1", seed=0, settings=settings)

    assert again.run_id == first.run_id  # the same study run, its trials all beneath it
    assert [t.number for t in again.trials] == [0, 1, 2, 3, 4]
    assert again.new == [3, 4]
    assert again.metric == "score"  # the study's metric and space came from the store
    assert again.space == first.space
    earlier = {t.number: t.run_id for t in first.trials}
    assert {t.number: t.run_id for t in again.trials[:3]} == earlier
    params = [tuple(sorted(t.params.items())) for t in again.trials]
    assert len(set(params)) == 5  # the sampler did not start over
    runs = step_runs(settings, first.run_id)
    assert len(runs["fit"]) == 5  # five trial runs, not eight
    assert sum(not cached for _, cached in runs["load"]) == 1
    assert Workspace.open(settings).tracking.get_run(first.run_id).status == "FINISHED"


def test_a_resumed_grid_runs_only_the_points_not_yet_run(sqlite_project: Project) -> None:
    settings = sqlite_project.settings()
    mod = sqlite_project.module()
    space = {"depth": IntRange(2, 4), "kind": Choice(["a", "b"])}
    first = run_sweep(mod.train, space, sampler="grid", trials=4, metric="score", settings=settings)
    rest = run_sweep(mod.train, space, sampler="grid", metric="score", settings=settings)
    assert len(first.new) == 4
    assert len(rest.new) == 2
    points = {(t.params["depth"], t.params["kind"]) for t in rest.trials}
    assert points == {(d, k) for d in (2, 3, 4) for k in ("a", "b")}
    done = run_sweep(mod.train, space, sampler="grid", metric="score", settings=settings)
    assert done.new == []


def test_a_resumed_study_survives_another_top_level_run(sqlite_project: Project) -> None:
    """Resuming records the process that now runs the study, so a run started meanwhile by
    another process does not end it as if its (earlier) process were gone."""
    import subprocess
    import sys

    settings = sqlite_project.settings()
    mod = sqlite_project.module()
    first = run_sweep(mod.train, SPACE, trials=1, metric="score", settings=settings)
    # an earlier process left the study RUNNING: simulated by its recorded pid being a dead one
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    ws = Workspace.open(settings)
    with ws.metadata_store.write() as tx:
        tx.execute("UPDATE runs SET process_pid = :pid WHERE id = :id",
                   {"pid": dead, "id": first.run_id})  # fmt: skip
    resumed = ws.tracking.resume_run(first.run_id)
    other = ws.tracking.start_run(name="someone else")  # ends stale runs of this machine
    other.end()
    assert ws.tracking.get_run(first.run_id).status == "RUNNING"
    resumed.end()


def test_a_study_running_in_a_live_process_is_not_joined_and_a_dead_ones_continues(
    sqlite_project: Project,
) -> None:
    import subprocess
    import sys

    from modelyard.tracking.liveness import process_token

    settings = sqlite_project.settings()
    mod = sqlite_project.module()
    first = run_sweep(mod.train, SPACE, trials=1, metric="score", settings=settings)
    ws = Workspace.open(settings)

    def running_in(token: str) -> None:
        with ws.metadata_store.write() as tx:
            tx.execute("UPDATE runs SET status = 'RUNNING', end_time = NULL, process_pid = :pid "
                       "WHERE id = :id", {"pid": token, "id": first.run_id})  # fmt: skip

    running_in(process_token())  # a sweep of this study is running in a live process
    with pytest.raises(ConflictError, match="is running now"):
        run_sweep(mod.train, trials=1, settings=settings)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    running_in(dead)  # ... and that process died without ending it
    again = run_sweep(mod.train, trials=1, settings=settings)
    assert again.run_id == first.run_id
    assert [t.number for t in again.trials] == [0, 1]
    assert ws.tracking.get_run(first.run_id).status == "FINISHED"


@pytest.mark.parametrize("processes", [True, False], ids=["processes", "threads"])
def test_trials_run_side_by_side(sqlite_project: Project, tmp_path: Path, processes: bool) -> None:
    settings = sqlite_project.settings()
    mod = sqlite_project.module()
    run_sweep(mod.train, SPACE, trials=1, metric="score", study="p", settings=settings)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    # each of the two trials waits in its fit step until the other one has started its own
    result = run_sweep(
        mod.train, trials=2, study="p", parallel=2, processes=processes,
        params={"barrier": str(barrier)}, settings=settings,
    )  # fmt: skip
    assert result.mode == ("processes" if processes else "threads")
    assert [t.state for t in result.trials] == ["COMPLETE"] * 3, [t.error for t in result.trials]
    assert len(list(barrier.iterdir())) == 2
    assert result.step_runs["load"] == 1


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(sqlite_project: Project) -> None:
    settings = sqlite_project.settings()
    mod = sqlite_project.module(
        depth_pipeline(
            """
            if depth == 3:
                raise ValueError("depth 3 diverges")
            """
        )
    )
    result = run_sweep(
        mod.train, {"depth": IntRange(1, 4)}, sampler="grid", metric="score", settings=settings
    )
    states = {t.params["depth"]: t.state for t in result.trials}
    assert states == {1: "COMPLETE", 2: "COMPLETE", 3: "FAIL", 4: "COMPLETE"}
    failed = next(t for t in result.trials if t.state == "FAIL")
    assert "depth 3 diverges" in (failed.error or "")
    assert result.best is not None
    assert result.best.params == {"depth": 4}
    study = Workspace.open(settings).tracking.get_run(result.run_id)
    assert study.tags["sweep.failed"] == "1"


def test_a_trial_whose_process_dies_is_failed_and_its_runs_end_killed(
    sqlite_project: Project,
) -> None:
    settings = sqlite_project.settings()
    mod = sqlite_project.module(
        depth_pipeline(
            """
            if depth == 2:
                os._exit(3)  # as a SIGKILL or an out-of-memory kill: nothing is cleaned up
            """,
            imports="import os",
        )
    )
    result = run_sweep(
        mod.train, {"depth": IntRange(1, 3)}, sampler="grid", metric="score", parallel=2,
        processes=True, settings=settings,
    )  # fmt: skip
    states = {t.params["depth"]: t.state for t in result.trials}
    assert states == {1: "COMPLETE", 2: "FAIL", 3: "COMPLETE"}
    dead = next(t for t in result.trials if t.state == "FAIL")
    assert "exited with code 3" in (dead.error or "")
    ws = Workspace.open(settings)
    assert dead.run_id is not None
    run = ws.tracking.get_run(dead.run_id)
    assert run.status == "KILLED"
    assert "the trial's process died" in run.tags["ended.reason"]
    steps = ws.tracking.search_runs(filter=f"parent_run_id = '{dead.run_id}'").items
    assert {s.name: s.status for s in steps}["fit"] == "KILLED"
    assert ws.tracking.get_run(result.run_id).status == "FINISHED"


def test_a_stopped_sweep_ends_the_runs_of_the_trials_it_stopped(
    sqlite_project: Project, tmp_path: Path
) -> None:
    """An error in the parent (here from on_trial; Ctrl-C alike) stops the running trials'
    processes; their runs end KILLED with the study's, not RUNNING for ever."""
    settings = sqlite_project.settings()
    never = tmp_path / "never"
    mod = sqlite_project.module(
        depth_pipeline(
            f"""
            deadline = time.monotonic() + 120
            while depth == 2 and not Path({str(never)!r}).exists():  # hangs: stopped from outside
                if time.monotonic() > deadline:
                    raise RuntimeError("nobody stopped this trial")
                time.sleep(0.05)
            """,
            imports="import time\nfrom pathlib import Path",
        )
    )
    seen: list[int] = []

    def stop_after_two(trial: Any) -> None:
        seen.append(trial.params["depth"])
        if len(seen) == 2:  # trial 0 (depth 1) and then depth 3, while depth 2 still runs
            raise RuntimeError("stop the sweep")

    with pytest.raises(RuntimeError, match="stop the sweep"):
        run_sweep(
            mod.train, {"depth": IntRange(1, 3)}, sampler="grid", metric="score", parallel=2,
            processes=True, settings=settings, on_trial=stop_after_two,
        )  # fmt: skip
    assert seen == [1, 3]
    ws = Workspace.open(settings)
    study = ws.tracking.search_runs(filter="kind = 'run'").items[0]
    assert study.status == "FAILED"
    trials = ws.tracking.search_runs(filter=f"parent_run_id = '{study.id}'").items
    by_depth = {json.loads(t.tags["pipeline.params"])["depth"]: t for t in trials}
    assert by_depth[2].status == "KILLED"
    assert "the sweep ended FAILED" in by_depth[2].tags["ended.reason"]
    assert {by_depth[1].status, by_depth[3].status} == {"FINISHED"}


def test_the_best_trial_goes_through_the_gate(project: Project) -> None:
    settings = project.settings()
    mod = project.module(MODEL_PIPELINE)
    result = run_sweep(
        mod.churn, {"C": FloatRange(0.001, 10.0, log=True)}, trials=3, metric="accuracy",
        sampler="random", seed=3, settings=settings,
        register=RegisterBest("churn", test="split[1]", target="y"),
    )  # fmt: skip
    best = result.best
    assert best is not None
    assert result.registered == {
        "name": "churn", "version": 1, "alias": "production", "trial": best.number
    }  # fmt: skip
    version = Workspace.open(settings).registry.get_version("churn", 1)
    assert version.run_id == best.run_id
    assert version.extra["sweep"]["trial"] == best.number
    assert version.extra["sweep"]["params"] == best.params
    assert version.extra["gate"]["passed"] is True
    assert version.flavor == "sklearn"
    study = Workspace.open(settings).tracking.get_run(result.run_id)
    assert study.tags["sweep.registered"] == "churn:1"


def test_a_refused_best_trial_registers_nothing(sqlite_project: Project) -> None:
    settings = sqlite_project.settings(
        """
        [tool.modelyard.gate]
        thresholds = { accuracy = [">=", 0.99] }
        """
    )
    mod = sqlite_project.module(MODEL_PIPELINE)
    with pytest.raises(GateFailed) as info:
        run_sweep(
            mod.churn, {"C": FloatRange(0.01, 1.0)}, trials=2, metric="accuracy",
            settings=settings, register=RegisterBest("churn", test="split[1]", target="y"),
        )  # fmt: skip
    result = info.value.result  # type: ignore[attr-defined]
    assert len(result.trials) == 2
    ws = Workspace.open(settings)
    assert ws.registry.list_models() == []
    study = ws.tracking.get_run(result.run_id)
    assert study.status == "FINISHED"
    assert study.tags["sweep.gate"] == "refused"


def test_the_project_table_gives_the_space_and_options(sqlite_project: Project) -> None:
    mod = sqlite_project.module()
    settings = sqlite_project.settings(
        """
        [tool.modelyard.sweep.train]
        metric = "score"
        direction = "minimize"
        trials = 3
        sampler = "random"

        [tool.modelyard.sweep.train.space]
        C = { low = 0.5, high = 3.0, log = true }
        depth = { low = 1, high = 4 }
        kind = ["a", "b"]
        """
    )
    assert mod.train.name == "train"
    result = run_sweep(mod.train, settings=settings)
    assert result.direction == "minimize"
    assert len(result.trials) == 3
    assert result.space == {
        "C": FloatRange(0.5, 3.0, log=True), "depth": IntRange(1, 4), "kind": Choice(["a", "b"])
    }  # fmt: skip
    best = result.best
    assert best is not None
    assert best.value == min(t.value for t in result.trials if t.value is not None)
    for t in result.trials:
        assert isinstance(t.params["depth"], int)
        assert 0.5 <= t.params["C"] <= 3.0
    # a different space for the same study is refused, naming the stored one
    with pytest.raises(ConflictError, match="another search space"):
        run_sweep(mod.train, {"C": FloatRange(0.1, 9.0)}, settings=settings)


def test_the_pruner_stops_a_trial_whose_intermediate_values_lag(
    sqlite_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    import optuna

    from modelyard.pipelines.executors.local import FORK_UNSAFE_MODULES

    # pruning needs forked trials, which a process holding polars (an earlier test in this
    # worker) refuses; this pipeline never calls it, so the test hides it for its duration
    for name in FORK_UNSAFE_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)

    settings = sqlite_project.settings()
    mod = sqlite_project.module(
        """
        import time

        import modelyard

        @modelyard.step
        def load() -> int:
            return 1

        @modelyard.step
        def fit(x: int, lr: float = 1.0) -> float:
            value = 0.0
            for epoch in range(1, 61):  # 6 s: a pruned trial is stopped long before its end
                value = lr * epoch
                modelyard.log_metric("score", value, step=epoch)  # the step's run is active
                time.sleep(0.1)
            return value

        @modelyard.pipeline
        def train(lr: float = 1.0):
            return fit(load(), lr=lr)
        """
    )
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=2)
    result = run_sweep(
        mod.train, {"lr": Choice([1.0, 0.01])}, sampler="grid", metric="score",
        pruner=pruner, settings=settings,
    )  # fmt: skip
    assert result.mode == "processes"
    assert [(t.params["lr"], t.state) for t in result.trials] == [
        (1.0, "COMPLETE"),
        (0.01, "PRUNED"),
    ]
    pruned = result.trials[1]
    assert (pruned.error or "").startswith("pruned at step")
    assert result.summary()["pruned"] == 1
    ws = Workspace.open(settings)
    run = ws.tracking.get_run(str(pruned.run_id))
    assert run.status == "KILLED"
    assert run.tags["ended.reason"].startswith("pruned at step")
    assert ws.tracking.get_run(result.run_id).tags["sweep.pruned"] == "1"


def test_a_pruner_needs_trials_it_can_stop(sqlite_project: Project) -> None:
    from modelyard.errors import InvalidInputError

    settings = sqlite_project.settings()
    mod = sqlite_project.module()
    with pytest.raises(InvalidInputError, match="pruning stops a running trial's process"):
        run_sweep(mod.train, SPACE, metric="score", pruner="median", processes=False,
                  settings=settings)  # fmt: skip
    with pytest.raises(InvalidInputError, match="pruner 'hyperband' is not median or none"):
        run_sweep(mod.train, SPACE, metric="score", pruner="hyperband", settings=settings)


def test_forked_trials_inherit_what_the_first_trial_imported(project: Project) -> None:
    # a step importing its library lazily (scikit-learn inside fit): each forked trial paid
    # that import again; now the parent imports what the first trial did, later forks inherit it
    import os
    import uuid

    name = f"lazy_dep_{uuid.uuid4().hex[:8]}"
    marks = project.root / f"{name}.log"
    (project.root / f"{name}.py").write_text(
        f"import os\nwith open({str(marks)!r}, 'a') as f:\n    f.write(f'{{os.getpid()}}\\n')\n"
    )
    project.modules.append(name)
    settings = project.settings()
    mod = project.module(depth_pipeline(f"import {name}  # noqa: F401"))
    result = run_sweep(
        mod.train, {"depth": IntRange(1, 6)}, trials=6, metric="score", sampler="grid",
        parallel=2, processes=True, settings=settings,
    )  # fmt: skip
    assert len(result.trials) == 6
    assert all(t.state == "COMPLETE" for t in result.trials), [t.error for t in result.trials]
    pids = marks.read_text().split()
    # imported by the first trial's process, then by this (the sweeping) process: not per trial
    assert len(pids) == 2, pids
    assert pids[1] == str(os.getpid())


def test_a_trial_repeating_earlier_values_takes_the_cached_steps_metric(project: Project) -> None:
    # two values for six trials: the sampler repeats itself, every step of a repeat is cached,
    # and the objective comes from the step run that logged it (not "logged no metric")
    settings = project.settings()
    mod = project.module(depth_pipeline("pass"))
    result = run_sweep(
        mod.train, {"depth": IntRange(1, 2)}, trials=6, metric="score", sampler="random",
        seed=0, settings=settings,
    )  # fmt: skip
    assert [t.state for t in result.trials] == ["COMPLETE"] * 6, [t.error for t in result.trials]
    assert all(t.value == float(t.params["depth"]) for t in result.trials)
    assert result.step_runs["fit"] == 2  # each value fitted once, then reused
