"""The monitoring policy: which signals count, and when the loop retrains.

Built from ``[tool.modelyard.monitor]`` (:meth:`MonitorPolicy.from_settings`) or in Python.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError
from modelyard.monitoring._drift import DriftThresholds

if TYPE_CHECKING:
    from modelyard.config import MonitorSettings
    from modelyard.monitoring._results import StoredResult, Trigger

__all__ = ["SIGNALS", "MonitorPolicy", "parse_duration_s"]

SIGNALS = ("data_drift", "prediction_drift", "data_quality", "live_quality")
STRATEGIES = ("canary", "blue-green", "ab", "shadow")  # modelyard.delivery's
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration_s(text: str) -> float:
    """``30m``, ``1h``, ``1.5h``, ``7d`` -> seconds.

    Raises:
        InvalidInputError: naming the value and the accepted form.
    """
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise InvalidInputError(
            f"window {text!r} is not a duration",
            hint="write a positive number and a unit: 30m, 1h, 6h, 1d",
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class MonitorPolicy:
    """When a window crosses the policy, and when crossing starts a retraining.

    Attributes:
        signals: which of ``data_drift``, ``prediction_drift``, ``data_quality``,
            ``live_quality`` count.
        thresholds: drift thresholds (also holds ``min_samples``).
        window_s: window length in seconds.
        max_violation_rate: a column's contract-violation rate above this crosses
            ``data_quality``.
        quality_min: metric -> lowest acceptable value (``accuracy``, ``auc``...).
        quality_max: metric -> highest acceptable value (``rmse``, ``mae``, ``brier``).
        task: ``auto``, ``classification`` or ``regression``.
        consecutive: windows in a row that must cross before the loop retrains.
        cooldown_s: no new retraining within this many seconds of the last one.
        feature_importance: feature -> weight in the dataset verdict (default: the version's
            ``extra["feature_importance"]``, else equal).
        deploy_strategy: after a retraining registered a version, roll it out with this
            delivery strategy (``canary``, ``blue-green``, ``ab``, ``shadow``); None: do not.
    """

    signals: tuple[str, ...] = ("data_drift", "prediction_drift", "data_quality")
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    window_s: float = 3600.0
    max_violation_rate: float = 0.01
    quality_min: Mapping[str, float] = field(default_factory=dict)
    quality_max: Mapping[str, float] = field(default_factory=dict)
    task: str = "auto"
    consecutive: int = 1
    cooldown_s: float = 6 * 3600.0
    feature_importance: Mapping[str, float] = field(default_factory=dict)
    deploy_strategy: str | None = None

    def __post_init__(self) -> None:
        unknown = [s for s in self.signals if s not in SIGNALS]
        if unknown:
            raise InvalidInputError(
                f"unknown monitoring signals {unknown}", hint=f"choose from {list(SIGNALS)}"
            )
        if self.deploy_strategy is not None and self.deploy_strategy not in STRATEGIES:
            raise InvalidInputError(
                f"unknown deploy_strategy {self.deploy_strategy!r}",
                hint=f"choose from {list(STRATEGIES)}, or leave it out to only retrain",
            )
        if self.consecutive < 1:
            raise InvalidInputError(f"consecutive must be at least 1, got {self.consecutive}")

    @property
    def min_samples(self) -> int:
        """Fewest rows in a window for a verdict."""
        return self.thresholds.min_samples

    @classmethod
    def from_settings(cls, s: MonitorSettings, **overrides: Any) -> MonitorPolicy:
        """The policy of ``[tool.modelyard.monitor]``; keyword arguments override fields."""
        base: dict[str, Any] = {
            "signals": tuple(s.signals),
            "thresholds": DriftThresholds(
                alpha=s.alpha,
                psi=s.psi,
                jensen_shannon=s.jensen_shannon,
                wasserstein=s.wasserstein,
                min_samples=s.min_samples,
                drift_share=s.drift_share,
            ),
            "window_s": parse_duration_s(s.window),
            "max_violation_rate": s.max_violation_rate,
            "quality_min": dict(s.quality_min),
            "quality_max": dict(s.quality_max),
            "task": s.task,
            "consecutive": s.consecutive,
            "cooldown_s": s.cooldown_s,
            "feature_importance": dict(s.feature_importance),
            "deploy_strategy": s.deploy_strategy,
        }
        base.update(overrides)
        return cls(**base)

    def should_retrain(
        self,
        history: Sequence[StoredResult],
        triggers: Sequence[Trigger],
        *,
        now: float,
    ) -> tuple[bool, str]:
        """Whether the loop starts a retraining now, and why (or why not).

        Args:
            history: the version's stored windows, oldest first.
            triggers: the model's triggers, oldest first.
            now: the current time (UNIX seconds).
        """
        if not history or history[-1].verdict != "crossed":
            return False, "the latest window is within the policy"
        last = triggers[-1] if triggers else None
        if last is not None and now - last.at < self.cooldown_s:
            left = self.cooldown_s - (now - last.at)
            return False, f"cooling down after retraining {last.id}: {left:.0f} s left"
        streak = 0
        for result in reversed(history):
            # windows that already led to a retraining do not count again
            if result.verdict != "crossed" or (
                last is not None and result.window_end <= last.window_end
            ):
                break
            streak += 1
        if streak < self.consecutive:
            return False, f"{streak} of {self.consecutive} windows in a row crossed the policy"
        return True, f"{streak} window(s) in a row crossed the policy"
