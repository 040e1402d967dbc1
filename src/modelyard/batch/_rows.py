"""Row-level contract checks on Arrow batches: which rows may be scored, and why the others not.

:meth:`Contract.validate <modelyard.data.contract.Contract.validate>` answers "is this frame
fine?" with counts and examples. Batch scoring needs the per-row answer: a mask of the rows to
score and, for every other row, the first rule it breaks, written beside it in the quarantine
file. Everything here is vectorised over a batch (numpy and pyarrow.compute), so a clean batch
costs a few comparisons per value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy.typing as npt
    import pyarrow as pa

    from modelyard.data.contract import ColumnSpec, Contract

__all__ = ["RowCheck", "check_rows", "feature_columns", "numeric_columns"]

_NUMERIC = {"int", "float"}


class RowCheck:
    """The outcome of :func:`check_rows` for one batch.

    Attributes:
        features: the feature columns, in the model's order, cast to the contract's types
            (numbers as float64 / int64); values of bad rows are unspecified.
        bad: a boolean mask of the rows that break a rule.
        reasons: for each bad row (in order), the first rule it breaks, as a sentence.
    """

    __slots__ = ("bad", "features", "reasons")

    def __init__(
        self, features: dict[str, Any], bad: npt.NDArray[np.bool_], reasons: list[str]
    ) -> None:
        self.features = features
        self.bad = bad
        self.reasons = reasons


def feature_columns(contract: Contract | None, signature: Any) -> list[str]:
    """The columns the model reads: the signature's inputs, else the contract's columns."""
    if isinstance(signature, dict):
        inputs = signature.get("inputs")
        if isinstance(inputs, list) and inputs and all(isinstance(i, dict) for i in inputs):
            names = [str(i.get("name")) for i in inputs if i.get("name") is not None]
            if len(names) == len(inputs) and names != ["input"]:
                return names
    if contract is not None and contract.columns:
        return list(contract.columns)
    raise InvalidInputError(
        "this model version records neither a data contract nor named input columns, so "
        "batch scoring cannot tell which columns are its features",
        hint="register the version with contract= (modelyard.data.infer_contract(train_frame))",
    )


def numeric_columns(features: Sequence[str], contract: Contract | None) -> list[str]:
    """The features the contract declares as numbers (``int`` or ``float``)."""
    if contract is None:
        return []
    return [
        name
        for name in features
        if (spec := contract.columns.get(name)) is not None and spec.dtype in _NUMERIC
    ]


def check_rows(
    batch: pa.RecordBatch | pa.Table,
    features: Sequence[str],
    contract: Contract | None,
    *,
    source: str,
) -> RowCheck:
    """Check every row of ``batch`` against ``contract`` for the ``features`` columns.

    Raises:
        InvalidInputError: a feature column is missing, or holds a type that can never be the
            contract's (a timestamp where a number is expected): the input is wrong, not a row.
    """
    n = batch.num_rows
    names = set(batch.schema.names)
    missing = [c for c in features if c not in names]
    if missing:
        raise InvalidInputError(
            f"{source} has no column {missing[0]!r} (missing: {', '.join(map(repr, missing))}); "
            f"the model reads {', '.join(map(repr, features))}",
            hint="score a file holding every feature column of the model's contract",
            file=source,
            column=missing[0],
        )
    bad = np.zeros(n, dtype=bool)
    reasons: np.ndarray[Any, np.dtype[np.object_]] = np.full(n, None, dtype=object)
    out: dict[str, Any] = {}
    for name in features:
        column = batch.column(name)
        spec = contract.columns.get(name) if contract is not None else None
        values, problems = _column(column, spec, name, source)
        out[name] = values
        for mask, why in problems:
            fresh = mask & ~bad
            if fresh.any():
                reasons[fresh] = why if isinstance(why, str) else why(fresh)
                bad |= fresh
    return RowCheck(out, bad, [str(r) for r in reasons[bad]])


Problem = tuple["npt.NDArray[np.bool_]", Any]


def _column(
    column: Any, spec: ColumnSpec | None, name: str, source: str
) -> tuple[Any, list[Problem]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    problems: list[Problem] = []
    dtype = spec.dtype if spec is not None else None
    if dtype in _NUMERIC or (dtype is None and pa.types.is_integer(column.type)):
        values, unparsable = _numbers(column, dtype or "float", name, source)
        if unparsable is not None and unparsable.any():
            raw = column.to_numpy(zero_copy_only=False)
            problems.append(
                (unparsable, lambda m: [f"{name}: {v!r} is not a number" for v in raw[m]])
            )
        isnull = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), bool)
        if unparsable is not None:
            isnull = isnull & ~unparsable
        if spec is not None and not spec.nullable and isnull.any():
            problems.append((isnull, f"{name} is null; the contract does not allow nulls"))
        if spec is not None:
            problems.extend(_range(values, spec, name))
        return values, problems
    if dtype is None and (pa.types.is_floating(column.type) or pa.types.is_boolean(column.type)):
        values = column.to_numpy(zero_copy_only=False)
        return values, problems
    # strings, booleans, categories, dates: compared as Arrow values
    isnull = np.asarray(pc.is_null(column, nan_is_null=True).to_numpy(zero_copy_only=False))
    if spec is not None and not spec.nullable and isnull.any():
        problems.append((isnull, f"{name} is null; the contract does not allow nulls"))
    if spec is not None and spec.categories is not None:
        allowed = pa.array(list(spec.categories))
        try:
            inside = pc.is_in(column, value_set=allowed.cast(column.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            inside = pc.is_in(column.cast(pa.string()), value_set=allowed.cast(pa.string()))
        outside = ~np.asarray(pc.fill_null(inside, True).to_numpy(zero_copy_only=False))
        if outside.any():
            raw = column.to_numpy(zero_copy_only=False)
            shown = ", ".join(repr(c) for c in list(spec.categories)[:10])
            problems.append(
                (outside, lambda m: [f"{name}: {v!r} is not one of {shown}" for v in raw[m]])
            )
    return column.to_numpy(zero_copy_only=False), problems


def _numbers(
    column: Any, dtype: str, name: str, source: str
) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_] | None]:
    """The column as float64 (NaN for nulls), and the rows whose text is not a number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=np.float64), None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        try:  # numbers read as text (CSV): Arrow's cast, when every value parses
            values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
            return np.asarray(values, dtype=np.float64), None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        import pandas as pd

        text = column.to_pandas()
        parsed = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        unparsable = np.asarray(text.notna().to_numpy() & np.isnan(parsed))
        return parsed, unparsable
    raise InvalidInputError(
        f"{source}: column {name!r} holds {kind} values; the contract expects {dtype} numbers",
        hint="convert the column before scoring, or score the file the model was built for",
        file=source,
        column=name,
    )


def _range(values: npt.NDArray[Any], spec: ColumnSpec, name: str) -> list[Problem]:
    problems: list[Problem] = []
    with np.errstate(invalid="ignore"):
        if spec.min is not None:
            low = values < float(spec.min)
            if low.any():
                problems.append(
                    (
                        low,
                        lambda m: [
                            f"{name}={v:g} is below the minimum {spec.min}" for v in values[m]
                        ],
                    )
                )
        if spec.max is not None:
            high = values > float(spec.max)
            if high.any():
                problems.append(
                    (
                        high,
                        lambda m: [
                            f"{name}={v:g} is above the maximum {spec.max}" for v in values[m]
                        ],
                    )
                )
        if spec.dtype == "int":
            frac = np.isfinite(values) & (values != np.round(values))
            if frac.any():
                problems.append(
                    (frac, lambda m: [f"{name}={v:g} is not a whole number" for v in values[m]])
                )
    return problems
