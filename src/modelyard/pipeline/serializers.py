"""Serializers for values passed between steps, chosen by type, all safe to load by default.

===========  ========================================  ====================================
codec        values                                    bytes
===========  ========================================  ====================================
json         None, bool, int, float, str, lists and    orjson (numpy scalars as numbers);
             dicts of them (finite floats, no tuple    the same bytes as ever, so cache
             below the top)                            fingerprints do not move
tagged-json  the same plus NaN/±inf, tuples at any     orjson, each special value as a
             depth, bytes and ints past 64 bits        one-key object (see below)
bytes        ``bytes``                                 the bytes themselves
npy          numpy arrays (not object dtype)           ``.npy``, ``allow_pickle=False``
pandas       pandas DataFrames                         Parquet (pyarrow)
series       pandas Series                             Parquet of a one-column frame; name
                                                       and numpy dtype in its metadata
polars       polars DataFrames                         Parquet
model        scikit-learn estimators (and other        a tar of the model package written
             models ``modelyard.models.save`` knows)   by ``modelyard.models.save``
version      a registered model version                JSON ``{"name", "version"}``
pickle       anything else, only with ``trust=True``   pickle protocol 5
===========  ========================================  ====================================

``tagged-json`` writes ``{"$float": "nan" | "inf" | "-inf"}``, ``{"$tuple": [...]}``,
``{"$bytes": base64}`` and ``{"$int": hex}``; a dict of the value whose only key is one of these
tags is wrapped as ``{"$dict": {...}}``. Values that plain ``json`` can hold never use it, so the
fast path and the bytes of existing cache entries are unchanged; ``json`` entries written before
tuples were kept (nested tuples as lists) still decode as lists. Every encoding is a function of
the value alone (dict order as inserted, one spelling of NaN), so the same value has the same
bytes, and so the same fingerprint, in every process.

Heavy libraries are imported only for values that need them: type checks go by module name.
"""

from __future__ import annotations

import io
import math
from typing import Any

from modelyard.errors import PipelineError, UnsafeArtifactError

__all__ = ["check_annotation", "decode", "encode", "is_jsonable", "stores_as_one_document"]

_JSON_SCALARS = (str, int, float, bool, type(None))
_MAX_DEPTH = 100
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # the integers orjson writes as numbers
_TAGS = frozenset({"$float", "$tuple", "$bytes", "$int", "$dict"})
_TAGGED = "tagged-json"
_TRUST_HINT = "or declare @step(trust=True) to store it with pickle"


