"""Codecs for arrays and frames: ``npy`` (numpy, no object dtype), ``pandas`` and ``polars``
(Parquet), ``series`` (a pandas Series as a one-column Parquet file, its name and numpy dtype in
the metadata). Each library is imported only for a value of its own; type checks go by name."""

from __future__ import annotations

import io
from typing import Any

from modelyard.pipelines.codecs._base import TRUST_HINT, CannotStore, Target, mro_names, type_name
from modelyard.pipelines.codecs._json import tagged, untagged

__all__ = ["NpyCodec", "PandasCodec", "PolarsCodec", "SeriesCodec", "not_storable"]


def not_storable(value: Any, target: Target, what: str) -> CannotStore:
    """The refusal for a value no codec stores (``what`` names it)."""
    return CannotStore(
        f"step {target.step!r} returned {what}, which modelyard cannot store between steps",
        hint="return a JSON-able value (NaN, tuples and bytes included), a numpy array, a "
        f"pandas/polars DataFrame, a pandas Series or a model; {TRUST_HINT}",
        type=type_name(value),
    )


class NpyCodec:
    """``npy``: numpy arrays as ``.npy`` (``allow_pickle=False``)."""

    name = "npy"
    whole_only = True
    type_names = frozenset({"numpy.ndarray"})

    def accepts(self, value: Any) -> bool:
        return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"

    def encode(self, value: Any, target: Target) -> bytes:
        import numpy as np

        if value.dtype.hasobject:
            raise not_storable(value, target, "a numpy array of Python objects")
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return buf.getvalue()

    def decode(self, data: bytes, *, trust: bool) -> Any:
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)


class PandasCodec:
    """``pandas``: DataFrames as Parquet (pyarrow), index kept."""

    name = "pandas"
    whole_only = True
    type_names = frozenset({"pandas.core.frame.DataFrame", "pandas.DataFrame"})

    def accepts(self, value: Any) -> bool:
        return bool(mro_names(type(value)) & self.type_names)

    def encode(self, value: Any, target: Target) -> bytes:
        buf = io.BytesIO()
        try:
            value.to_parquet(buf, engine="pyarrow", index=True)
        except Exception as exc:  # pyarrow raises several types for unsupported columns
            raise CannotStore(
                f"step {target.step!r} returned a pandas DataFrame that Parquet cannot store: "
                f"{exc}",
                hint="convert object columns to str/numbers, or declare @step(trust=True)",
            ) from exc
        return buf.getvalue()

    def decode(self, data: bytes, *, trust: bool) -> Any:
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


_SERIES_COLUMN = "modelyard:series"
_SERIES_META = b"modelyard.series"


class SeriesCodec:
    """``series``: a pandas Series as a one-column Parquet file; its name (tagged JSON) and
    numpy dtype in the file's metadata (Parquet reads object back as str, datetime64[s] as
    [ms])."""

    name = "series"
    whole_only = True
    type_names = frozenset({"pandas.core.series.Series", "pandas.Series"})

    def accepts(self, value: Any) -> bool:
        return bool(mro_names(type(value)) & self.type_names)

    def encode(self, value: Any, target: Target) -> bytes:
        import numpy as np

        from modelyard.pipelines.codecs._json import _Unstorable

        try:
            meta: dict[str, Any] = {"name": tagged(value.name, 0)}
        except _Unstorable:
            raise CannotStore(
                f"step {target.step!r} returned a pandas Series named {value.name!r} "
                f"({type_name(value.name)}), which modelyard cannot store between steps",
                hint=f"rename it to a str, a number or a tuple of those (series.rename(...)); "
                f"{TRUST_HINT}",
            ) from None
        if isinstance(value.dtype, np.dtype):
            meta["dtype"] = value.dtype.str
        try:
            import orjson
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(value.to_frame(name=_SERIES_COLUMN), preserve_index=None)
            schema_meta = dict(table.schema.metadata or {})
            schema_meta[_SERIES_META] = orjson.dumps(meta, option=orjson.OPT_SERIALIZE_NUMPY)
            buf = io.BytesIO()
            pq.write_table(table.replace_schema_metadata(schema_meta), buf)
        except Exception as exc:  # pyarrow raises several types for unsupported values
            raise CannotStore(
                f"step {target.step!r} returned a pandas Series that Parquet cannot store: {exc}",
                hint="convert an object Series to str or numbers (series.astype(str)); "
                f"{TRUST_HINT}",
            ) from exc
        return buf.getvalue()

    def decode(self, data: bytes, *, trust: bool) -> Any:
        import numpy as np
        import orjson
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        meta = orjson.loads((table.schema.metadata or {})[_SERIES_META])
        series = table.to_pandas()[_SERIES_COLUMN]
        series.name = untagged(meta["name"])
        if "dtype" in meta and series.dtype != np.dtype(meta["dtype"]):
            series = series.astype(np.dtype(meta["dtype"]))
        return series


class PolarsCodec:
    """``polars``: polars DataFrames as Parquet."""

    name = "polars"
    whole_only = True
    type_names = frozenset({"polars.dataframe.frame.DataFrame", "polars.DataFrame"})

    def accepts(self, value: Any) -> bool:
        return bool(mro_names(type(value)) & self.type_names)

    def encode(self, value: Any, target: Target) -> bytes:
        buf = io.BytesIO()
        value.write_parquet(buf)
        return buf.getvalue()

    def decode(self, data: bytes, *, trust: bool) -> Any:
        import polars as pl

        return pl.read_parquet(io.BytesIO(data))
