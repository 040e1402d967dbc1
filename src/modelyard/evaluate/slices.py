"""Named slices of a test frame: ``column == value``, a value range, or any callable.

A slice turns a test frame into a boolean row mask. Policies declare slices in Python::

    Slice("region=north", column="region", equals="north")
    Slice("young", column="age", between=(18, 30))          # 18 <= age < 30
    Slice("big loans", where=lambda df: df["amount"] > 20_000)

or in TOML (``[[slices]]`` tables with ``name``, ``column`` and ``equals`` / ``in`` / ``range``),
and :func:`parse_slices` also accepts the short mapping form ``{"name": ("col", "==", v)}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelyard.errors import InvalidInputError

__all__ = ["Slice", "parse_slices"]


@dataclass(frozen=True)
class Slice:
    """A named subset of the test rows.

    Exactly one of ``equals``, ``isin``, ``between`` or ``where`` is set.

    Attributes:
        name: shown in reports and verdicts.
        column: the column the condition reads (not needed for ``where``).
        equals: rows where ``column == equals``.
        isin: rows where ``column`` is one of these values.
        between: ``(low, high)``: rows where ``low <= column < high``; None for an open end.
        where: ``where(frame) -> boolean mask`` for anything else.
    """

    name: str
    column: str | None = None
    equals: Any = None
    isin: tuple[Any, ...] | None = None
    between: tuple[float | None, float | None] | None = None
    where: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        given = [
            k
            for k, v in (
                ("equals", self.equals),
                ("isin", self.isin),
                ("between", self.between),
                ("where", self.where),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise InvalidInputError(
                f"slice {self.name!r} must set exactly one of equals, isin, between or where; "
                f"got {given or 'none'}",
                hint='e.g. Slice("north", column="region", equals="north")',
                slice=self.name,
            )
        if self.where is None and not self.column:
            raise InvalidInputError(
                f"slice {self.name!r} needs a column for its condition",
                slice=self.name,
            )
        if self.between is not None and len(self.between) != 2:
            raise InvalidInputError(
                f"slice {self.name!r}: between must be (low, high), got {self.between!r}",
                slice=self.name,
            )

    def mask(self, frame: Any) -> Any:
        """The boolean numpy mask of the rows of ``frame`` (pandas or polars) in this slice.

        Raises:
            InvalidInputError: the column is missing, or ``where`` did not return one boolean
                per row.
        """
        import numpy as np

        n = len(frame)
        if self.where is not None:
            out = self.where(frame)
            if hasattr(out, "to_numpy"):
                out = out.to_numpy()
            mask = np.asarray(out)
            if mask.shape != (n,) or mask.dtype != bool:
                raise InvalidInputError(
                    f"slice {self.name!r}: where() must return {n} booleans, "
                    f"got shape {mask.shape} of {mask.dtype}",
                    slice=self.name,
                )
            return mask
        column = self.column or ""
        columns = list(frame.columns)
        if column not in columns:
            raise InvalidInputError(
                f"slice {self.name!r} reads column {self.column!r}, which the test frame lacks",
                hint=f"columns are: {', '.join(map(str, columns))}",
                slice=self.name,
                column=self.column,
            )
        values = frame[column]
        col = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
        if self.equals is not None:
            return np.asarray(col == self.equals, dtype=bool)
        if self.isin is not None:
            return np.isin(col, np.asarray(list(self.isin), dtype=object).astype(col.dtype))
        low, high = self.between or (None, None)
        mask = np.ones(n, dtype=bool)
        numeric = col.astype(float)
        if low is not None:
            mask &= numeric >= low
        if high is not None:
            mask &= numeric < high
        return mask

    def describe(self) -> str:
        """A short text form of the condition."""
        if self.where is not None:
            return f"{getattr(self.where, '__name__', 'where')}(frame)"
        if self.equals is not None:
            return f"{self.column} == {self.equals!r}"
        if self.isin is not None:
            return f"{self.column} in {list(self.isin)!r}"
        low, high = self.between or (None, None)
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        return f"{lo} <= {self.column} < {hi}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (a callable is recorded by its description only)."""
        body: dict[str, Any] = {"name": self.name, "condition": self.describe()}
        if self.column is not None:
            body["column"] = self.column
        if self.equals is not None:
            body["equals"] = self.equals
        if self.isin is not None:
            body["in"] = list(self.isin)
        if self.between is not None:
            body["range"] = [_none_if_inf(v) for v in self.between]
        return body


def _none_if_inf(v: float | None) -> float | None:
    if v is None or (isinstance(v, float) and math.isinf(v)):
        return None
    return v


_OPS = {"==": "equals", "in": "isin", "between": "between", "range": "between"}


def _from_mapping(name: str, spec: Mapping[str, Any]) -> Slice:
    unknown = set(spec) - {"name", "column", "equals", "in", "isin", "range", "between"}
    if unknown:
        raise InvalidInputError(
            f"slice {name!r} has unknown keys {sorted(unknown)}",
            hint="a slice table takes name, column and one of equals, in, range",
            slice=name,
        )
    rng = spec.get("range", spec.get("between"))
    isin = spec.get("in", spec.get("isin"))
    return Slice(
        name=str(spec.get("name", name)),
        column=spec.get("column"),
        equals=spec.get("equals"),
        isin=tuple(isin) if isin is not None else None,
        between=tuple(rng) if rng is not None else None,
    )


def parse_slices(spec: Iterable[Any] | Mapping[str, Any] | None) -> tuple[Slice, ...]:
    """Normalise the accepted slice forms into :class:`Slice` objects.

    Accepted: a sequence of :class:`Slice` or of mappings (TOML ``[[slices]]`` tables), or a
    mapping ``name -> Slice | callable | (column, op, value) | {column: ..., equals: ...}`` with
    ``op`` one of ``==``, ``in``, ``between``.

    Raises:
        InvalidInputError: a form that is none of these, naming the slice.
    """
    if spec is None:
        return ()
    out: list[Slice] = []
    if isinstance(spec, Mapping):
        for name, item in spec.items():
            if isinstance(item, Slice):
                out.append(item)
            elif callable(item):
                out.append(Slice(str(name), where=item))
            elif isinstance(item, Mapping):
                out.append(_from_mapping(str(name), item))
            elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 3:
                column, op, value = item
                if op not in _OPS:
                    raise InvalidInputError(
                        f"slice {name!r}: unknown operator {op!r}",
                        hint="use '==', 'in' or 'between'",
                        slice=str(name),
                    )
                field = _OPS[op]
                if field != "equals":
                    value = tuple(value)
                out.append(Slice(str(name), column=str(column), **{field: value}))
            else:
                raise InvalidInputError(
                    f"slice {name!r}: cannot read {item!r}",
                    hint="give a Slice, a callable, or (column, '==', value)",
                    slice=str(name),
                )
    else:
        for i, item in enumerate(spec):
            if isinstance(item, Slice):
                out.append(item)
            elif isinstance(item, Mapping):
                out.append(_from_mapping(str(item.get("name", f"slice{i}")), item))
            else:
                raise InvalidInputError(
                    f"slice #{i}: cannot read {item!r}",
                    hint="give Slice objects or tables with name, column, equals/in/range",
                )
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInputError(f"slice names must be unique; repeated: {dupes}")
    return tuple(out)