def is_jsonable(value: Any, _depth: int = 0) -> bool:
    """True when ``value`` round-trips through JSON (tuples count, as lists)."""
    if _depth > _MAX_DEPTH:
        return False
    if isinstance(value, float):
        # a float subclass (numpy.float64) is not something orjson writes
        return type(value) is float and math.isfinite(value)
    if isinstance(value, _JSON_SCALARS):
        return True
    if isinstance(value, list | tuple):
        return all(is_jsonable(v, _depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_jsonable(v, _depth + 1) for k, v in value.items())
    return False


def _plain_json(value: Any, depth: int) -> bool:
    """True when the ``json`` codec stores ``value`` exactly: orjson writes it and reads back an
    equal value of the same shape (finite floats, 64-bit ints, no tuples)."""
    cls = type(value)
    if cls is str or cls is bool or value is None:
        return True
    if cls is int:
        return bool(_INT_MIN <= value <= _INT_MAX)
    if cls is float:
        return math.isfinite(value)
    if depth > _MAX_DEPTH:
        return False
    if _is_numpy_scalar(value):
        if value.dtype.kind == "f":  # orjson cannot write float16; NaN/inf would become null
            return value.dtype.itemsize > 2 and bool(math.isfinite(value))
        return True
    if isinstance(value, float):
        return False
    if isinstance(value, int):  # IntEnum and other int subclasses, written as numbers
        return _INT_MIN <= value <= _INT_MAX
    if isinstance(value, str):
        return True
    if isinstance(value, list):
        return all(_plain_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json(v, depth + 1) for k, v in value.items())
    return False


class _Unstorable(Exception):
    """The first part of a value JSON cannot hold; ``path`` (keys, indexes) is filled in while
    the walk unwinds, so building it costs nothing unless something is wrong."""

    def __init__(self, value: Any, why: str, hint: str) -> None:
        super().__init__(why)
        self.value = value
        self.why = why
        self.hint = hint
        self.path: list[str | int] = []


def _tagged(value: Any, depth: int) -> Any:
    """``value`` with what plain JSON cannot hold replaced by one-key tag objects."""
    cls = type(value)
    if cls is str or cls is bool or value is None:
        return value
    if cls is float:
        return value if math.isfinite(value) else {"$float": _float_tag(value)}
    if depth > _MAX_DEPTH:
        raise _Unstorable(
            value,
            f"is nested more than {_MAX_DEPTH} levels deep",
            "flatten it, or store it as a numpy array or a DataFrame",
        )
    if _is_numpy_scalar(value):
        if value.dtype.kind != "f":
            return value  # orjson writes numpy bools and integers
        if not math.isfinite(value):
            return {"$float": _float_tag(float(value))}
        # orjson writes float32/float64 (as the json codec does) but not float16
        return float(value) if value.dtype.itemsize <= 2 else value
    if isinstance(value, int):
        return value if _INT_MIN <= value <= _INT_MAX else {"$int": hex(value)}
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        import base64

        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list | tuple):
        out = []
        for i, item in enumerate(value):
            try:
                out.append(_tagged(item, depth + 1))
            except _Unstorable as exc:
                exc.path.insert(0, i)
                raise
        return {"$tuple": out} if isinstance(value, tuple) else out
    if isinstance(value, dict):
        items = {}
        for key, item in value.items():
            if not isinstance(key, str):
                kind = f"{type(key).__module__}.{type(key).__qualname__}"
                raise _Unstorable(
                    value,
                    f"has the key {key!r} ({kind}), and JSON keys must be strings",
                    "use str keys (e.g. {str(k): v for k, v in d.items()})",
                )
            try:
                items[key] = _tagged(item, depth + 1)
            except _Unstorable as exc:
                exc.path.insert(0, key)
                raise
        if len(items) == 1 and next(iter(items)) in _TAGS:
            return {"$dict": items}  # a user's dict that would read back as a tag
        return items
    raise _Unstorable(value, f"is {_describe(value)}", _fix_hint(value))


def stores_as_one_document(value: Any) -> bool:
    """Whether :func:`encode` stores ``value`` as one JSON document (``json``/``tagged-json``).

    A step's returned dict that is not (it holds a model, a frame, an array) is stored key by
    key, so that each part gets the codec it needs.
    """
    if _plain_json(value, 0):
        return True
    if isinstance(value, bytes) or not isinstance(value, list | tuple | dict):
        return False
    try:
        _tagged(value, 0)
    except _Unstorable:
        return False
    return True


