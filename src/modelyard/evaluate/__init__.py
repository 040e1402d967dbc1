"""Evaluation and the release gate.

- :mod:`~modelyard.evaluate.metrics`: named metrics (classification and regression) and
  :func:`~modelyard.evaluate.metrics.predict`, which turns any model's answers into
  :class:`~modelyard.evaluate.metrics.Predictions`.
- :mod:`~modelyard.evaluate.slices`: named slices of a test frame.
- :mod:`~modelyard.evaluate.stats`: the paired bootstrap and McNemar's test.
- :mod:`~modelyard.evaluate.policy`: :class:`GatePolicy`, in Python or TOML.
- :mod:`~modelyard.evaluate.gate`: :class:`Gate`, which judges a candidate.
- :mod:`~modelyard.evaluate.verdict`: :class:`GateVerdict` and :class:`RuleResult`.
- :mod:`~modelyard.evaluate.register`: :func:`evaluate_and_register`, which
  :meth:`Workspace.gate_and_register <modelyard.workspace.Workspace.gate_and_register>` runs.

Public API::

    from modelyard.evaluate import Gate, GatePolicy, Slice, evaluate_and_register

    policy = GatePolicy(
        thresholds={"roc_auc": (">=", 0.75)},
        margin={"metric": "roc_auc", "min_delta": 0.0, "significance": 0.05,
                "test": "bootstrap"},                      # or "mcnemar" (accuracy)
        slices=[Slice("north", column="region", equals="north")], slice_tolerance=0.02,
        latency_budget_ms=50, batch_size=64, output_schema={"kind": "probability"},
    )                                                      # or GatePolicy.from_file("gate.toml")
    verdict = Gate(policy).evaluate(model, test_frame, target="label",
                                    production=prod_model, production_version=3)
    verdict.passed ; verdict.failures ; verdict.to_dict() ; verdict.print()

    # what a pipeline's register step calls: gate against name@production, then register
    # with extra["gate"] = verdict.to_dict() under "candidate" (or "production" for the
    # first model), or raise GateFailed (exit 10) and move nothing
    outcome = evaluate_and_register(registry, "credit-risk", model, test_frame,
                                    policy=policy, target="default", save=...)
    outcome.version ; outcome.alias ; outcome.verdict

    paired_bootstrap("roc_auc", y, cand_preds, prod_preds, n_resamples=1000, seed=0)
    mcnemar(y, cand_labels, prod_labels)

Names are resolved on first use, so ``import modelyard.evaluate`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "METRICS": "modelyard.evaluate.metrics",
    "Predictions": "modelyard.evaluate.metrics",
    "compute_metrics": "modelyard.evaluate.metrics",
    "predict": "modelyard.evaluate.metrics",
    "Slice": "modelyard.evaluate.slices",
    "paired_bootstrap": "modelyard.evaluate.stats",
    "mcnemar": "modelyard.evaluate.stats",
    "GatePolicy": "modelyard.evaluate.policy",
    "Margin": "modelyard.evaluate.policy",
    "OutputSchema": "modelyard.evaluate.policy",
    "Gate": "modelyard.evaluate.gate",
    "GateOutcome": "modelyard.evaluate.register",
    "GateVerdict": "modelyard.evaluate.verdict",
    "RuleResult": "modelyard.evaluate.verdict",
    "evaluate_and_register": "modelyard.evaluate.register",
}

__all__ = [
    "METRICS",
    "Gate",
    "GateOutcome",
    "GatePolicy",
    "GateVerdict",
    "Margin",
    "OutputSchema",
    "Predictions",
    "RuleResult",
    "Slice",
    "compute_metrics",
    "evaluate_and_register",
    "mcnemar",
    "paired_bootstrap",
    "predict",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modelyard.evaluate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover
    from modelyard.evaluate.gate import Gate as Gate
    from modelyard.evaluate.metrics import METRICS as METRICS
    from modelyard.evaluate.metrics import Predictions as Predictions
    from modelyard.evaluate.metrics import compute_metrics as compute_metrics
    from modelyard.evaluate.metrics import predict as predict
    from modelyard.evaluate.policy import GatePolicy as GatePolicy
    from modelyard.evaluate.policy import Margin as Margin
    from modelyard.evaluate.policy import OutputSchema as OutputSchema
    from modelyard.evaluate.register import GateOutcome as GateOutcome
    from modelyard.evaluate.register import evaluate_and_register as evaluate_and_register
    from modelyard.evaluate.slices import Slice as Slice
    from modelyard.evaluate.stats import mcnemar as mcnemar
    from modelyard.evaluate.stats import paired_bootstrap as paired_bootstrap
    from modelyard.evaluate.verdict import GateVerdict as GateVerdict
    from modelyard.evaluate.verdict import RuleResult as RuleResult
