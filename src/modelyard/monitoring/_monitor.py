"""Score one window of a served version's request log against its references and the policy.

:func:`monitor_window` never raises for bad input it can name: a version without a reference
profile, a window without requests, a log whose columns do not fit the profile or contract are
each a ``no_verdict`` result with a message (corrupt Parquet files are skipped and counted by
the reader). A window with fewer rows than the policy's minimum is ``insufficient_data``,
never "no drift". Only a result whose verdict is ``crossed`` can start a retraining.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError, ModelyardError
from modelyard.logs import get_logger
from modelyard.monitoring._counts import IN, OUT, Binner, WindowCounts
from modelyard.monitoring._drift import DRIFT, DatasetDrift, score_counts
from modelyard.monitoring._fanout import LocalCounter
from modelyard.monitoring._quality import LiveQuality, estimated_from_counts, live_quality
from modelyard.monitoring._types import LogReader, Window

if TYPE_CHECKING:
    from modelyard.data.contract import Contract
    from modelyard.data.profile import Profile
    from modelyard.monitoring._fanout import Counter
    from modelyard.monitoring._policy import MonitorPolicy
    from modelyard.monitoring._results import MonitorStore, StoredResult

__all__ = [
    "LogReader",
    "References",
    "Window",
    "WindowResult",
    "monitor_window",
    "windows",
]

log = get_logger("modelyard.monitoring")

MAX_WINDOWS = 1000  # per command: a typo in --since must not score years hour by hour
OK = "ok"
CROSSED = "crossed"
INSUFFICIENT = "insufficient_data"
NO_VERDICT = "no_verdict"


@dataclass(frozen=True)
class References:
    """What a version is compared with.

    Attributes:
        profile: the reference profile of the inputs (None: no drift can be measured).
        predictions: the reference profile of the outputs (names without ``out__``), e.g.
            the predictions on the evaluation set.
        contract: the inputs' data contract.
        importances: feature -> weight in the dataset verdict.
    """

    profile: Profile | None
    predictions: Profile | None = None
    contract: Contract | None = None
    importances: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of_version(cls, version: Any) -> References:
        """The references registered with a model version.

        The input profile and contract come from ``version.reference_profile`` and
        ``version.contract``; the predictions' profile from ``extra["prediction_profile"]``
        (a :meth:`Profile.to_dict` document) and the importances from
        ``extra["feature_importance"]``, when the version has them.
        """
        from modelyard.data.profile import Profile

        extra = version.extra or {}
        pred = extra.get("prediction_profile")
        importances = extra.get("feature_importance") or {}
        return cls(
            profile=version.reference_profile,
            predictions=Profile.from_dict(pred) if isinstance(pred, Mapping) else None,
            contract=version.contract,
            importances={str(k): float(v) for k, v in dict(importances).items()},
        )


def windows(
    window_s: float,
    *,
    now: float | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    last: int = 1,
) -> list[Window]:
    """The windows to score.

    With ``since``: consecutive windows of ``window_s`` from ``since`` until ``until`` (default
    now), the last one cut at ``until``. Without: the ``last`` windows aligned to multiples of
    ``window_s`` (UTC), the newest being the current, still filling one, so scoring again
    later replaces its stored result.
    """
    end_s = (until.timestamp() if until else None) or (time.time() if now is None else now)
    out: list[Window] = []
    if since is not None:
        start = since.timestamp()
        if start >= end_s:
            raise InvalidInputError(
                f"--since {since.isoformat()} is not before the end of the window "
                f"({dt.datetime.fromtimestamp(end_s, dt.UTC).isoformat()})",
                hint="pass an ISO time in the past, e.g. --since 2026-01-01T00:00:00Z",
            )
        count = math.ceil((end_s - start) / window_s)
        if count > MAX_WINDOWS:
            raise InvalidInputError(
                f"--since {since.isoformat()} gives {count:,} windows of {window_s:g} s, more "
                f"than {MAX_WINDOWS:,}",
                hint="pass a longer --window (1d), a later --since or an --until",
            )
        while start < end_s:
            out.append(_window(start, min(start + window_s, end_s)))
            start += window_s
        return out
    if not 1 <= last <= MAX_WINDOWS:
        raise InvalidInputError(f"--last must be between 1 and {MAX_WINDOWS}, got {last}")
    current = math.floor(end_s / window_s) * window_s
    for i in range(last - 1, -1, -1):
        start = current - i * window_s
        out.append(_window(start, start + window_s))
    return out


def _window(start_s: float, end_s: float) -> Window:
    return Window(
        dt.datetime.fromtimestamp(start_s, dt.UTC), dt.datetime.fromtimestamp(end_s, dt.UTC)
    )


@dataclass
class WindowResult:
    """The outcome of one window.

    Attributes:
        model: the model name.
        version: the version number.
        window: the window.
        verdict: ``ok``, ``crossed``, ``insufficient_data`` or ``no_verdict``.
        rows: request-log rows in the window.
        signals: the crossed signals: ``{"signal", "features"/"columns"/"metrics", ...}``.
        drift: the input drift, when scored.
        prediction_drift: the output drift, when there is a reference for the outputs.
        quality: live (and estimated) quality, when the log has predictions.
        violations: ``column/rule`` -> rows breaking the contract.
        error: why there is no verdict.
        skipped_files: corrupt Parquet files the reader skipped.
        counts: the window's counts (for reports; never rows).
        stored: the stored row, once recorded.
    """

    model: str
    version: int
    window: Window
    verdict: str
    rows: int = 0
    signals: list[dict[str, Any]] = field(default_factory=list)
    drift: DatasetDrift | None = None
    prediction_drift: DatasetDrift | None = None
    quality: LiveQuality | None = None
    violations: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    skipped_files: int = 0
    counts: WindowCounts | None = None
    stored: StoredResult | None = None

    @property
    def crossed(self) -> bool:
        """Whether the window crossed the policy."""
        return self.verdict == CROSSED

    def summary(self) -> dict[str, Any]:
        """The JSON-able result (what ``--json`` prints and the store keeps)."""
        return {
            "model": self.model,
            "version": self.version,
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "verdict": self.verdict,
            "rows": self.rows,
            "signals": self.signals,
            "error": self.error,
            "skipped_files": self.skipped_files,
            "drift": self.drift.to_dict() if self.drift else None,
            "prediction_drift": self.prediction_drift.to_dict() if self.prediction_drift else None,
            "quality": self.quality.to_dict() if self.quality else None,
            "violations": self.violations,
        }

    def record(self, store: MonitorStore) -> StoredResult:
        """Store this result (replacing an earlier one for the same window)."""
        self.stored = store.record(
            model=self.model,
            version=self.version,
            window_start=self.window.start_s,
            window_end=self.window.end_s,
            verdict=self.verdict,
            rows=self.rows,
            drift_score=self.drift.drift_score if self.drift else None,
            signals=self.signals,
            summary=self.summary(),
            error=self.error,
        )
        return self.stored


def monitor_window(
    reader: LogReader,
    refs: References,
    policy: MonitorPolicy,
    *,
    model: str,
    version: int,
    window: Window,
    batch_rows: int = 65_536,
    counter: Counter | None = None,
) -> WindowResult:
    """Score one window of the request log (see the module docstring for the verdicts).

    Args:
        reader: the version's request log.
        refs: the version's references.
        policy: the monitoring policy.
        model: the model name.
        version: the version number.
        window: the window.
        batch_rows: rows read per batch (memory is bounded by a batch, not the window).
        counter: where the window is read and counted (default: here,
            :class:`~modelyard.monitoring.LocalCounter`; :class:`RayCounter` fans it out).
    """
    result = WindowResult(model=model, version=version, window=window, verdict=NO_VERDICT)
    if refs.profile is None:
        result.error = (
            f"model {model!r} version {version} has no reference profile, so drift cannot be "
            "measured; register versions with profile=build_profile(training_frame)"
        )
        return _logged(result)
    binner = Binner(profile=refs.profile, predictions=refs.predictions, contract=refs.contract)
    try:
        columns = _columns(reader, refs, window)
        counts = (counter or LocalCounter()).count(reader, binner, window, columns, batch_rows)
    except ModelyardError as exc:
        result.error = exc.message + (f" ({exc.hint})" if exc.hint else "")
        result.skipped_files = reader.skipped_files
        return _logged(result)
    except Exception as exc:  # pyarrow's, polars' or numpy's on odd values: no verdict, no crash
        result.error = (
            f"the request log of {model}:{version} in {window} could not be binned into the "
            f"reference profile: {type(exc).__name__}: {exc}"[:1000]
        )
        result.skipped_files = reader.skipped_files
        return _logged(result)
    result.skipped_files = reader.skipped_files
    result.counts = counts
    result.rows = counts.rows
    if counts.rows == 0:
        skipped = (
            f"; {result.skipped_files} corrupt file(s) skipped" if result.skipped_files else ""
        )
        result.error = f"no requests of {model}:{version} were logged in {window}{skipped}"
        return _logged(result)
    importances = dict(refs.importances) | dict(policy.feature_importance)
    result.drift = score_counts(
        refs.profile,
        counts.features,
        ranges={k: counts.range_of(k) for k in counts.features},
        importances=importances or None,
        thresholds=policy.thresholds,
        rows=counts.rows,
    )
    if refs.predictions is not None and counts.predictions:
        result.prediction_drift = score_counts(
            refs.predictions,
            counts.predictions,
            ranges={k: counts.range_of(k) for k in counts.predictions},
            thresholds=policy.thresholds,
            rows=counts.rows,
        )
    result.violations = counts.violations
    result.quality = _quality(reader, window, policy, counts)
    if counts.rows < policy.min_samples:
        result.verdict = INSUFFICIENT
        result.error = (
            f"{counts.rows} rows in {window}, fewer than min_samples={policy.min_samples}"
        )
        return _logged(result)
    result.signals = _crossed(result, policy)
    result.verdict = CROSSED if result.signals else OK
    return _logged(result)


def _columns(reader: LogReader, refs: References, window: Window) -> list[str] | None:
    """The columns to read: profiled and contracted inputs, and every output the log has (the
    probability columns are named by class, so they are read from the first file's schema)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    profile = refs.profile
    if profile is None:
        return None
    names = [IN + f for f in profile.features]
    if refs.contract is not None:
        names += [IN + c for c in refs.contract.columns]
    files = reader.files("requests", window.start, window.end)
    if not files:
        return names
    try:
        with reader.store.fs.open(files[0], "rb") as fh:
            schema = pq.read_schema(fh)
    except (OSError, ValueError, pa.ArrowException) as exc:  # the reader skips and counts it
        log.debug("schema not read", extra={"path": files[0], "error": str(exc)})
        return None
    # name every input column the log has when profiled features are missing
    Binner(profile=profile).check_columns(schema.names)
    # a tensor output (a list column) is neither binned nor scored, so it is not read
    outputs = [f.name for f in schema if f.name.startswith(OUT) and not pa.types.is_nested(f.type)]
    return list(dict.fromkeys([*names, *outputs]))


def _quality(
    reader: LogReader, window: Window, policy: MonitorPolicy, counts: WindowCounts
) -> LiveQuality | None:
    if OUT + "prediction" not in counts.outputs:
        return None
    estimated = estimated_from_counts(counts.scores)
    task = policy.task
    if task == "auto":
        task = "classification" if counts.scores else "regression"
    try:
        # labels arrive after the requests they judge: read feedback from the window's start on
        if reader.feedback(window.start).num_rows == 0:
            return LiveQuality(task=task, labelled=0, unlabelled=counts.rows, estimated=estimated)
        table = reader.joined(window.start, window.end, columns=counts.outputs)
    except ModelyardError as exc:
        log.warning("live quality not measured", extra={"error": exc.message})
        return None
    keep = [c for c in table.column_names if c.startswith(OUT) or c == "label"]
    return live_quality(table.select(keep), task=policy.task)


def _crossed(result: WindowResult, policy: MonitorPolicy) -> list[dict[str, Any]]:
    signals: list[dict[str, Any]] = []
    drift = result.drift
    if "data_drift" in policy.signals and drift is not None and drift.verdict == DRIFT:
        signals.append(
            {"signal": "data_drift", "score": drift.drift_score, "features": drift.drifted}
        )
    pred = result.prediction_drift
    if "prediction_drift" in policy.signals and pred is not None and pred.verdict == DRIFT:
        signals.append(
            {"signal": "prediction_drift", "score": pred.drift_score, "outputs": pred.drifted}
        )
    if "data_quality" in policy.signals and result.rows:
        rates = {k: n / result.rows for k, n in result.violations.items()}
        bad = sorted(k for k, r in rates.items() if r > policy.max_violation_rate)
        if bad:
            signals.append(
                {
                    "signal": "data_quality",
                    "columns": bad,
                    "rates": {k: rates[k] for k in bad},
                    "max_rate": policy.max_violation_rate,
                }
            )
    q = result.quality
    if "live_quality" in policy.signals and q is not None:
        measured = q.labelled >= policy.min_samples
        metrics = q.metrics if measured else q.estimated
        bad_metrics = {}
        for name, floor in policy.quality_min.items():
            est = metrics.get(name)
            if est is not None and est.n >= policy.min_samples and est.value < floor:
                bad_metrics[name] = {"value": est.value, "min": floor}
        for name, ceiling in policy.quality_max.items():
            est = metrics.get(name)
            if est is not None and est.n >= policy.min_samples and est.value > ceiling:
                bad_metrics[name] = {"value": est.value, "max": ceiling}
        if bad_metrics:
            signals.append(
                {
                    "signal": "live_quality",
                    "metrics": bad_metrics,
                    "source": "labels" if measured else "estimated",
                }
            )
    return signals


def _logged(result: WindowResult) -> WindowResult:
    fields = {
        "model": result.model,
        "version": result.version,
        "window_start": result.window.start.isoformat(),
        "verdict": result.verdict,
        "rows": result.rows,
    }
    if result.error:
        fields["error"] = result.error
    if result.verdict == NO_VERDICT:
        log.warning("no verdict for the window", extra=fields)
    else:
        log.info("window scored", extra=fields)
    return result
