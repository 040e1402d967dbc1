"""Codecs are a protocol with an ordered registry: a project adds its own, steps use it."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest

import modelyard
from modelyard.errors import PipelineError
from modelyard.pipelines import codecs
from modelyard.pipelines.codecs import Target


class FractionCodec:
    """Stores a Fraction as ``numerator/denominator`` text."""

    name = "fraction"
    whole_only = True
    type_names = frozenset({"fractions.Fraction"})

    def accepts(self, value: Any) -> bool:
        return isinstance(value, Fraction)

    def encode(self, value: Any, target: Target) -> bytes:
        return f"{value.numerator}/{value.denominator}".encode()

    def decode(self, data: bytes, *, trust: bool) -> Any:
        return Fraction(data.decode())


@pytest.fixture
def fraction_codec() -> Iterator[FractionCodec]:
    codec = FractionCodec()
    codecs.register(codec)
    yield codec
    codecs.unregister(codec.name)


@modelyard.step
def third(n: int) -> Fraction:
    return Fraction(1, n)


@modelyard.step
def double(x: Fraction) -> Fraction:
    return x * 2


@modelyard.pipeline
def fractions_flow(n: int = 3) -> Any:
    return double(third(n=n))


def test_a_registered_codec_stores_step_outputs(
    fraction_codec: FractionCodec, sqlite_settings: Any
) -> None:
    result = fractions_flow.run(settings=sqlite_settings, max_parallel=1)
    assert result["double"] == Fraction(2, 3)
    assert result.steps["third"].outputs["ref"]["codec"] == "fraction"  # type: ignore[index]
    again = fractions_flow.run(settings=sqlite_settings)
    assert again.cached == ["third", "double"]
    assert again.output() == Fraction(2, 3)


def test_without_the_codec_the_value_is_refused_naming_the_step(sqlite_settings: Any) -> None:
    with pytest.raises(PipelineError, match=r"step 'third'.*fractions\.Fraction"):
        fractions_flow.run(settings=sqlite_settings, n=4)


def test_a_codec_name_has_one_meaning(fraction_codec: FractionCodec) -> None:
    with pytest.raises(PipelineError, match="'fraction' is registered already"):
        codecs.register(FractionCodec())
    with pytest.raises(PipelineError, match="'json' is registered already"):
        codecs.register(type("Json", (FractionCodec,), {"name": "json"})())


def test_whole_only_types_come_from_the_registry(fraction_codec: FractionCodec) -> None:
    from modelyard.pipelines.serializers import check_annotation

    assert check_annotation(dict[str, list[Fraction]]) == "fractions.Fraction inside a list or dict"
    assert check_annotation(Fraction) is None
