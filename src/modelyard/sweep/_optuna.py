"""The one place Optuna is used: an in-memory study rebuilt from the trials stored as runs.

Only the parent process asks and tells, so the study needs no storage of its own; the stored
trials are added back (``add_trial``) each time a study continues, which is all a sampler needs
to go on from them. A grid is the list of points not run yet, enqueued in order.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from modelyard.errors import require_extra
from modelyard.sweep.space import Choice, Dimension, IntRange, grid_points

__all__ = ["Optimiser", "param_str"]


def param_str(value: Any) -> str:
    """A parameter's value as the runner stores it on a run (strings as they are, else JSON)."""
    if isinstance(value, str):
        return value
    import orjson

    return orjson.dumps(value, default=str).decode()


@contextlib.contextmanager
def _quiet(optuna: Any) -> Iterator[None]:
    # constant_liar and friends are "experimental" in some Optuna releases; the suite (and a
    # user's) may turn warnings into errors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


class Optimiser:
    """Asks an Optuna sampler for parameter values, told every result so far.

    Args:
        space: the checked search space.
        direction: ``maximize`` or ``minimize``.
        sampler: ``tpe``, ``random`` or ``grid``.
        seed: the sampler's seed (None: random).
        done: ``(params, value)`` of the trials already completed (value None: failed).
        pruner: ``"median"``, an Optuna pruner, or None (no pruning).
    """

    def __init__(
        self,
        space: Mapping[str, Dimension],
        direction: str,
        sampler: str,
        seed: int | None,
        done: Sequence[tuple[dict[str, Any], float | None]],
        *,
        pruner: Any = None,
    ) -> None:
        self.space = dict(space)
        self.direction = direction
        self.sampler = sampler
        self.seed = seed
        self.done = list(done)
        self.pruner = pruner
        self._study: Any = None
        self._optuna: Any = None
        self._distributions: dict[str, Any] = {}

    def open(self, trials: int | None) -> int:
        """Build the study; return how many trials to run (a grid: at most the points left).

        Raises:
            MissingExtraError: Optuna is not installed.
        """
        optuna = self._optuna = require_extra("optuna", "sweep")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        dists = optuna.distributions
        for name, dim in self.space.items():
            if isinstance(dim, Choice):
                self._distributions[name] = dists.CategoricalDistribution(list(dim.values))
            elif isinstance(dim, IntRange):
                self._distributions[name] = dists.IntDistribution(
                    dim.low, dim.high, log=dim.log, step=dim.step
                )
            else:
                self._distributions[name] = dists.FloatDistribution(
                    dim.low, dim.high, log=dim.log, step=dim.step
                )
        with _quiet(optuna):
            if self.sampler == "tpe":
                # constant_liar: trials asked while others run are steered away from them
                sampler = optuna.samplers.TPESampler(seed=self.seed, constant_liar=True)
            else:  # random; a grid is its enqueued points
                sampler = optuna.samplers.RandomSampler(seed=self.seed)
            pruner = self.pruner
            if pruner is None:
                pruner = optuna.pruners.NopPruner()
            elif pruner == "median":
                pruner = optuna.pruners.MedianPruner()
            self._study = optuna.create_study(
                direction=self.direction, sampler=sampler, pruner=pruner
            )
            for params, value in self.done:
                if value is not None:
                    self._study.add_trial(
                        optuna.trial.create_trial(
                            params=params, distributions=self._distributions, value=value
                        )
                    )
            if self.sampler != "grid":
                return trials if trials is not None else 0
            grid = grid_points(self.space)
            seen = {tuple(param_str(p.get(n)) for n in grid) for p, _ in self.done if p}
            todo = [
                dict(zip(grid, point, strict=True))
                for point in itertools.product(*grid.values())
                if tuple(map(param_str, point)) not in seen
            ]
            count = len(todo) if trials is None else min(trials, len(todo))
            for point in todo[:count]:
                self._study.enqueue_trial(point)
        return count

    def ask(self) -> tuple[Any, dict[str, Any]]:
        """A new trial and its parameter values."""
        with _quiet(self._optuna):
            trial = self._study.ask(self._distributions)
        return trial, dict(trial.params)

    def report(self, trial: Any, step: int, value: float) -> bool:
        """An intermediate value of a running trial; whether the pruner stops it now."""
        with _quiet(self._optuna):
            trial.report(value, step)
            return bool(trial.should_prune())

    def tell(self, trial: Any, value: float | None, *, pruned: bool = False) -> None:
        """The trial's result (None: it failed; ``pruned``: the pruner stopped it)."""
        with _quiet(self._optuna):
            if pruned:
                self._study.tell(trial, state=self._optuna.trial.TrialState.PRUNED)
            elif value is None:
                self._study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
            else:
                self._study.tell(trial, value)
