"""The typed request log: written by RequestLogWriter, read back by RequestLog (local and S3)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelyard.requestlog import FlushResult, LogWriteFailed, RequestLog, RequestLogWriter
from modelyard.requestlog.reader import iter_file_batches
from modelyard.store.artifacts import ArtifactStore
from modelyard.testing.s3 import S3Server, moto_s3_server
from tests._full_disk import fill, tiny_tmpfs
from tests.monitoring._logs import write_requests
from tests.requestlog._reads import recording_store

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 1, 10, 15, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.open(str(tmp_path / "artifacts"), fsync=False)


def test_tensor_batches_are_typed_rows_per_instance(tmp_path: Path) -> None:
    store = _store(tmp_path)
    w = RequestLogWriter(store, "mlp", "3", clock=Clock(T0))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = np.array([[0.5, 1.5], [2.5, 3.5], [4.5, 5.5]], dtype=np.float32)
    assert w.add_batch(["a", "b"], [2, 1], x, y, latency_ms=[1.5, 2.0])
    w.add_records([("bad", 422, 0.25)])
    names = w.flush()
    assert len(names) == 1
    assert names[0].startswith("requests/model=mlp/version=3/hour=2026-03-01T10/")
    t = RequestLog(store, "mlp").requests()
    assert t.num_rows == 4
    assert _vector(t.schema.field("in__input").type) == ("float32", 4)
    assert _vector(t.schema.field("out__prediction").type) == ("float32", 2)
    assert t.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert t.schema.field("status").type == pa.int16()
    rows = t.to_pylist()
    assert [(r["request_id"], r["instance"], r["status"]) for r in rows] == [
        ("a", 0, 200),
        ("a", 1, 200),
        ("b", 0, 200),
        ("bad", 0, 422),
    ]
    assert rows[1]["in__input"] == [4.0, 5.0, 6.0, 7.0]
    assert rows[2]["out__prediction"] == [4.5, 5.5]
    assert rows[2]["latency_ms"] == 2.0
    assert rows[3]["in__input"] is None
    assert rows[3]["out__prediction"] is None
    assert {r["model"] for r in rows} == {"mlp"}
    assert {r["version"] for r in rows} == {"3"}
    assert rows[0]["ts"] == dt.datetime.fromtimestamp(T0, UTC)


def test_contract_columns_are_typed_from_the_contract(tmp_path: Path) -> None:
    store = _store(tmp_path)
    types = {"age": "int", "income": "float", "plan": "string", "active": "bool"}
    w = RequestLogWriter(store, "churn", "1", inputs=types, clock=Clock(T0))
    frame = pd.DataFrame(
        {"age": [30, 41], "income": [1000, 2500], "plan": ["pro", "basic"], "active": [True, False]}
    )
    w.add_batch(["r1", "r2"], None, frame, {"prediction": np.array([1, 0]),
                                            "proba__yes": np.array([0.9, 0.2])})  # fmt: skip
    # a tensor model whose contract names its columns: one column per feature
    w2 = RequestLogWriter(store, "churn", "2", inputs={"a": "float", "b": "float"}, clock=Clock(T0))
    w2.add_batch(["r3"], None, np.array([[1.0, 2.0]], dtype=np.float32), np.array(["yes"]))
    w.flush()
    w2.flush()
    t = RequestLog(store, "churn", "1").requests()
    assert t.schema.field("in__age").type == pa.int64()
    assert t.schema.field("in__income").type == pa.float64()  # ints in a float column
    assert t.schema.field("in__plan").type == pa.string()
    assert t.schema.field("in__active").type == pa.bool_()
    assert t.schema.field("out__prediction").type == pa.int64()
    assert t.column("out__proba__yes").to_pylist() == [0.9, 0.2]
    t2 = RequestLog(store, "churn", "2").requests()
    assert t2.column("in__a").to_pylist() == [1.0]
    assert t2.schema.field("in__b").type == pa.float64()
    assert t2.column("out__prediction").to_pylist() == ["yes"]
    both = RequestLog(store, "churn").requests()  # every version
    assert sorted(both.column("version").to_pylist()) == ["1", "1", "2"]
    log = RequestLog(store, "churn")
    proba = log.requests(columns=["out__proba__yes"]).column("out__proba__yes").to_pylist()
    assert sorted(proba, key=str) == [0.2, 0.9, None]  # version 2 has no such column: nulls
    assert log.skipped_files == 0


def test_json_instances_without_contract_infer_columns_from_keys(tmp_path: Path) -> None:
    store = _store(tmp_path)
    w = RequestLogWriter(store, "m", "1", clock=Clock(T0))
    w.add_batch(["a", "b"], None, [{"x": 1.5, "s": "u"}, {"x": 2.0, "t": True}], ["p", "q"])
    w.flush()
    rows = RequestLog(store, "m").requests().to_pylist()
    assert [(r["in__x"], r["in__s"], r["in__t"]) for r in rows] == [
        (1.5, "u", None),
        (2.0, None, True),
    ]


def test_window_lists_only_its_hours_and_filters_rows(tmp_path: Path) -> None:
    store = _store(tmp_path)
    clock = Clock(T0)
    w = RequestLogWriter(store, "m", "1", clock=clock)
    x = np.zeros((1, 2), dtype=np.float32)
    for i in range(4):  # 10:15, 11:15, 12:15, 13:15
        clock.t = T0 + i * 3600
        w.add_batch([f"r{i}"], None, x, x)
    w.flush()
    log = RequestLog(store, "m")
    since = dt.datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
    until = dt.datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    files = log.files("requests", since, until)
    assert [f.split("hour=")[1][:13] for f in files] == ["2026-03-01T11", "2026-03-01T12"]
    assert log.requests(since, until).column("request_id").to_pylist() == ["r2"]
    naive = dt.datetime(2026, 3, 1, 11, 0)  # naive datetimes are UTC
    assert log.requests(naive).column("request_id").to_pylist() == ["r1", "r2", "r3"]
    assert log.requests(columns=["request_id"]).column_names == ["request_id"]
    assert RequestLog(store, "other").requests().num_rows == 0


def test_batches_bound_memory_and_cover_the_window(tmp_path: Path) -> None:
    store = _store(tmp_path)
    w = RequestLogWriter(store, "m", "1", clock=Clock(T0), max_rows_per_file=40)
    x = np.arange(100 * 3, dtype=np.float32).reshape(100, 3)
    w.add_batch([f"r{i}" for i in range(100)], None, x, x[:, 0])
    w.add_batch([f"s{i}" for i in range(30)], None, x[:30], x[:30, 0])
    assert len(w.flush()) == 2  # 100 rows, then 30: files break between batches
    batches = list(
        RequestLog(store, "m").iter_request_batches(batch_rows=16, columns=["in__input"])
    )
    assert all(b.num_rows <= 16 for b in batches)
    assert sum(b.num_rows for b in batches) == 130
    assert batches[0].schema.names == ["in__input"]


def test_a_file_is_read_one_row_group_at_a_time(tmp_path: Path) -> None:
    # pyarrow's iter_batches over a whole file fetched all its row groups before the first
    # batch: a 1M-row file held 175 MiB, and a window's memory grew with its files
    store = recording_store(tmp_path / "artifacts")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(0, 1, 40_000) for i in range(4)})
    write_requests(store, "m", 1, frame, ts_s=T0, row_group_rows=10_000)
    (path,) = RequestLog(store, "m").files("requests")
    with store.fs.open(path, "rb") as fh:
        group_bytes = pq.ParquetFile(fh).metadata.row_group(0).total_byte_size
    store.fs.read_sizes.clear()
    batches = list(RequestLog(store, "m").iter_request_batches(batch_rows=4_096))
    assert sum(b.num_rows for b in batches) == 40_000
    assert all(b.num_rows <= 4_096 for b in batches)
    # the file's four row groups are fetched in four reads, not one
    fetches = [n for n in store.fs.read_sizes if n > group_bytes / 2]
    assert len(fetches) == 4
    assert max(fetches) < 2 * group_bytes


def test_a_row_group_too_large_to_fetch_whole_is_read_by_pages(tmp_path: Path) -> None:
    store = recording_store(tmp_path / "artifacts")
    frame = pd.DataFrame({"x": np.arange(400_000, dtype=np.float64)})
    write_requests(store, "m", 1, frame, ts_s=T0)  # one row group of 3.2 MB of x
    (path,) = RequestLog(store, "m").files("requests")
    store.fs.read_sizes.clear()
    with store.fs.open(path, "rb") as fh:
        batches = list(iter_file_batches(fh, ["in__x"], prebuffer_max_bytes=1 << 20))
    x = pa.Table.from_batches(batches).column("in__x")
    assert x.to_numpy().tolist() == frame["x"].tolist()
    assert max(store.fs.read_sizes) < 1.1 * (1 << 20)  # a read buffer per column, not the group


def test_feedback_joins_the_latest_label_per_request(tmp_path: Path) -> None:
    store = _store(tmp_path)
    clock = Clock(T0)
    w = RequestLogWriter(store, "m", "1", clock=clock)
    x = np.zeros((2, 2), dtype=np.float32)
    w.add_batch(["a", "b"], None, x, np.array([0.1, 0.7]))
    clock.t += 60
    w.add_feedback("a", 0, outcome=3.5, extra={"source": "qa"})
    clock.t += 60
    w.add_feedback("a", 1)
    w.flush()
    log = RequestLog(store, "m", "1")
    fb = log.feedback()
    assert fb.schema.field("label").type == pa.float64()
    assert fb.column("extra").to_pylist() == ['{"source":"qa"}', None]
    rows = log.joined().to_pylist()
    assert [(r["request_id"], r["label"], r["outcome"]) for r in rows] == [
        ("a", 1.0, None),
        ("b", None, None),
    ]
    frame = log.joined(columns=["out__prediction"]).to_pandas()
    assert list(frame["out__prediction"]) == [0.1, 0.7]
    # text labels stay text; a later file with numeric labels still joins
    w.add_feedback("b", "churned")
    w.flush()
    labels = {r["request_id"]: r["label"] for r in log.joined().to_pylist()}
    assert labels == {"a": "1", "b": "churned"}  # numbers cast to text


def test_corrupt_files_are_skipped_and_counted(tmp_path: Path) -> None:
    store = _store(tmp_path)
    w = RequestLogWriter(store, "m", "1", clock=Clock(T0))
    w.add_batch(["a"], None, np.zeros((1, 2), dtype=np.float32), np.zeros(1))
    w.flush()
    store.write_named("requests/model=m/version=1/hour=2026-03-01T10/broken.parquet", b"PAR1xx")
    log = RequestLog(store, "m")
    assert log.requests().column("request_id").to_pylist() == ["a"]
    assert log.skipped_files == 1
    assert sum(b.num_rows for b in log.iter_request_batches()) == 1
    assert log.skipped_files == 2


def test_full_buffer_drops_and_counts(tmp_path: Path) -> None:
    store = _store(tmp_path)
    w = RequestLogWriter(store, "m", "1", max_records=3, clock=Clock(T0))
    x = np.zeros((2, 2), dtype=np.float32)
    assert w.add_batch(["a", "b"], None, x, x)
    assert not w.add_batch(["c", "d"], None, x, x)  # 2 more rows do not fit
    assert w.add_feedback("a", 1)
    assert not w.add_feedback("a", 2)
    assert w.dropped == 3
    w.flush()
    assert w.pending == 0
    assert w.written_rows == 3  # two requests and one feedback
    assert w.add_batch(["e", "f"], None, x, x)  # room again after the flush


def test_sampling_keeps_whole_requests(tmp_path: Path) -> None:
    store = _store(tmp_path)
    draws = iter([0.1, 0.9, 0.3])
    w = RequestLogWriter(
        store, "m", "1", sample_rate=0.5, clock=Clock(T0), rand=lambda: next(draws)
    )
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    w.add_batch(["a", "b", "c"], [1, 2, 1], x, x[:, 0], latency_ms=[1.0, 2.0, 3.0])
    w.flush()
    rows = RequestLog(store, "m").requests().to_pylist()
    assert [(r["request_id"], r["in__input"], r["latency_ms"]) for r in rows] == [
        ("a", [0.0, 1.0], 1.0),
        ("c", [6.0, 7.0], 3.0),
    ]
    assert w.dropped == 0


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 512KB tmpfs: writes beyond it fail with ENOSPC (root only)."""
    with tiny_tmpfs(tmp_path / "tiny", "512k") as mnt:
        yield mnt


