"""Validation of one frame against a contract: column-wise, every violation, examples on failure.

Each rule runs as a vectorised pass over one column (numpy, or the frame library's hash kernels
for strings); example rows are looked up only for the rules that fail.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.data._frames import RANGED, ColumnView, from_epoch_us, to_epoch_us
from modelyard.data._views import view
from modelyard.data.report import ValidationReport, Violation

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["check_frame"]


class ColumnSpec(Protocol):
    """What the checks read of a :class:`modelyard.data.contract.ColumnSpec` (the contract
    module calls these checks, so they take its parts by shape, not by import)."""

    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def nullable(self) -> bool: ...
    @property
    def min(self) -> Any: ...
    @property
    def max(self) -> Any: ...
    @property
    def categories(self) -> tuple[Any, ...] | None: ...
    @property
    def unique(self) -> bool: ...


class Contract(Protocol):
    """What the checks read of a :class:`modelyard.data.contract.Contract`."""

    @property
    def columns(self) -> Mapping[str, ColumnSpec]: ...
    @property
    def min_rows(self) -> int | None: ...
    @property
    def max_rows(self) -> int | None: ...


def _examples(
    col: ColumnView, bad: npt.NDArray[np.bool_], k: int
) -> tuple[int, tuple[dict[str, Any], ...]]:
    import numpy as np

    count = int(np.count_nonzero(bad))
    if not count or k <= 0:
        return count, ()
    rows = np.flatnonzero(bad)[:k].tolist()
    values = col.values_at(rows)
    return count, tuple({"row": r, "value": v} for r, v in zip(rows, values, strict=True))


_DAY_US = 86_400_000_000
_NUMERIC = ("int", "float")


def _dtype_ok(expected: str, col: ColumnView) -> bool:
    actual = col.kind
    if expected in (actual, "object"):
        return True
    if expected == "float" and actual == "int":
        return True
    if expected == "date" and actual == "datetime":
        # dates read from CSV (or written by pandas) arrive as datetimes at midnight
        return not _time_of_day(col).any()
    # pandas turns an int column with missing values into float64
    return expected == "int" and actual == "float" and col.all_integral()


def _time_of_day(col: ColumnView) -> npt.NDArray[np.bool_]:
    """True where a datetime is not at midnight: naive, or in UTC for a zone-aware column (a
    local midnight elsewhere is another day's evening in UTC, so not a date)."""
    values, mask = col.numbers()
    off: npt.NDArray[np.bool_] = values % _DAY_US != 0
    if mask is not None:
        off &= ~mask
    return off


def _bound_number(spec_dtype: str, bound: Any) -> Any:
    if spec_dtype == "datetime":
        return to_epoch_us(bound)
    if spec_dtype == "date":
        return to_epoch_us(_dt.datetime(bound.year, bound.month, bound.day))
    return bound


def check_frame(
    contract: Contract, frame: Any, *, allow_extra: bool, max_examples: int, source: str | None
) -> ValidationReport:
    """Every violation of ``contract`` in ``frame``: rows, then columns in contract order."""
    fv = view(frame)
    report = ValidationReport(rows=fv.n_rows, columns=len(fv.columns), source=source)
    out = report.violations
    _check_rows(contract, fv.n_rows, out)
    present = set(fv.columns)
    for spec in contract.columns.values():
        if spec.name not in present:
            out.append(
                Violation(
                    spec.name,
                    "missing_column",
                    fv.n_rows,
                    f"column {spec.name!r} ({spec.dtype}) is missing",
                    expected=spec.dtype,
                    actual=None,
                )
            )
            continue
        col = fv.column(spec.name)
        type_ok = _dtype_ok(spec.dtype, col)
        if not type_ok:
            _report_dtype(spec, col, out, max_examples)
        if not spec.nullable:
            _check_nulls(spec, col, out, max_examples)
        if (
            (type_ok or (spec.dtype in _NUMERIC and col.kind in _NUMERIC))
            and spec.dtype in RANGED
            and (spec.min is not None or spec.max is not None)
        ):
            # a number of the wrong dtype (2.5 where an int belongs) is still held to the
            # range, so a dtype violation does not hide an 11.0 above max = 10
            _check_range(spec, col, out, max_examples)
        if type_ok and spec.categories is not None:
            _check_categories(spec, col, out, max_examples)
        if spec.unique:
            _check_unique(spec, col, out, max_examples)
    if not allow_extra:
        for name in fv.columns:
            if name not in contract.columns:
                out.append(
                    Violation(
                        name,
                        "unexpected_column",
                        fv.n_rows,
                        f"column {name!r} is not in the contract "
                        "(set allow_extra_columns = true to accept it)",
                        expected=None,
                        actual=fv.column(name).kind,
                    )
                )
    return report


def _check_rows(contract: Contract, n_rows: int, out: list[Violation]) -> None:
    if contract.min_rows is not None and n_rows < contract.min_rows:
        out.append(
            Violation(
                None,
                "row_count",
                n_rows,
                f"{n_rows} rows, fewer than min_rows = {contract.min_rows}",
                expected={"min_rows": contract.min_rows},
                actual=n_rows,
            )
        )
    if contract.max_rows is not None and n_rows > contract.max_rows:
        out.append(
            Violation(
                None,
                "row_count",
                n_rows,
                f"{n_rows} rows, more than max_rows = {contract.max_rows}",
                expected={"max_rows": contract.max_rows},
                actual=n_rows,
            )
        )


def _report_dtype(spec: ColumnSpec, col: ColumnView, out: list[Violation], k: int) -> None:
    """A wrong dtype; for text where numbers or datetimes belong, count what does not parse."""
    import numpy as np

    bad = col.parse_failures(spec.dtype)
    if spec.dtype == "date" and col.kind == "datetime":
        bad = _time_of_day(col)
        where = "in UTC" if col.aware else "(dates are datetimes at midnight)"
        detail = f"; {int(np.count_nonzero(bad))} value(s) have a time of day {where}"
    elif bad is None:
        bad = ~col.null_mask()
        detail = ""
    elif bad.any():
        detail = f"; {int(np.count_nonzero(bad))} value(s) do not parse as {spec.dtype}"
    else:
        bad = ~col.null_mask()
        detail = f"; every value parses as {spec.dtype}: convert the column"
    count, ex = _examples(col, bad, k)
    out.append(
        Violation(
            spec.name,
            "dtype",
            count,
            f"column {spec.name!r}: expected dtype {spec.dtype}, got {col.kind} "
            f"({col.native}){detail}",
            ex,
            expected=spec.dtype,
            actual=col.kind,
        )
    )


def _check_nulls(spec: ColumnSpec, col: ColumnView, out: list[Violation], k: int) -> None:
    mask = col.null_mask()
    if not mask.any():
        return
    count, ex = _examples(col, mask, k)
    out.append(
        Violation(
            spec.name,
            "nullable",
            count,
            f"column {spec.name!r}: {count} missing value(s) but nullable = false",
            ex,
            expected="no missing values",
            actual=count,
        )
    )


def _check_categories(spec: ColumnSpec, col: ColumnView, out: list[Violation], k: int) -> None:
    import numpy as np

    allowed: tuple[Any, ...] = spec.categories or ()
    if col.all_in(allowed):
        return
    bad = ~col.isin(allowed)
    count, ex = _examples(col, bad, k)
    rows = np.flatnonzero(bad)[:1000].tolist()
    unknown = sorted({str(v) for v in col.values_at(rows)})[:10]
    out.append(
        Violation(
            spec.name,
            "categories",
            count,
            f"column {spec.name!r}: {count} value(s) outside the allowed categories "
            f"(unknown: {', '.join(unknown)})",
            ex,
            expected=list(allowed),
            actual=unknown,
        )
    )


def _check_unique(spec: ColumnSpec, col: ColumnView, out: list[Violation], k: int) -> None:
    if not col.has_duplicates():
        return
    count, ex = _examples(col, col.duplicated(), k)
    out.append(
        Violation(
            spec.name,
            "unique",
            count,
            f"column {spec.name!r}: {count} duplicate value(s) but unique = true",
            ex,
            expected="unique values",
            actual=count,
        )
    )


def _check_range(spec: ColumnSpec, col: ColumnView, out: list[Violation], k: int) -> None:
    import numpy as np

    values, mask = col.numbers()
    is_float = values.dtype.kind == "f"
    reduce_on = values if (mask is None or is_float) else values[~mask]
    if reduce_on.size == 0:
        return
    lo_seen = np.fmin.reduce(reduce_on) if is_float else reduce_on.min()
    hi_seen = np.fmax.reduce(reduce_on) if is_float else reduce_on.max()
    for rule, bound in (("min", spec.min), ("max", spec.max)):
        if bound is None:
            continue
        b = _bound_number(spec.dtype, bound)
        if not (lo_seen < b if rule == "min" else hi_seen > b):
            continue
        bad = values < b if rule == "min" else values > b
        if mask is not None and not is_float:
            bad &= ~mask
        count, ex = _examples(col, bad, k)
        word = "below" if rule == "min" else "above"
        out.append(
            Violation(
                spec.name,
                rule,
                count,
                f"column {spec.name!r}: {count} value(s) {word} {rule} = {bound}",
                ex,
                expected=_plain(bound),
                actual=_plain(
                    _seen(spec.dtype, lo_seen if rule == "min" else hi_seen),
                ),
            )
        )


def _seen(dtype: str, v: Any) -> Any:
    if dtype == "datetime":
        return from_epoch_us(int(v))
    if dtype == "date":
        return from_epoch_us(int(v)).date()
    return v.item() if hasattr(v, "item") else v


def _plain(v: Any) -> Any:
    if isinstance(v, (_dt.date, _dt.datetime)):
        return v.isoformat()
    return v
