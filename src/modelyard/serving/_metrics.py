"""Serving metrics: plain counters on the hot path, rendered by prometheus-client at scrape time.

Updating a ``prometheus_client`` labelled child costs a lock and a dict lookup per call; the
front process updates its own integers and lists instead (one event loop, no lock needed) and a
custom collector turns them into metric families when ``/metrics`` is scraped. Worker-side
timings come back with each batch result, so no multiprocess mode is needed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Histogram", "ServingMetrics", "batch_label"]

LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
SIZE_BUCKETS_BYTES = (128, 512, 1024, 2048, 4096, 16384, 65536, 262144, 1048576, 8388608)
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
    """All metrics of one server; ``registry()`` exposes them to prometheus-client."""

    def __init__(self, model: str = "", version: str = "") -> None:
        self.model = model
        self.version = version
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.size: dict[str, Histogram] = {}
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.inference: dict[str, Histogram] = {}
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

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        label = batch_label(size)
        hist = self.inference.get(label)
        if hist is None:
            hist = self.inference[label] = Histogram(LATENCY_BUCKETS_S)
        hist.observe(seconds)

    def registry(self) -> Any:
        """A prometheus-client ``CollectorRegistry`` holding only these metrics."""
        from prometheus_client import CollectorRegistry

        reg = CollectorRegistry(auto_describe=False)
        reg.register(_Collector(self))
        return reg

    def render(self, registry: Any) -> bytes:
        from prometheus_client import generate_latest

        data: bytes = generate_latest(registry)
        return data


class _Collector:
    def __init__(self, m: ServingMetrics) -> None:
        self.m = m

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        m = self.m
        base = ["model", "version"]
        mv = [m.model, m.version]
        req = CounterMetricFamily(
            "modelyard_requests",
            "HTTP requests by route and status",
            labels=[*base, "route", "status"],
        )
        for (route, status), n in sorted(m.requests.items()):
            req.add_metric([*mv, route, str(status)], n)
        yield req
        lat = HistogramMetricFamily(
            "modelyard_request_duration_seconds",
            "request latency in the front",
            labels=[*base, "route"],
        )
        for route, h in sorted(m.latency.items()):
            lat.add_metric([*mv, route], h.cumulative(), h.total)
        yield lat
        size = HistogramMetricFamily(
            "modelyard_request_size_bytes", "request body size", labels=[*base, "route"]
        )
        for route, h in sorted(m.size.items()):
            size.add_metric([*mv, route], h.cumulative(), h.total)
        yield size
        bs = HistogramMetricFamily(
            "modelyard_batch_size", "instances per batch sent to a model worker", labels=base
        )
        bs.add_metric(mv, m.batch_size.cumulative(), m.batch_size.total)
        yield bs
        inf = HistogramMetricFamily(
            "modelyard_inference_duration_seconds",
            "predict time in the worker, by batch size (upper bound of a power-of-two range)",
            labels=[*base, "batch_size"],
        )
        for label, h in sorted(m.inference.items(), key=lambda kv: int(kv[0])):
            inf.add_metric([*mv, label], h.cumulative(), h.total)
        yield inf
        for name, doc, value in (
            ("modelyard_queue_depth", "requests waiting for a worker", m.queue_depth()),
            ("modelyard_inflight_requests", "requests accepted and not yet answered", m.inflight()),
            (
                "modelyard_workers_alive",
                "model worker processes alive and loaded",
                m.workers_alive(),
            ),
            ("modelyard_ready", "1 when the server is ready for traffic", int(m.ready())),
        ):
            g = GaugeMetricFamily(name, doc, labels=base)
            g.add_metric(mv, value)
            yield g
        for name, doc, value in (
            ("modelyard_worker_restarts", "model workers restarted after dying", m.worker_restarts),
            (
                "modelyard_log_records_dropped",
                "request/feedback log records dropped because the writer fell behind",
                m.dropped_log_records,
            ),
            ("modelyard_feedback_records", "feedback records accepted", m.feedback_records),
            (
                "modelyard_overload_rejections",
                "requests refused with 503 (queue full)",
                m.rejected_overload,
            ),
            ("modelyard_request_timeouts", "requests answered 504 (timeout)", m.timeouts),
        ):
            c = CounterMetricFamily(name, doc, labels=base)
            c.add_metric(mv, value)
            yield c
