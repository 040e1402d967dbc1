"""The analysis from outside the server: Prometheus queries and the feedback log.

``modelyard analyze`` reads each version's counters over a window from the metrics
``modelyard serve`` exports (labelled by ``model`` and ``version``), the quality of each
version's answers from the request and feedback logs in the artifact store, and runs the same
:func:`~modelyard.delivery.analysis.analyze` as a rollout inside the server. Its exit code (0
pass, 1 fail, 2 inconclusive or insufficient data) lets an Argo Rollouts ``AnalysisTemplate``
call it as a Job metric.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import orjson

from modelyard.delivery.analysis import LATENCY_BUCKETS_MS, ArmStats
from modelyard.errors import InvalidInputError, ServiceUnavailable

__all__ = ["feedback_quality", "prometheus_stats"]

_INFERENCE_ROUTES = ".*(infer|predict).*"


def _query(url: str, promql: str, timeout_s: float) -> list[dict[str, Any]]:
    import urllib.error
    import urllib.parse
    import urllib.request

    target = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(target, timeout=timeout_s) as resp:
            doc = orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise InvalidInputError(
            f"Prometheus at {url} refused the query {promql!r}: {exc.read()[:300]!r}",
            field="prometheus",
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceUnavailable(
            f"no Prometheus answered at {url}: {getattr(exc, 'reason', exc)}",
            hint="pass --prometheus http://HOST:9090",
        ) from exc
    if doc.get("status") != "success":
        raise InvalidInputError(f"Prometheus query {promql!r} failed: {doc}", field="prometheus")
    result: list[dict[str, Any]] = doc["data"]["result"]
    return result


def _value(sample: dict[str, Any]) -> float:
    v = float(sample["value"][1])
    return v if math.isfinite(v) else 0.0


def prometheus_stats(
    url: str, model: str, version: str, window_s: float, *, timeout_s: float = 10.0
) -> ArmStats:
    """One version's counters over the last ``window_s`` seconds, from Prometheus.

    An empty answer (no samples yet) gives zeros: the analysis calls that insufficient data.
    """
    sel = f'model="{model}",version="{version}"'
    window = f"{max(int(window_s), 1)}s"
    requests = errors = invalid = 0
    for s in _query(
        url,
        f'sum by (status) (increase(modelyard_requests_total{{{sel},route=~"{_INFERENCE_ROUTES}"}}'
        f"[{window}]))",
        timeout_s,
    ):
        n = round(_value(s))
        status = int(s["metric"].get("status", "0"))
        requests += n
        errors += n if status >= 500 else 0
        invalid += n if 400 <= status < 500 else 0
    cumulative: dict[float, float] = {}
    for s in _query(
        url,
        f"sum by (le) (increase(modelyard_request_duration_seconds_bucket{{{sel},"
        f'route=~"{_INFERENCE_ROUTES}"}}[{window}]))',
        timeout_s,
    ):
        le = s["metric"].get("le", "+Inf")
        cumulative[math.inf if le == "+Inf" else float(le) * 1000.0] = _value(s)
    counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    below = 0.0
    for i, bound in enumerate((*LATENCY_BUCKETS_MS, math.inf)):
        at = cumulative.get(bound)
        if at is None:  # match within float noise (0.0075 s -> 7.5 ms)
            at = next((v for b, v in cumulative.items() if math.isclose(b, bound)), below)
        counts[i] = max(round(at - below), 0)
        below = max(at, below)
    restarts = sum(
        round(_value(s))
        for s in _query(
            url, f"sum(increase(modelyard_worker_restarts_total{{{sel}}}[{window}]))", timeout_s
        )
    )
    return ArmStats(
        requests=requests,
        errors=errors,
        invalid=invalid,
        latency_counts=tuple(counts),
        restarts=restarts,
    )


def feedback_quality(
    store: Any, model: str, version: str, since: dt.datetime, until: dt.datetime | None = None
) -> ArmStats:
    """Quality counters of one version's answers that got feedback in the window (the labels
    posted to any version's ``/v1/feedback``, joined by request id): see
    :func:`modelyard.delivery.feedback.feedback_stats`."""
    from modelyard.delivery.feedback import feedback_stats

    return feedback_stats(store, model, version, since, until)
