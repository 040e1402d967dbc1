"""The gate's verdict: each rule's result with its evidence, JSON-able and readable.

A :class:`GateVerdict` is stored with the version it admitted (``extra["gate"]``) or kept as
a named file when it refused a candidate; it prints as text or as a rich table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["GateVerdict", "RuleResult", "Status"]

Status = Literal["pass", "fail", "skip"]


def _clean(value: Any) -> Any:
    """Make ``value`` JSON-able: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return _clean(value.item())
        except (TypeError, ValueError):
            return str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule of the policy.

    Attributes:
        rule: ``threshold``, ``margin``, ``slice``, ``output_schema``, ``latency`` or
            ``throughput``.
        name: what was checked, e.g. ``roc_auc >= 0.75`` or ``slice region=north``.
        status: ``pass``, ``fail`` or ``skip`` (not applicable, with the reason in ``message``).
        message: one readable line: the numbers and why it passed, failed or was skipped.
        evidence: the numbers behind the message (JSON-able).
    """

    rule: str
    name: str
    status: Status
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "rule": self.rule,
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "evidence": _clean(self.evidence),
        }


@dataclass(frozen=True)
class GateVerdict:
    """The gate's decision and its evidence.

    Attributes:
        passed: True when no rule failed.
        rules: every rule's result, in policy order.
        metrics: the candidate's metrics on the whole test set.
        production_version: the version the candidate was compared with, if any.
        production_metrics: that version's metrics on the same test set.
        slices: per slice: name, condition, rows, candidate and production metric.
        n_rows: rows in the test set.
        policy: the policy, as a dict.
        model: the model name, when known.
        evaluated_at: UNIX time of the evaluation.
        explanation: the candidate's feature attributions
            (:meth:`modelyard.evaluate.explain.Explanation.to_dict`), when computed.
    """

    passed: bool
    rules: tuple[RuleResult, ...]
    metrics: dict[str, float]
    production_version: int | None
    production_metrics: dict[str, float] | None
    slices: tuple[dict[str, Any], ...]
    n_rows: int
    policy: dict[str, Any]
    model: str | None = None
    evaluated_at: float = 0.0
    explanation: dict[str, Any] | None = None

    @property
    def failures(self) -> list[RuleResult]:
        """The rules that failed."""
        return [r for r in self.rules if r.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, as stored in a version's ``extra["gate"]``."""
        return {
            "passed": self.passed,
            "model": self.model,
            "evaluated_at": self.evaluated_at,
            "n_rows": self.n_rows,
            "metrics": _clean(self.metrics),
            "production_version": self.production_version,
            "production_metrics": _clean(self.production_metrics),
            "slices": [_clean(s) for s in self.slices],
            "rules": [r.to_dict() for r in self.rules],
            "failures": [r.name for r in self.failures],
            "policy": _clean(self.policy),
            **({"explanation": _clean(self.explanation)} if self.explanation else {}),
        }

    def to_json(self) -> str:
        """The verdict as a JSON document."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateVerdict:
        """Rebuild a verdict from :meth:`to_dict` output (NaN metrics come back as None)."""
        return cls(
            passed=bool(data["passed"]),
            rules=tuple(
                RuleResult(r["rule"], r["name"], r["status"], r["message"], r.get("evidence", {}))
                for r in data.get("rules", [])
            ),
            metrics=dict(data.get("metrics") or {}),
            production_version=data.get("production_version"),
            production_metrics=data.get("production_metrics"),
            slices=tuple(data.get("slices") or ()),
            n_rows=int(data.get("n_rows", 0)),
            policy=dict(data.get("policy") or {}),
            model=data.get("model"),
            evaluated_at=float(data.get("evaluated_at", 0.0)),
            explanation=data.get("explanation"),
        )

    def summary(self) -> str:
        """One line: PASSED, or FAILED and which rules."""
        if self.passed:
            judged = sum(1 for r in self.rules if r.status == "pass")
            return f"gate PASSED ({judged} rules passed, {len(self.rules) - judged} skipped)"
        return "gate FAILED: " + "; ".join(r.message for r in self.failures)

    def render_text(self) -> str:
        """Readable multi-line text: the summary, then one line per rule."""
        mark = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}
        lines = [self.summary()]
        if self.production_version is not None:
            lines.append(f"  compared with production v{self.production_version}")
        lines.extend(f"  [{mark[r.status]}] {r.name}: {r.message}" for r in self.rules)
        if self.explanation:
            from modelyard.evaluate.explain import Explanation

            lines.append(Explanation.from_dict(self.explanation).render_text())
        return "\n".join(lines)

    def print(self, console: Any = None) -> None:
        """Print the verdict: a rich table on a terminal, else the plain text."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        if not console.is_terminal:
            console.print(self.render_text(), markup=False, highlight=False)
            return
        table = Table(title=self.summary(), title_justify="left")
        table.add_column("rule")
        table.add_column("check")
        table.add_column("status")
        table.add_column("why")
        style = {"pass": "green", "fail": "bold red", "skip": "dim"}
        for r in self.rules:
            table.add_row(r.rule, r.name, f"[{style[r.status]}]{r.status}[/]", r.message)
        console.print(table)
        if self.explanation:
            from modelyard.evaluate.explain import Explanation

            text = Explanation.from_dict(self.explanation).render_text()
            console.print(text, markup=False, highlight=False)
