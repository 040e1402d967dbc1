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

The adapters live in :mod:`modelyard.data._pandas` and :mod:`modelyard.data._polars`, built on
this module; :func:`modelyard.data._views.view` picks one (importing it only when a frame of its
library arrives), so no module here imports an adapter back.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Sequence
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
    "RANGED",
    "SMALL",
    "ColumnView",
    "FrameView",
    "from_epoch_us",
    "jsonable",
    "read_table",
    "sort_key",
    "to_epoch_us",
]

KINDS = ("int", "float", "bool", "string", "datetime", "date", "duration", "object")
RANGED = ("int", "float", "datetime", "date")  # kinds with min/max bounds
_EPOCH = _dt.datetime(1970, 1, 1)
SMALL = 2048  # rows up to which Python-level shortcuts beat a library call


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
    if value is None or type(value).__name__ in ("NAType", "NaTType"):  # pandas NA, NaT
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


def sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


def read_table(path: str | Path) -> Any:
    """Read a CSV or Parquet file into a pandas DataFrame.

    CSV text columns whose values are all ISO-8601 dates or datetimes become datetime columns,
    so a time column is checked by range rather than as a list of strings.

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
            return _parse_iso_columns(pd.read_csv(p, sep="\t" if suffix == ".tsv" else ","))
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


_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$"
)


def _parse_iso_columns(df: Any) -> Any:
    """Convert text columns that hold only ISO-8601 dates/datetimes (first rows sniffed)."""
    import pandas as pd
    from pandas.api import types as pt

    for name in df.columns:
        series = df[name]
        if not (pt.is_string_dtype(series.dtype) or series.dtype == object):
            continue
        head = series.dropna().head(100)
        if head.empty or not all(isinstance(v, str) and _ISO.match(v) for v in head):
            continue
        try:
            df[name] = pd.to_datetime(series, format="ISO8601")
        except (ValueError, TypeError):
            try:  # offsets that differ (a DST change: +01:00 then +02:00) are one UTC column
                df[name] = pd.to_datetime(series, format="ISO8601", utc=True)
            except (ValueError, TypeError):  # a later value is not a date: keep the text
                continue
    return df
