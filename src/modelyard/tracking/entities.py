"""What reads of the tracking store return: :class:`RunInfo` and :class:`Page`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar, overload

__all__ = ["RUN_KINDS", "RUN_STATUSES", "Page", "RunInfo"]

T = TypeVar("T")

RUN_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
RUN_KINDS = ("run", "pipeline", "step")


@dataclass
class RunInfo:
    """A run as stored: attributes, params, tags, latest metrics, datasets, artifacts, lineage.

    Search results carry params, tags and metrics; ``datasets``, ``artifacts`` and the
    ``environment`` part of ``lineage`` are filled by ``get_run`` only (search stays one query
    plus three batched reads, whatever the page size).

    Attributes:
        id: the run id (32 hex characters).
        experiment: the experiment's name.
        name: the run's name, if given.
        kind: ``run``, ``pipeline`` or ``step``.
        status: ``RUNNING``, ``FINISHED``, ``FAILED`` or ``KILLED``.
        start_time: UNIX seconds.
        end_time: UNIX seconds, or None while running.
        parent_run_id: the parent run for nested runs.
        user: who started it.
        source: the entry point (script path or module:function).
        params: ``{key: value}`` (strings).
        tags: ``{key: value}`` (strings).
        metrics: the latest value of each metric, ``{key: value}``.
        datasets: logged datasets: name, context, digest, rows, schema, source, created_at.
        artifacts: ``{path: {"sha256": ..., "size_bytes": ...}}``.
        lineage: ``git_commit``, ``git_branch``, ``git_dirty``, ``git_diff_sha256`` and
            ``environment`` (python, platform, cpu, gpu, packages).
    """

    id: str
    experiment: str
    name: str | None
    kind: str
    status: str
    start_time: float
    end_time: float | None
    parent_run_id: str | None = None
    user: str | None = None
    source: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end, or None while running."""
        return None if self.end_time is None else self.end_time - self.start_time

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return asdict(self)


@dataclass
class Page(Generic[T]):
    """One page of results and the token of the next page (``None`` on the last page).

    A page is a sequence: ``len(page)``, ``page[0]``, ``for item in page``.
    """

    items: list[T]
    next_page_token: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.items[index]
