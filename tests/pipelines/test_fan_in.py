"""Fan-in: a list, tuple or dict of step outputs passed as one input."""

from __future__ import annotations

from typing import Any

import pytest

import modelyard
from modelyard.errors import InvalidInputError


@modelyard.step
def source(n: int) -> int:
    return n


@modelyard.step
def branch(x: int, i: int) -> int:
    return x * 10 + i


@modelyard.step
def gather(parts: list[int], pair: tuple[int, int], named: dict[str, int]) -> dict[str, Any]:
    return {
        "parts": parts,
        "parts_type": type(parts).__name__,
        "pair": list(pair),
        "pair_type": type(pair).__name__,
        "named": named,
    }


@modelyard.pipeline
def fan(n: int = 1, width: int = 4, bump: int = 0) -> Any:
    x = source(n)
    parts = [branch(x, i=i + (bump if i == 1 else 0)) for i in range(width)]
    return gather(parts, pair=(parts[0], parts[-1]), named={"first": parts[0], "last": parts[-1]})


def test_the_values_arrive_in_their_container_and_order(sqlite_settings: Any) -> None:
    result = fan.run(settings=sqlite_settings, width=4)
    assert result.status == "FINISHED"
    out = result.output()
    assert out["parts"] == [10, 11, 12, 13]
    assert out["parts_type"] == "list"
    assert out["pair"] == [10, 13]
    assert out["pair_type"] == "tuple"
    assert out["named"] == {"first": 10, "last": 13}


def test_fan_in_is_cached_and_one_changed_branch_reruns_only_what_depends_on_it(
    sqlite_settings: Any,
) -> None:
    fan.run(settings=sqlite_settings)
    again = fan.run(settings=sqlite_settings)
    assert again.ran == []
    changed = fan.run(settings=sqlite_settings, bump=5)  # only the second branch's parameter
    assert sorted(changed.ran) == ["branch_2", "gather"]
    assert changed.output()["parts"] == [10, 16, 12, 13]
    wider = fan.run(settings=sqlite_settings, bump=5, width=5)  # one more input to gather
    assert sorted(wider.ran) == ["branch_5", "gather"]
    assert wider.output()["named"] == {"first": 10, "last": 14}


def test_the_order_of_gathered_inputs_is_part_of_the_cache_key(sqlite_settings: Any) -> None:
    @modelyard.step
    def first(parts: list[int]) -> int:
        return parts[0]

    @modelyard.pipeline
    def ordered(reverse: bool = False) -> Any:
        parts = [source(1), source(2)]
        return first(parts[::-1] if reverse else parts)

    assert ordered.run(settings=sqlite_settings).output() == 1
    flipped = ordered.run(settings=sqlite_settings, reverse=True)
    assert flipped.ran == ["first"]
    assert flipped.output() == 2


def test_mixing_step_outputs_and_constants_names_the_input_and_the_line() -> None:
    @modelyard.step
    def total(parts: list[int]) -> int:
        return sum(parts)

    @modelyard.pipeline
    def mixed() -> Any:
        return total([source(1), 2])

    with pytest.raises(InvalidInputError) as info:
        mixed.build()
    message = info.value.message
    assert "input 'parts' of step 'total'" in message
    assert "mixes step outputs with other values" in message
    assert f"{__file__}:" in message
