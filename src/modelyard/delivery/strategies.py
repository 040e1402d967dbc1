"""Strategies: each turns the delivery settings into the steps of a rollout.

A strategy is a small object with one method, :meth:`Strategy.plan`, returning :class:`Step`
objects; the rollout state machine walks them the same way whatever the strategy. A step says how
the front routes traffic (its ``mode`` and the candidate's ``weight``), how long it lasts at least
(``pause_s``), whether a person must approve leaving it (``approval``) and whether an analysis
must pass first (``analysis``). The last step's end is the promotion.

- :class:`Canary`: ``split`` steps at rising weights (5, 25, 50 %), promoted after the last.
- :class:`BlueGreen`: a ``preview`` step (the candidate warms up beside stable with no user
  traffic; the preview route ``/v2/models/NAME/versions/V/infer`` answers for it; pre-promotion
  analysis), then one switch: a ``switched`` step with all traffic on the candidate and the old
  pool kept (post-promotion analysis switches back on failure), then the old pool is stopped
  after ``scale_down_delay_s``.
- :class:`ABTest`: one ``sticky`` step: each key (header, cookie or request field) keeps its arm
  by consistent hashing; the analysis compares the arms' quality from feedback.
- :class:`Shadow`: one ``mirror`` step: a share of requests is copied to the candidate off the
  user's path; the analysis compares errors and latency on the same inputs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Protocol

from modelyard.errors import InvalidInputError

__all__ = [
    "STRATEGIES",
    "ABTest",
    "BlueGreen",
    "Canary",
    "Mode",
    "Shadow",
    "Step",
    "Strategy",
    "check_steps",
    "parse_steps",
    "strategy_for",
]

Mode = Literal["split", "sticky", "mirror", "preview", "switched"]


@dataclass(frozen=True)
class Step:
    """One step of a rollout.

    Attributes:
        weight: the candidate's share of user traffic in percent (for ``mirror``: the share of
            requests copied to it).
        mode: how the front routes: ``split`` (random per request), ``sticky`` (per key),
            ``mirror`` (stable answers, the candidate gets a copy), ``preview`` (stable answers
            all; the candidate only on its own route), ``switched`` (the candidate answers all).
        pause_s: the least time spent in the step before it may end.
        approval: the step ends only on ``modelyard rollout promote``.
        analysis: an analysis must pass before the step ends.
    """

    weight: float
    mode: Mode
    pause_s: float
    approval: bool = False
    analysis: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Strategy(Protocol):
    """Plans the steps of a rollout from the delivery settings."""

    name: ClassVar[str]

    def plan(self, settings: Any) -> list[Step]:
        """The steps, in order, for ``settings`` (a ``DeliverySettings``)."""
        ...


class Canary:
    """Rising weights (``settings.steps`` without the final 100), an analysis at each."""

    name: ClassVar[str] = "canary"

    def plan(self, settings: Any) -> list[Step]:
        weights = [w for w in settings.steps if w < 100] or [settings.steps[0]]
        return [Step(w, "split", settings.interval_s, settings.manual) for w in weights]


class BlueGreen:
    """Preview with pre-promotion analysis, one switch, post-promotion analysis."""

    name: ClassVar[str] = "blue-green"

    def plan(self, settings: Any) -> list[Step]:
        return [
            Step(0.0, "preview", settings.interval_s, settings.manual),
            Step(100.0, "switched", max(settings.interval_s, settings.scale_down_delay_s)),
        ]


class ABTest:
    """Sticky arms at the first step's weight; quality per arm decides."""

    name: ClassVar[str] = "ab"

    def plan(self, settings: Any) -> list[Step]:
        weight = settings.steps[0] if settings.steps[0] < 100 else 50.0
        return [Step(weight, "sticky", settings.interval_s, settings.manual)]


class Shadow:
    """A mirrored share of requests; the user always gets stable's answer."""

    name: ClassVar[str] = "shadow"

    def plan(self, settings: Any) -> list[Step]:
        share = 100.0 * settings.shadow_share
        return [Step(share, "mirror", settings.interval_s, settings.manual)]


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (Canary(), BlueGreen(), ABTest(), Shadow())}


def strategy_for(name: str) -> Strategy:
    """The strategy called ``name``.

    Raises:
        InvalidInputError: no such strategy; the message lists the known ones.
    """
    found = STRATEGIES.get(name)
    if found is None:
        raise InvalidInputError(
            f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}",
            hint="modelyard deploy NAME --candidate V --strategy canary",
            field="strategy",
        )
    return found


def parse_steps(text: str) -> list[float]:
    """``"5,25,50,100"`` -> ``[5.0, 25.0, 50.0, 100.0]``, checked by :func:`check_steps`.

    Raises:
        InvalidInputError: not a comma-separated list of numbers, or not a valid step list.
    """
    try:
        weights = [float(part.strip().rstrip("%")) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise InvalidInputError(
            f"steps {text!r} is not a comma-separated list of percentages",
            hint="e.g. --steps 5,25,50,100",
            field="steps",
        ) from exc
    return check_steps(weights, source="--steps")


def check_steps(weights: Sequence[float], *, source: str = "steps") -> list[float]:
    """Check that ``weights`` rise strictly within (0, 100] and end at 100.

    Raises:
        InvalidInputError: naming ``source`` (``--steps`` or where the setting came from).
    """
    weights = [float(w) for w in weights]
    problem = None
    if not weights:
        problem = "is empty"
    elif any(not 0 < w <= 100 for w in weights):
        problem = "has a weight outside (0, 100]"
    elif any(b <= a for a, b in itertools.pairwise(weights)):
        problem = "does not rise strictly"
    elif weights[-1] != 100:
        problem = "does not end at 100"
    if problem is not None:
        raise InvalidInputError(
            f"step list {weights} (from {source}) {problem}",
            hint="give rising percentages ending at 100, e.g. 5,25,50,100",
            field="steps",
            value=weights,
        )
    return weights
