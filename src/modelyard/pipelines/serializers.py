"""Values passed between steps: the codecs' entry points and the check of return annotations.

What each codec stores, and how a codec is added, is in :mod:`modelyard.pipelines.codecs`; this
module is the stable front the executors and the graph use. Heavy libraries are imported only
for values that need them: type checks go by module name.
"""

from __future__ import annotations

from typing import Any

from modelyard.pipelines.codecs import REGISTRY, decode, encode
from modelyard.pipelines.codecs._base import mro_names
from modelyard.pipelines.codecs._json import is_jsonable, stores_as_one_document

__all__ = ["check_annotation", "decode", "encode", "is_jsonable", "stores_as_one_document"]


def _whole_only_names() -> set[str]:
    """Classes that a codec stores only as a whole output (from the registry, not a list)."""
    return {name for c in REGISTRY if c.whole_only for name in c.type_names}


# ---------------------------------------------------------------- static checks on annotations
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
    names = mro_names(ann)
    name = f"{ann.__module__}.{ann.__qualname__}"
    if names & _whole_only_names():
        return f"{name} inside a list or dict" if level > 1 else None
    if names & _OK_NAMES:
        return None
    if names & _BAD_NAMES or name in _BAD_NAMES:
        return name
    return None
