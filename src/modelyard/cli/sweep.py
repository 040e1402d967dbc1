"""`modelyard sweep`: explore a pipeline's parameters (a thin adapter over ``run_sweep``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from modelyard.sweep.result import SweepResult, Trial

_HELP = """Explore a pipeline's parameters with Optuna: each trial is a cached pipeline run.

Steps the swept parameters do not reach (loading, validation, features) run once and every
trial shares them from the cache. The study is stored with the project's runs: run the same
command again (or --study NAME) to continue it. The space comes from --space options laid over
[tool.modelyard.sweep.<pipeline>.space] in pyproject.toml:

  --space C=float:0.001:10:log --space depth=int:2:8 --space penalty=choice:l1,l2
"""


def register(app: typer.Typer) -> None:
    """Add ``modelyard sweep`` to the root app."""
    app.command("sweep", help=_HELP)(sweep_cmd)


def _values(params: dict[str, Any]) -> str:
    def show(v: Any) -> str:
        return f"{v:.6g}" if isinstance(v, float) else str(v)

    return " ".join(f"{k}={show(v)}" for k, v in sorted(params.items()))


def _trial_line(trial: Trial, metric: str) -> str:
    if trial.state == "COMPLETE":
        outcome = f"{metric}={trial.value:.6g}"
    elif trial.state == "PRUNED":
        outcome = f"PRUNED: {trial.error}"
    else:
        outcome = f"FAILED: {(trial.error or '').splitlines()[0][:120]}"
    ran = ", ".join(trial.ran) or "nothing (all cached)"
    return f"trial {trial.number:>3}  {outcome}  {_values(trial.params)}  ran: {ran}"


def _summary_text(result: SweepResult) -> str:
    lines = [
        f"study {result.study!r} (run {result.run_id}): {len(result.trials)} trials, "
        f"{len(result.new)} new, {sum(t.state == 'FAIL' for t in result.trials)} failed, "
        f"{sum(t.state == 'PRUNED' for t in result.trials)} pruned, "
        f"{result.duration_s:.1f}s, trials {result.mode}",
    ]
    best = result.best
    if best is not None:
        lines.append(
            f"best: trial {best.number}  {result.metric}={best.value:.6g} ({result.direction})  "
            f"{_values(best.params)}  run {best.run_id}"
        )
    if result.step_runs:
        width = max(map(len, result.step_runs))
        lines.append("steps across the study's trials:")
        for step, ran in result.step_runs.items():
            cached = result.step_cached.get(step, 0)
            lines.append(f"  {step:<{width}}  ran {ran:>4}x  from the cache {cached:>4}x")
    if result.registered:
        reg = result.registered
        lines.append(f"registered {reg['name']}:{reg['version']} ({reg['alias']})")
    return "\n".join(lines)


def sweep_cmd(  # noqa: PLR0917  (a Typer command: one parameter per flag)
    entrypoint: Annotated[
        str | None,
        typer.Argument(
            help="module:function of the pipeline (default: [tool.modelyard.pipeline] entrypoint)"
        ),
    ] = None,
    space: Annotated[
        list[str] | None,
        typer.Option(
            "--space",
            "-s",
            help="a dimension: NAME=float:LOW:HIGH[:log], NAME=int:LOW:HIGH[:step=N], "
            "NAME=choice:A,B (repeatable)",
        ),
    ] = None,
    trials: Annotated[
        int | None, typer.Option("--trials", "-n", help="trials to run now (default 20)")
    ] = None,
    parallel: Annotated[
        int | None, typer.Option("--parallel", "-j", help="most trials at once (default 1)")
    ] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", "-m", help="the metric to optimise (a step logs it)")
    ] = None,
    direction: Annotated[
        str | None, typer.Option("--direction", help="maximize (default) or minimize")
    ] = None,
    study: Annotated[
        str | None,
        typer.Option("--study", help="the study's name; an existing study continues"),
    ] = None,
    sampler: Annotated[
        str | None, typer.Option("--sampler", help="tpe (default), random or grid")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="the sampler's seed")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="a fixed pipeline parameter, key=value (repeatable)"),
    ] = None,
    threads: Annotated[
        bool, typer.Option("--threads", help="run parallel trials in threads, not processes")
    ] = False,
    executor: Annotated[
        str | None,
        typer.Option("--executor", help="where the trials' steps run: local (default) or ray"),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="connect to this Ray cluster")
    ] = None,
    pruner: Annotated[
        str | None,
        typer.Option(
            "--pruner",
            help="median: stop trials whose intermediate values (the metric logged with "
            "step=) lag; none (default)",
        ),
    ] = None,
    register_best: Annotated[
        str | None,
        typer.Option("--register-best", help="gate the best trial's model and register it as NAME"),
    ] = None,
    test_step: Annotated[
        str | None,
        typer.Option("--test-step", help="the step output with the test rows: STEP or STEP[KEY]"),
    ] = None,
    model_step: Annotated[
        str | None,
        typer.Option("--model-step", help="the step returning the model (default: the only one)"),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="the label column of the test rows")
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", help="the project folder (default: found from the cwd)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    from pathlib import Path

    from modelyard.cli._run import _parse_params
    from modelyard.cli.state import emit_summary, state
    from modelyard.errors import GateFailed, InvalidInputError, NotFoundError
    from modelyard.pipelines.loader import load_pipeline
    from modelyard.sweep.register import RegisterBest
    from modelyard.sweep.space import parse_space_option
    from modelyard.sweep.study import run_sweep

    if project is not None:
        if not Path(project).is_dir():
            raise NotFoundError(f"project folder {project!r} does not exist")
        settings = state.settings(start=Path(project))
    else:
        settings = state.settings()
    target_fn = entrypoint or settings.pipeline.entrypoint
    dims = dict(parse_space_option(text) for text in space or [])
    register = None
    if register_best is not None:
        if test_step is None:
            raise InvalidInputError(
                "--register-best needs the test rows the gate evaluates on",
                hint="name the step output that holds them: --test-step split[1]",
            )
        register = RegisterBest(register_best, test=test_step, model=model_step, target=target)
    p = load_pipeline(target_fn, settings.project_root)
    fixed = p.check_params(_parse_params(param or []), source="-p", strings=True)

    table = settings.sweep.get(p.name)
    shown = metric or (table.get("metric") if isinstance(table, dict) else None) or "value"

    def on_trial(trial: Trial) -> None:
        if not as_json:
            print(_trial_line(trial, shown), flush=True)

    try:
        result = run_sweep(
            p,
            dims,
            trials=trials,
            metric=metric,
            direction=direction,
            study=study,
            sampler=sampler,
            seed=seed,
            parallel=parallel,
            params=fixed,
            settings=settings,
            processes=False if threads else None,
            executor=executor,
            ray_address=ray_address,
            pruner=pruner,
            register=register,
            on_trial=on_trial,
        )
    except GateFailed as exc:
        refused = getattr(exc, "result", None)
        if refused is not None:
            emit_summary(refused, as_json, _summary_text)
        raise
    emit_summary(result, as_json, _summary_text)
