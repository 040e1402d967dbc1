"""The best trial's model through the gate, like any candidate.

The model and the test rows are outputs the best trial's steps stored: found through the cache
keys its step runs recorded, read from the artifact store (nothing is trained again).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from modelyard.evaluate.register import GateOutcome
    from modelyard.sweep.result import SweepResult
    from modelyard.workspace import Workspace

__all__ = ["RegisterBest", "register_best"]


@dataclass(frozen=True)
class RegisterBest:
    """Send the best trial's model through the gate once the sweep is done.

    Attributes:
        name: the registered model's name.
        test: the step output holding the test rows: ``STEP`` or ``STEP[KEY]`` (``split[1]``,
            ``data[test]``).
        model: the step whose output is the model (default: the only step returning one).
        target: the label column of the test rows.
        explain_rows: store feature attributions on this many test rows (None: the gate
            policy's ``explain_rows``; 0: none).
    """

    name: str
    test: str
    model: str | None = None
    target: str | None = None
    explain_rows: int | None = None


def _output_spec(text: str) -> tuple[str, tuple[str | int, ...]]:
    """``STEP`` or ``STEP[KEY]...`` -> (step, key path); whole-number keys index tuples."""
    match = re.fullmatch(r"\s*([^\[\]\s]+)((?:\[[^\[\]]+\])*)\s*", text)
    if match is None:
        raise InvalidInputError(
            f"{text!r} does not name a step output",
            hint="write STEP or STEP[KEY], for example split[1] or data[test]",
        )
    keys: list[str | int] = []
    for raw in re.findall(r"\[([^\[\]]+)\]", match.group(2)):
        key = raw.strip().strip("'\"")
        keys.append(int(key) if key.lstrip("-").isdigit() else key)
    return match.group(1), tuple(keys)


def _trial_outputs(ws: Workspace, run_id: str) -> dict[str, dict[str, Any]]:
    """step -> output record, for each step of a trial's pipeline run still in the cache."""
    from modelyard.pipelines.cache import StepCache

    page = ws.tracking.search_runs(
        filter=f"parent_run_id = '{run_id}' and kind = 'step'", max_results=10_000
    )
    keys = {info.name: info.tags.get("cache.key") for info in page.items if info.name}
    cache = StepCache(ws.metadata_store, ws.artifact_store)
    found = cache.get_many([k for k in keys.values() if k])
    return {step: found[key][0] for step, key in keys.items() if key and key in found}


def _load(ws: Workspace, records: Mapping[str, Any], spec: str, what: str, run_id: str) -> Any:
    from modelyard.pipelines.cache import record_fingerprint
    from modelyard.pipelines.executors import load_input

    step, path = _output_spec(spec)
    record = records.get(step)
    if record is None:
        raise NotFoundError(
            f"the {what} step {step!r} has no stored output in the best trial's run {run_id}",
            hint="steps with outputs: "
            + (", ".join(sorted(records)) or "none")
            + "; run the best trial again (modelyard run -p ...) to store them",
        )
    try:
        _, locator = record_fingerprint(record, path)
    except KeyError as exc:
        raise InvalidInputError(
            f"step {step!r} has no output {exc.args[0]!r} (for the {what})",
            hint="index it by position (split[1]) or by name (data[test])",
        ) from None
    return load_input(locator, ws.artifact_store, {}, trust=False)


def _model_step(records: Mapping[str, Any]) -> str:
    from modelyard.pipelines.cache import iter_refs

    steps = sorted(
        s for s, rec in records.items() if any(r.get("codec") == "model" for r in iter_refs(rec))
    )
    if len(steps) != 1:
        raise InvalidInputError(
            "cannot tell which step returns the model: "
            + (f"{', '.join(steps)} all do" if steps else "none returns one"),
            hint="name it: --model-step STEP",
        )
    return steps[0]


def register_best(result: SweepResult, spec: RegisterBest, *, workspace: Workspace) -> GateOutcome:
    """Gate the best trial's model against production and register it if it passes.

    The gate policy is the project's (``[tool.modelyard.gate]``), as for any candidate. The
    version records the trial's run, and ``extra["sweep"]`` the study, the trial, its
    parameters and its value.

    Raises:
        NotFoundError: no trial completed, or a step's output is no longer stored.
        InvalidInputError: ``spec`` names no step output, or it is unclear which step returns
            the model.
        GateFailed: the gate refused it; nothing was registered.
    """
    best = result.best
    if best is None or best.run_id is None:
        raise NotFoundError(
            f"study {result.study!r} has no completed trial to register",
            hint="see why its trials failed: modelyard runs list",
        )
    records = _trial_outputs(workspace, best.run_id)
    model = _load(workspace, records, spec.model or _model_step(records), "model", best.run_id)
    test_frame = _load(workspace, records, spec.test, "test rows", best.run_id)
    return workspace.gate_and_register(
        spec.name,
        model,
        test_frame,
        target=spec.target,
        run_id=best.run_id,
        extra={
            "sweep": {
                "study": result.study,
                "study_run": result.run_id,
                "trial": best.number,
                "params": best.params,
                "metric": result.metric,
                "value": best.value,
            }
        },
        reason=f"best trial {best.number} of sweep {result.study!r}",
        explain_rows=spec.explain_rows,
    )
