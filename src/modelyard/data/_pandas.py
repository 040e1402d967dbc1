"""The pandas adapter of :mod:`modelyard.data._frames`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelyard.data._frames import SMALL, ColumnView, FrameView, jsonable, sort_key
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    BoolArray = npt.NDArray[np.bool_]
    IntArray = npt.NDArray[np.int64]


_KIND_BY_DTYPE: dict[Any, str] = {}


def _pandas_kind(series: Any) -> str:
    import numpy as np

    dtype = series.dtype
    if dtype is np.dtype(object):
        return _pandas_kind_uncached(series)
    try:
        return _KIND_BY_DTYPE[dtype]
    except (KeyError, TypeError):
        kind = _pandas_kind_uncached(series)
    try:
        if len(_KIND_BY_DTYPE) < 256:
            _KIND_BY_DTYPE[dtype] = kind
    except TypeError:  # an unhashable extension dtype
        pass
    return kind


def _pandas_kind_uncached(series: Any) -> str:
    import numpy as np
    import pandas as pd
    from pandas.api import types as pt

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):  # judged by its categories; text otherwise
        return _numeric_kind(dtype.categories.dtype) or "string"
    numeric = _numeric_kind(dtype)
    if numeric is not None:
        return numeric
    if pt.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pt.is_timedelta64_dtype(dtype):
        return "duration"
    if pt.is_string_dtype(dtype) and dtype is not np.dtype(object):
        return "string"
    inferred = pt.infer_dtype(series, skipna=True)
    return {
        "string": "string",
        "empty": "string",
        "boolean": "bool",
        "integer": "int",
        "floating": "float",
        "mixed-integer-float": "float",
        "datetime": "datetime",
        "datetime64": "datetime",
        "date": "date",
        "timedelta": "duration",
        "timedelta64": "duration",
    }.get(inferred, "object")


def _numeric_kind(dtype: Any) -> str | None:
    """``bool``, ``int`` or ``float`` for such a dtype, else None."""
    from pandas.api import types as pt

    if pt.is_bool_dtype(dtype):
        return "bool"
    if pt.is_integer_dtype(dtype):
        return "int"
    if pt.is_float_dtype(dtype):
        return "float"
    return None


class PandasColumn(ColumnView):
    def __init__(self, name: str, series: Any) -> None:
        self.name = name
        self.series = series
        self.native = str(series.dtype)
        self.kind = _pandas_kind(series)
        self.aware = getattr(series.dtype, "tz", None) is not None
        self.n = len(series)
        self._mask: BoolArray | None = None
        self._dup: BoolArray | None = None

    def null_mask(self) -> BoolArray:
        import numpy as np

        if self._mask is None:
            dtype = self.series.dtype
            kind = dtype.kind if isinstance(dtype, np.dtype) else None
            if kind == "f":
                self._mask = np.isnan(self.series.to_numpy())
            elif kind in ("i", "u", "b"):
                self._mask = np.zeros(self.n, dtype=bool)
            elif kind in ("M", "m"):
                self._mask = np.isnat(self.series.to_numpy())
            elif kind is None and hasattr(self.series.array, "isna"):
                self._mask = np.asarray(self.series.array.isna(), dtype=bool)
            else:
                self._mask = self.series.isna().to_numpy(dtype=bool)
        return self._mask

    def numbers(self) -> tuple[npt.NDArray[Any], BoolArray | None]:
        import numpy as np
        import pandas as pd

        s = self.series
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(s.dtype.categories.dtype)
        mask = self.null_mask()
        has_nulls = bool(mask.any())
        if self.kind == "datetime":
            if getattr(s.dtype, "tz", None) is not None:
                s = s.dt.tz_convert("UTC").dt.tz_localize(None)
            arr = s.to_numpy(dtype="datetime64[us]").view(np.int64)
        elif self.kind == "date":
            arr = pd.to_datetime(s).to_numpy(dtype="datetime64[us]").view(np.int64)
        elif isinstance(s.dtype, np.dtype) and s.dtype.kind in "iufb":
            arr = s.to_numpy()
            if arr.dtype.kind == "b":
                arr = arr.view(np.int8)
        elif self.kind == "float":
            arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        else:  # nullable / arrow-backed ints and bools
            arr = s.to_numpy(dtype=np.int64, na_value=0)
        return arr, (mask if has_nulls else None)

    def isin(self, values: Sequence[Any]) -> BoolArray:
        import numpy as np

        if self.n <= SMALL and not hasattr(values, "dtype"):
            # a few rows (a serving request): a Python set beats pandas' per-call overhead
            allowed = set(values)
            items = self.series.to_numpy(dtype=object)
            found = np.fromiter((v in allowed for v in items), dtype=bool, count=self.n)
        else:
            wanted = values if hasattr(values, "dtype") else list(values)
            found = self.series.isin(wanted).to_numpy(dtype=bool)
        result: BoolArray = np.logical_or(found, self.null_mask())
        return result

    def all_in(self, values: Sequence[Any]) -> bool:
        if self.n <= SMALL:
            return super().all_in(values)
        # the distinct values (one hash pass) are few: checking them beats a full isin
        uniques = self.series.unique()
        if len(uniques) > 4096:
            return super().all_in(values)
        allowed = set(values)
        import pandas as pd

        return all(v in allowed or pd.isna(v) for v in uniques)

    def duplicated(self) -> BoolArray:
        import numpy as np

        if self._dup is None:
            dup = self.series.duplicated().to_numpy(dtype=bool)
            self._dup = np.logical_and(dup, ~self.null_mask())
        return self._dup

    def has_duplicates(self) -> bool:
        if self._strictly_increasing():
            return False
        return super().has_duplicates()

    def unique_values(self) -> Any:
        return self.series.dropna().unique()

    def datetimes(self) -> tuple[IntArray, BoolArray | None] | None:
        import numpy as np
        import pandas as pd

        if self.kind != "string":
            return super().datetimes()
        parsed = pd.to_datetime(self.series, errors="coerce", format="ISO8601", utc=True)
        mask = parsed.isna().to_numpy(dtype=bool)
        arr = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]").view(np.int64)
        return arr, (mask if mask.any() else None)

    def distinct(self, limit: int) -> list[Any] | None:
        uniques = self.series.dropna().unique()
        if len(uniques) > limit:
            return None
        values = [jsonable(v) for v in uniques]
        return sorted(values, key=sort_key)

    def parse_failures(self, expected: str) -> BoolArray | None:
        import numpy as np
        import pandas as pd

        if self.kind not in ("string", "object") or expected not in ("int", "float", "datetime"):
            return None
        if expected == "datetime":
            parsed = pd.to_datetime(self.series, errors="coerce", format="ISO8601")
        else:
            parsed = pd.to_numeric(self.series, errors="coerce")
        result: BoolArray = np.logical_and(parsed.isna().to_numpy(dtype=bool), ~self.null_mask())
        return result

    def value_counts(self) -> tuple[list[Any], IntArray]:
        import numpy as np

        counts = self.series.value_counts(dropna=True, sort=True)
        return [jsonable(v) for v in counts.index], counts.to_numpy(dtype=np.int64)

    def values_at(self, rows: Sequence[int]) -> list[Any]:
        taken = self.series.iloc[list(rows)]
        return [jsonable(v) for v in taken.tolist()]


class PandasFrame(FrameView):
    def __init__(self, frame: Any) -> None:
        self.frame = frame
        self.library = "pandas"
        self.n_rows = len(frame)
        self.columns = [str(c) for c in frame.columns]
        self._names = {str(c): c for c in frame.columns}

    def column(self, name: str) -> ColumnView:
        series = self.frame[self._names[name]]
        if getattr(series, "ndim", 1) != 1:
            raise InvalidInputError(
                f"column {name!r} appears more than once in the frame",
                hint="give every column a distinct name before validating",
                column=name,
            )
        return PandasColumn(name, series)
