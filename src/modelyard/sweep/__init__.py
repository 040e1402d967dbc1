"""Hyper-parameter sweeps as cached pipelines (``modelyard sweep``; ``pip install
'modelyard[sweep]'`` for Optuna).

::

    from modelyard.sweep import FloatRange, IntRange, run_sweep

    result = run_sweep(train, {"C": FloatRange(1e-3, 10.0, log=True), "depth": IntRange(2, 8)},
                       metric="accuracy", trials=50, parallel=2)
    result.best.params, result.step_runs        # {"load": 1, "features": 1, "fit": 50, ...}

Each trial is a pipeline run, so steps the swept parameters do not reach run once and are shared
by every trial through the step cache. See :mod:`modelyard.sweep.study` for how the study is
stored and continued, :mod:`modelyard.sweep.space` for the search space's forms and
:mod:`modelyard.sweep.register` for gating the best trial's model.
"""

from __future__ import annotations

from modelyard.sweep.register import RegisterBest, register_best
from modelyard.sweep.result import SweepResult, Trial
from modelyard.sweep.space import (
    Choice,
    Dimension,
    FloatRange,
    IntRange,
    check_space,
    parse_space_option,
)
from modelyard.sweep.study import run_sweep

__all__ = [
    "Choice",
    "Dimension",
    "FloatRange",
    "IntRange",
    "RegisterBest",
    "SweepResult",
    "Trial",
    "check_space",
    "parse_space_option",
    "register_best",
    "run_sweep",
]
