"""Search spaces: what a sweep may set each pipeline parameter to, checked before any trial.

A space maps parameter names to one of three dimensions:

* :class:`FloatRange` ``(low, high, log=False, step=None)``,
* :class:`IntRange` ``(low, high, log=False, step=1)``,
* :class:`Choice` ``(values)``.

It is written in Python, in ``pyproject.toml`` and on the command line::

    space = {"C": FloatRange(1e-3, 10.0, log=True), "depth": IntRange(2, 8),
             "penalty": Choice(["l1", "l2"])}

    [tool.modelyard.sweep.train.space]
    C = { low = 0.001, high = 10.0, log = true }   # float: a bound is a float (or type = "float")
    depth = { low = 2, high = 8 }                  # int: both bounds are ints
    penalty = ["l1", "l2"]                         # or { choices = ["l1", "l2"] }

    modelyard sweep mod:train --space C=float:0.001:10:log --space depth=int:2:8 \\
        --space penalty=choice:l1,l2

:func:`check_space` refuses, naming the parameter and what was expected: a name the pipeline
does not declare, a dimension whose values do not fit the parameter's type (a float range for an
``int`` parameter, a string choice for a ``float`` one), empty ranges or choices, a log range
that reaches zero, and an empty space.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from modelyard.pipelines.graph import Pipeline

__all__ = [
    "Choice",
    "Dimension",
    "FloatRange",
    "IntRange",
    "check_space",
    "grid_points",
    "parse_dimension",
    "parse_space_option",
    "space_from_json",
    "space_to_json",
]

Scalar = bool | int | float | str | None


@dataclass(frozen=True)
class FloatRange:
    """Floats in ``[low, high]``; ``log`` samples the logarithm uniformly; ``step`` makes it
    discrete (``low, low + step, ...``)."""

    low: float
    high: float
    log: bool = False
    step: float | None = None


@dataclass(frozen=True)
class IntRange:
    """Integers in ``[low, high]`` (both included), every ``step``-th; ``log`` as for floats."""

    low: int
    high: int
    log: bool = False
    step: int = 1


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (scalars: bool, int, float, str or None)."""

    values: tuple[Scalar, ...]

    def __init__(self, values: Sequence[Scalar]) -> None:
        object.__setattr__(self, "values", tuple(values))


Dimension = FloatRange | IntRange | Choice


def _bad(name: str, message: str, hint: str, **details: Any) -> InvalidInputError:
    return InvalidInputError(
        f"search space: parameter {name!r}: {message}", hint=hint, param=name, **details
    )


_CLI_HINT = (
    "write NAME=float:LOW:HIGH[:log], NAME=int:LOW:HIGH[:log|:step=N] or NAME=choice:A,B,C "
    "(for example --space C=float:0.001:10:log)"
)


def _number(name: str, text: str, kind: type, source: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise _bad(
            name, f"{text!r} in {source} is not an {kind.__name__}", _CLI_HINT, value=text
        ) from None
    return value


def _choice_value(text: str) -> Scalar:
    """A choice written on the command line: a JSON scalar (1, 0.5, true, null) or a string."""
    import orjson

    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, bool | int | float | str) or value is None else text


def parse_space_option(text: str) -> tuple[str, Dimension]:
    """Parse one ``--space`` option: ``NAME=float:LOW:HIGH[:log]``, ``NAME=int:LOW:HIGH[:log]``
    (or ``:step=N``), ``NAME=choice:A,B,C``.

    Raises:
        InvalidInputError: the text does not follow one of these forms.
    """
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise InvalidInputError(f"--space {text!r} is not NAME=SPEC", hint=_CLI_HINT)
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    source = f"--space {text!r}"
    if kind == "choice":
        values = [_choice_value(v.strip()) for v in rest.split(",")] if rest.strip() else []
        return name, Choice(values)
    if kind not in ("float", "int"):
        raise _bad(name, f"unknown kind {kind!r} in {source}", _CLI_HINT)
    parts = rest.split(":")
    if len(parts) < 2:
        raise _bad(name, f"{source} needs LOW:HIGH", _CLI_HINT)
    number = float if kind == "float" else int
    low, high = (_number(name, p.strip(), number, source) for p in parts[:2])
    log, step = False, None
    for flag in (p.strip() for p in parts[2:]):
        if flag == "log":
            log = True
        elif flag.startswith("step="):
            step = _number(name, flag[5:], number, source)
        else:
            raise _bad(name, f"unknown flag {flag!r} in {source} (log or step=N)", _CLI_HINT)
    if kind == "float":
        return name, FloatRange(low, high, log=log, step=step)
    return name, IntRange(low, high, log=log, step=1 if step is None else step)


