"""What a sweep hands back: its :class:`Trial` s and the :class:`SweepResult`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from modelyard.sweep.space import Dimension, space_to_json

__all__ = ["SweepResult", "Trial", "best_of"]


@dataclass
class Trial:
    """One trial of a study.

    Attributes:
        number: 0, 1, ... in the order trials were asked for, across every run of the study.
        params: the swept parameters' values.
        state: ``COMPLETE``, ``FAIL`` or ``PRUNED`` (stopped by the pruner).
        value: the objective metric (None for a failed trial).
        run_id: the trial's pipeline run (a child of the study's run).
        error: why it failed.
        ran: the steps that ran in this trial (the others came from the cache).
    """

    number: int
    params: dict[str, Any]
    state: str
    value: float | None = None
    run_id: str | None = None
    error: str | None = None
    ran: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {
            "number": self.number,
            "params": self.params,
            "state": self.state,
            "value": self.value,
            "run_id": self.run_id,
            "error": self.error,
            "ran": self.ran,
        }


def best_of(trials: Iterable[Trial], direction: str) -> Trial | None:
    """The completed trial with the best value (the earliest among equals), or None."""
    done = [t for t in trials if t.state == "COMPLETE" and t.value is not None]
    if not done:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(done, key=lambda t: (sign * float(t.value or 0.0), t.number))


@dataclass
class SweepResult:
    """What :func:`~modelyard.sweep.study.run_sweep` hands back.

    Attributes:
        study: the study's name.
        run_id: the study's tracked run (the trials' parent).
        pipeline: the pipeline's name.
        metric: the objective metric.
        direction: ``maximize`` or ``minimize``.
        sampler: ``tpe``, ``random`` or ``grid``.
        space: the search space.
        trials: every trial of the study (earlier runs of it too), by number.
        new: the numbers of the trials this call ran.
        step_runs: step -> how many times it ran (not from the cache) in the study's trials.
        step_cached: step -> how many trials took it from the cache.
        mode: how trials ran: ``inline``, ``processes`` or ``threads``.
        duration_s: wall time of this call.
        registered: ``{"name", "version", "alias", "trial"}`` when the best trial was registered.
    """

    study: str
    run_id: str
    pipeline: str
    metric: str
    direction: str
    sampler: str
    space: dict[str, Dimension]
    trials: list[Trial]
    new: list[int]
    step_runs: dict[str, int] = field(default_factory=dict)
    step_cached: dict[str, int] = field(default_factory=dict)
    mode: str = "inline"
    duration_s: float = 0.0
    registered: dict[str, Any] | None = None

    @property
    def best(self) -> Trial | None:
        """The completed trial with the best value (the earliest among equals)."""
        return best_of(self.trials, self.direction)

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary."""
        best = self.best
        return {
            "study": self.study,
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "metric": self.metric,
            "direction": self.direction,
            "sampler": self.sampler,
            "space": space_to_json(self.space),
            "trials": len(self.trials),
            "new_trials": len(self.new),
            "failed": sum(t.state == "FAIL" for t in self.trials),
            "pruned": sum(t.state == "PRUNED" for t in self.trials),
            "best": best.to_dict() if best else None,
            "step_runs": self.step_runs,
            "step_cached": self.step_cached,
            "mode": self.mode,
            "duration_s": round(self.duration_s, 3),
            "registered": self.registered,
            "all_trials": [t.to_dict() for t in self.trials],
        }
