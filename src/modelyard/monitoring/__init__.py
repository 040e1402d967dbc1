"""Monitoring: drift and live quality of served versions from the request log, and the loop.

* :class:`Binner` reduces Arrow batches of the request log to mergeable :class:`WindowCounts`
  in the bins of the version's reference profile (bounded memory, any window size).
* :func:`score_counts` scores them: per-feature effect sizes (PSI, Jensen-Shannon,
  normalised Wasserstein), a two-sample test on the counts, Benjamini-Hochberg across features
  and an importance-weighted dataset verdict (:class:`DatasetDrift`).
* :class:`LocalCounter` reads a window here; :class:`RayCounter` fans it out over a Ray
  cluster, each task reading its files from the artifact store (folder or S3).
* :func:`live_quality` measures quality from feedback joined by request id, and estimates it
  from calibrated probabilities while labels are missing.
* :func:`monitor_window` scores one window against a version's :class:`References` and a
  :class:`MonitorPolicy`; :class:`Monitor` (over a Workspace) scores, stores
  (:class:`MonitorStore`), reports (:func:`write_report`), exports gauges
  (:class:`MonitorGauges`), starts retraining (:meth:`Monitor.act`) and sends the retrained
  version out through a :class:`Deployer` when the policy has a ``deploy_strategy``.
"""

from __future__ import annotations

from modelyard.monitoring._counts import Binner, WindowCounts
from modelyard.monitoring._drift import (
    DatasetDrift,
    DriftThresholds,
    FeatureDrift,
    benjamini_hochberg,
    jensen_shannon,
    normalised_wasserstein,
    score_counts,
)
from modelyard.monitoring._fanout import Counter, LocalCounter, RayCounter
from modelyard.monitoring._metrics import MonitorGauges, grafana_dashboard
from modelyard.monitoring._monitor import References, WindowResult, monitor_window, windows
from modelyard.monitoring._policy import MonitorPolicy, parse_duration_s
from modelyard.monitoring._quality import (
    Estimate,
    LiveQuality,
    estimated_from_counts,
    estimated_quality,
    live_quality,
)
from modelyard.monitoring._report import REPORTS_PREFIX, render_report, report_name, write_report
from modelyard.monitoring._results import MonitorStore, StoredResult, Trigger
from modelyard.monitoring._run import Deployer, Monitor, watch
from modelyard.monitoring._types import LogReader, Window

__all__ = [
    "REPORTS_PREFIX",
    "Binner",
    "Counter",
    "DatasetDrift",
    "Deployer",
    "DriftThresholds",
    "Estimate",
    "FeatureDrift",
    "LiveQuality",
    "LocalCounter",
    "LogReader",
    "Monitor",
    "MonitorGauges",
    "MonitorPolicy",
    "MonitorStore",
    "RayCounter",
    "References",
    "StoredResult",
    "Trigger",
    "Window",
    "WindowCounts",
    "WindowResult",
    "benjamini_hochberg",
    "estimated_from_counts",
    "estimated_quality",
    "grafana_dashboard",
    "jensen_shannon",
    "live_quality",
    "monitor_window",
    "normalised_wasserstein",
    "parse_duration_s",
    "render_report",
    "report_name",
    "score_counts",
    "watch",
    "windows",
    "write_report",
]
