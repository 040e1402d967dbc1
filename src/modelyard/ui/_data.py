"""What the pages show, read through the tracking client and the registry (no second data path).

Each function reads a bounded amount: a page of runs, one run, the versions of one model. Metric
series are downsampled here, on the server, so a chart of a million steps sends a few hundred
points to the browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from modelyard.registry.entities import ModelVersion
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.tracking.client import TrackingClient
    from modelyard.tracking.entities import RunInfo

__all__ = [
    "RunsPage",
    "compare_rows",
    "downsample",
    "pipeline_steps",
    "runs_page",
]


@dataclass
class RunsPage:
    """One page of the runs table."""

    runs: list[RunInfo]
    param_columns: list[str]
    metric_columns: list[str]
    next_token: str | None
    prev_token: str | None
    offset: int
    error: str | None = None
    experiments: list[str] = field(default_factory=list)


def _columns(chosen: str | None, runs: Sequence[RunInfo]) -> tuple[list[str], list[str]]:
    """``params.x, metrics.y`` as chosen, else every key on the page (at most 10 of each)."""
    if chosen is not None and chosen.strip():
        params: list[str] = []
        metrics: list[str] = []
        for raw in chosen.split(","):
            item = raw.strip()
            prefix, dot, key = item.partition(".")
            if not dot or not key or prefix not in ("params", "metrics"):
                raise InvalidInputError(
                    f"invalid column {item!r}: write params.<key> or metrics.<key>",
                    hint="e.g. columns=params.lr,metrics.auc",
                    column=item,
                )
            (params if prefix == "params" else metrics).append(key)
        return params, metrics
    param_keys = sorted({k for r in runs for k in r.params})[:10]
    metric_keys = sorted({k for r in runs for k in r.metrics})[:10]
    return param_keys, metric_keys


def runs_page(
    tracking: TrackingClient,
    *,
    experiment: str | None,
    filter: str | None,
    order_by: str | None,
    columns: str | None,
    page_size: int,
    page_token: str | None,
) -> RunsPage:
    """A page of runs matching ``filter`` (the ``search_runs`` grammar).

    A malformed filter, order or column list gives an empty page whose ``error`` says what is
    wrong and where; an unknown experiment raises :class:`NotFoundError`.
    """
    from modelyard.tracking.search import SearchQuery, encode_page_token

    experiments = tracking.list_experiments()
    if experiment and experiment not in experiments:
        raise NotFoundError(f"experiment {experiment!r} not found", experiment=experiment)
    order = [order_by] if order_by else None
    try:
        query = SearchQuery.build(experiment or None, filter, order, page_size, page_token)
        page = tracking.search_runs(
            experiment=experiment or None,
            filter=filter,
            order_by=order,
            max_results=page_size,
            page_token=page_token,
        )
        params, metrics = _columns(columns, page.items)
    except InvalidInputError as exc:
        return RunsPage([], [], [], None, None, 0, error=str(exc), experiments=experiments)
    prev = None
    if query.offset > 0:
        prev = encode_page_token(max(0, query.offset - page_size), query.query_hash)
    return RunsPage(
        page.items,
        params,
        metrics,
        page.next_page_token,
        prev,
        query.offset,
        experiments=experiments,
    )


def downsample(points: Sequence[tuple[int, float]], max_points: int) -> list[tuple[int, float]]:
    """At most about ``max_points`` points of a series, keeping each bucket's min and max.

    Spikes survive (a loss that jumps once still shows), the first and last points are kept,
    and a series already short enough is returned as it is.
    """
    n = len(points)
    if n <= max_points:
        return list(points)
    buckets = max(1, max_points // 2)
    size = n / buckets
    out: list[tuple[int, float]] = []
    for b in range(buckets):
        chunk = points[int(b * size) : max(int((b + 1) * size), int(b * size) + 1)]
        lo = min(chunk, key=lambda p: p[1])
        hi = max(chunk, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
    if out[-1] != points[-1]:
        out.append(points[-1])
    return out


def metric_series(
    tracking: TrackingClient, run: RunInfo, max_points: int
) -> dict[str, list[list[float]]]:
    """``{metric: [[steps...], [values...]]}`` of a run, downsampled for charts."""
    series: dict[str, list[list[float]]] = {}
    for key in run.metrics:
        history = [(step, value) for step, value, _ts in tracking.metric_history(run.id, key)]
        points = downsample(history, max_points)
        series[key] = [
            [float(s) for s, _ in points],
            [v if math.isfinite(v) else float("nan") for _, v in points],
        ]
    return series


def compare_rows(
    runs: Sequence[RunInfo],
) -> tuple[list[tuple[str, list[str], bool]], list[tuple[str, list[str], bool]]]:
    """Params and metrics of runs side by side: ``(key, values, differ)`` rows."""

    def rows(attr: str) -> list[tuple[str, list[str], bool]]:
        keys = sorted({k for r in runs for k in getattr(r, attr)})
        out = []
        for key in keys:
            values = [getattr(r, attr).get(key) for r in runs]
            shown = [
                "-" if v is None else (f"{v:.6g}" if attr == "metrics" else str(v)) for v in values
            ]
            out.append((key, shown, len(set(shown)) > 1))
        return out

    return rows("params"), rows("metrics")


@dataclass
class StepView:
    """One step of a pipeline run, placed on the run's timeline."""

    run: RunInfo
    state: str  # ran | cached | failed | running
    offset_pct: float
    width_pct: float


