"""Hyper-parameter sweeps whose trials are cached pipeline runs.

:func:`run_sweep` asks an Optuna sampler (TPE, random, or a grid) for parameter values and runs
the pipeline once per trial through the ordinary runner, so a step whose inputs do not depend on
the swept parameters (loading, validation, features) runs once and every other trial takes its
result from the step cache. The first trial of a study runs alone, to fill that cache before
trials run side by side (``parallel``: forked processes, or threads where fork is unsafe).

The study is stored in the project's tracking tables, on SQLite or PostgreSQL alike: one run
(kind ``run``, tag ``sweep.study``) holds the search space, the metric and the direction, and
each trial is a pipeline run nested under it (tag ``sweep.trial``) with its parameters and
metrics. ``modelyard runs`` and the UI list them. Running the same study again reads the trials
back into a fresh Optuna study, so the sampler continues from every result, numbering continues,
and no trial is redone.

The best trial's model can go through the gate like any candidate
(:func:`~modelyard.sweep.register.register_best`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from modelyard.errors import GateFailed, InvalidInputError, PipelineError
from modelyard.logs import get_logger
from modelyard.sweep._optuna import Optimiser, param_str
from modelyard.sweep._plan import DEFAULT_TRIALS, Plan, make_plan
from modelyard.sweep._workers import TrialWorkers
from modelyard.sweep.register import RegisterBest, register_best
from modelyard.sweep.result import SweepResult, Trial, best_of
from modelyard.sweep.space import Choice, Dimension, IntRange, space_to_json

if TYPE_CHECKING:
    from modelyard.config import Settings
    from modelyard.pipelines.graph import Pipeline
    from modelyard.tracking.run import Run
    from modelyard.workspace import Workspace

__all__ = ["DEFAULT_TRIALS", "run_sweep"]

_log = get_logger("sweep")

POLL_S = 0.5  # how often running trials' intermediate values are read when pruning


def _decode(dim: Dimension, text: str) -> Any:
    """A stored parameter string back to the dimension's value (ValueError when it is not one)."""
    if isinstance(dim, Choice):
        for choice in dim.values:
            if param_str(choice) == text:
                return choice
        raise ValueError(text)
    number: float = int(text) if isinstance(dim, IntRange) else float(text)
    if not dim.low <= number <= dim.high:
        raise ValueError(text)
    return number


def stored_trials(
    ws: Workspace, study_run: str, space: Mapping[str, Dimension], metric: str
) -> list[Trial]:
    """The trials of a study, read back from its nested pipeline runs, by number."""
    page = ws.tracking.search_runs(
        filter=f"parent_run_id = '{study_run}' and kind = 'pipeline'", max_results=50_000
    )
    out: list[Trial] = []
    for info in page.items:
        number = info.tags.get("sweep.trial", "")
        if not number.isdigit():
            continue
        try:
            params = {name: _decode(dim, info.params[name]) for name, dim in space.items()}
        except (KeyError, ValueError):  # not a point of this space: counted, never told
            params = {}
        value = info.metrics.get(metric)
        ok = info.status == "FINISHED" and value is not None and bool(params)
        error = None if ok else f"run {info.status}" + ("" if value is not None else ", no metric")
        reason = info.tags.get("ended.reason", "")
        state = "COMPLETE" if ok else "PRUNED" if reason.startswith("pruned") else "FAIL"
        out.append(
            Trial(
                number=int(number),
                params=params,
                state=state,
                value=value if ok else None,
                run_id=info.id,
                error=reason if state == "PRUNED" else error,
            )
        )
    return sorted(out, key=lambda t: t.number)


def step_counts(ws: Workspace, study_run: str) -> tuple[dict[str, int], dict[str, int]]:
    """step -> trials in which it ran, and step -> trials that took it from the cache, in the
    order the steps first started (the pipeline's order)."""
    with ws.metadata_store.query() as q:
        rows = q.execute(
            "SELECT s.name, c.value, COUNT(*), MIN(s.start_time) FROM runs s "
            "JOIN runs t ON t.id = s.parent_run_id "
            "LEFT JOIN run_tags c ON c.run_id = s.id AND c.key = 'cached' "
            "WHERE t.parent_run_id = :study AND t.kind = 'pipeline' AND s.kind = 'step' "
            "GROUP BY s.name, c.value",
            {"study": study_run},
        )
    first: dict[str, float] = {}
    ran: dict[str, int] = {}
    cached: dict[str, int] = {}
    for name, hit, count, started in rows:
        side = cached if hit == "true" else ran
        side[str(name)] = side.get(str(name), 0) + int(count)
        first[str(name)] = min(first.get(str(name), float(started)), float(started))
    order = sorted(first, key=lambda n: (first[n], n))
    return {n: ran.get(n, 0) for n in order}, {n: cached[n] for n in order if n in cached}