def test_full_disk_keeps_what_fits_and_counts_the_rest(tiny_fs: Path) -> None:
    store = ArtifactStore.open(str(tiny_fs / "artifacts"), fsync=False)
    store.write_named("probe", b"x")  # folders exist before the disk fills
    w = RequestLogWriter(store, "m", "1", max_records=100, clock=Clock(T0))
    x = np.random.default_rng(0).standard_normal((40, 64)).astype(np.float32)
    w.add_batch([f"a{i}" for i in range(40)], None, x, x[:, 0])
    filler = fill(tiny_fs)
    with pytest.raises(LogWriteFailed) as err:
        w.flush()
    assert "No space left on device" in err.value.message
    assert "40 records kept" in err.value.message
    assert err.value.http_status == 503
    assert w.pending == 40
    assert w.dropped == 0
    w.add_batch([f"b{i}" for i in range(40)], None, x, x[:, 0])
    assert not w.add_batch([f"c{i}" for i in range(40)], None, x, x[:, 0])  # 120 > 100
    assert w.dropped == 40
    result = w.try_flush()
    assert result.error is not None
    assert result.pending == 80
    assert result.dropped == 40
    assert w.written_rows == 0  # nothing counted written before a file is
    filler.unlink()
    names = w.flush()
    assert w.written_rows == 80
    ids = RequestLog(store, "m").requests(columns=["request_id"]).column("request_id")
    assert len(names) == 1
    assert ids.to_pylist() == [f"a{i}" for i in range(40)] + [f"b{i}" for i in range(40)]


