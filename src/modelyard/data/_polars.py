"""The polars adapter of :mod:`modelyard.data._frames`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelyard.data._frames import ColumnView, FrameView, jsonable, sort_key

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    BoolArray = npt.NDArray[np.bool_]
    IntArray = npt.NDArray[np.int64]


def _polars_kind(dtype: Any) -> str:
    import polars as pl

    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return "string"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.Duration):
        return "duration"
    return "object"


class PolarsColumn(ColumnView):
    def __init__(self, name: str, series: Any) -> None:
        import polars as pl

        self.name = name
        self.native = str(series.dtype)
        self.kind = _polars_kind(series.dtype)
        self.aware = getattr(series.dtype, "time_zone", None) is not None
        if isinstance(series.dtype, (pl.Categorical, pl.Enum)):
            series = series.cast(pl.String)
        self.series = series
        self.n = len(series)
        self._mask: BoolArray | None = None
        self._dup: BoolArray | None = None
        self._isin: tuple[tuple[Any, ...], BoolArray] | None = None

    def _null_expr_mask(self) -> Any:
        s = self.series
        mask = s.is_null()
        if self.kind == "float" and not s.dtype.is_decimal():
            mask = mask | s.is_nan().fill_null(True)
        return mask

    def null_mask(self) -> BoolArray:
        import numpy as np

        if self._mask is None:
            if self.kind == "float" and self.series.null_count() == 0:
                self._mask = np.isnan(self.series.to_numpy())
            elif self.series.null_count() == 0 and self.kind != "float":
                self._mask = np.zeros(self.n, dtype=bool)
            else:
                self._mask = self._null_expr_mask().to_numpy()
        return self._mask

    def numbers(self) -> tuple[npt.NDArray[Any], BoolArray | None]:
        import numpy as np
        import polars as pl

        s = self.series
        mask = self.null_mask()
        has_nulls = bool(mask.any())
        if self.kind == "datetime":
            if s.dtype.time_zone is not None:  # compare in UTC, as pandas does
                s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            s = s.dt.cast_time_unit("us").to_physical()
        elif self.kind == "date":
            s = s.cast(pl.Datetime("us")).to_physical()
        elif self.kind == "bool":
            s = s.cast(pl.Int8)
        elif s.dtype.is_decimal():
            s = s.cast(pl.Float64)
        if s.null_count() and not s.dtype.is_float():
            s = s.fill_null(0)
        arr = s.to_numpy()  # float nulls become NaN
        if arr.dtype.kind == "f" and arr.dtype != np.float64:
            arr = arr.astype(np.float64)
        return arr, (mask if has_nulls else None)

    def isin(self, values: Sequence[Any]) -> BoolArray:
        import numpy as np
        import polars as pl

        key = tuple(values) if isinstance(values, tuple) else None
        if key is not None and self._isin is not None and self._isin[0] == key:
            return self._isin[1]  # all_in() just computed it
        if isinstance(values, pl.Series):
            other = values
        else:
            wanted = values if hasattr(values, "dtype") else list(values)
            try:
                other = pl.Series(wanted, dtype=self.series.dtype)
            except (TypeError, ValueError, pl.exceptions.PolarsError):
                other = pl.Series(wanted)
        found = self.series.is_in(other.implode()).fill_null(True).to_numpy()
        result: BoolArray = np.logical_or(found, self.null_mask())
        if key is not None:
            self._isin = (key, result)
        return result

    def duplicated(self) -> BoolArray:
        import numpy as np

        if self._dup is None:
            if self.kind in ("int", "float", "bool", "datetime", "date"):
                # pandas' hash table is ~8x faster than polars' is_first_distinct on numbers
                import pandas as pd

                values, mask = self.numbers()
                if mask is None:
                    dup = pd.Series(values, copy=False).duplicated().to_numpy(dtype=bool)
                else:  # missing slots hold a filler value: hash only the present ones
                    dup = np.zeros(self.n, dtype=bool)
                    present = pd.Series(values[~mask], copy=False)
                    dup[~mask] = present.duplicated().to_numpy(dtype=bool)
            else:
                dup = (~self.series.is_first_distinct()).to_numpy()
            self._dup = np.logical_and(dup, ~self.null_mask())
        return self._dup

    def has_duplicates(self) -> bool:
        if self._strictly_increasing():
            return False
        if self.kind == "string" and self.null_count() == 0:
            return bool(self.series.n_unique() < self.n)
        # numbers: the hash pass that finds duplicates also marks them (kept for examples)
        return super().has_duplicates()

    def unique_values(self) -> Any:
        return self.series.drop_nulls().unique()

    def datetimes(self) -> tuple[IntArray, BoolArray | None] | None:

        if self.kind != "string":
            return super().datetimes()
        parsed = self.series.str.to_datetime(strict=False, time_unit="us")
        if parsed.dtype.time_zone is not None:
            parsed = parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        mask = parsed.is_null().to_numpy()
        arr = parsed.to_physical().fill_null(0).to_numpy()
        return arr, (mask if mask.any() else None)

    def distinct(self, limit: int) -> list[Any] | None:
        s = self.series.drop_nulls()
        if self.kind == "float":
            s = s.drop_nans()
        uniques = s.unique()
        if len(uniques) > limit:
            return None
        return sorted((jsonable(v) for v in uniques.to_list()), key=sort_key)

    def parse_failures(self, expected: str) -> BoolArray | None:
        import numpy as np
        import polars as pl

        if self.kind not in ("string", "object") or expected not in ("int", "float", "datetime"):
            return None
        text = self.series.cast(pl.String, strict=False)
        if expected == "datetime":
            parsed = text.str.to_datetime(strict=False)
        else:
            parsed = text.cast(pl.Float64, strict=False)
        result: BoolArray = np.logical_and(parsed.is_null().to_numpy(), ~self.null_mask())
        return result

    def value_counts(self) -> tuple[list[Any], IntArray]:
        import numpy as np

        s = self.series.drop_nulls()
        if self.kind == "float":
            s = s.drop_nans()
        counts = s.value_counts(sort=True)
        values = counts.get_column(counts.columns[0]).to_list()
        n = counts.get_column(counts.columns[1]).to_numpy().astype(np.int64)
        return [jsonable(v) for v in values], n

    def values_at(self, rows: Sequence[int]) -> list[Any]:
        return [jsonable(v) for v in self.series.gather(list(rows)).to_list()]


class PolarsFrame(FrameView):
    def __init__(self, frame: Any) -> None:
        self.frame = frame
        self.library = "polars"
        self.n_rows = frame.height
        self.columns = list(frame.columns)

    def column(self, name: str) -> ColumnView:
        return PolarsColumn(name, self.frame.get_column(name))
