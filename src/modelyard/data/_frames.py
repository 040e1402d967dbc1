"""One column-wise view over pandas and polars frames, on numpy arrays.

Contracts and profiles work column by column with vectorised numpy (or the frame library's own
hash-based kernels for strings), never row by row in Python. This module hides the differences
between pandas and polars behind :class:`ColumnView`:

* ``kind``: the logical type a contract talks about: ``int``, ``float``, ``bool``, ``string``,
  ``datetime``, ``date``, ``duration`` or ``object`` (anything else, e.g. mixed Python objects).
* Missing values: ``None``/``null``/``NaT`` and, for floats, ``NaN`` (as pandas does), so a
  frame gives the same answers in pandas and in polars.
* Datetimes are compared as int64 microseconds since the epoch (UTC for zone-aware columns), so
  that a bound written in a TOML file (microsecond precision) means the same on both sides.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    BoolArray = npt.NDArray[np.bool_]
    IntArray = npt.NDArray[np.int64]

__all__ = [
    "KINDS",
    "ColumnView",
    "FrameView",
    "from_epoch_us",
    "jsonable",
    "read_table",
    "to_epoch_us",
    "view",
]

KINDS = ("int", "float", "bool", "string", "datetime", "date", "duration", "object")
_EPOCH = _dt.datetime(1970, 1, 1)
_EPOCH_DATE = _dt.date(1970, 1, 1)


def to_epoch_us(value: _dt.datetime) -> int:
    """Microseconds since the epoch; zone-aware values are taken in UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(_dt.UTC).replace(tzinfo=None)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(us: int) -> _dt.datetime:
    """The naive (UTC) datetime ``us`` microseconds after the epoch."""
    return _EPOCH + _dt.timedelta(microseconds=int(us))


def jsonable(value: Any) -> Any:
    """A plain-Python, JSON-friendly copy of a scalar taken out of a frame."""
    if value is None:
        return None
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, (str, bytes)):
        try:
            value = item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    iso = getattr(value, "isoformat", None)
    if iso is not None:
        return iso()
    return str(value)


class ColumnView:
    """One column of a frame, with the vectorised operations contracts and profiles need.

    Subclasses adapt pandas and polars; every method returns numpy arrays or Python scalars.
    """

    name: str
    kind: str
    native: str
    n: int
    aware: bool = False  # a zone-aware datetime column (compared in UTC)

    def null_mask(self) -> BoolArray:
        """True where the value is missing (None, null, NaT, or NaN for floats)."""
        raise NotImplementedError

    def null_count(self) -> int:
        """How many values are missing."""
        import numpy as np

        return int(np.count_nonzero(self.null_mask()))

    def numbers(self) -> tuple[npt.NDArray[Any], BoolArray | None]:
        """Numeric values (int64/float64; datetimes as epoch microseconds) and the null mask.

        Missing positions hold an arbitrary value in the array; the mask (None when nothing is
        missing) tells which. Only for ``int``, ``float``, ``bool``, ``datetime``, ``date``.
        """
        raise NotImplementedError

    def isin(self, values: Sequence[Any]) -> BoolArray:
        """True where the value is one of ``values`` or missing."""
        raise NotImplementedError

    def all_in(self, values: Sequence[Any]) -> bool:
        """Whether every non-missing value is one of ``values`` (no mask when it is)."""
        return bool(self.isin(values).all())

    def duplicated(self) -> BoolArray:
        """True for each non-missing value already seen higher up the column."""
        raise NotImplementedError

    def has_duplicates(self) -> bool:
        """Whether any non-missing value occurs twice (cheaper than :meth:`duplicated`)."""
        import numpy as np

        return bool(np.any(self.duplicated()))

    def _strictly_increasing(self) -> bool:
        """True for a null-free int/datetime column sorted without ties (a typical id column):
        unique after one cheap pass instead of a hash table."""
        if self.kind not in ("int", "datetime", "date") or self.n < 2:
            return False
        values, mask = self.numbers()
        if mask is not None:
            return False
        head = values[:1024]
        if not bool((head[1:] > head[:-1]).all()):
            return False
        return bool((values[1:] > values[:-1]).all())

    def unique_values(self) -> Any:
        """The distinct non-missing values as an array-like :meth:`isin` accepts."""
        raise NotImplementedError

    def datetimes(self) -> tuple[IntArray, BoolArray | None] | None:
        """Epoch microseconds of a datetime/date column, or of ISO-8601 text that parses.

        Returns None when the column holds neither; unparseable text counts as missing.
        """
        if self.kind in ("datetime", "date"):
            return self.numbers()
        return None

    def distinct(self, limit: int) -> list[Any] | None:
        """Sorted distinct non-missing values, or None when there are more than ``limit``."""
        raise NotImplementedError

    def value_counts(self) -> tuple[list[Any], IntArray]:
        """Distinct non-missing values and how often each occurs, most frequent first."""
        raise NotImplementedError

    def values_at(self, rows: Sequence[int]) -> list[Any]:
        """JSON-friendly values at the given row positions."""
        raise NotImplementedError

    def parse_failures(self, expected: str) -> BoolArray | None:
        """For text data where ``expected`` (int, float, datetime) is wanted: True where a
        non-missing value does not parse as that; None when the question does not apply."""
        return None

    def all_integral(self) -> bool:
        """For a float column: whether every non-missing value is a whole number."""
        import numpy as np

        values, mask = self.numbers()
        if mask is not None:
            values = values[~mask]
        finite = np.isfinite(values)
        return bool(np.all(finite) and np.all(values == np.floor(values)))


