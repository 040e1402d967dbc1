"""Violations and the report that collects them (shared by contracts and split checks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelyard.errors import ValidationFailed

__all__ = ["ValidationReport", "Violation"]


@dataclass(frozen=True)
class Violation:
    """One broken rule: which column, which rule, how many rows, and a few examples.

    Attributes:
        column: the column concerned, or None for frame-level rules (row count).
        rule: ``missing_column``, ``unexpected_column``, ``dtype``, ``nullable``, ``min``,
            ``max``, ``categories``, ``unique``, ``row_count``, ``id_overlap``,
            ``label_balance`` or ``time_order``.
        count: how many rows (or values) break the rule.
        message: one readable sentence naming the column, the expectation and what was found.
        examples: up to a few ``{"row": position, "value": value}`` dicts (JSON-friendly).
        expected: what the contract asks for.
        actual: what the data holds.
    """

    column: str | None
    rule: str
    count: int
    message: str
    examples: tuple[dict[str, Any], ...] = ()
    expected: Any = None
    actual: Any = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return {
            "column": self.column,
            "rule": self.rule,
            "count": self.count,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
            "examples": list(self.examples),
        }


@dataclass
class ValidationReport:
    """Every violation found in one frame (or one pair of splits), never just the first.

    Attributes:
        violations: in column order, then rule order.
        rows: rows checked.
        columns: columns checked.
        source: what was checked (a file name, a contract name), for messages.
    """

    violations: list[Violation] = field(default_factory=list)
    rows: int = 0
    columns: int = 0
    source: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing was violated."""
        return not self.violations

    def by_rule(self, rule: str) -> list[Violation]:
        """The violations of one rule."""
        return [v for v in self.violations if v.rule == rule]

    def by_column(self, column: str) -> list[Violation]:
        """The violations of one column."""
        return [v for v in self.violations if v.column == column]

    def summary(self) -> str:
        """One line: passed, or how many violations in how many columns."""
        what = self.source or "data"
        if self.ok:
            return f"{what}: passed ({self.rows} rows, {self.columns} columns)"
        cols = {v.column for v in self.violations}
        return (
            f"{what}: {len(self.violations)} violation(s) in {len(cols)} column(s) "
            f"({self.rows} rows checked)"
        )

    def to_text(self) -> str:
        """A plain multi-line report, one violation per line with its examples."""
        lines = [self.summary()]
        for v in self.violations:
            lines.append(f"  [{v.rule}] {v.message}")
            if v.examples:
                shown = ", ".join(f"row {e.get('row')}: {e.get('value')!r}" for e in v.examples)
                lines.append(f"      e.g. {shown}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``ok``, counts and every violation)."""
        return {
            "ok": self.ok,
            "source": self.source,
            "rows": self.rows,
            "columns": self.columns,
            "violation_count": len(self.violations),
            "violations": [v.to_dict() for v in self.violations],
        }

    def raise_for_errors(self) -> None:
        """Raise :class:`~modelyard.errors.ValidationFailed` (exit 3, HTTP 422) unless ok.

        The message lists every violation; ``details["violations"]`` holds them as dicts.
        """
        if self.ok:
            return
        raise ValidationFailed(
            self.to_text(),
            hint="fix the data, or review and update the contract if the change is intended",
            violations=[v.to_dict() for v in self.violations],
        )
