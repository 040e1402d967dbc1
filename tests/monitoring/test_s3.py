"""A request log on S3 (a real moto server subprocess): the same window scores as on a folder."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from tests.monitoring._logs import write_requests

from modelyard.data.profile import build_profile
from modelyard.monitoring import MonitorPolicy, References, Window, monitor_window
from modelyard.requestlog import RequestLog
from modelyard.store.artifacts import ArtifactStore
from modelyard.testing.s3 import S3Server, moto_s3_server

pytest.importorskip("s3fs")
pytest.importorskip("moto")

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_s3_server() as server:
        server.create_bucket("modelyard-monitor")
        yield server


def _frame(rng: np.random.Generator, rows: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"x": rng.normal(shift, 1, rows), "y": rng.normal(0, 1, rows)})


def test_a_window_on_s3_is_read_scored_and_corrupt_files_counted(s3: S3Server) -> None:
    store = ArtifactStore.open(f"s3://modelyard-monitor/{uuid.uuid4().hex}", s3.storage_options)
    rng = np.random.default_rng(0)
    profile = build_profile(_frame(rng, 10_000))
    write_requests(store, "m", 1, _frame(rng, 1_500, shift=1.0), ts_s=T0.timestamp() + 5)
    store.write_named("requests/model=m/version=1/hour=2026-03-01T12/bad.parquet", b"nope")
    result = monitor_window(
        RequestLog(store, "m", "1"),
        References(profile=profile),
        MonitorPolicy(),
        model="m",
        version=1,
        window=Window(T0, T0 + dt.timedelta(hours=1)),
    )
    assert (result.rows, result.skipped_files, result.verdict) == (1_500, 1, "crossed")
    assert result.drift is not None
    assert result.drift.drifted == ["x"]
