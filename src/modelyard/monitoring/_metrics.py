"""Prometheus gauges of the latest monitoring results, and a Grafana dashboard over them.

``modelyard monitor --watch --metrics-port P`` serves the gauges on ``127.0.0.1:P/metrics``
(prometheus-client's exposition server, on its own registry); every sample is labelled by
``model`` and ``version``, per-feature ones also by ``feature``:

* ``modelyard_monitor_rows``: request-log rows in the latest window;
* ``modelyard_monitor_verdict``: 1 for the latest window's verdict label (``ok``, ``crossed``,
  ``insufficient_data``, ``no_verdict``), 0 for the others;
* ``modelyard_monitor_drift_score``: importance-weighted share of drifted features;
* ``modelyard_monitor_feature_drift``: per feature and ``statistic`` (``psi``,
  ``jensen_shannon``, ``wasserstein``, ``p_adjusted``);
* ``modelyard_monitor_feature_drifted``: 1 when a feature drifted;
* ``modelyard_monitor_quality``: live quality per ``metric`` and ``source`` (``labels`` or
  ``estimated``); ``modelyard_monitor_unlabelled``: predictions without a label;
* ``modelyard_monitor_violation_rate``: contract-violation rate per ``column``.

:func:`grafana_dashboard` builds the dashboard JSON that ``modelyard monitor --grafana`` writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.monitoring._monitor import WindowResult

__all__ = ["MonitorGauges", "grafana_dashboard"]

VERDICTS = ("ok", "crossed", "insufficient_data", "no_verdict")
_STATS = ("psi", "jensen_shannon", "wasserstein", "p_adjusted")


class MonitorGauges:
    """The gauges, on a registry of their own (so tests and several monitors do not clash).

    Args:
        registry: a ``prometheus_client.CollectorRegistry``; default a new one.
    """

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import CollectorRegistry, Gauge

        self.registry = registry if registry is not None else CollectorRegistry()
        mv = ["model", "version"]
        r = self.registry
        self.rows = Gauge("modelyard_monitor_rows", "rows in the latest window", mv, registry=r)
        self.verdict = Gauge(
            "modelyard_monitor_verdict",
            "latest verdict (1 = this one)",
            [*mv, "verdict"],
            registry=r,
        )
        self.drift_score = Gauge(
            "modelyard_monitor_drift_score", "weighted share of drifted features", mv, registry=r
        )
        self.feature = Gauge(
            "modelyard_monitor_feature_drift",
            "drift statistic per feature",
            [*mv, "feature", "statistic"],
            registry=r,
        )
        self.drifted = Gauge(
            "modelyard_monitor_feature_drifted",
            "1 when the feature drifted",
            [*mv, "feature"],
            registry=r,
        )
        self.quality = Gauge(
            "modelyard_monitor_quality", "live quality", [*mv, "metric", "source"], registry=r
        )
        self.unlabelled = Gauge(
            "modelyard_monitor_unlabelled", "predictions without a label", mv, registry=r
        )
        self.violations = Gauge(
            "modelyard_monitor_violation_rate",
            "contract-violation rate",
            [*mv, "column"],
            registry=r,
        )

    def update(self, result: WindowResult) -> None:
        """Set the gauges from one window's result."""
        labels = {"model": result.model, "version": str(result.version)}
        self.rows.labels(**labels).set(result.rows)
        for verdict in VERDICTS:
            self.verdict.labels(**labels, verdict=verdict).set(float(verdict == result.verdict))
        if result.drift is not None:
            self.drift_score.labels(**labels).set(result.drift.drift_score)
            for f in result.drift.features:
                for stat in _STATS:
                    value = getattr(f, stat)
                    if value is not None:
                        self.feature.labels(**labels, feature=f.feature, statistic=stat).set(value)
                self.drifted.labels(**labels, feature=f.feature).set(float(f.drifted))
        if result.quality is not None:
            self.unlabelled.labels(**labels).set(result.quality.unlabelled)
            for source, metrics in (
                ("labels", result.quality.metrics),
                ("estimated", result.quality.estimated),
            ):
                for name, est in metrics.items():
                    self.quality.labels(**labels, metric=name, source=source).set(est.value)
        for column, n in result.violations.items():
            rate = n / result.rows if result.rows else 0.0
            self.violations.labels(**labels, column=column).set(rate)

    def serve(self, port: int, host: str = "127.0.0.1") -> tuple[Any, int]:
        """Serve ``/metrics`` in a background thread; returns (server, bound port)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server, int(server.server_port)


def _panel(
    panel_id: int, title: str, expr: str, legend: str, *, y: int, x: int = 0, w: int = 12
) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": legend}],
        "fieldConfig": {"defaults": {"unit": "none"}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right"}},
    }


def grafana_dashboard(model: str) -> dict[str, Any]:
    """A Grafana dashboard (JSON model, schema 39) of the monitoring gauges of ``model``."""
    sel = 'model="$model", version=~"$version"'
    panels = [
        _panel(
            1,
            "Dataset drift score (weighted share of drifted features)",
            f"modelyard_monitor_drift_score{{{sel}}}",
            "v{{version}}",
            y=0,
        ),
        _panel(
            2,
            "Verdict of the latest window",
            f"modelyard_monitor_verdict{{{sel}}} == 1",
            "v{{version}} {{verdict}}",
            y=0,
            x=12,
        ),
        _panel(
            3,
            "Drift per feature (PSI)",
            f'modelyard_monitor_feature_drift{{{sel}, statistic="psi"}}',
            "{{feature}}",
            y=8,
        ),
        _panel(
            4,
            "Drift per feature (normalised Wasserstein)",
            f'modelyard_monitor_feature_drift{{{sel}, statistic="wasserstein"}}',
            "{{feature}}",
            y=8,
            x=12,
        ),
        _panel(
            5,
            "Live quality (labels) and estimated quality",
            f"modelyard_monitor_quality{{{sel}}}",
            "{{metric}} ({{source}})",
            y=16,
        ),
        _panel(
            6,
            "Contract-violation rate per column",
            f"modelyard_monitor_violation_rate{{{sel}}}",
            "{{column}}",
            y=16,
            x=12,
        ),
        _panel(7, "Rows per window", f"modelyard_monitor_rows{{{sel}}}", "v{{version}}", y=24),
        _panel(
            8,
            "Predictions without a label",
            f"modelyard_monitor_unlabelled{{{sel}}}",
            "v{{version}}",
            y=24,
            x=12,
        ),
    ]
    return {
        "title": f"modelyard monitoring: {model}",
        "uid": f"modelyard-monitor-{model}"[:40],
        "tags": ["modelyard", "monitoring"],
        "schemaVersion": 39,
        "editable": True,
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "1m",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                },
                {"name": "model", "type": "constant", "query": model, "hide": 2},
                {
                    "name": "version",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": f'label_values(modelyard_monitor_rows{{model="{model}"}}, version)',
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
        "panels": panels,
    }
