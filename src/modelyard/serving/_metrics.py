"""Serving metrics: plain counters on the hot path, rendered by prometheus-client at scrape time.

Updating a ``prometheus_client`` labelled child costs a lock and a dict lookup per call; the
front process updates its own integers and lists instead (one event loop, no lock needed) and a
custom collector turns them into metric families when ``/metrics`` is scraped. Worker-side
timings come back with each batch result, so no multiprocess mode is needed.

A front hosting several versions keeps one :class:`ServingMetrics` per version; every sample
carries ``model`` and ``version`` labels, so each version's traffic, errors and latency can be
compared (Prometheus queries, the delivery analysis reading :attr:`ServingMetrics.answered`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Histogram", "ServingMetrics", "batch_label", "registry"]

LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
SIZE_BUCKETS_BYTES = (128, 512, 1024, 2048, 4096, 16384, 65536, 65536, 1048576, 8388608)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Histogram:
    """Bucket counts without cumulative sums (those are made at scrape time)."""

    __slots__ = ("buckets", "count", "counts", "total")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.count += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            running += n
            out.append((_le(bound), running))
        out.append(("+Inf", self.count))
        return out


def _le(bound: float) -> str:
    return repr(float(bound))


def batch_label(size: int) -> str:
    """The power-of-two range label of a batch size: 1, 2, 4 (3-4), 8 (5-8), ..."""
    label = 1
    while label < size:
        label *= 2
    return str(label)


class ServingMetrics:
    """The metrics of one version of the model served by a front.

    Per-version counters of inference requests for callers that compare versions in-process:
    ``answered`` (inference requests answered by this version), ``errors`` (those answered with
    a 5xx, or that failed here and were retried on another version), ``invalid`` (4xx: the
    input was refused) and ``latency`` (a histogram of their seconds).
    """

    def __init__(self, model: str = "", version: str = "") -> None:
        self.model = model
        self.version = version
        self.answered = 0
        self.errors = 0
        self.invalid = 0
        self.mirrored = 0
        self.mirror_skipped = 0
        self.retried = 0
        self.latency_s = Histogram(LATENCY_BUCKETS_S)
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.size: dict[str, Histogram] = {}
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.inference: dict[str, Histogram] = {}
        # batch-size label -> [batches, model CPU seconds]: the model's cost at a batch size,
        # whatever the process's priority (a shadow is compared with stable on this)
        self.compute: dict[str, list[float]] = {}
        self.worker_restarts = 0
        self.dropped_log_records = 0
        self.feedback_records = 0
        self.rejected_overload = 0
        self.timeouts = 0
        self.queue_depth: Callable[[], int] = lambda: 0
        self.inflight: Callable[[], int] = lambda: 0
        self.workers_alive: Callable[[], int] = lambda: 0
        self.ready: Callable[[], bool] = lambda: False

    def observe_request(self, route: str, status: int, seconds: float, size_bytes: int) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get(route)
        if hist is None:
            hist = self.latency[route] = Histogram(LATENCY_BUCKETS_S)
            self.size[route] = Histogram(SIZE_BUCKETS_BYTES)
        hist.observe(seconds)
        self.size[route].observe(size_bytes)

    def observe_inference(self, status: int, seconds: float) -> None:
        """Count one inference request this version answered (or failed, for a retry)."""
        self.answered += 1
        if status >= 500:
            self.errors += 1
        elif status >= 400:
            self.invalid += 1
        self.latency_s.observe(seconds)

    def observe_batch(self, size: int, seconds: float, cpu_s: float | None = None) -> None:
        self.batch_size.observe(size)
        label = batch_label(size)
        hist = self.inference.get(label)
        if hist is None:
            hist = self.inference[label] = Histogram(LATENCY_BUCKETS_S)
            self.compute[label] = [0, 0.0]
        hist.observe(seconds)
        if cpu_s is not None:
            cell = self.compute[label]
            cell[0] += 1
            cell[1] += cpu_s


def registry(versions: Callable[[], list[ServingMetrics]]) -> Any:
    """A prometheus-client ``CollectorRegistry`` over the metrics of the versions served now."""
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(versions))
    return reg


def render(reg: Any) -> bytes:
    """The Prometheus text exposition of a :func:`registry`."""
    from prometheus_client import generate_latest

    data: bytes = generate_latest(reg)
    return data


class _Collector:
    def __init__(self, versions: Callable[[], list[ServingMetrics]]) -> None:
        self.versions = versions

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        all_m = self.versions()
        base = ["model", "version"]
        req = CounterMetricFamily(
            "modelyard_requests",
            "HTTP requests by route and status",
            labels=[*base, "route", "status"],
        )
        lat = HistogramMetricFamily(
            "modelyard_request_duration_seconds",
            "request latency in the front",
            labels=[*base, "route"],
        )
        size = HistogramMetricFamily(
            "modelyard_request_size_bytes", "request body size", labels=[*base, "route"]
        )
        bs = HistogramMetricFamily(
            "modelyard_batch_size", "instances per batch sent to a model worker", labels=base
        )
        inf = HistogramMetricFamily(
            "modelyard_inference_duration_seconds",
            "predict time in the worker, by batch size (upper bound of a power-of-two range)",
            labels=[*base, "batch_size"],
        )
        for m in all_m:
            mv = [m.model, m.version]
            for (route, status), n in sorted(m.requests.items()):
                req.add_metric([*mv, route, str(status)], n)
            for route, h in sorted(m.latency.items()):
                lat.add_metric([*mv, route], h.cumulative(), h.total)
            for route, h in sorted(m.size.items()):
                size.add_metric([*mv, route], h.cumulative(), h.total)
            bs.add_metric(mv, m.batch_size.cumulative(), m.batch_size.total)
            for label, h in sorted(m.inference.items(), key=lambda kv: int(kv[0])):
                inf.add_metric([*mv, label], h.cumulative(), h.total)
        yield from (req, lat, size, bs, inf)
        gauges = (
            ("modelyard_queue_depth", "requests waiting for a worker", "queue_depth"),
            ("modelyard_inflight_requests", "requests accepted and not yet answered", "inflight"),
            ("modelyard_workers_alive", "model worker processes alive and loaded", "workers_alive"),
            ("modelyard_ready", "1 when the server is ready for traffic", "ready"),
        )
        for name, doc, attr in gauges:
            g = GaugeMetricFamily(name, doc, labels=base)
            for m in all_m:
                g.add_metric([m.model, m.version], int(getattr(m, attr)()))
            yield g
        counters = (
            ("modelyard_worker_restarts", "model workers restarted after dying", "worker_restarts"),
            (
                "modelyard_log_records_dropped",
                "request/feedback log records dropped because the writer fell behind",
                "dropped_log_records",
            ),
            ("modelyard_feedback_records", "feedback records accepted", "feedback_records"),
            (
                "modelyard_overload_rejections",
                "requests refused with 503 (queue or body budget full)",
                "rejected_overload",
            ),
            ("modelyard_request_timeouts", "requests answered 504 (timeout)", "timeouts"),
            (
                "modelyard_mirrored_requests",
                "requests this version received as a mirrored copy (answer dropped)",
                "mirrored",
            ),
            (
                "modelyard_mirror_skipped_requests",
                "mirrored copies not made: this version was a batch behind, or the answering one "
                "had a backlog",
                "mirror_skipped",
            ),
            (
                "modelyard_retried_requests",
                "requests that failed on this version and were answered by another",
                "retried",
            ),
        )
        for name, doc, attr in counters:
            c = CounterMetricFamily(name, doc, labels=base)
            for m in all_m:
                c.add_metric([m.model, m.version], getattr(m, attr))
            yield c