def pipeline_steps(tracking: TrackingClient, pipeline: RunInfo) -> list[StepView]:
    """The step runs of a pipeline run in start order, each with its state and timing."""
    steps: list[RunInfo] = []
    token = None
    while True:  # bounded by the pipeline's step count
        page = tracking.search_runs(
            filter=f"parent_run_id = '{pipeline.id}'",
            order_by="start_time",
            max_results=500,
            page_token=token,
        )
        steps += page.items
        token = page.next_page_token
        if token is None:
            break
    start = pipeline.start_time
    end = max(
        [pipeline.end_time or 0.0, *[(s.end_time or s.start_time) for s in steps], start + 1e-3]
    )
    span = end - start
    views = []
    for s in steps:
        if s.status == "FAILED":
            state = "failed"
        elif s.tags.get("cached") == "true":
            state = "cached"
        elif s.status == "RUNNING":
            state = "running"
        else:
            state = "ran"
        s_end = s.end_time if s.end_time is not None else end
        views.append(
            StepView(
                s,
                state,
                offset_pct=100.0 * (s.start_time - start) / span,
                width_pct=max(0.5, 100.0 * (s_end - s.start_time) / span),
            )
        )
    return views


def contract_text(version: ModelVersion, artifact_store: ArtifactStore) -> str | None:
    """The version's data contract as TOML: the registered one, else the package's file."""
    contract = version.contract
    if contract is not None:
        return contract.to_toml()
    return _package_text(artifact_store, version.files, "extra/contract.toml")


def profile_text(version: ModelVersion, artifact_store: ArtifactStore) -> str | None:
    """The version's reference profile as indented JSON (registered, else the package's)."""
    import orjson

    profile = version.reference_profile
    if profile is not None:
        return orjson.dumps(profile.to_dict(), option=orjson.OPT_INDENT_2).decode()[:_TEXT_CHARS]
    return _package_text(artifact_store, version.files, "extra/profile.json")


_TEXT_CHARS = 200_000


def _package_text(artifact_store: ArtifactStore, files: dict[str, str], path: str) -> str | None:
    sha = files.get(path)
    if sha is None:
        return None
    data = artifact_store.get_bytes(sha)  # checked against its sha256
    return data[:_TEXT_CHARS].decode("utf-8", errors="replace")


def gate_rules(extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """The gate verdict stored with a version (``extra["gate"]``), if there is one."""
    if not extra:
        return None
    gate = extra.get("gate")
    return gate if isinstance(gate, dict) else None
