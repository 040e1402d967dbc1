"""Codecs for values passed between steps: a small protocol and an ordered registry.

===========  ========================================  ====================================
codec        values                                    bytes
===========  ========================================  ====================================
json         None, bool, int, float, str, lists and    orjson (numpy scalars as numbers);
             dicts of them (finite floats, no tuple    the same bytes as ever, so cache
             below the top)                            fingerprints do not move
bytes        ``bytes``                                 the bytes themselves
tagged-json  the same plus NaN/±inf, tuples at any     orjson, each special value as a
             depth, bytes and ints past 64 bits        one-key object (:mod:`._json`)
npy          numpy arrays (not object dtype)           ``.npy``, ``allow_pickle=False``
pandas       pandas DataFrames                         Parquet (pyarrow)
series       pandas Series                             Parquet of a one-column frame; name
                                                       and numpy dtype in its metadata
polars       polars DataFrames                         Parquet
version      a registered model version                JSON ``{"name", "version"}``
model        scikit-learn estimators (and other        a tar of the model package written
             models ``modelyard.models.save`` knows)   by ``modelyard.models.save``
pickle       anything else, only with ``trust=True``   pickle protocol 5
===========  ========================================  ====================================

:func:`encode` asks each codec of :data:`REGISTRY`, in order, whether it ``accepts`` the value
and uses the first that does; a codec that accepts a value but cannot store it (a DataFrame
Parquet refuses) raises :class:`CannotStore`, and so does a value no codec accepts: with
``trust`` the value is pickled instead, else the step fails naming the value and what to do.
:func:`decode` finds the codec by the name recorded in the output's ref. A codec is any object
with the :class:`Codec` protocol; :func:`register` adds one ahead of the built-in ones.
"""

from __future__ import annotations

from typing import Any

from modelyard.errors import PipelineError
from modelyard.pipelines.codecs._arrays import (
    NpyCodec,
    PandasCodec,
    PolarsCodec,
    SeriesCodec,
    not_storable,
)
from modelyard.pipelines.codecs._base import CannotStore, Codec, Target, describe
from modelyard.pipelines.codecs._json import BytesCodec, JsonCodec, TaggedJsonCodec
from modelyard.pipelines.codecs._models import ModelCodec, VersionCodec
from modelyard.pipelines.codecs._pickle import PickleCodec

__all__ = [
    "REGISTRY",
    "CannotStore",
    "Codec",
    "Target",
    "codec_named",
    "decode",
    "encode",
    "register",
    "stored_whole",
    "unregister",
]


def stored_whole(value: Any) -> bool:
    """Whether a codec stores ``value`` only as a whole output (an array, a frame, a model)."""
    return any(c.whole_only and c.accepts(value) for c in REGISTRY)


def _hint_for(value: Any) -> str:
    """What to do with a part of a JSON value that JSON cannot hold."""
    if stored_whole(value):
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


PICKLE = PickleCodec()

#: The codecs :func:`encode` tries, in order (pickle is the fallback, not in the list).
REGISTRY: list[Codec] = [
    JsonCodec(),
    BytesCodec(),
    TaggedJsonCodec(hint_for=_hint_for),
    NpyCodec(),
    PandasCodec(),
    SeriesCodec(),
    PolarsCodec(),
    VersionCodec(),
    ModelCodec(),
]
_BY_NAME: dict[str, Codec] = {c.name: c for c in [*REGISTRY, PICKLE]}
_BUILT_IN = tuple(_BY_NAME.values())


def register(codec: Codec) -> None:
    """Add ``codec`` ahead of the built-in codecs (its values no longer reach them).

    Raises:
        PipelineError: a codec with that name is registered already (a name stored in refs
            must keep one meaning).
    """
    if codec.name in _BY_NAME:
        raise PipelineError(
            f"a codec named {codec.name!r} is registered already",
            hint="give the codec a name of its own; stored outputs record it",
        )
    REGISTRY.insert(0, codec)
    _BY_NAME[codec.name] = codec


def unregister(name: str) -> None:
    """Remove a codec added with :func:`register` (the built-in ones stay)."""
    codec = _BY_NAME.get(name)
    if codec is None or codec in _BUILT_IN:
        return
    REGISTRY.remove(codec)
    del _BY_NAME[name]


def codec_named(name: str) -> Codec:
    """The codec recorded as ``name`` in a stored output's ref.

    Raises:
        PipelineError: no such codec.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise PipelineError(f"unknown serializer {name!r} for a stored step output") from None


def encode(
    value: Any, *, step: str, trust: bool = False, where: str = "output"
) -> tuple[str, bytes]:
    """Serialise one output of ``step``; return ``(codec name, bytes)``.

    Args:
        value: what the step returned (or one item of the tuple or dict it returned).
        step: the step's name, for error messages.
        trust: store what no other codec fits with pickle instead of failing.
        where: how error messages name ``value`` (``'output["model"]'`` for one item).

    Raises:
        PipelineError: no codec fits the value; names the step, the offending type and where
            it sits inside ``value`` (``output["model"]["weights"][3] is a Foo``).
    """
    target = Target(step=step, where=where, trust=trust)
    try:
        codec = next((c for c in REGISTRY if c.accepts(value)), None)
        if codec is None:
            raise not_storable(value, target, describe(value))
        return codec.name, codec.encode(value, target)
    except CannotStore as exc:
        refused = exc
    if trust:
        try:
            return PICKLE.name, PICKLE.encode(value, target)
        except CannotStore as exc:
            refused = exc
    raise PipelineError(
        refused.message, hint=refused.hint, step=step, **refused.details
    ) from refused.__cause__


def decode(codec: str, data: bytes, *, trust: bool = False) -> Any:
    """Load a value written by :func:`encode` with the codec named ``codec``.

    Raises:
        UnsafeArtifactError: a pickled value and ``trust`` is False.
        PipelineError: an unknown codec.
    """
    return codec_named(codec).decode(data, trust=trust)