def test_stop_reports_what_it_could_not_write(tiny_fs: Path) -> None:
    store = ArtifactStore.open(str(tiny_fs / "artifacts"), fsync=False)
    store.write_named("probe", b"x")
    w = RequestLogWriter(store, "m", "1", clock=Clock(T0))
    x = np.random.default_rng(1).standard_normal((30, 64)).astype(np.float32)
    w.add_batch([f"a{i}" for i in range(30)], None, x, x[:, 0])
    fill(tiny_fs)
    assert w.stop() == 30


def test_a_full_disk_is_retried_each_period_not_at_every_append(tiny_fs: Path) -> None:
    """Rows kept after a failed flush stay above ``flush_rows``: each append must not start
    another flush of the whole buffer (and log another warning) while the store refuses."""
    store = ArtifactStore.open(str(tiny_fs / "artifacts"), fsync=False)
    store.write_named("probe", b"x")
    fill(tiny_fs)
    results: list[FlushResult] = []
    w = RequestLogWriter(store, "m", "1", flush_s=3600, flush_rows=10, on_flush=results.append)
    w.start()
    x = np.zeros((10, 4), dtype=np.float32)
    w.add_batch([f"a{i}" for i in range(10)], None, x, x[:, 0])  # wakes the writer
    deadline = time.monotonic() + 30
    while not results:
        assert time.monotonic() < deadline, "the writer did not flush"
        time.sleep(0.01)
    for i in range(20):  # each of these used to start another (failing) flush
        w.add_batch([f"b{i}"], None, x[:1], x[:1, 0])
        time.sleep(0.01)
    assert len(results) == 1
    assert results[0].error is not None
    assert "No space left on device" in results[0].error
    assert w.stop() == 30  # the retry of stop() still runs, at once


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    with moto_s3_server() as server:
        server.create_bucket("logs")
        yield server


