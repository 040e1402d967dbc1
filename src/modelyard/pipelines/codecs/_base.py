"""What every codec is: the :class:`Codec` protocol, where a value sits, and the refusal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["TRUST_HINT", "CannotStore", "Codec", "Target", "describe", "mro_names", "type_name"]

TRUST_HINT = "or declare @step(trust=True) to store it with pickle"


@dataclass(frozen=True)
class Target:
    """Where a value being encoded comes from, for error messages.

    Attributes:
        step: the step's name.
        where: how the value is named (``output``, ``output["model"]``).
        trust: whether pickle may store what the codecs cannot.
    """

    step: str
    where: str = "output"
    trust: bool = False


class CannotStore(Exception):
    """A codec accepted a value's type but cannot store this value.

    The registry stores the value with pickle instead when the step trusts it, else raises a
    :class:`~modelyard.errors.PipelineError` with this message, hint and details.
    """

    def __init__(self, message: str, hint: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details


class Codec(Protocol):
    """Turns one kind of value into bytes and back.

    Attributes:
        name: recorded in the output's ref; :func:`~modelyard.pipelines.codecs.decode` finds the
            codec by it, so a name never changes meaning once values are stored under it.
        whole_only: values of this codec are stored only as a whole output (or an item of the
            tuple or dict a step returns), never inside a list or dict.
        type_names: qualified names of the classes it stores (``pandas.DataFrame``), for the
            check of a step's return annotation before anything runs.
    """

    name: str
    whole_only: bool
    type_names: frozenset[str]

    def accepts(self, value: Any) -> bool:
        """Whether this codec is the one for ``value`` (checked in registry order)."""
        ...

    def encode(self, value: Any, target: Target) -> bytes:
        """The bytes of ``value``.

        Raises:
            CannotStore: this value (of a type the codec takes) cannot be stored.
        """
        ...

    def decode(self, data: bytes, *, trust: bool) -> Any:
        """The value ``data`` holds."""
        ...


def mro_names(cls: type) -> set[str]:
    """Qualified names of ``cls`` and its bases (checks by name import no library)."""
    return {f"{c.__module__}.{c.__qualname__}" for c in getattr(cls, "__mro__", (cls,))}


def type_name(value: Any) -> str:
    """``module.QualName`` of the value's class."""
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def describe(value: Any) -> str:
    """``a module.Class`` for messages (``a lambda (builtins.function)`` for a lambda)."""
    if callable(value) and getattr(value, "__name__", "") == "<lambda>":
        return "a lambda (builtins.function)"
    return f"a {type_name(value)}"
