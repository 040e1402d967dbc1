"""A sweep's options, merged and checked before anything runs.

Arguments win over ``[tool.modelyard.sweep.<pipeline>]``, which wins over the defaults; a study
that exists already brings its stored space, metric and direction, and a sweep that contradicts
them is refused rather than mixing two studies in one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import ConfigError, ConflictError, InvalidInputError
from modelyard.sweep.space import Dimension, check_space, grid_points, space_to_json

if TYPE_CHECKING:
    from modelyard.pipelines.graph import Pipeline
    from modelyard.tracking.entities import RunInfo
    from modelyard.workspace import Workspace

__all__ = ["DEFAULT_TRIALS", "DIRECTIONS", "OPTIONS", "SAMPLERS", "Plan", "make_plan"]

DEFAULT_TRIALS = 20
SAMPLERS = ("tpe", "random", "grid")
DIRECTIONS = ("maximize", "minimize")
OPTIONS = (
    "space",
    "metric",
    "direction",
    "trials",
    "parallel",
    "sampler",
    "seed",
    "study",
    "pruner",
)


@dataclass
class Plan:
    """Everything a sweep needs to start, checked.

    ``trials`` is None when not given (the default, or a grid's points left, apply).
    """

    study: str
    space: dict[str, Dimension]
    metric: str
    direction: str
    sampler: str
    seed: int | None
    parallel: int
    trials: int | None
    fixed: dict[str, Any]
    existing: RunInfo | None
    pruner: Any = None


def _table(ws: Workspace, pipeline: Pipeline) -> dict[str, Any]:
    where = f"[tool.modelyard.sweep.{pipeline.name}]"
    table = ws.settings.sweep.get(pipeline.name, {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, got {table!r}", hint="see the README: Sweeps")
    unknown = sorted(set(table) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {where}: {', '.join(unknown)}",
            hint="the keys are: " + ", ".join(OPTIONS),
        )
    return dict(table)


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(
            f"{name} must be a whole number of at least 1, got {value!r}",
            hint=f"for example --{name} 4",
        )
    return value


def find_study(ws: Workspace, study: str, pipeline: str) -> RunInfo | None:
    """The run of study ``study`` of ``pipeline`` (the newest), or None.

    Raises:
        ConflictError: a study of that name belongs to another pipeline.
    """
    # the name passed check_key: letters, digits and _ - . / : space, no quote to escape
    page = ws.tracking.search_runs(
        filter=f"kind = 'run' and tags.sweep.study = '{study}'", max_results=50
    )
    runs = [r for r in page.items if r.tags.get("sweep.pipeline") == pipeline]
    if runs:
        return _not_running(ws, runs[0])
    if page.items:
        other = page.items[0].tags.get("sweep.pipeline", "?")
        raise ConflictError(
            f"study {study!r} belongs to pipeline {other!r}, not {pipeline!r}",
            hint="give this sweep another name: --study NAME",
        )
    return None


def _not_running(ws: Workspace, found: RunInfo) -> RunInfo:
    """``found``, unless another live process is running that study now.

    A study left RUNNING by a process that died is ended ``KILLED`` first (as the next
    top-level run would), and then continues.
    """
    if found.status != "RUNNING":
        return found
    from modelyard.tracking.liveness import end_stale_runs

    end_stale_runs(ws.metadata_store)
    info = ws.tracking.get_run(found.id)
    if info.status == "RUNNING":
        where = info.lineage.get("process_host") or "another machine"
        raise ConflictError(
            f"study {info.tags.get('sweep.study')!r} is running now (run {info.id}, process "
            f"{info.lineage.get('process_pid')} on {str(where).split('/')[0]})",
            hint="wait for it to finish, or sweep under another name: --study NAME",
            run_id=info.id,
        )
    return info


def _continue(plan: Plan, pipeline: Pipeline, existing: RunInfo, given: dict[str, Any]) -> None:
    """Take the stored study's space, metric and direction; refuse contradicting ones."""
    import orjson

    tags = existing.tags
    stored = check_space(
        pipeline, orjson.loads(tags.get("sweep.space", "{}")), source="the stored study"
    )
    if plan.space and space_to_json(plan.space) != space_to_json(stored):
        raise ConflictError(
            f"study {plan.study!r} was started with another search space: "
            f"{orjson.dumps(space_to_json(stored)).decode()}",
            hint="run it with the same space (or none: the stored one is used), or start "
            "another study: --study NEW-NAME",
        )
    for key in ("metric", "direction"):
        if given[key] is not None and given[key] != tags.get(f"sweep.{key}"):
            raise ConflictError(
                f"study {plan.study!r} optimises {tags.get('sweep.metric')!r} "
                f"({tags.get('sweep.direction')}), not {key} {given[key]!r}",
                hint="leave --metric and --direction out to continue it, or start another "
                "study: --study NEW-NAME",
            )
    plan.space = stored
    plan.metric = tags.get("sweep.metric", plan.metric)
    plan.direction = tags.get("sweep.direction", plan.direction)
    if given["sampler"] is None:
        plan.sampler = tags.get("sweep.sampler", plan.sampler)
    plan.existing = existing


def make_plan(
    ws: Workspace,
    pipeline: Pipeline,
    space: Mapping[str, Any] | None,
    *,
    trials: int | None,
    metric: str | None,
    direction: str | None,
    study: str | None,
    sampler: str | None,
    seed: int | None,
    parallel: int | None,
    params: Mapping[str, Any] | None,
    pruner: Any = None,
) -> Plan:
    """Merge the arguments with the project's table and the stored study; check it all.

    Raises:
        InvalidInputError: a bad space, option or metric name.
        ConfigError: an unknown key in the project's table.
        ConflictError: the study exists with another space, metric or direction, or belongs to
            another pipeline.
    """
    from modelyard.store.keys import check_key

    conf = _table(ws, pipeline)
    where = f"[tool.modelyard.sweep.{pipeline.name}]"
    dims: dict[str, Dimension] = {}
    if conf.get("space"):
        dims.update(check_space(pipeline, conf["space"], source=f"{where} space"))
    if space:
        dims.update(check_space(pipeline, space, source="the arguments"))
    given = {
        "metric": metric or conf.get("metric"),
        "direction": (direction or conf.get("direction") or "").lower() or None,
        "sampler": (sampler or conf.get("sampler") or "").lower() or None,
    }
    if given["direction"] is not None and given["direction"] not in DIRECTIONS:
        raise InvalidInputError(
            f"direction {given['direction']!r} is not maximize or minimize",
            hint="--direction maximize",
        )
    if given["sampler"] is not None and given["sampler"] not in SAMPLERS:
        raise InvalidInputError(
            f"sampler {given['sampler']!r} is not one of {', '.join(SAMPLERS)}",
            hint="--sampler tpe",
        )
    seed = seed if seed is not None else conf.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidInputError(f"seed must be a whole number, got {seed!r}", hint="--seed 0")
    trials = trials if trials is not None else conf.get("trials")
    plan = Plan(
        study=study or conf.get("study") or pipeline.name,
        space=dims,
        metric=given["metric"] or "",
        direction=given["direction"] or "maximize",
        sampler=given["sampler"] or "tpe",
        seed=seed,
        parallel=_positive("parallel", parallel or conf.get("parallel") or 1),
        trials=None if trials is None else _positive("trials", trials),
        fixed=pipeline.check_params(dict(params or {}), source="the fixed parameters"),
        existing=None,
        pruner=pruner if pruner is not None else conf.get("pruner"),
    )
    check_key(plan.study, "study name")
    existing = find_study(ws, plan.study, pipeline.name)
    if existing is not None:
        _continue(plan, pipeline, existing, given)
    if not plan.space:
        check_space(pipeline, {}, source="the arguments")  # raises: nothing to sweep
    if not plan.metric:
        raise InvalidInputError(
            "a sweep needs the metric to optimise",
            hint=f"name one a step logs: --metric accuracy (or metric = ... in {where})",
        )
    check_key(plan.metric, "metric")
    clash = sorted(set(plan.fixed) & set(plan.space))
    if clash:
        raise InvalidInputError(
            f"parameter {clash[0]!r} is both swept and fixed",
            hint="leave it out of the fixed parameters (-p) or out of the space",
            param=clash[0],
        )
    if plan.sampler == "grid":
        grid_points(plan.space)  # raises for a range without a finite set of values
    return plan
