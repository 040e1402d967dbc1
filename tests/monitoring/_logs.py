"""Write request and feedback logs in the typed request-log layout, as a served model would."""

from __future__ import annotations

import io
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modelyard.requestlog.schema import FEEDBACK, REQUESTS, hour_of, partition_prefix


def _put(
    store: Any,
    kind: str,
    model: str,
    version: int,
    *,
    ts_s: float,
    table: pa.Table,
    row_group_rows: int | None = None,
) -> str:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_rows)
    name = (
        f"{partition_prefix(kind, model, str(version))}hour={hour_of(ts_s)}/"
        f"{uuid.uuid4().hex}.parquet"
    )
    store.write_named(name, buf.getvalue())
    return name


def write_requests(
    store: Any,
    model: str,
    version: int,
    inputs: pd.DataFrame,
    *,
    ts_s: float,
    outputs: Mapping[str, Any] | None = None,
    ids: list[str] | None = None,
    row_group_rows: int | None = None,
) -> list[str]:
    """One request file of ``inputs`` (one row per instance) logged at ``ts_s`` (in row groups
    of ``row_group_rows``); returns ids."""
    n = len(inputs)
    ids = ids or [uuid.uuid4().hex for _ in range(n)]
    cols: dict[str, Any] = {
        "request_id": pa.array(ids, pa.string()),
        "instance": pa.array(np.zeros(n, dtype=np.int32)),
        "ts": pa.array(np.full(n, int(ts_s * 1000), dtype=np.int64)).cast(
            pa.timestamp("ms", tz="UTC")
        ),
        "model": pa.array([model] * n),
        "version": pa.array([str(version)] * n),
        "status": pa.array(np.full(n, 200, dtype=np.int16)),
        "latency_ms": pa.array(np.ones(n, dtype=np.float32)),
    }
    for name in inputs.columns:
        cols[f"in__{name}"] = pa.array(inputs[name], from_pandas=True)
    for name, values in (outputs or {}).items():
        cols[f"out__{name}"] = pa.array(values)
    _put(
        store,
        REQUESTS,
        model,
        version,
        ts_s=ts_s,
        table=pa.table(cols),
        row_group_rows=row_group_rows,
    )
    return ids


def write_feedback(
    store: Any, model: str, version: int, ids: list[str], labels: Any, *, ts_s: float
) -> None:
    """Feedback (labels) for request ids, logged at ``ts_s``."""
    n = len(ids)
    table = pa.table(
        {
            "request_id": pa.array(ids, pa.string()),
            "ts": pa.array(np.full(n, int(ts_s * 1000), dtype=np.int64)).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "model": pa.array([model] * n),
            "version": pa.array([str(version)] * n),
            "label": pa.array(np.asarray(labels, dtype=np.float64)),
            "outcome": pa.array([None] * n, pa.float64()),
            "extra": pa.array([None] * n, pa.string()),
        }
    )
    _put(store, FEEDBACK, model, version, ts_s=ts_s, table=table)
