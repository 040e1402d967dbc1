"""Requests for a pre-production load test: replayed from the request log, or synthesised.

:func:`replay_bodies` rebuilds v1 ``:predict`` bodies from the newest requests a version
answered (status 200) in the typed request log: one instance per body, from its ``in__``
columns, shaped as the model's signature takes them (JSON objects for field signatures, rows of
numbers for a tensor). :func:`synthetic_bodies` builds bodies from the signature alone (types,
ranges, categories) for a model that has seen no traffic yet. Both return ``bytes`` bodies for
``POST /v1/models/NAME:predict``; pyarrow is imported only when the log is read.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

__all__ = ["replay_bodies", "synthetic_bodies"]

_IN = "in__"


def replay_bodies(
    store: Any,
    model: str,
    version: str,
    limit: int,
    *,
    input_spec: Mapping[str, Any] | None = None,
    fields: Sequence[Mapping[str, Any]] = (),
    window_s: float = 3600.0,
    now_s: float | None = None,
) -> list[bytes]:
    """Up to ``limit`` bodies from the newest requests ``version`` answered in the last
    ``window_s`` seconds (newest files first); empty when the log has none.

    Args:
        store: the artifact store holding the request log.
        model: the model's name.
        version: whose requests to replay (the stable version).
        limit: the most bodies returned.
        input_spec: the signature's tensor input (``name``, ``shape``, ``columns``), if any.
        fields: the signature's fields (JSON-object instances), if any.
        window_s: how far back to look.
        now_s: the present, in seconds since the epoch (default: now).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from modelyard.requestlog import RequestLog
    from modelyard.requestlog.schema import REQUESTS

    now = time.time() if now_s is None else now_s
    since = dt.datetime.fromtimestamp(now - window_s, dt.UTC)
    reader = RequestLog(store, model, version)
    bodies: list[bytes] = []
    for path in _newest_first(store.fs, reader.files(REQUESTS, since)):
        with store.fs.open(path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            names = [n for n in pf.schema_arrow.names if n.startswith(_IN) or n == "status"]
            if "status" not in names or len(names) < 2:
                continue
            table = pf.read(columns=names)
        table = table.filter(pc.equal(table.column("status"), 200))
        inputs = [n for n in names if n.startswith(_IN)]
        columns = {n[len(_IN) :]: table.column(n).to_pylist() for n in inputs}
        for i in reversed(range(table.num_rows)):
            row = {name: values[i] for name, values in columns.items()}
            instance = _instance(row, input_spec, fields)
            if instance is not None:
                bodies.append(orjson.dumps({"instances": [instance]}, default=_jsonable))
            if len(bodies) >= limit:
                return bodies
    return bodies


def _newest_first(fs: Any, paths: list[str]) -> list[str]:
    """``paths`` (oldest hour first, as listed) newest first: by hour, then by the time each
    file was written (one listing per hour folder; file names are random)."""
    by_folder: dict[str, list[str]] = {}
    for path in paths:
        by_folder.setdefault(path.rsplit("/", 1)[0], []).append(path)
    ordered: list[str] = []
    for folder in reversed(list(by_folder)):
        written: dict[str, float] = {}
        try:
            for entry in fs.ls(folder, detail=True):
                stamp = entry.get("mtime") or entry.get("LastModified") or entry.get("created")
                if isinstance(stamp, dt.datetime):
                    stamp = stamp.timestamp()
                written[str(entry["name"]).rstrip("/")] = float(stamp or 0.0)
        except (OSError, TypeError, ValueError):
            written = {}
        names = by_folder[folder]
        ordered += sorted(names, key=lambda p: written.get(p.rstrip("/"), 0.0), reverse=True)
    return ordered


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _instance(
    row: dict[str, Any], input_spec: Mapping[str, Any] | None, fields: Sequence[Mapping[str, Any]]
) -> Any:
    """One logged row as the instance the signature takes (``None`` for a refused request,
    whose inputs were not logged)."""
    if all(v is None for v in row.values()):
        return None
    if fields or input_spec is None:
        if len(row) == 1 and not fields:
            return next(iter(row.values()))
        return row
    if len(row) == 1:
        value = next(iter(row.values()))
        shape = [int(d) for d in (input_spec.get("shape") or [])[1:]]
        if isinstance(value, list) and len(shape) > 1 and math.prod(shape) == len(value):
            return _reshape(value, shape)
        return value
    order = list(input_spec.get("columns") or row)
    return [row.get(name) for name in order]


def _reshape(flat: list[Any], shape: list[int]) -> list[Any]:
    if len(shape) == 1:
        return flat
    step = math.prod(shape[1:])
    return [_reshape(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def synthetic_bodies(
    input_spec: Mapping[str, Any] | None,
    fields: Sequence[Mapping[str, Any]],
    n: int,
    *,
    seed: int = 0,
) -> list[bytes]:
    """``n`` bodies of one instance each drawn from the signature: numbers within their
    ``min``/``max`` (else around 0), categories from their list; empty when the signature
    says too little (no fields, and no numeric tensor input of a known shape)."""
    rng = random.Random(seed)
    instances: list[Any]
    if fields:
        instances = [{str(f["name"]): _field_value(f, rng) for f in fields} for _ in range(n)]
    elif input_spec is not None and _numeric_tensor(input_spec):
        shape = [int(d) for d in (input_spec.get("shape") or [])[1:]]
        instances = [_tensor_instance(input_spec, shape, rng) for _ in range(n)]
    else:
        return []
    return [orjson.dumps({"instances": [inst]}) for inst in instances]


def _tensor_instance(spec: Mapping[str, Any], shape: list[int], rng: random.Random) -> Any:
    width = shape[-1] if shape else 1
    flat = [_tensor_value(spec, j % width, rng) for j in range(math.prod(shape))]
    return _reshape(flat, shape) if shape else flat[0]


def _numeric_tensor(spec: Mapping[str, Any]) -> bool:
    shape = spec.get("shape")
    if shape is None or any(int(d) < 0 for d in list(shape)[1:]):
        return False
    return str(spec.get("datatype", "")).upper() != "BYTES"


def _bound(value: Any, j: int) -> float | None:
    if isinstance(value, list):
        value = value[j] if j < len(value) else None
    return None if value is None else float(value)


def _between(lo: float | None, hi: float | None, rng: random.Random) -> float:
    if lo is not None and hi is not None:
        return rng.uniform(lo, hi)
    if lo is not None:
        return lo + rng.expovariate(1.0)
    if hi is not None:
        return hi - rng.expovariate(1.0)
    return rng.gauss(0.0, 1.0)


def _field_value(f: Mapping[str, Any], rng: random.Random) -> Any:
    kind = f.get("type", "number")
    if f.get("categories"):
        return rng.choice(list(f["categories"]))
    lo, hi = _bound(f.get("min"), 0), _bound(f.get("max"), 0)
    if kind == "number":
        return _between(lo, hi, rng)
    if kind == "integer":
        low = math.ceil(lo) if lo is not None else 0
        high = math.floor(hi) if hi is not None else low + 10
        return rng.randint(low, max(low, high))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "string":
        return "x"
    return "2026-01-01T00:00:00"  # datetimes and other JSON strings


def _tensor_value(spec: Mapping[str, Any], j: int, rng: random.Random) -> Any:
    kind = str(spec.get("datatype", "FP32")).upper()
    lo, hi = _bound(spec.get("min"), j), _bound(spec.get("max"), j)
    if kind == "BOOL":
        return rng.random() < 0.5
    if kind.startswith(("INT", "UINT")):
        low = math.ceil(lo) if lo is not None else 0
        high = math.floor(hi) if hi is not None else low + 10
        return rng.randint(low, max(low, high))
    return _between(lo, hi, rng)
