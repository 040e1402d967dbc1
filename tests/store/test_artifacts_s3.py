"""The artifact store on S3, against a real moto server subprocess (no patched clients)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.errors import IntegrityError, InvalidNameError, NotFoundError
from modelyard.store.artifacts import ArtifactStore
from modelyard.testing.s3 import S3Server, moto_s3_server

pytest.importorskip("s3fs")
pytest.importorskip("moto")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_s3_server() as server:
        server.create_bucket("modelyard-test")
        yield server


@pytest.fixture
def store(s3: S3Server) -> ArtifactStore:
    # a fresh prefix per test: the server is shared by the module
    return ArtifactStore.open(f"s3://modelyard-test/{uuid.uuid4().hex}", s3.storage_options)


def _key(store: ArtifactStore, sha: str) -> str:
    prefix = store.root.split("/", 1)[1]
    return f"{prefix}/objects/{sha[:2]}/{sha[2:4]}/{sha}"


def test_round_trip_and_layout(store: ArtifactStore, s3: S3Server) -> None:
    data = b"weights" * 1000
    sha = hashlib.sha256(data).hexdigest()
    assert not store.exists(sha)
    ref = store.put_bytes(data)
    assert ref.sha256 == sha
    assert ref.size_bytes == len(data)
    assert ref.uri == f"s3://{store.root}/objects/{sha[:2]}/{sha[2:4]}/{sha}"
    body = s3.client().get_object(Bucket="modelyard-test", Key=_key(store, sha))["Body"].read()
    assert body == data
    assert store.exists(sha)
    assert store.get_bytes(sha) == data
    assert store.put_bytes(data) == ref  # idempotent


def test_put_file_get_file_large(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(6 * 1024 * 1024 + 5)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    ref = store.put_file(src)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    out = store.get_file(ref.sha256, tmp_path / "out" / "big.bin")
    assert out.read_bytes() == data
    assert store.put_stream(io.BytesIO(data)) == ref


def test_tampered_object_raises(store: ArtifactStore, s3: S3Server, tmp_path: Path) -> None:
    ref = store.put_bytes(b"original bytes")
    s3.client().put_object(Bucket="modelyard-test", Key=_key(store, ref.sha256), Body=b"evil")
    with pytest.raises(IntegrityError) as info:
        store.get_bytes(ref.sha256)
    assert ref.sha256 in str(info.value)
    assert hashlib.sha256(b"evil").hexdigest() in str(info.value)
    with pytest.raises(IntegrityError):
        store.get_file(ref.sha256, tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()
    assert store.delete(ref.sha256)
    store.put_bytes(b"original bytes")
    assert store.get_bytes(ref.sha256) == b"original bytes"


def test_missing_object(store: ArtifactStore) -> None:
    with pytest.raises(NotFoundError, match="0" * 64):
        store.get_bytes("0" * 64)


def test_dirs_and_named_files(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "pkg"
    (src / "sub").mkdir(parents=True)
    (src / "modelyard.json").write_text("{}")
    (src / "sub" / "model.onnx").write_bytes(b"\x08\x01")
    refs = store.put_dir(src)
    out = store.get_dir(refs, tmp_path / "out")
    assert (out / "sub" / "model.onnx").read_bytes() == b"\x08\x01"

    store.write_named("logs/requests/part-0.parquet", b"a")
    store.write_named("logs/requests/part-1.parquet", b"b")
    store.write_named("logs/feedback/part-0.parquet", b"c")
    assert store.list_named("logs/requests/") == [
        "logs/requests/part-0.parquet",
        "logs/requests/part-1.parquet",
    ]
    assert store.list_named("nothing/") == []
    assert store.read_named("logs/feedback/part-0.parquet") == b"c"
    with pytest.raises(NotFoundError):
        store.read_named("logs/feedback/part-9.parquet")
    with pytest.raises(InvalidNameError):
        store.write_named("../outside", b"x")
    assert store.named_uri("logs/x").startswith("s3://modelyard-test/")


def test_credentials_are_never_shown(
    store: ArtifactStore, s3: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    secret = s3.storage_options["secret"]
    opts = {**s3.storage_options, "secret": "s3cr3t-value-not-for-logs"}
    other = ArtifactStore.open(store.url, opts)
    assert "s3cr3t" not in repr(other)
    with caplog.at_level(logging.DEBUG, logger="modelyard"):
        store.put_bytes(b"logged put")
        store.write_named("a.txt", b"x")
    assert caplog.records  # the debug records exist and hold no secret
    assert all(
        secret not in r.getMessage() and "s3cr3t" not in str(r.__dict__) for r in caplog.records
    )


def test_from_settings(s3: S3Server, tmp_path: Path) -> None:
    from modelyard.config import load_settings

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.modelyard]\n")
    settings = load_settings(
        start=project,
        home=str(tmp_path / "home"),
        artifact_url="s3://modelyard-test/from-settings",
        storage_options=s3.storage_options,
    )
    store = ArtifactStore.from_settings(settings)
    ref = store.put_bytes(b"configured")
    assert ref.uri.startswith("s3://modelyard-test/from-settings/objects/")


def test_model_package_through_an_s3_registry(
    s3: S3Server, store: ArtifactStore, tmp_path: Path
) -> None:
    import numpy as np
    from sklearn.linear_model import LinearRegression

    import modelyard.models as mm
    from modelyard.registry.registry import Registry
    from modelyard.store.db import MetadataStore

    registry = Registry(MetadataStore.open(f"sqlite:///{tmp_path / 'meta.db'}"), store, user="t")
    x = np.arange(12, dtype=float).reshape(6, 2)
    reg = LinearRegression().fit(x, x[:, 1])
    version = mm.register(reg, registry, name="lin", input_example=x[:2], aliases=["production"])
    assert version.artifact_uri.startswith(f"s3://{store.root}/objects/")
    model = mm.load("models:/lin@production", registry=registry, cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(model.predict(x), reg.predict(x))


_CHILD = """
import sys
from modelyard.store.artifacts import ArtifactStore
from modelyard.testing.s3 import ACCESS_KEY, SECRET_KEY, REGION
opts = {"key": ACCESS_KEY, "secret": SECRET_KEY, "endpoint_url": sys.argv[2],
        "client_kwargs": {"region_name": REGION}}
ArtifactStore.open(sys.argv[1], opts).put_stream(sys.stdin.buffer)
"""


def test_writer_killed_mid_stream_leaves_no_s3_object(
    s3: S3Server, store: ArtifactStore, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    spool = tmp_path / "spool"
    spool.mkdir()
    chunk = os.urandom(1024 * 1024)
    sha = hashlib.sha256(chunk * 4).hexdigest()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, store.url, s3.endpoint_url],
        stdin=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(spool)},
    )
    assert child.stdin is not None
    try:
        child.stdin.write(chunk * 2)
        child.stdin.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until half the bytes reached the spool file
            parts = list(spool.glob("modelyard-spool-*"))
            if parts and parts[0].stat().st_size >= 2 * len(chunk):
                break
            assert child.poll() is None
            time.sleep(0.01)  # polling the child's progress, bounded by the deadline
        else:
            pytest.fail("the writer never spooled half of the artifact")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        child.stdin.close()
    assert not store.exists(sha)
    listed = s3.client().list_objects_v2(
        Bucket="modelyard-test", Prefix=store.root.split("/", 1)[1]
    )
    assert listed.get("KeyCount", 0) == 0
    assert store.put_stream(io.BytesIO(chunk * 4)).sha256 == sha