def test_round_trip_on_s3(s3: S3Server) -> None:
    store = ArtifactStore.open(f"s3://logs/{uuid.uuid4().hex}", s3.storage_options)
    clock = Clock(T0)
    w = RequestLogWriter(store, "m", "2", clock=clock)
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    w.add_batch(["a", "b", "c"], None, x, x[:, 1])
    clock.t += 3600
    w.add_batch(["d"], None, x[:1], x[:1, 1])
    w.add_feedback("b", 1.0)
    assert len(w.flush()) == 3
    store.write_named("requests/model=m/version=2/hour=2026-03-01T11/junk.parquet", b"nope")
    log = RequestLog(store, "m")
    since = dt.datetime(2026, 3, 1, 11, tzinfo=UTC)
    assert log.requests(since).column("request_id").to_pylist() == ["d"]
    assert log.skipped_files == 1
    joined = {r["request_id"]: r["label"] for r in log.joined().to_pylist()}
    assert joined == {"a": None, "b": 1.0, "c": None, "d": None}
    assert sum(b.num_rows for b in log.iter_request_batches(batch_rows=2)) == 4


def _vector(t: pa.DataType) -> tuple[str, int]:
    """A fixed-size list type as (element type, width): Parquet renames the element field."""
    assert pa.types.is_fixed_size_list(t)
    return t.value_type.to_pandas_dtype().__name__, t.list_size