def _float_tag(value: float) -> str:
    # one spelling per value: every NaN (any sign or payload) is "nan"
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _untagged(value: Any) -> Any:
    """Undo :func:`_tagged` on what orjson read."""
    if isinstance(value, list):
        return [_untagged(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "$float":
            return float(inner)
        if tag == "$tuple":
            return tuple(_untagged(v) for v in inner)
        if tag == "$bytes":
            import base64

            return base64.b64decode(inner)
        if tag == "$int":
            return int(inner, 16)
        if tag == "$dict":
            return {k: _untagged(v) for k, v in inner.items()}
    return {k: _untagged(v) for k, v in value.items()}


def _is_numpy_scalar(value: Any) -> bool:
    """A numpy bool, integer or float scalar (``accuracy_score`` returns a numpy.float64)."""
    if type(value).__module__ != "numpy":
        return False
    import numpy as np

    return isinstance(value, np.bool_ | np.integer | np.float16 | np.float32 | np.float64)


def _mro_names(cls: type) -> set[str]:
    return {f"{c.__module__}.{c.__qualname__}" for c in getattr(cls, "__mro__", (cls,))}


def _is_numpy(value: Any) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


_PANDAS_FRAME = {"pandas.core.frame.DataFrame", "pandas.DataFrame"}
_PANDAS_SERIES = {"pandas.core.series.Series", "pandas.Series"}
_POLARS_FRAME = {"polars.dataframe.frame.DataFrame", "polars.DataFrame"}


def _is_pandas_frame(value: Any) -> bool:
    return bool(_mro_names(type(value)) & _PANDAS_FRAME)


def _is_pandas_series(value: Any) -> bool:
    return bool(_mro_names(type(value)) & _PANDAS_SERIES)


def _is_polars_frame(value: Any) -> bool:
    return bool(_mro_names(type(value)) & _POLARS_FRAME)


def _is_sklearn(value: Any) -> bool:
    return "sklearn.base.BaseEstimator" in _mro_names(type(value))


def _is_model_version(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "ModelVersion" and cls.__module__.startswith("modelyard.registry")


def _whole_only(value: Any) -> bool:
    """Stored by a codec of its own, so only as a whole output, never inside a list or dict."""
    return (
        _is_numpy(value)
        or _is_pandas_frame(value)
        or _is_pandas_series(value)
        or _is_polars_frame(value)
        or _is_sklearn(value)
        or _is_model_version(value)
    )


def _describe(value: Any) -> str:
    cls = type(value)
    if callable(value) and getattr(value, "__name__", "") == "<lambda>":
        return "a lambda (builtins.function)"
    return f"a {cls.__module__}.{cls.__qualname__}"


def _fix_hint(value: Any) -> str:
    if _whole_only(value):
        return (
            "arrays, frames, series and models are stored only as a whole output: return it as "
            "the step's value or as an item of the tuple or dict it returns (each item is "
            "stored on its own), or convert it (e.g. .tolist())"
        )
    if isinstance(value, bytearray | memoryview):
        return "convert it with bytes(...)"
    return (
        "convert it to None, bool, int, float, str, bytes, or a list, tuple or dict (str keys) "
        "of those"
    )


def encode(
    value: Any, *, step: str, trust: bool = False, where: str = "output"
) -> tuple[str, bytes]:
    """Serialise one output of ``step``; return ``(codec, bytes)``.

    Args:
        value: what the step returned (or one item of the tuple or dict it returned).
        step: the step's name, for error messages.
        trust: store what no other codec fits with pickle instead of failing.
        where: how error messages name ``value`` (``'output["model"]'`` for one item).

    Raises:
        PipelineError: no serializer fits the value; names the step, the offending type and
            where it sits inside ``value`` (``output["model"]["weights"][3] is a Foo``).
    """
    if _plain_json(value, 0):
        # numpy scalars are written as JSON numbers and booleans (and read back as Python ones)
        return _orjson_dumps("json", value, value=value, step=step, trust=trust, where=where)
    if isinstance(value, bytes):
        return "bytes", bytes(value)
    if isinstance(value, list | tuple | dict | int | float) or _is_numpy_scalar(value):
        try:
            tree = _tagged(value, 0)
        except _Unstorable as exc:
            if trust:
                return _pickle(value, step)
            raise _unstorable_error(exc, step, where) from None
        return _orjson_dumps(_TAGGED, tree, value=value, step=step, trust=trust, where=where)
    if _is_numpy(value):
        import numpy as np

        if value.dtype.hasobject:
            return _pickle_or_fail(value, step, trust, "a numpy array of Python objects")
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return "npy", buf.getvalue()
    if _is_pandas_frame(value):
        buf = io.BytesIO()
        try:
            value.to_parquet(buf, engine="pyarrow", index=True)
        except Exception as exc:  # pyarrow raises several types for unsupported columns
            if trust:
                return _pickle(value, step)
            raise PipelineError(
                f"step {step!r} returned a pandas DataFrame that Parquet cannot store: {exc}",
                hint="convert object columns to str/numbers, or declare @step(trust=True)",
                step=step,
            ) from exc
        return "pandas", buf.getvalue()
    if _is_pandas_series(value):
        return _encode_series(value, step, trust)
    if _is_polars_frame(value):
        buf = io.BytesIO()
        value.write_parquet(buf)
        return "polars", buf.getvalue()
    if _is_model_version(value):
        import orjson

        return "version", orjson.dumps({"name": value.name, "version": int(value.version)})
    if _is_sklearn(value):
        return "model", _save_model(value, step, trust)
    return _pickle_or_fail(value, step, trust, None)


def _orjson_dumps(
    codec: str, tree: Any, *, value: Any, step: str, trust: bool, where: str
) -> tuple[str, bytes]:
    import orjson

    try:
        return codec, orjson.dumps(tree, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as exc:  # orjson.JSONEncodeError: a str with lone surrogates, say
        if trust:
            return _pickle(value, step)
        raise PipelineError(
            f"step {step!r} returned a value modelyard cannot store between steps: "
            f"JSON cannot hold {where}: {exc}",
            hint=f"convert the offending part (a str with lone surrogates, say); {_TRUST_HINT}",
            step=step,
        ) from exc


def _unstorable_error(exc: _Unstorable, step: str, where: str) -> PipelineError:
    path = where + "".join(f"[{p}]" if isinstance(p, int) else f"[{_quote(p)}]" for p in exc.path)
    cls = type(exc.value)
    return PipelineError(
        f"step {step!r} returned a value modelyard cannot store between steps: {path} {exc.why}",
        hint=f"{exc.hint}; {_TRUST_HINT}",
        step=step,
        type=f"{cls.__module__}.{cls.__qualname__}",
        path=path,
    )


def _quote(key: str) -> str:
    import json

    return json.dumps(key, ensure_ascii=False)


_SERIES_COLUMN = "modelyard:series"
_SERIES_META = b"modelyard.series"


def _encode_series(value: Any, step: str, trust: bool) -> tuple[str, bytes]:
    import numpy as np

    try:
        meta: dict[str, Any] = {"name": _tagged(value.name, 0)}
    except _Unstorable:
        if trust:
            return _pickle(value, step)
        raise PipelineError(
            f"step {step!r} returned a pandas Series named {value.name!r} "
            f"({type(value.name).__module__}.{type(value.name).__qualname__}), which "
            "modelyard cannot store between steps",
            hint=f"rename it to a str, a number or a tuple of those (series.rename(...)); "
            f"{_TRUST_HINT}",
            step=step,
        ) from None
    if isinstance(value.dtype, np.dtype):  # Parquet reads object as str, datetime64[s] as [ms]
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
        if trust:
            return _pickle(value, step)
        raise PipelineError(
            f"step {step!r} returned a pandas Series that Parquet cannot store: {exc}",
            hint=f"convert an object Series to str or numbers (series.astype(str)); {_TRUST_HINT}",
            step=step,
        ) from exc
    return "series", buf.getvalue()


def _decode_series(data: bytes) -> Any:
    import numpy as np
    import orjson
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    meta = orjson.loads((table.schema.metadata or {})[_SERIES_META])
    series = table.to_pandas()[_SERIES_COLUMN]
    series.name = _untagged(meta["name"])
    if "dtype" in meta and series.dtype != np.dtype(meta["dtype"]):
        series = series.astype(np.dtype(meta["dtype"]))
    return series


def _pickle_or_fail(value: Any, step: str, trust: bool, what: str | None) -> tuple[str, bytes]:
    if trust:
        return _pickle(value, step)
    cls = type(value)
    raise PipelineError(
        f"step {step!r} returned {what or _describe(value)}, which modelyard cannot store "
        "between steps",
        hint="return a JSON-able value (NaN, tuples and bytes included), a numpy array, a "
        f"pandas/polars DataFrame, a pandas Series or a model; {_TRUST_HINT}",
        step=step,
        type=f"{cls.__module__}.{cls.__qualname__}",
    )


def _pickle(value: Any, step: str) -> tuple[str, bytes]:
    import pickle

    try:
        return "pickle", pickle.dumps(value, protocol=5)
    except Exception as exc:  # pickle raises TypeError, PicklingError, AttributeError...
        cls = type(value)
        raise PipelineError(
            f"step {step!r} returned a {cls.__module__}.{cls.__qualname__} that even pickle "
            f"cannot store: {exc}",
            hint="return data (arrays, frames, JSON) rather than live objects such as files "
            "or lambdas",
            step=step,
        ) from exc


def _save_model(value: Any, step: str, trust: bool) -> bytes:
    import tarfile
    import tempfile
    from pathlib import Path

    try:
        from modelyard import models
    except ImportError as exc:  # pragma: no cover - the registry package is part of modelyard
        raise PipelineError(
            f"step {step!r} returned a model but modelyard.models is missing"
        ) from exc
    with tempfile.TemporaryDirectory(prefix="modelyard-step-") as tmp:
        pkg = Path(tmp) / "package"
        models.save(value, pkg, name=step, trust_pickle=trust)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path in sorted(p for p in pkg.rglob("*") if p.is_file()):
                info = tar.gettarinfo(str(path), arcname=path.relative_to(pkg).as_posix())
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
        return buf.getvalue()


def decode(codec: str, data: bytes, *, trust: bool = False) -> Any:
    """Load a value written by :func:`encode`.

    Raises:
        UnsafeArtifactError: a pickled value and ``trust`` is False.
        PipelineError: an unknown codec.
    """
    if codec == "json":  # also what stores written before tagged-json hold: tuples as lists
        import orjson

        return orjson.loads(data)
    if codec == _TAGGED:
        import orjson

        return _untagged(orjson.loads(data))
    if codec == "bytes":
        return bytes(data)
    if codec == "npy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if codec == "pandas":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    if codec == "series":
        return _decode_series(data)
    if codec == "polars":
        import polars as pl

        return pl.read_parquet(io.BytesIO(data))
    if codec == "version":
        import orjson

        return orjson.loads(data)
    if codec == "model":
        return _load_model(data, trust)
    if codec == "pickle":
        if not trust:
            raise UnsafeArtifactError(
                "this step output was stored with pickle; loading it can run arbitrary code",
                hint="declare the consuming step with @step(trust=True) if you trust this store",
            )
        import pickle

        return pickle.loads(data)
    raise PipelineError(f"unknown serializer {codec!r} for a stored step output")


def _load_model(data: bytes, trust: bool) -> Any:
    import shutil
    import tarfile
    import tempfile
    from pathlib import Path

    from modelyard import models

    tmp = Path(tempfile.mkdtemp(prefix="modelyard-model-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            tar.extractall(tmp, filter="data")
        # the package is one this pipeline wrote, read back by its verified sha256: its skops
        # types are trusted (pickle still needs the step's trust=True)
        loaded = models.load(tmp, trust_pickle=trust, trusted=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # a step wants the estimator its upstream step returned, not the package wrapper
    return getattr(loaded, "raw", loaded)


# ---------------------------------------------------------------- static checks on annotations
_WHOLE_ONLY_NAMES = (
    {"numpy.ndarray", "sklearn.base.BaseEstimator"} | _PANDAS_FRAME | _PANDAS_SERIES | _POLARS_FRAME
)
_OK_NAMES = {"builtins.bytes", "builtins.float", "builtins.int", "builtins.str", "builtins.tuple"}
_BAD_NAMES = {
    "builtins.set",  # no codec but pickle stores a set (JSON has none)
    "builtins.frozenset",
    "builtins.bytearray",
    "builtins.memoryview",
    "collections.abc.Callable",
    "collections.abc.Iterator",
    "collections.abc.Generator",
    "collections.abc.AsyncIterator",
    "typing.IO",
    "typing.TextIO",
    "typing.BinaryIO",
    "io.IOBase",
    "io.TextIOWrapper",
    "io.BufferedReader",
    "io.BufferedWriter",
    "_io.TextIOWrapper",
    "_io.BufferedReader",
    "_io.BufferedWriter",
    "_io._IOBase",
    "types.ModuleType",
    "types.FunctionType",
    "types.LambdaType",
    "types.GeneratorType",
    "socket.socket",
    "_thread.lock",
    "_thread.RLock",
    "threading.Thread",
    "sqlite3.Connection",
}


def check_annotation(ann: Any, *, trust: bool = False) -> str | None:
    """Return a description of the type in ``ann`` that no serializer can store, else None.

    Unknown classes pass (the value is checked again at run time); known-unstorable types (files,
    callables, generators, modules, locks, sockets, connections, sets) fail unless ``trust`` is
    set, and so do arrays, frames, series and models where :func:`encode` would meet them inside
    a list or dict (``dict[str, list[numpy.ndarray]]``), not as a whole output or an item of the
    tuple or dict a step returns. ``bytes``, ``float`` (NaN included) and tuples at any depth pass.
    """
    if trust:
        return None
    return _check(ann, 0)


def _check(ann: Any, level: int) -> str | None:
    """``level`` 0: the step's return; 1: what :func:`encode` may get whole (the return, or an
    item of a returned tuple/dict, or of a list when the step declares ``outputs=``); 2+: inside
    a JSON value."""
    import types
    import typing

    if ann is typing.Any or ann is None or ann is type(None):
        return None
    origin = typing.get_origin(ann)
    if origin is not None:
        args = [a for a in typing.get_args(ann) if a is not Ellipsis]
        if origin in (typing.Union, types.UnionType):
            inner = level
        elif origin in (tuple, list, dict):
            inner = 1 if level == 0 else level + 1
        elif origin is typing.Literal:
            return None
        else:
            args, inner = [], level
            ann = origin
        for arg in args:
            problem = _check(arg, inner)
            if problem:
                return problem
        if origin in (typing.Union, types.UnionType, tuple, list, dict):
            return None
    if not isinstance(ann, type):
        return None
    names = _mro_names(ann)
    name = f"{ann.__module__}.{ann.__qualname__}"
    if names & _WHOLE_ONLY_NAMES:
        return f"{name} inside a list or dict" if level > 1 else None
    if names & _OK_NAMES:
        return None
    if names & _BAD_NAMES or name in _BAD_NAMES:
        return name
    return None