def _run_trial(
    ws: Workspace,
    pipeline: Pipeline,
    values: dict[str, Any],
    *,
    study_run: str,
    tags: dict[str, str],
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """One trial: a pipeline run nested under the study's run; a small, picklable dict back."""
    from modelyard.pipelines.progress import SilentProgress

    try:
        result = ws.run_pipeline(
            pipeline,
            values,
            parent_run_id=study_run,
            run_tags=tags,
            progress=SilentProgress(),
            **options,
        )
    except PipelineError as exc:
        failed = getattr(exc, "result", None)
        return {
            "ok": False,
            "run_id": exc.details.get("run_id"),
            "error": exc.message,
            "ran": failed.ran if failed is not None else [],
        }
    # metrics logged with modelyard.log_metric inside a step are on the step's run only; a
    # step served from the cache (a trial repeating an earlier one's values, as samplers of
    # integer and categorical spaces do) logged nothing: its metrics are the source run's
    steps = ws.tracking.search_runs(filter=f"parent_run_id = '{result.run_id}'", max_results=1000)
    logged: dict[str, float] = {}
    for info in steps.items:
        source = info.tags.get("cache.source_run") if info.tags.get("cached") == "true" else None
        if source and not info.metrics:
            logged.update(ws.tracking.get_run(source).metrics)
        logged.update(info.metrics)
    metrics = {**logged, **result.metrics}
    return {"ok": True, "run_id": result.run_id, "metrics": metrics, "ran": result.ran}


class _Sweep:
    """One call's trials: asks, runs, tells, records."""

    def __init__(
        self,
        *,
        ws: Workspace,
        pipeline: Pipeline,
        plan: Plan,
        done: list[Trial],
        workers: TrialWorkers,
        on_trial: Callable[[Trial], None] | None,
        options: Mapping[str, Any],
        prune: bool = False,
    ) -> None:
        self.ws = ws
        self.pipeline = pipeline
        self.plan = plan
        self.trials: dict[int, Trial] = {t.number: t for t in done}
        self.workers = workers
        self.on_trial = on_trial
        self.options = dict(options)  # for the runner: the step executor
        self.new: list[int] = []
        self._asked: dict[int, Any] = {}
        self._next = max(self.trials, default=-1) + 1
        self.prune = prune  # poll running trials' intermediate values for the pruner
        self._reported: dict[int, int] = {}
        self._runs: dict[int, str] = {}

    def run(self, optimiser: Optimiser, count: int, study_run: str) -> None:
        """Run ``count`` trials; the first trial of a study alone (it fills the cache)."""
        warm = not any(t.state == "COMPLETE" for t in self.trials.values())
        remaining = count
        while remaining or self.workers.busy():
            while remaining and self.workers.free() > 0 and not (warm and self.workers.busy()):
                otrial, values = optimiser.ask()
                number = self._next
                self._next += 1
                self._asked[number] = otrial
                self.workers.submit(number, self._job(number, values, study_run))
                remaining -= 1
                if warm:
                    break
            for number, outcome in self.workers.wait(POLL_S if self.prune else None):
                if not outcome.get("ok") and outcome.get("run_id") is None:
                    outcome["run_id"] = self._end_orphan(study_run, number, outcome)
                trial = self._finish(optimiser, number, outcome)
                if warm and trial.state == "COMPLETE":
                    warm = False
                elif warm and outcome.get("ok"):  # it ran, but the metric is not logged
                    raise InvalidInputError(
                        f"trial {number} of study {self.plan.study!r} ran, but {trial.error}",
                        hint="name a metric a step logs: --metric NAME "
                        "(modelyard.log_metric inside a step)",
                        metric=self.plan.metric,
                        run_id=trial.run_id,
                    )
            if self.prune:
                self._prune(optimiser, study_run)

    def _job(
        self, number: int, values: dict[str, Any], study_run: str
    ) -> Callable[[], dict[str, Any]]:
        ws, pipeline, fixed, options = self.ws, self.pipeline, self.plan.fixed, self.options
        tags = {"sweep.study": self.plan.study, "sweep.trial": str(number)}

        def job() -> dict[str, Any]:
            values_ = {**fixed, **values}
            return _run_trial(
                ws, pipeline, values_, study_run=study_run, tags=tags, options=options
            )

        return job

    def _prune(self, optimiser: Optimiser, study_run: str) -> None:
        """Tell the pruner the running trials' new intermediate values (the objective metric
        logged with a step); stop the trials it prunes and end their runs KILLED."""
        from modelyard.tracking.liveness import end_runs_killed

        for number in self.workers.running():
            run_id = self._trial_run(study_run, number)
            if run_id is None:
                continue
            for step, value in self._intermediate(run_id):
                if step <= self._reported.get(number, -1):
                    continue
                self._reported[number] = step
                if optimiser.report(self._asked[number], step, value):
                    self.workers.stop(number)
                    why = f"pruned at step {step} ({self.plan.metric}={value:.6g})"
                    end_runs_killed(self.ws.metadata_store, [run_id], why)
                    outcome = {"ok": False, "run_id": run_id, "error": why, "pruned": True}
                    self._finish(optimiser, number, outcome)
                    break

    def _trial_run(self, study_run: str, number: int) -> str | None:
        if number not in self._runs:
            page = self.ws.tracking.search_runs(
                filter=f"parent_run_id = '{study_run}' and tags.sweep.trial = '{number}'",
                max_results=5,
            )
            if not page.items:
                return None
            self._runs[number] = page.items[0].id
        return self._runs[number]

    def _intermediate(self, run_id: str) -> list[tuple[int, float]]:
        """``(step, value)`` of the objective metric its steps logged so far, by step."""
        tc = self.ws.tracking
        steps = tc.search_runs(filter=f"parent_run_id = '{run_id}'", max_results=1000).items
        values = [
            (step, value)
            for s in steps
            for step, value, _ in tc.metric_history(s.id, self.plan.metric)
        ]
        return sorted(values)

    def _end_orphan(self, study_run: str, number: int, outcome: dict[str, Any]) -> str | None:
        """The run of a trial whose process died (it could not end it): ended KILLED."""
        from modelyard.tracking.liveness import end_runs_killed

        page = self.ws.tracking.search_runs(
            filter=f"parent_run_id = '{study_run}' and tags.sweep.trial = '{number}'",
            max_results=10,
        )
        ids = [r.id for r in page.items]
        end_runs_killed(
            self.ws.metadata_store, ids, f"the trial's process died: {outcome.get('error')}"
        )
        return ids[0] if ids else None

    def _finish(self, optimiser: Optimiser, number: int, outcome: dict[str, Any]) -> Trial:
        otrial = self._asked.pop(number)
        metric = self.plan.metric
        value = (outcome.get("metrics") or {}).get(metric)
        error = outcome.get("error")
        if outcome.get("ok") and value is None:
            logged = ", ".join(sorted(outcome.get("metrics") or {})) or "none"
            error = f"the trial logged no metric {metric!r} (it logged: {logged})"
        objective = float(value) if outcome.get("ok") and value is not None else None
        pruned = bool(outcome.get("pruned"))
        optimiser.tell(otrial, objective, pruned=pruned)
        trial = Trial(
            number=number,
            params=dict(otrial.params),
            state="PRUNED" if pruned else "FAIL" if objective is None else "COMPLETE",
            value=objective,
            run_id=outcome.get("run_id"),
            error=error if objective is None else None,
            ran=list(outcome.get("ran") or []),
        )
        self.trials[number] = trial
        self.new.append(number)
        _log.info(
            "trial finished",
            extra={
                "study": self.plan.study,
                "trial": number,
                "state": trial.state,
                "value": trial.value,
                "run_id": trial.run_id,
            },
        )
        if self.on_trial is not None:
            self.on_trial(trial)
        return trial

    def end(self, run: Run, status: str) -> None:
        """Record the outcome on the study's run and end it (trial runs still RUNNING, whose
        processes were stopped when the sweep stopped, end KILLED)."""
        import orjson

        from modelyard.tracking.liveness import end_runs_killed

        left = self.ws.tracking.search_runs(
            filter=f"parent_run_id = '{run.id}' and status = 'RUNNING'", max_results=10_000
        ).items
        if left:
            why = f"the sweep ended {status} while this trial ran; its process was stopped"
            end_runs_killed(self.ws.metadata_store, [r.id for r in left], why)
        trials = list(self.trials.values())
        tags: dict[str, Any] = {
            "sweep.trials": len(trials),
            "sweep.failed": sum(t.state == "FAIL" for t in trials),
            "sweep.pruned": sum(t.state == "PRUNED" for t in trials),
        }
        best = best_of(trials, self.plan.direction)
        if best is not None:
            tags["sweep.best_trial"] = best.number
            tags["sweep.best_run"] = best.run_id or ""
            tags["sweep.best_params"] = orjson.dumps(best.params).decode()[:8000]
            run.log_metric(self.plan.metric, float(best.value or 0.0), step=len(trials))
        ran, cached = step_counts(self.ws, run.id)
        tags["sweep.steps_ran"] = orjson.dumps(ran).decode()[:8000]
        tags["sweep.steps_cached"] = orjson.dumps(cached).decode()[:8000]
        run.set_tags(tags)
        run.end(status)


def _start_study_run(ws: Workspace, pipeline: Pipeline, plan: Plan) -> Run:
    if plan.existing is not None:
        return ws.tracking.resume_run(plan.existing.id)
    import orjson

    return ws.tracking.start_run(
        experiment=ws.settings.experiment,
        name=plan.study,
        kind="run",
        source=f"{pipeline.fn.__module__}:{pipeline.fn.__qualname__}",
        tags={
            "sweep.study": plan.study,
            "sweep.pipeline": pipeline.name,
            "sweep.metric": plan.metric,
            "sweep.direction": plan.direction,
            "sweep.sampler": plan.sampler,
            "sweep.space": orjson.dumps(space_to_json(plan.space)).decode(),
        },
    )


def _check_pruner(pruner: Any, *, processes: bool | None, on_ray: bool) -> bool:
    """Whether to prune; refuses a pruner that cannot stop a running trial."""
    if pruner is None or pruner == "none":
        return False
    if isinstance(pruner, str) and pruner != "median":
        raise InvalidInputError(f"pruner {pruner!r} is not median or none", hint="--pruner median")
    if not isinstance(pruner, str) and not callable(getattr(pruner, "prune", None)):
        raise InvalidInputError(
            f"pruner {pruner!r} is not an Optuna pruner", hint="pass optuna.pruners.MedianPruner()"
        )
    if on_ray or processes is False or not TrialWorkers.can_fork():
        raise InvalidInputError(
            "pruning stops a running trial's process, and these trials would not be processes "
            "of their own (threads, Ray, or no fork here)",
            hint="prune with forked trials: leave out --threads and --executor ray",
        )
    return True


def run_sweep(
    pipeline: Pipeline,
    space: Mapping[str, Any] | None = None,
    *,
    trials: int | None = None,
    metric: str | None = None,
    direction: str | None = None,
    study: str | None = None,
    sampler: str | None = None,
    seed: int | None = None,
    parallel: int | None = None,
    params: Mapping[str, Any] | None = None,
    workspace: Workspace | None = None,
    settings: Settings | None = None,
    processes: bool | None = None,
    executor: str | None = None,
    ray_address: str | None = None,
    pruner: Any = None,
    register: RegisterBest | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> SweepResult:
    """Explore ``pipeline``'s parameters: each trial is a cached, tracked pipeline run.

    Arguments win over ``[tool.modelyard.sweep.<pipeline>]`` (keys ``space``, ``metric``,
    ``direction``, ``trials``, ``parallel``, ``sampler``, ``seed``, ``study``), which wins over
    the defaults. The space of the arguments is laid over the project's, key by key.

    Args:
        pipeline: the pipeline (``@modelyard.pipeline``).
        space: parameter -> :class:`~modelyard.sweep.space.FloatRange`, ``IntRange``,
            ``Choice``, or their TOML forms (see :mod:`modelyard.sweep.space`).
        trials: how many trials this call runs (default 20; a grid: its points not yet run).
        metric: the objective: a metric a step logs (``log_metric``).
        direction: ``maximize`` (default) or ``minimize``.
        study: the study's name (default: the pipeline's name); an existing study continues.
        sampler: ``tpe`` (default), ``random`` or ``grid``.
        seed: the sampler's seed (a continued study offsets it by the trials already run).
        parallel: most trials at once (default 1).
        params: fixed values of other pipeline parameters, for every trial.
        workspace: the stores (default: opened from ``settings``).
        settings: the project's settings (default: :func:`modelyard.load_settings`).
        processes: run parallel trials in forked processes (default: where fork is safe;
            False: threads).
        executor: where each trial's steps run: ``local`` (default: the settings') or
            ``ray`` (trials then run in threads of this process, Ray's driver).
        ray_address: the Ray cluster (implies ``executor="ray"``).
        pruner: ``"median"`` (Optuna's ``MedianPruner``), any Optuna pruner, or None. The
            running trials' intermediate values (the objective metric a step logs with
            ``modelyard.log_metric(metric, value, step=epoch)``)
            are read every ``POLL_S`` seconds; a pruned trial's process is stopped and its runs
            end ``KILLED`` (``ended.reason`` ``pruned at step N``). Needs forked trials.
        register: send the best trial's model through the gate at the end.
        on_trial: called with each finished trial (the CLI prints a line).

    Returns:
        The :class:`~modelyard.sweep.result.SweepResult` (the whole study: earlier trials too).

    Raises:
        InvalidInputError: a bad space, option or metric, before any trial runs (a metric no
            step logs: after the first trial, which runs alone).
        ConflictError: the study exists with another space, metric or direction.
        MissingExtraError: Optuna is not installed (``pip install 'modelyard[sweep]'``).
        GateFailed: ``register`` was given and the gate refused the best trial's model (the
            sweep itself is recorded; the result is on the error as ``result``).
    """
    started = time.perf_counter()
    if workspace is None:
        from modelyard.workspace import Workspace

        if settings is None:  # the Python API's edge: the project's settings, read once here
            from modelyard.config import load_settings

            settings = load_settings()
        workspace = Workspace.open(settings)
    ws = workspace
    plan = make_plan(
        ws, pipeline, space, trials=trials, metric=metric, direction=direction, study=study,
        sampler=sampler, seed=seed, parallel=parallel, params=params, pruner=pruner,
    )  # fmt: skip
    on_ray = bool(ray_address) or (executor or ws.settings.pipeline.executor) == "ray"
    prune = _check_pruner(plan.pruner, processes=processes, on_ray=on_ray)
    done = stored_trials(ws, plan.existing.id, plan.space, plan.metric) if plan.existing else []
    optimiser = Optimiser(
        plan.space,
        plan.direction,
        plan.sampler,
        None if plan.seed is None else plan.seed + len(done),  # a continued study: new draws
        [(t.params, t.value) for t in done],
        pruner=plan.pruner if prune else None,
    )
    count = optimiser.open(plan.trials)
    if plan.sampler != "grid" and plan.trials is None:
        count = DEFAULT_TRIALS
    study_run = _start_study_run(ws, pipeline, plan)
    sweep = _Sweep(
        ws=ws,
        pipeline=pipeline,
        plan=plan,
        done=done,
        workers=TrialWorkers(
            plan.parallel, processes=True if prune else False if on_ray else processes
        ),
        on_trial=on_trial,
        options={"executor": executor, "ray_address": ray_address},
        prune=prune,
    )
    _log.info(
        "sweep started",
        extra={
            "study": plan.study,
            "run_id": study_run.id,
            "pipeline": pipeline.name,
            "trials": count,
            "done": len(done),
            "parallel": plan.parallel,
            "mode": sweep.workers.mode,
        },
    )
    from modelyard.pipelines.runner import sigterm_as_exit

    try:
        with sigterm_as_exit():  # a CI cancel stops the trials and ends the runs KILLED
            sweep.run(optimiser, count, study_run.id)
    except BaseException as exc:
        sweep.workers.close()
        sweep.end(
            study_run, "KILLED" if isinstance(exc, KeyboardInterrupt | SystemExit) else "FAILED"
        )
        raise
    sweep.workers.close()
    result = SweepResult(
        study=plan.study,
        run_id=study_run.id,
        pipeline=pipeline.name,
        metric=plan.metric,
        direction=plan.direction,
        sampler=plan.sampler,
        space=plan.space,
        trials=[sweep.trials[n] for n in sorted(sweep.trials)],
        new=sweep.new,
        mode=sweep.workers.mode,
    )
    refused: GateFailed | None = None
    if register is not None:
        try:
            outcome = register_best(result, register, workspace=ws)
        except GateFailed as exc:  # a refusal is part of the study's story, not its failure
            refused = exc
            study_run.set_tag("sweep.gate", "refused")
        except BaseException:
            sweep.end(study_run, "FAILED")
            raise
        else:
            result.registered = {
                "name": outcome.version.name,
                "version": outcome.version.version,
                "alias": outcome.alias,
                "trial": result.best.number if result.best else None,
            }
            study_run.set_tag("sweep.registered", outcome.version.ref)
    sweep.end(study_run, "FINISHED")
    result.step_runs, result.step_cached = step_counts(ws, study_run.id)
    result.duration_s = time.perf_counter() - started
    if refused is not None:
        refused.result = result  # type: ignore[attr-defined]
        raise refused
    return result
