"""JSON codecs: ``json`` (plain values, the fast path), ``tagged-json`` (NaN, tuples, bytes and
big ints as one-key tag objects) and ``bytes``.

``tagged-json`` writes ``{"$float": "nan" | "inf" | "-inf"}``, ``{"$tuple": [...]}``,
``{"$bytes": base64}`` and ``{"$int": hex}``; a dict of the value whose only key is one of these
tags is wrapped as ``{"$dict": {...}}``. Values that plain ``json`` can hold never use it, so the
fast path and the bytes of existing cache entries are unchanged; ``json`` entries written before
tuples were kept (nested tuples as lists) still decode as lists. Every encoding is a function of
the value alone (dict order as inserted, one spelling of NaN), so the same value has the same
bytes, and so the same fingerprint, in every process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from modelyard.pipelines.codecs._base import TRUST_HINT, CannotStore, Target, describe, type_name

__all__ = [
    "BytesCodec",
    "JsonCodec",
    "TaggedJsonCodec",
    "is_jsonable",
    "plain_json",
    "stores_as_one_document",
    "tagged",
    "untagged",
]

_JSON_SCALARS = (str, int, float, bool, type(None))
_MAX_DEPTH = 100
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # the integers orjson writes as numbers
_TAGS = frozenset({"$float", "$tuple", "$bytes", "$int", "$dict"})


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


def plain_json(value: Any, depth: int) -> bool:
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
    if is_numpy_scalar(value):
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
        return all(plain_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain_json(v, depth + 1) for k, v in value.items())
    return False


class _Unstorable(Exception):
    """The first part of a value JSON cannot hold; ``path`` (keys, indexes) is filled in while
    the walk unwinds, so building it costs nothing unless something is wrong. ``hint`` None:
    the codec's ``hint_for`` says what to do with ``value``."""

    def __init__(self, value: Any, why: str, hint: str | None) -> None:
        super().__init__(why)
        self.value = value
        self.why = why
        self.hint = hint
        self.path: list[str | int] = []


def tagged(value: Any, depth: int) -> Any:
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
    if is_numpy_scalar(value):
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
                out.append(tagged(item, depth + 1))
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
                items[key] = tagged(item, depth + 1)
            except _Unstorable as exc:
                exc.path.insert(0, key)
                raise
        if len(items) == 1 and next(iter(items)) in _TAGS:
            return {"$dict": items}  # a user's dict that would read back as a tag
        return items
    raise _Unstorable(value, f"is {describe(value)}", None)


def stores_as_one_document(value: Any) -> bool:
    """Whether ``encode`` stores ``value`` as one JSON document (``json``/``tagged-json``).

    A step's returned dict that is not (it holds a model, a frame, an array) is stored key by
    key, so that each part gets the codec it needs.
    """
    if plain_json(value, 0):
        return True
    if isinstance(value, bytes) or not isinstance(value, list | tuple | dict):
        return False
    try:
        tagged(value, 0)
    except _Unstorable:
        return False
    return True


def _float_tag(value: float) -> str:
    # one spelling per value: every NaN (any sign or payload) is "nan"
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def untagged(value: Any) -> Any:
    """Undo :func:`_tagged` on what orjson read."""
    if isinstance(value, list):
        return [untagged(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "$float":
            return float(inner)
        if tag == "$tuple":
            return tuple(untagged(v) for v in inner)
        if tag == "$bytes":
            import base64

            return base64.b64decode(inner)
        if tag == "$int":
            return int(inner, 16)
        if tag == "$dict":
            return {k: untagged(v) for k, v in inner.items()}
    return {k: untagged(v) for k, v in value.items()}


def is_numpy_scalar(value: Any) -> bool:
    """A numpy bool, integer or float scalar (``accuracy_score`` returns a numpy.float64)."""
    if type(value).__module__ != "numpy":
        return False
    import numpy as np

    return isinstance(value, np.bool_ | np.integer | np.float16 | np.float32 | np.float64)


def _orjson(tree: Any, target: Target, value: Any) -> bytes:
    import orjson

    try:
        return orjson.dumps(tree, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as exc:  # orjson.JSONEncodeError: a str with lone surrogates, say
        raise CannotStore(
            f"step {target.step!r} returned a value modelyard cannot store between steps: "
            f"JSON cannot hold {target.where}: {exc}",
            hint=f"convert the offending part (a str with lone surrogates, say); {TRUST_HINT}",
        ) from exc


class JsonCodec:
    """``json``: what orjson writes and reads back exactly (numpy scalars as numbers)."""

    name = "json"
    whole_only = False
    type_names: frozenset[str] = frozenset()

    def accepts(self, value: Any) -> bool:
        return plain_json(value, 0)

    def encode(self, value: Any, target: Target) -> bytes:
        return _orjson(value, target, value)

    def decode(self, data: bytes, *, trust: bool) -> Any:
        import orjson

        return orjson.loads(data)  # also what older stores hold: tuples as lists


class BytesCodec:
    """``bytes``: the bytes themselves."""

    name = "bytes"
    whole_only = False
    type_names: frozenset[str] = frozenset()

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bytes)

    def encode(self, value: Any, target: Target) -> bytes:
        return bytes(value)

    def decode(self, data: bytes, *, trust: bool) -> Any:
        return bytes(data)


class TaggedJsonCodec:
    """``tagged-json``: lists, tuples, dicts and numbers plain JSON cannot hold exactly.

    Args:
        hint_for: what to suggest for a part no JSON can hold (the registry knows which values
            another codec stores whole).
    """

    name = "tagged-json"
    whole_only = False
    type_names: frozenset[str] = frozenset()

    def __init__(self, hint_for: Callable[[Any], str]) -> None:
        self.hint_for = hint_for

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list | tuple | dict | int | float) or is_numpy_scalar(value)

    def encode(self, value: Any, target: Target) -> bytes:
        try:
            tree = tagged(value, 0)
        except _Unstorable as exc:
            path = target.where + "".join(
                f"[{p}]" if isinstance(p, int) else f"[{_quote(p)}]" for p in exc.path
            )
            hint = exc.hint if exc.hint is not None else self.hint_for(exc.value)
            raise CannotStore(
                f"step {target.step!r} returned a value modelyard cannot store between steps: "
                f"{path} {exc.why}",
                hint=f"{hint}; {TRUST_HINT}",
                type=type_name(exc.value),
                path=path,
            ) from None
        return _orjson(tree, target, value)

    def decode(self, data: bytes, *, trust: bool) -> Any:
        import orjson

        return untagged(orjson.loads(data))


def _quote(key: str) -> str:
    import json

    return json.dumps(key, ensure_ascii=False)