def parse_dimension(name: str, value: Any, *, source: str) -> Dimension:
    """One dimension from a TOML/JSON value: a list (choices), ``{choices = [...]}`` or
    ``{low, high, log, step, type}`` (``type`` ``"int"``/``"float"``; default ``int`` when both
    bounds are ints).

    Raises:
        InvalidInputError: anything else, naming ``source``.
    """
    hint = (
        f"in {source} write {name} = {{ low = 0.001, high = 10.0, log = true }}, "
        f'{name} = {{ low = 2, high = 8 }} or {name} = ["a", "b"]'
    )
    if isinstance(value, Dimension):
        return value
    if isinstance(value, list | tuple):
        return Choice(list(value))
    if not isinstance(value, Mapping):
        raise _bad(name, f"{value!r} in {source} is not a range or a list of choices", hint)
    known = {"low", "high", "log", "step", "type", "choices"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise _bad(name, f"unknown key(s) {', '.join(unknown)} in {source}", hint)
    if "choices" in value:
        choices = value["choices"]
        if not isinstance(choices, list | tuple):
            raise _bad(name, f"choices in {source} must be a list, got {choices!r}", hint)
        return Choice(list(choices))
    if "low" not in value or "high" not in value:
        raise _bad(name, f"{source} needs low and high (or choices)", hint)
    low, high = value["low"], value["high"]
    for bound in (low, high):
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise _bad(name, f"bound {bound!r} in {source} is not a number", hint, value=bound)
    kind = value.get("type") or (
        "int" if isinstance(low, int) and isinstance(high, int) else "float"
    )
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise _bad(name, f"log in {source} must be true or false, got {log!r}", hint)
    step = value.get("step")
    if kind == "float":
        return FloatRange(float(low), float(high), log=log, step=None if step is None else step)
    if kind == "int":
        if not (float(low).is_integer() and float(high).is_integer()):
            raise _bad(
                name, f"type = 'int' in {source} needs whole bounds, got {low}..{high}", hint
            )
        return IntRange(int(low), int(high), log=log, step=1 if step is None else step)
    raise _bad(name, f"type {kind!r} in {source} is not 'int' or 'float'", hint)


def _param_type(p: Pipeline, name: str) -> type | None:
    """The scalar type of a pipeline parameter: its annotation, else its default's type."""
    import typing

    param = p.signature().parameters.get(name)
    if param is None:
        return None
    try:
        ann = typing.get_type_hints(p.fn).get(name, inspect.Parameter.empty)
    except Exception:  # annotations we cannot resolve: fall back on the default's type
        ann = param.annotation
    members = [ann]
    if typing.get_origin(ann) is not None:
        members = [a for a in typing.get_args(ann) if a is not type(None)]
    scalars = [m for m in members if m in (bool, int, float, str)]
    if len(scalars) == 1 and len(members) == 1:
        return scalars[0]  # type: ignore[no-any-return]
    if ann is inspect.Parameter.empty and type(param.default) in (bool, int, float, str):
        return type(param.default)
    return None


def _a(kind: type) -> str:
    """``an int``, ``a float``, ``a str``, ``a bool``."""
    return f"an {kind.__name__}" if kind.__name__[0] in "aeiou" else f"a {kind.__name__}"


def _fits(value: Scalar, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _check_range(name: str, dim: FloatRange | IntRange, kind: type | None) -> Dimension:
    hint = f"give {name} a range low < high" + (", low > 0 for a log range" if dim.log else "")
    for bound in (dim.low, dim.high):
        if not math.isfinite(bound):
            raise _bad(name, f"bound {bound} is not a finite number", hint)
    if not dim.low < dim.high:
        raise _bad(name, f"empty range: low {dim.low} is not below high {dim.high}", hint)
    if dim.log and dim.low <= 0:
        raise _bad(name, f"a log range must stay above 0, got low {dim.low}", hint)
    step = dim.step
    if step is not None and (isinstance(step, bool) or not step > 0):
        raise _bad(name, f"step must be a positive number, got {step!r}", "use step = 1")
    if dim.log and step not in (None, 1):
        raise _bad(name, "a log range takes no step", "drop step, or drop log")
    if isinstance(dim, IntRange) and not isinstance(step, int):
        raise _bad(name, f"an int range needs a whole step, got {step!r}", "use step = 1")
    if kind is int and isinstance(dim, FloatRange):
        raise _bad(
            name,
            "the pipeline declares it an int, but the space gives a float range "
            f"{dim.low}..{dim.high}",
            f"use an int range: --space {name}=int:{math.ceil(dim.low)}:{math.floor(dim.high)}",
            expected="int",
        )
    if kind in (bool, str):
        raise _bad(
            name,
            f"the pipeline declares it {_a(kind)}, but the space gives a number range",
            f"list its values: --space {name}=choice:A,B",
            expected=kind.__name__,
        )
    return dim


def check_space(
    p: Pipeline, space: Mapping[str, Any], *, source: str = "the space"
) -> dict[str, Dimension]:
    """Check ``space`` against the parameters ``p`` declares; return it as dimensions.

    Raises:
        InvalidInputError: an empty space, a name the pipeline does not declare, a dimension
            whose values do not fit the parameter's type, an empty or malformed dimension.
    """
    if not space:
        raise InvalidInputError(
            f"the search space of pipeline {p.name!r} is empty: there is nothing to sweep",
            hint=f"give it a dimension: --space NAME=float:LOW:HIGH, or "
            f"[tool.modelyard.sweep.{p.name}.space] in pyproject.toml",
        )
    params = p.signature().parameters
    accepts_any = any(v.kind == v.VAR_KEYWORD for v in params.values())
    declared = [n for n, v in params.items() if v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]
    out: dict[str, Dimension] = {}
    for name, raw in space.items():
        if name not in params and not accepts_any:
            raise _bad(
                name,
                f"pipeline {p.name!r} declares no such parameter (from {source})",
                f"pipeline {p.name!r} at {p.where} takes: " + (", ".join(declared) or "nothing"),
            )
        dim = parse_dimension(name, raw, source=source)
        try:
            out[name] = _check_dimension(name, dim, _param_type(p, name))
        except InvalidInputError as exc:  # say where the dimension was written
            raise InvalidInputError(
                f"{exc.message} (from {source})", hint=exc.hint, **exc.details
            ) from None
    return out


def _check_dimension(name: str, dim: Dimension, kind: type | None) -> Dimension:
    if isinstance(dim, Choice):
        if not dim.values:
            raise _bad(name, "no choices", f"list at least one value: --space {name}=choice:A,B")
        for value in dim.values:
            if value is not None and not isinstance(value, bool | int | float | str):
                raise _bad(
                    name,
                    f"choice {value!r} is {_a(type(value))}; choices are scalars",
                    "use bool, int, float, string or null values",
                )
            if kind is not None and value is not None and not _fits(value, kind):
                raise _bad(
                    name,
                    f"the pipeline declares it {_a(kind)}, but choice {value!r} is "
                    f"{_a(type(value))}",
                    f"give {kind.__name__} values",
                    expected=kind.__name__,
                )
        if len(set(map(repr, dim.values))) != len(dim.values):
            raise _bad(name, f"repeated choices in {list(dim.values)!r}", "list each once")
        return dim
    return _check_range(name, dim, kind)


def grid_points(space: Mapping[str, Dimension]) -> dict[str, list[Scalar]]:
    """Every value of each dimension, for the grid sampler.

    Raises:
        InvalidInputError: a continuous float range (no step), which has no grid.
    """
    out: dict[str, list[Scalar]] = {}
    for name, dim in space.items():
        if isinstance(dim, Choice):
            out[name] = list(dim.values)
        elif isinstance(dim, IntRange) and not dim.log:
            out[name] = list(range(dim.low, dim.high + 1, dim.step))
        elif isinstance(dim, FloatRange) and dim.step is not None and not dim.log:
            count = math.floor((dim.high - dim.low) / dim.step + 1e-9) + 1
            out[name] = [dim.low + i * dim.step for i in range(count)]
        else:
            raise _bad(
                name,
                "the grid sampler needs a finite set of values, and this range has none",
                f"give it choices or a step (--space {name}=float:LOW:HIGH:step=0.1), or use "
                "--sampler tpe or random",
            )
    return out


def space_to_json(space: Mapping[str, Dimension]) -> dict[str, Any]:
    """A JSON-able form of ``space`` (stored with the study, compared when it resumes)."""
    out: dict[str, Any] = {}
    for name, dim in sorted(space.items()):
        if isinstance(dim, Choice):
            out[name] = {"choices": list(dim.values)}
        elif isinstance(dim, IntRange):
            out[name] = {"type": "int", "low": dim.low, "high": dim.high, "log": dim.log}
            out[name]["step"] = dim.step
        else:
            out[name] = {"type": "float", "low": dim.low, "high": dim.high, "log": dim.log}
            if dim.step is not None:
                out[name]["step"] = dim.step
    return out


def space_from_json(data: Mapping[str, Any]) -> dict[str, Dimension]:
    """The inverse of :func:`space_to_json`."""
    return {
        name: parse_dimension(name, value, source="the stored study")
        for name, value in data.items()
    }
