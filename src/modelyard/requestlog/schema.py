"""The columns of the request and feedback logs, and where their files live.

Layout under the artifact store's named files (hive-style partitions)::

    requests/model=<m>/version=<v>/hour=<YYYY-MM-DDTHH>/<uuid>.parquet   one row per instance
    feedback/model=<m>/version=<v>/hour=<YYYY-MM-DDTHH>/<uuid>.parquet

Request columns: ``request_id`` (string), ``instance`` (int32: the instance's index inside its
request), ``ts`` (timestamp[ms, UTC]), ``model``, ``version`` (strings), ``status`` (int16: the
HTTP status), ``latency_ms`` (float32), then one ``in__<column>`` per input feature and one
``out__<name>`` per output (``out__prediction``; ``out__proba__<class>`` for classifiers).

Input columns are typed from the model's contract (logical types ``float``, ``int``, ``bool``,
``string``, ``datetime``); a tensor input with no column names is one ``in__<input>`` column of
fixed-size lists (logical type ``float32[256]``: element type and width). Feedback columns:
``request_id``, ``ts``, ``model``, ``version``, ``label`` (float64 when numeric, else string),
``outcome`` (float64, nullable) and ``extra`` (a JSON string: the only JSON column).

Nothing here imports pyarrow at module level: :func:`arrow_type` imports it when called.
"""

from __future__ import annotations

import re
import time
from typing import Any

from modelyard.errors import InvalidInputError

__all__ = [
    "FEEDBACK",
    "INPUT_PREFIX",
    "OUTPUT_PREFIX",
    "PROBA_PREFIX",
    "REQUESTS",
    "arrow_type",
    "feedback_schema",
    "hour_of",
    "input_column",
    "logical_type",
    "partition_prefix",
    "request_base_schema",
]

REQUESTS = "requests"
FEEDBACK = "feedback"
INPUT_PREFIX = "in__"
OUTPUT_PREFIX = "out__"
PROBA_PREFIX = "out__proba__"

_VECTOR = re.compile(r"^(float16|float32|float64|int8|int16|int32|int64|uint8|bool)\[(\d+)\]$")
# contract / signature dtypes -> the log's logical types
_LOGICAL = {
    "float": "float",
    "number": "float",
    "double": "float",
    "int": "int",
    "integer": "int",
    "bool": "bool",
    "boolean": "bool",
    "string": "string",
    "str": "string",
    "category": "string",
    "object": "string",
    "datetime": "datetime",
    "timestamp": "datetime",
    "date": "datetime",
}


def input_column(name: str) -> str:
    """The log column of input feature ``name`` (``in__<name>``)."""
    return INPUT_PREFIX + name


def logical_type(dtype: str) -> str:
    """The log's logical type for a contract or signature dtype (``number`` -> ``float``)."""
    key = dtype.lower()
    if key in _LOGICAL:
        return _LOGICAL[key]
    if _VECTOR.match(key):
        return key
    raise InvalidInputError(
        f"cannot log a column of type {dtype!r}",
        hint="use float, int, bool, string, datetime or a vector such as float32[256]",
        field="dtype",
    )


def arrow_type(logical: str) -> Any:
    """The Arrow type of a logical type (imports pyarrow)."""
    import pyarrow as pa

    simple = {
        "float": pa.float64(),
        "int": pa.int64(),
        "bool": pa.bool_(),
        "string": pa.string(),
        "datetime": pa.timestamp("ms", tz="UTC"),
    }
    if logical in simple:
        return simple[logical]
    m = _VECTOR.match(logical)
    if m is None:
        raise InvalidInputError(f"unknown logical type {logical!r}", field="dtype")
    elem = pa.bool_() if m.group(1) == "bool" else pa.from_numpy_dtype(m.group(1))
    return pa.list_(pa.field("item", elem, nullable=False), int(m.group(2)))


def request_base_schema() -> Any:
    """The columns every request row has, before its ``in__``/``out__`` columns."""
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("instance", pa.int32()),
            ("ts", pa.timestamp("ms", tz="UTC")),
            ("model", pa.string()),
            ("version", pa.string()),
            ("status", pa.int16()),
            ("latency_ms", pa.float32()),
        ]
    )


def feedback_schema(label_numeric: bool = True) -> Any:
    """The feedback columns; ``label`` is float64 when numeric, else string."""
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("ts", pa.timestamp("ms", tz="UTC")),
            ("model", pa.string()),
            ("version", pa.string()),
            ("label", pa.float64() if label_numeric else pa.string()),
            ("outcome", pa.float64()),
            ("extra", pa.string()),
        ]
    )


def hour_of(ts_s: float) -> str:
    """The ``hour=`` partition value of a time in seconds since the epoch (UTC)."""
    return time.strftime("%Y-%m-%dT%H", time.gmtime(ts_s))


def partition_prefix(kind: str, model: str, version: str | None = None) -> str:
    """``<kind>/model=<m>/`` or ``<kind>/model=<m>/version=<v>/``."""
    prefix = f"{kind}/model={model}/"
    return prefix if version is None else f"{prefix}version={version}/"
