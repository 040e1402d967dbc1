"""Small shared type aliases and protocols (the seams other modules accept as parameters)."""

from __future__ import annotations

import time
from typing import Any, Protocol, TypeAlias

JSON: TypeAlias = dict[str, Any] | list[Any] | str | int | float | bool | None

__all__ = ["JSON", "Clock", "SystemClock"]


class Clock(Protocol):
    """A source of time; pass a fake one in tests instead of sleeping."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
