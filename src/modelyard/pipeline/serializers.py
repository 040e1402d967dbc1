"""Serializers for values passed between steps, chosen by type, all safe to load by default.

=========  ==========================================  =================================
codec      values                                      bytes
=========  ==========================================  =================================
json       None, bool, int, float, str, lists, dicts   orjson (numpy scalars as numbers)
npy        numpy arrays (not object dtype)             ``.npy``, ``allow_pickle=False``
pandas     pandas DataFrames                           Parquet (pyarrow)
polars     polars DataFrames                           Parquet
model      scikit-learn estimators (and other          a tar of the model package written
           models ``modelyard.models.save`` knows)     by ``modelyard.models.save``
version    a registered model version                  JSON ``{"name", "version"}``
pickle     anything else, only with ``trust=True``     pickle protocol 5
=========  ==========================================  =================================

Heavy libraries are imported only for values that need them: type checks go by module name.
"""

from __future__ import annotations

import io
import math
from typing import Any

from modelyard.errors import PipelineError, UnsafeArtifactError

__all__ = ["check_annotation", "decode", "encode", "is_jsonable"]

_JSON_SCALARS = (str, int, float, bool, type(None))


def is_jsonable(value: Any, _depth: int = 0) -> bool:
    """True when ``value`` round-trips through JSON (tuples count, as lists)."""
    return _jsonable(value, _depth, numpy_scalars=False)


def _jsonable(value: Any, depth: int, *, numpy_scalars: bool) -> bool:
    if depth > 100:
        return False
    if numpy_scalars and _is_numpy_scalar(value):
        return math.isfinite(value) if isinstance(value, float) else True
    if isinstance(value, float):
        # a float subclass (numpy.float64) is not something orjson writes
        return type(value) is float and math.isfinite(value)
    if isinstance(value, _JSON_SCALARS):
        return True
    if isinstance(value, list | tuple):
        return all(_jsonable(v, depth + 1, numpy_scalars=numpy_scalars) for v in value)
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and _jsonable(v, depth + 1, numpy_scalars=numpy_scalars)
            for k, v in value.items()
        )
    return False


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
_POLARS_FRAME = {"polars.dataframe.frame.DataFrame", "polars.DataFrame"}


def _is_pandas_frame(value: Any) -> bool:
    return bool(_mro_names(type(value)) & _PANDAS_FRAME)


def _is_polars_frame(value: Any) -> bool:
    return bool(_mro_names(type(value)) & _POLARS_FRAME)


def _is_sklearn(value: Any) -> bool:
    return "sklearn.base.BaseEstimator" in _mro_names(type(value))


def _is_model_version(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "ModelVersion" and cls.__module__.startswith("modelyard.registry")


def encode(value: Any, *, step: str, trust: bool = False) -> tuple[str, bytes]:
    """Serialise one output of ``step``; return ``(codec, bytes)``.

    Raises:
        PipelineError: no serializer fits the value's type; names the step and the type.
    """
    if _jsonable(value, 0, numpy_scalars=True):
        import orjson

        # numpy scalars are written as JSON numbers and booleans (and read back as Python ones)
        return "json", orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
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
                return _pickle(value)
            raise PipelineError(
                f"step {step!r} returned a pandas DataFrame that Parquet cannot store: {exc}",
                hint="convert object columns to str/numbers, or declare @step(trust=True)",
                step=step,
            ) from exc
        return "pandas", buf.getvalue()
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


def _pickle_or_fail(value: Any, step: str, trust: bool, what: str | None) -> tuple[str, bytes]:
    if trust:
        return _pickle(value)
    cls = type(value)
    name = what or f"{cls.__module__}.{cls.__qualname__}"
    if callable(value) and getattr(value, "__name__", "") == "<lambda>":
        name = "a lambda (builtins.function)"
    raise PipelineError(
        f"step {step!r} returned {name}, which modelyard cannot store between steps",
        hint="return a JSON-able value, a numpy array, a pandas/polars DataFrame or a model; "
        "or declare @step(trust=True) to store it with pickle",
        step=step,
        type=f"{cls.__module__}.{cls.__qualname__}",
    )


def _pickle(value: Any) -> tuple[str, bytes]:
    import pickle

    try:
        return "pickle", pickle.dumps(value, protocol=5)
    except Exception as exc:  # pickle raises TypeError, PicklingError, AttributeError...
        cls = type(value)
        raise PipelineError(
            f"a step output of type {cls.__module__}.{cls.__qualname__} cannot be pickled: {exc}",
            hint="return data (arrays, frames, JSON) rather than live objects such as files",
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
    if codec == "json":
        import orjson

        return orjson.loads(data)
    if codec == "npy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if codec == "pandas":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
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
_OK_NAMES = {"numpy.ndarray", "sklearn.base.BaseEstimator"} | _PANDAS_FRAME | _POLARS_FRAME
_BAD_NAMES = {
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
    callables, generators, modules, locks, sockets, connections) fail unless ``trust`` is set.
    """
    import typing

    if trust or ann is typing.Any or ann is None or ann is type(None):
        return None
    origin = typing.get_origin(ann)
    if origin is not None:
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) or origin in (
            tuple,
            list,
            dict,
            set,
        ):
            for arg in typing.get_args(ann):
                if arg is Ellipsis:
                    continue
                problem = check_annotation(arg)
                if problem:
                    return problem
            return None
        if origin is typing.Literal:
            return None
        ann = origin
    if not isinstance(ann, type):
        return None
    names = _mro_names(ann)
    if names & _OK_NAMES:
        return None
    bad = names & _BAD_NAMES
    if bad or f"{ann.__module__}.{ann.__qualname__}" in _BAD_NAMES:
        return f"{ann.__module__}.{ann.__qualname__}"
    return None
