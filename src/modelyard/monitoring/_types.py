"""The window and the request-log reader monitoring works with (no other monitoring import)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["LogReader", "Window"]


class LogReader(Protocol):
    """What monitoring reads from a request log (:class:`modelyard.requestlog.RequestLog`)."""

    skipped_files: int
    store: Any  # has ``fs``, an fsspec file system

    def iter_request_batches(
        self,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        *,
        columns: list[str] | None = None,
        batch_rows: int = ...,
    ) -> Iterator[Any]: ...

    def joined(
        self,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        *,
        columns: list[str] | None = None,
    ) -> Any: ...

    def feedback(
        self, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> Any: ...

    def files(
        self, kind: str, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> list[str]: ...


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)`` in UTC."""

    start: dt.datetime
    end: dt.datetime

    @property
    def start_s(self) -> float:
        """Start as UNIX seconds."""
        return self.start.timestamp()

    @property
    def end_s(self) -> float:
        """End as UNIX seconds."""
        return self.end.timestamp()

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"
