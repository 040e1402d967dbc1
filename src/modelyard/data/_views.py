"""``view()``: a pandas, polars or pyarrow frame (or a mapping of columns) as a FrameView.

The dispatch lives above the backends (:mod:`._pandas`, :mod:`._polars`), which build on
:mod:`._frames`; each backend's library is imported only when one of its frames arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelyard.data._frames import FrameView
from modelyard.errors import InvalidInputError

__all__ = ["view"]


def view(frame: Any) -> FrameView:
    """Wrap a pandas DataFrame, a polars DataFrame/LazyFrame or a mapping of columns.

    Raises:
        InvalidInputError: for anything else, naming the type received.
    """
    from modelyard.data._pandas import PandasFrame

    module = type(frame).__module__.split(".", 1)[0]
    if module == "pandas":
        import pandas as pd

        if isinstance(frame, pd.DataFrame):
            return PandasFrame(frame)
        if isinstance(frame, pd.Series):
            return PandasFrame(frame.to_frame())
    if module == "polars":
        import polars as pl

        from modelyard.data._polars import PolarsFrame

        if isinstance(frame, pl.LazyFrame):
            frame = frame.collect()
        if isinstance(frame, pl.Series):
            frame = frame.to_frame()
        if isinstance(frame, pl.DataFrame):
            return PolarsFrame(frame)
    if module == "pyarrow":
        import pyarrow as pa

        if isinstance(frame, pa.Table):
            return PandasFrame(frame.to_pandas())
    if isinstance(frame, Mapping):
        import pandas as pd

        return PandasFrame(pd.DataFrame(dict(frame)))
    raise InvalidInputError(
        f"cannot validate a {type(frame).__module__}.{type(frame).__name__}",
        hint="pass a pandas or polars DataFrame (or a dict of equal-length columns)",
        type=type(frame).__name__,
    )
