"""modelyard.delivery: progressive delivery of a model version (canary, blue-green, A/B, shadow).

Public API::

    from modelyard.delivery import analyze, ArmStats, Thresholds      # the analysis, pure
    from modelyard.delivery import RolloutStore, RolloutController    # state machine + rows
    from modelyard.delivery import RolloutClient                      # steer a running server

The pieces: :mod:`~modelyard.delivery.analysis` (always-valid comparisons of candidate and
stable), :mod:`~modelyard.delivery.strategies` (the steps of each strategy),
:mod:`~modelyard.delivery.router` (the per-request router the serving front calls),
:mod:`~modelyard.delivery.store` (rollouts, steps and events in the metadata store),
:mod:`~modelyard.delivery.rollout` (the state machine), ``client`` (HTTP steering),
:mod:`~modelyard.delivery.feedback` (quality from the labels that come back) and
:mod:`~modelyard.delivery.replay` (the load test's requests).
"""

from __future__ import annotations

from modelyard.delivery.analysis import (
    Analysis,
    ArmStats,
    Check,
    Decision,
    Outcome,
    Thresholds,
    analyze,
    decide,
    load_test_verdict,
)
from modelyard.delivery.rollout import (
    DeliveryFront,
    LoadTestRun,
    RolloutController,
    RolloutRequest,
)
from modelyard.delivery.router import RolloutRouter, RoutePlan
from modelyard.delivery.store import Rollout, RolloutEvent, RolloutStore
from modelyard.delivery.strategies import (
    STRATEGIES,
    ABTest,
    BlueGreen,
    Canary,
    Shadow,
    Step,
    Strategy,
    check_steps,
    parse_steps,
    strategy_for,
)

__all__ = [
    "STRATEGIES",
    "ABTest",
    "Analysis",
    "ArmStats",
    "BlueGreen",
    "Canary",
    "Check",
    "Decision",
    "DeliveryFront",
    "LoadTestRun",
    "Outcome",
    "Rollout",
    "RolloutController",
    "RolloutEvent",
    "RolloutRequest",
    "RolloutRouter",
    "RolloutStore",
    "RoutePlan",
    "Shadow",
    "Step",
    "Strategy",
    "Thresholds",
    "analyze",
    "check_steps",
    "decide",
    "load_test_verdict",
    "parse_steps",
    "strategy_for",
]
