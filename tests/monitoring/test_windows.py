"""Scoring windows of a real request log (local artifact store) and storing the results.

The log is written in the typed request-log layout; results go to SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from tests.monitoring._logs import write_feedback, write_requests
from tests.requestlog._reads import recording_store

from modelyard.data.contract import infer_contract
from modelyard.data.profile import build_profile
from modelyard.monitoring import (
    MonitorPolicy,
    MonitorStore,
    References,
    Window,
    monitor_window,
    windows,
)
from modelyard.requestlog import RequestLog
from modelyard.store.artifacts import ArtifactStore
from modelyard.store.db import MetadataStore

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _frame(rng: np.random.Generator, rows: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40 + shift, 10, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "plan": rng.choice(["basic", "pro", "team"], rows, p=[0.6, 0.3, 0.1]),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _frame(np.random.default_rng(0), 20_000)


@pytest.fixture
def refs(reference: pd.DataFrame) -> References:
    return References(profile=build_profile(reference), contract=infer_contract(reference))


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.open(tmp_path / "artifacts")


def _score(store: ArtifactStore, refs: References, **policy: Any) -> Any:
    return monitor_window(
        RequestLog(store, "churn", "1"),
        refs,
        MonitorPolicy(**policy),
        model="churn",
        version=1,
        window=Window(T0, T0 + HOUR),
    )


def test_a_drifted_window_crosses_and_is_stored_per_window(
    store: ArtifactStore, refs: References, db_url: str
) -> None:
    rng = np.random.default_rng(1)
    write_requests(store, "churn", 1, _frame(rng, 3_000), ts_s=T0.timestamp() + 60)
    # the next hour drifts: a mean shift of one standard deviation in age
    write_requests(store, "churn", 1, _frame(rng, 3_000, shift=10), ts_s=(T0 + HOUR).timestamp())
    results = MonitorStore(MetadataStore.open(db_url))
    calm = _score(store, refs)
    assert (calm.verdict, calm.rows, calm.signals) == ("ok", 3_000, [])
    calm.record(results)
    drifted = monitor_window(
        RequestLog(store, "churn", "1"),
        refs,
        MonitorPolicy(),
        model="churn",
        version=1,
        window=Window(T0 + HOUR, T0 + 2 * HOUR),
    )
    assert drifted.verdict == "crossed"
    assert drifted.signals[0]["signal"] == "data_drift"
    assert drifted.signals[0]["features"] == ["age"]
    drifted.record(results)
    drifted.record(results)  # scoring a window again replaces its row
    history = results.history("churn", 1)
    assert [h.verdict for h in history] == ["ok", "crossed"]
    assert history[1].summary["drift"]["drifted"] == ["age"]
    assert history[1].window_start == (T0 + HOUR).timestamp()
    assert history[1].drift_score == pytest.approx(1 / 3)


def test_a_version_without_a_reference_profile_gets_no_verdict(store: ArtifactStore) -> None:
    write_requests(store, "churn", 1, _frame(np.random.default_rng(2), 600), ts_s=T0.timestamp())
    result = _score(store, References(profile=None))
    assert result.verdict == "no_verdict"
    assert "has no reference profile" in (result.error or "")


def test_an_empty_window_gets_no_verdict_naming_the_window(
    store: ArtifactStore, refs: References
) -> None:
    result = _score(store, refs)
    assert (result.verdict, result.rows) == ("no_verdict", 0)
    assert "no requests of churn:1 were logged in [2026-03-01T12:00:00+00:00" in (
        result.error or ""
    )


def test_corrupt_parquet_files_are_skipped_counted_and_named(
    store: ArtifactStore, refs: References
) -> None:
    write_requests(store, "churn", 1, _frame(np.random.default_rng(3), 800), ts_s=T0.timestamp())
    store.write_named(
        "requests/model=churn/version=1/hour=2026-03-01T12/broken.parquet", b"PAR1 not parquet"
    )
    result = _score(store, refs)
    assert (result.verdict, result.rows, result.skipped_files) == ("ok", 800, 1)


def test_a_window_of_only_corrupt_files_says_so(store: ArtifactStore, refs: References) -> None:
    store.write_named(
        "requests/model=churn/version=1/hour=2026-03-01T12/broken.parquet", b"garbage"
    )
    result = _score(store, refs)
    assert result.verdict == "no_verdict"
    assert "1 corrupt file(s) skipped" in str(result.error)


def test_logs_whose_columns_do_not_fit_get_no_verdict_naming_them(
    store: ArtifactStore, refs: References
) -> None:
    frame = _frame(np.random.default_rng(4), 600).rename(columns={"plan": "tier"})
    write_requests(store, "churn", 1, frame, ts_s=T0.timestamp())
    result = _score(store, refs)
    assert result.verdict == "no_verdict"
    assert "no column for the features ['plan']" in (result.error or "")
    assert "in__tier" in (result.error or "")


def test_a_small_window_is_insufficient_data(store: ArtifactStore, refs: References) -> None:
    write_requests(
        store, "churn", 1, _frame(np.random.default_rng(5), 200, shift=30), ts_s=T0.timestamp()
    )
    result = _score(store, refs)
    assert result.verdict == "insufficient_data"
    assert result.signals == []


def test_contract_violations_cross_data_quality_by_column(
    store: ArtifactStore, refs: References
) -> None:
    frame = _frame(np.random.default_rng(6), 1_000)
    frame.loc[:49, "plan"] = "enterprise"  # 5 % of rows outside the contract's categories
    write_requests(store, "churn", 1, frame, ts_s=T0.timestamp())
    result = _score(store, refs, signals=("data_quality",))
    assert result.violations == {"plan/categories": 50}
    assert result.verdict == "crossed"
    assert result.signals == [
        {
            "signal": "data_quality",
            "columns": ["plan/categories"],
            "rates": {"plan/categories": 0.05},
            "max_rate": 0.01,
        }
    ]


def test_live_quality_from_feedback_and_estimated_quality_without_labels(
    store: ArtifactStore, refs: References
) -> None:
    rng = np.random.default_rng(7)
    n = 2_000
    proba = rng.uniform(0, 1, n)
    truth = (rng.uniform(0, 1, n) < proba).astype(float)  # calibrated scores
    pred = (proba >= 0.5).astype(float)
    ids = write_requests(
        store,
        "churn",
        1,
        _frame(rng, n),
        ts_s=T0.timestamp(),
        outputs={"prediction": pred, "proba__0": 1 - proba, "proba__1": proba},
    )
    labelled = 1_200
    write_feedback(store, "churn", 1, ids[:labelled], truth[:labelled], ts_s=T0.timestamp() + 5)
    result = _score(store, refs, signals=("live_quality",), quality_min={"accuracy": 0.9})
    q = result.quality
    assert (q.task, q.labelled, q.unlabelled) == ("classification", labelled, n - labelled)
    acc = q.metrics["accuracy"]
    expected = float((pred[:labelled] == truth[:labelled]).mean())
    assert acc.value == pytest.approx(expected)
    assert acc.low < acc.value < acc.high
    assert 0.70 < acc.value < 0.80  # |p - 0.5| uniform: 75 % right on average
    assert q.metrics["auc"].low < q.metrics["auc"].value < q.metrics["auc"].high
    est = q.estimated["accuracy"]  # from the 800 unlabelled rows' probabilities alone
    assert est.n == n - labelled
    assert est.value == pytest.approx(float(np.maximum(proba, 1 - proba)[labelled:].mean()))
    assert result.verdict == "crossed"
    assert result.signals[0]["signal"] == "live_quality"
    assert result.signals[0]["metrics"]["accuracy"]["min"] == 0.9


def test_regression_quality_has_mae_and_rmse_with_intervals(
    store: ArtifactStore, refs: References
) -> None:
    rng = np.random.default_rng(8)
    n = 1_000
    err = rng.normal(0, 2.0, n)
    y = rng.normal(100, 10, n)
    ids = write_requests(
        store, "churn", 1, _frame(rng, n), ts_s=T0.timestamp(), outputs={"prediction": y + err}
    )
    write_feedback(store, "churn", 1, ids, y, ts_s=T0.timestamp() + 1)
    q = _score(store, refs).quality
    assert q.task == "regression"
    assert q.metrics["rmse"].value == pytest.approx(float(np.sqrt(np.mean(err**2))))
    assert q.metrics["mae"].low < 2.0 * np.sqrt(2 / np.pi) < q.metrics["mae"].high


def test_windows_from_since_and_aligned_last_windows() -> None:
    now = (T0 + dt.timedelta(minutes=150)).timestamp()
    got = windows(3600, now=now, since=T0)
    assert [(w.start, w.end) for w in got] == [
        (T0, T0 + HOUR),
        (T0 + HOUR, T0 + 2 * HOUR),
        (T0 + 2 * HOUR, T0 + dt.timedelta(minutes=150)),
    ]
    last = windows(3600, now=now, last=2)
    assert [w.start for w in last] == [T0 + HOUR, T0 + 2 * HOUR]
    assert last[-1].end == T0 + 3 * HOUR


def test_estimated_quality_streamed_from_counts_matches_the_rows(
    store: ArtifactStore, refs: References
) -> None:
    from modelyard.monitoring import estimated_quality

    rng = np.random.default_rng(9)
    n = 3_000
    proba = rng.beta(2, 2, n)
    pred = (proba >= 0.5).astype(float)
    outputs = {"prediction": pred, "proba__0": 1 - proba, "proba__1": proba}
    # two files: the sums of both are merged
    write_requests(store, "churn", 1, _frame(rng, n), ts_s=T0.timestamp(), outputs=outputs)
    write_requests(
        store,
        "churn",
        1,
        _frame(rng, 10),
        ts_s=T0.timestamp(),
        outputs={"prediction": pred[:10], "proba__0": 1 - proba[:10], "proba__1": proba[:10]},
    )
    q = _score(store, refs).quality
    assert (q.labelled, q.unlabelled) == (0, n + 10)
    table = RequestLog(store, "churn", "1").requests(columns=["out__proba__0", "out__proba__1"])
    exact = estimated_quality(table)
    assert q.estimated["accuracy"].value == pytest.approx(exact["accuracy"].value)
    assert q.estimated["brier"].value == pytest.approx(exact["brier"].value)
    assert q.estimated["auc"].value == pytest.approx(exact["auc"].value, abs=1e-3)
    assert 0.5 < q.estimated["auc"].value < 1.0


def test_a_window_is_read_one_row_group_at_a_time(refs: References, tmp_path: Path) -> None:
    # memory bounded by a row group, not by a file (see tests/requestlog for the reader); the
    # columns the monitor leaves out are small here (few distinct request ids), so a reader
    # fetching the whole file at once would do it in one coalesced read
    store = recording_store(tmp_path / "artifacts")
    rng = np.random.default_rng(11)
    ids = [f"r{i % 10}" for i in range(40_000)]
    frame = _frame(rng, 40_000)
    write_requests(store, "churn", 1, frame, ts_s=T0.timestamp(), ids=ids, row_group_rows=10_000)
    (path,) = RequestLog(store, "churn", "1").files("requests")
    with store.fs.open(path, "rb") as fh:
        group_bytes = pq.ParquetFile(fh).metadata.row_group(0).total_byte_size
    store.fs.read_sizes.clear()
    result = _score(store, refs)
    assert (result.rows, result.verdict) == (40_000, "ok")
    fetches = [n for n in store.fs.read_sizes if n > group_bytes / 2]
    assert len(fetches) == 4
    assert max(fetches) < 2 * group_bytes


def test_a_tensor_output_is_not_read(store: ArtifactStore, refs: References) -> None:
    rng = np.random.default_rng(12)
    vectors = [[0.25, 0.75]] * 3_000  # one list column: neither binned nor scored
    write_requests(
        store, "churn", 1, _frame(rng, 3_000), ts_s=T0.timestamp(), outputs={"prediction": vectors}
    )
    result = _score(store, refs)
    assert (result.rows, result.verdict, result.quality) == (3_000, "ok", None)
    assert result.counts is not None
    assert result.counts.outputs == []


def test_the_report_holds_bins_and_scores_not_rows(
    store: ArtifactStore, refs: References, tmp_path: Path
) -> None:
    from modelyard.monitoring import write_report

    frame = _frame(np.random.default_rng(10), 1_000, shift=12)
    ids = write_requests(store, "churn", 1, frame, ts_s=T0.timestamp())
    result = _score(store, refs)
    path = write_report(tmp_path / "r.html", result, refs.profile)
    html = path.read_text()
    assert "data_drift" in html
    assert "age" in html
    assert ids[0] not in html
    assert f"{frame['income'].iloc[0]:.6g}" not in html