class FrameView:
    """A frame (pandas or polars) seen as named :class:`ColumnView` objects."""

    library: str
    n_rows: int
    columns: list[str]

    def column(self, name: str) -> ColumnView:
        """The view of column ``name`` (which must exist)."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# pandas


_SMALL = 2048
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
    if isinstance(dtype, pd.CategoricalDtype):
        inner = dtype.categories.dtype
        if pt.is_bool_dtype(inner):
            return "bool"
        if pt.is_integer_dtype(inner):
            return "int"
        if pt.is_float_dtype(inner):
            return "float"
        return "string"
    if pt.is_bool_dtype(dtype):
        return "bool"
    if pt.is_integer_dtype(dtype):
        return "int"
    if pt.is_float_dtype(dtype):
        return "float"
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


class _PandasColumn(ColumnView):
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

        if self.n <= _SMALL and not hasattr(values, "dtype"):
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
        if self.n <= _SMALL:
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
        return sorted(values, key=_sort_key)

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


class _PandasFrame(FrameView):
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
        return _PandasColumn(name, series)


# --------------------------------------------------------------------------------------------
# polars


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


class _PolarsColumn(ColumnView):
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
        return result

    def duplicated(self) -> BoolArray:
        import numpy as np

        if self._dup is None:
            if self.kind in ("int", "float", "bool", "datetime", "date"):
                # pandas' hash table is ~8x faster than polars' is_first_distinct on numbers
                import pandas as pd

                values, _ = self.numbers()
                dup = pd.Series(values, copy=False).duplicated().to_numpy(dtype=bool)
            else:
                dup = (~self.series.is_first_distinct()).to_numpy()
            self._dup = np.logical_and(dup, ~self.null_mask())
        return self._dup

    def has_duplicates(self) -> bool:
        if self._strictly_increasing():
            return False
        if self.null_count() == 0:
            return bool(self.series.n_unique() < self.n)
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
        return sorted((jsonable(v) for v in uniques.to_list()), key=_sort_key)

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


class _PolarsFrame(FrameView):
    def __init__(self, frame: Any) -> None:
        self.frame = frame
        self.library = "polars"
        self.n_rows = frame.height
        self.columns = list(frame.columns)

    def column(self, name: str) -> ColumnView:
        return _PolarsColumn(name, self.frame.get_column(name))


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


def view(frame: Any) -> FrameView:
    """Wrap a pandas DataFrame, a polars DataFrame/LazyFrame or a mapping of columns.

    Raises:
        InvalidInputError: for anything else, naming the type received.
    """
    module = type(frame).__module__.split(".", 1)[0]
    if module == "pandas":
        import pandas as pd

        if isinstance(frame, pd.DataFrame):
            return _PandasFrame(frame)
        if isinstance(frame, pd.Series):
            return _PandasFrame(frame.to_frame())
    if module == "polars":
        import polars as pl

        if isinstance(frame, pl.LazyFrame):
            frame = frame.collect()
        if isinstance(frame, pl.Series):
            frame = frame.to_frame()
        if isinstance(frame, pl.DataFrame):
            return _PolarsFrame(frame)
    if module == "pyarrow":
        import pyarrow as pa

        if isinstance(frame, pa.Table):
            return _PandasFrame(frame.to_pandas())
    if isinstance(frame, Mapping):
        import pandas as pd

        return _PandasFrame(pd.DataFrame(dict(frame)))
    raise InvalidInputError(
        f"cannot validate a {type(frame).__module__}.{type(frame).__name__}",
        hint="pass a pandas or polars DataFrame (or a dict of equal-length columns)",
        type=type(frame).__name__,
    )


def read_table(path: str | Path) -> Any:
    """Read a CSV or Parquet file into a pandas DataFrame.

    Raises:
        InvalidInputError: when the file is missing, unreadable or of another format.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(
            f"data file {str(p)!r} does not exist",
            hint="pass the path of a .csv or .parquet file",
            path=str(p),
        )
    suffix = "".join(p.suffixes[-2:]).lower() if p.suffix.lower() == ".gz" else p.suffix.lower()
    try:
        if suffix in (".csv", ".csv.gz", ".tsv"):
            return pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",")
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InvalidInputError(
            f"cannot read {str(p)!r}: {exc}",
            hint="check that the file is valid CSV or Parquet",
            path=str(p),
        ) from exc
    raise InvalidInputError(
        f"data file {str(p)!r} has an unsupported extension {p.suffix!r}",
        hint="use a .csv, .tsv, .csv.gz or .parquet file",
        path=str(p),
    )
