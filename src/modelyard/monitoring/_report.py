"""One self-contained HTML report of a window: verdict and why, per-feature plots, history.

Plots are drawn by matplotlib as inline SVG (text kept as text), so the file opens offline in
any browser, needs no JavaScript and holds no raw rows: only bin proportions of the reference
and the window, and the stored scores of earlier windows. Reference vs window histograms are
drawn for the drifted features and those with the largest PSI (at most 12), in one figure of
small multiples: one figure with step outlines renders many times faster than a figure per
feature with a bar per bin.
"""

from __future__ import annotations

import datetime as dt
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import MissingExtraError

if TYPE_CHECKING:
    from modelyard.data.profile import Profile
    from modelyard.monitoring._monitor import WindowResult
    from modelyard.monitoring._results import StoredResult

__all__ = ["REPORTS_PREFIX", "render_report", "report_name", "write_report"]

_COLS = 4
_PANELS = 12  # histograms drawn: the drifted features, then the largest PSI
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse}td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;
text-align:right}td:first-child,th:first-child{text-align:left}
.v-crossed,.drift{color:#b3261e;font-weight:600}.v-ok,.no_drift{color:#1b6e20}
.v-insufficient_data,.v-no_verdict,.insufficient_data{color:#8a6d00}
svg{max-width:100%;height:auto}
"""


def _figure_module() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtraError(
            "the HTML report needs matplotlib", hint="pip install 'modelyard[monitor]'"
        ) from exc
    return Figure


def _svg(fig: Any) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "modelyard"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _histograms(result: WindowResult, profile: Profile) -> str:
    import numpy as np

    counts = result.counts
    if counts is None or result.drift is None:
        return ""
    order = sorted(result.drift.features, key=lambda f: (not f.drifted, -f.psi))
    names = [f.feature for f in order if f.feature in counts.features][:_PANELS]
    if not names:
        return ""
    figure = _figure_module()
    rows = -(-len(names) // _COLS)
    fig = figure(figsize=(3.2 * _COLS, 2.3 * rows))
    axes = fig.subplots(rows, _COLS, squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        fp = profile.features[name]
        ref = fp.vector().astype(float)
        cur = counts.features[name].astype(float)
        ref_p = ref / ref.sum() if ref.sum() else ref
        cur_p = cur / cur.sum() if cur.sum() else cur
        edges = np.arange(ref.size + 1)
        # two step outlines per panel: far cheaper to draw than one bar patch per bin
        ax.stairs(ref_p, edges, fill=True, color="#c4c7c5", label="reference")
        ax.stairs(cur_p, edges, color="#1a73e8", linewidth=1.3, label="window")
        f = result.drift[name]
        ax.set_title(
            f"{name}: {f.verdict.replace('_', ' ')}",
            fontsize=9,
            color="#b3261e" if f.drifted else "#222",
        )
        labels = fp.labels()
        step = max(1, len(labels) // 5)
        ticks = edges[:-1][::step]
        ax.set_xticks(ticks + 0.5, [lab[:12] for lab in labels[::step]], fontsize=6, rotation=30)
        ax.tick_params(axis="y", labelsize=6)
        ax.set_yticks([])
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    # fixed margins: tight_layout and bbox_inches="tight" each draw the figure once more
    fig.subplots_adjust(left=0.04, right=0.99, top=0.93, bottom=0.12, hspace=0.75, wspace=0.22)
    return _svg(fig)


def _history_plot(history: Sequence[StoredResult]) -> str:
    points = [h for h in history if h.drift_score is not None]
    if len(points) < 2:
        return ""
    figure = _figure_module()
    fig = figure(figsize=(9, 2.6))
    ax = fig.subplots()
    xs = [dt.datetime.fromtimestamp(h.window_start, dt.UTC) for h in points]
    ax.plot(xs, [h.drift_score for h in points], marker="o", color="#1a73e8", label="drift score")
    acc = [
        (x, h.summary.get("quality", {}) or {})
        for x, h in zip(xs, points, strict=True)
        if h.summary.get("quality")
    ]
    for metric in ("accuracy", "auc", "rmse"):
        series = [
            (x, q["metrics"][metric]["value"])
            for x, q in acc
            if metric in q.get("metrics", {}) and q["metrics"][metric]["value"] is not None
        ]
        if series:
            ax.plot(*zip(*series, strict=True), marker=".", label=metric)
    crossed = [
        (x, h.drift_score) for x, h in zip(xs, points, strict=True) if h.verdict == "crossed"
    ]
    if crossed:
        ax.scatter(*zip(*crossed, strict=True), color="#b3261e", zorder=3, label="crossed")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    fig.autofmt_xdate()
    fig.subplots_adjust(left=0.06, right=0.99, top=0.95, bottom=0.25)
    return _svg(fig)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))


def render_report(
    result: WindowResult, profile: Profile | None, history: Sequence[StoredResult] = ()
) -> str:
    """The report of one window as an HTML string (see the module docstring)."""
    e = html.escape
    title = f"{result.model}:{result.version} {result.window}"
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>modelyard monitoring: {e(result.model)} version {result.version}</h1>",
        f"<p>window {e(str(result.window))}, {result.rows:,} requests. Verdict: ",
        f"<span class='v-{e(result.verdict)}'>{e(result.verdict.replace('_', ' '))}</span></p>",
    ]
    if result.error:
        parts.append(f"<p class='v-{e(result.verdict)}'>{e(result.error)}</p>")
    if result.signals:
        parts.append("<h2>Why</h2><ul>")
        for s in result.signals:
            detail = ", ".join(
                f"{k}: {_fmt(v) if not isinstance(v, list) else e(', '.join(map(str, v)))}"
                for k, v in s.items()
                if k != "signal" and not isinstance(v, dict)
            )
            parts.append(f"<li><b>{e(s['signal'])}</b> {detail}</li>")
        parts.append("</ul>")
    if result.drift is not None:
        parts.append(
            "<h2>Features</h2><table><tr><th>feature</th><th>verdict</th><th>PSI</th>"
            "<th>Jensen-Shannon</th><th>Wasserstein/sd</th><th>p (BH)</th>"
            "<th>nulls ref</th><th>nulls now</th><th>importance</th></tr>"
        )
        for f in sorted(result.drift.features, key=lambda f: (not f.drifted, -f.psi)):
            parts.append(
                f"<tr><td>{e(f.feature)}</td><td class='{f.verdict}'>{f.verdict}</td>"
                f"<td>{_fmt(f.psi)}</td><td>{_fmt(f.jensen_shannon)}</td>"
                f"<td>{_fmt(f.wasserstein)}</td><td>{_fmt(f.p_adjusted)}</td>"
                f"<td>{f.null_rate_ref:.1%}</td><td>{f.null_rate_cur:.1%}</td>"
                f"<td>{_fmt(f.importance)}</td></tr>"
            )
        parts.append("</table>")
    pred = result.prediction_drift
    if pred is not None:
        parts.append(
            "<h2>Predictions</h2><p>the served outputs against the outputs on the evaluation "
            "rows when the version was registered</p><table><tr><th>output</th><th>verdict</th>"
            "<th>PSI</th><th>Jensen-Shannon</th><th>Wasserstein/sd</th><th>p (BH)</th></tr>"
        )
        for f in pred.features:
            parts.append(
                f"<tr><td>{e(f.feature)}</td><td class='{f.verdict}'>{f.verdict}</td>"
                f"<td>{_fmt(f.psi)}</td><td>{_fmt(f.jensen_shannon)}</td>"
                f"<td>{_fmt(f.wasserstein)}</td><td>{_fmt(f.p_adjusted)}</td></tr>"
            )
        parts.append("</table>")
    if profile is not None:
        plots = _histograms(result, profile)
        if plots:
            parts.append("<h2>Reference vs window</h2>" + plots)
    q = result.quality
    if q is not None:
        parts.append(
            f"<h2>Quality</h2><p>{q.task}: {q.labelled:,} labelled, "
            f"{q.unlabelled:,} without a label yet</p><table><tr><th>metric</th><th>source</th>"
            "<th>value</th><th>95% interval</th><th>n</th></tr>"
        )
        for source, metrics in (("labels", q.metrics), ("estimated*", q.estimated)):
            for name, est in metrics.items():
                parts.append(
                    f"<tr><td>{e(name)}</td><td>{source}</td><td>{_fmt(est.value)}</td>"
                    f"<td>{_fmt(est.low)} - {_fmt(est.high)}</td><td>{est.n:,}</td></tr>"
                )
        parts.append("</table>")
        if q.estimated:
            parts.append(
                "<p>* estimated from the predicted probabilities (assumes calibration)</p>"
            )
    if result.violations:
        parts.append("<h2>Contract violations</h2><table><tr><th>column/rule</th><th>rows</th>")
        parts.append("<th>rate</th></tr>")
        for key, n in sorted(result.violations.items()):
            rate = n / result.rows if result.rows else 0.0
            parts.append(f"<tr><td>{e(key)}</td><td>{n:,}</td><td>{rate:.2%}</td></tr>")
        parts.append("</table>")
    trend = _history_plot(history)
    if trend:
        parts.append("<h2>Over time</h2>" + trend)
    parts.append("</body></html>")
    return "".join(parts)


def write_report(
    path: str | Path,
    result: WindowResult,
    profile: Profile | None,
    history: Sequence[StoredResult] = (),
    *,
    text: str | None = None,
) -> Path:
    """Write :func:`render_report` (or ``text``, already rendered) to ``path`` atomically;
    returns the path."""
    import os
    import tempfile

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if text is None:
        text = render_report(result, profile, history)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


REPORTS_PREFIX = "monitor-reports"
"""Named files of the artifact store holding the reports of stored windows."""


def report_name(model: str, version: int, window_start: float, window_end: float) -> str:
    """``monitor-reports/<model>/<version>/<start>-<end>.html`` (UTC, to the second)."""
    import time

    def stamp(ts: float) -> str:
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))

    return f"{REPORTS_PREFIX}/{model}/{version}/{stamp(window_start)}-{stamp(window_end)}.html"
