"""The local artifact store: addressing, atomicity, crash safety, integrity, named files."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import IntegrityError, InvalidInputError, InvalidNameError, NotFoundError
from modelyard.store.artifacts import (
    ArtifactRef,
    ArtifactStore,
    _fsync_dir,
    validate_relative_name,
)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.open(tmp_path / "artifacts")


def _objects(root: Path) -> list[Path]:
    return sorted(p for p in (root / "objects").rglob("*") if p.is_file())


def test_put_bytes_is_content_addressed_on_disk(store: ArtifactStore, tmp_path: Path) -> None:
    data = b"model weights"
    sha = hashlib.sha256(data).hexdigest()
    ref = store.put_bytes(data)
    assert ref == ArtifactRef(sha, len(data), store.uri(sha))
    path = tmp_path / "artifacts" / "objects" / sha[:2] / sha[2:4] / sha
    assert path.read_bytes() == data
    assert ref.uri == path.as_uri()
    assert store.exists(sha)
    assert store.get_bytes(sha) == data
    assert store.is_local


def test_put_is_idempotent_and_leaves_no_temp_files(store: ArtifactStore, tmp_path: Path) -> None:
    first = store.put_bytes(b"same")
    mtime = Path(first.uri.removeprefix("file://")).stat().st_mtime_ns
    src = tmp_path / "same.bin"
    src.write_bytes(b"same")
    assert store.put_file(src) == first
    assert store.put_bytes(b"same") == first
    assert Path(first.uri.removeprefix("file://")).stat().st_mtime_ns == mtime
    assert len(_objects(tmp_path / "artifacts")) == 1
    assert list((tmp_path / "artifacts" / "tmp").iterdir()) == []


def test_put_file_streams_large_file(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)  # spans several copy chunks
    src.write_bytes(data)
    ref = store.put_file(src)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size_bytes == len(data)
    dest = store.get_file(ref.sha256, tmp_path / "out" / "copy.bin")
    assert dest.read_bytes() == data
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.bin"]


def test_put_stream(store: ArtifactStore) -> None:
    ref = store.put_stream(io.BytesIO(b"x" * 10))
    assert store.get_bytes(ref.sha256) == b"x" * 10


def test_empty_content(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"")
    assert ref.size_bytes == 0
    assert store.get_bytes(ref.sha256) == b""


def test_tampered_object_raises_integrity_error(store: ArtifactStore, tmp_path: Path) -> None:
    ref = store.put_bytes(b"0123456789")
    path = Path(ref.uri.removeprefix("file://"))
    raw = bytearray(path.read_bytes())
    raw[3] ^= 0x01
    path.write_bytes(bytes(raw))
    actual = hashlib.sha256(bytes(raw)).hexdigest()
    with pytest.raises(IntegrityError) as info:
        store.get_bytes(ref.sha256)
    message = str(info.value)
    assert ref.sha256 in message
    assert actual in message
    assert "put the original content again" in message
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"previous")
    with pytest.raises(IntegrityError):
        store.get_file(ref.sha256, dest)
    assert dest.read_bytes() == b"previous"  # never replaced by unverified bytes
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".dest")) == []
    # the documented repair: delete, put the original again
    assert store.delete(ref.sha256)
    store.put_bytes(b"0123456789")
    assert store.get_bytes(ref.sha256) == b"0123456789"


def test_truncated_object_is_replaced_by_a_new_put(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"abcdef")
    Path(ref.uri.removeprefix("file://")).write_bytes(b"abc")
    store.put_bytes(b"abcdef")  # a size mismatch is not "already stored"
    assert store.get_bytes(ref.sha256) == b"abcdef"


def test_missing_and_malformed_addresses(store: ArtifactStore, tmp_path: Path) -> None:
    missing = "0" * 64
    assert not store.exists(missing)
    with pytest.raises(NotFoundError, match=missing):
        store.get_bytes(missing)
    with pytest.raises(NotFoundError, match=missing):
        store.get_file(missing, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(InvalidInputError, match="not a sha256"):
        store.get_bytes("../../etc/passwd")
    with pytest.raises(InvalidInputError, match="not a sha256"):
        store.exists("ABC")
    with pytest.raises(NotFoundError, match="no such file"):
        store.put_file(tmp_path / "nope.bin")
    assert not store.delete(missing)


def test_put_dir_and_get_dir_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "pkg"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.bin").write_bytes(b"\x00\x01")
    (src / "sub" / "deep" / "c").write_text("a")  # same content as a.txt: stored once
    refs = store.put_dir(src)
    assert list(refs) == ["a.txt", "sub/b.bin", "sub/deep/c"]
    assert refs["a.txt"].sha256 == refs["sub/deep/c"].sha256
    assert len(_objects(tmp_path / "artifacts")) == 2
    out = store.get_dir({k: v.sha256 for k, v in refs.items()}, tmp_path / "out")
    assert (out / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    assert (out / "sub" / "deep" / "c").read_text() == "a"
    out2 = store.get_dir(refs, tmp_path / "out2")
    assert (out2 / "a.txt").read_text() == "a"


def test_get_dir_rejects_escaping_paths_before_writing(
    store: ArtifactStore, tmp_path: Path
) -> None:
    ref = store.put_bytes(b"payload")
    for bad in ("../evil", "/etc/evil", "a/../../evil", "a\\b", "a//b"):
        with pytest.raises(InvalidNameError):
            store.get_dir({"ok.txt": ref.sha256, bad: ref.sha256}, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert not (tmp_path / "evil").exists()


def test_put_dir_rejects_symlink_escaping_the_folder(store: ArtifactStore, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not upload")
    src = tmp_path / "pkg"
    src.mkdir()
    (src / "link").symlink_to(secret)
    with pytest.raises(InvalidInputError, match="outside"):
        store.put_dir(src)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("../x", "'..' segment"),
        ("a/../../x", "'..' segment"),
        ("./x", "'.' segment"),
        ("/abs/x", "absolute"),
        ("a\\b", "backslash"),
        ("a//b", "empty path segment"),
        ("a/", "empty path segment"),
        ("a\x00b", "NUL"),
        ("C:/x", "drive letter"),
    ],
)
def test_named_file_names_are_validated(store: ArtifactStore, name: str, problem: str) -> None:
    with pytest.raises(InvalidNameError, match=problem) as info:
        store.write_named(name, b"x")
    assert repr(name) in str(info.value)
    with pytest.raises(InvalidNameError):
        store.read_named(name)
    with pytest.raises(InvalidNameError):
        validate_relative_name(name)


def test_named_files(store: ArtifactStore, tmp_path: Path) -> None:
    assert store.list_named() == []
    assert store.list_named("logs/") == []
    uri = store.write_named("logs/requests/2024-01-01/part-0.parquet", b"p0")
    store.write_named("logs/requests/2024-01-02/part-0.parquet", b"p1")
    store.write_named("logs/feedback/part-0.parquet", b"f0")
    store.write_named("other.txt", b"o")
    assert uri == (tmp_path / "artifacts/named/logs/requests/2024-01-01/part-0.parquet").as_uri()
    assert store.read_named("logs/requests/2024-01-02/part-0.parquet") == b"p1"
    assert store.list_named("logs/requests/") == [
        "logs/requests/2024-01-01/part-0.parquet",
        "logs/requests/2024-01-02/part-0.parquet",
    ]
    assert store.list_named("logs/req") == store.list_named("logs/requests/")
    assert store.list_named("logs/requests/2024-01-02") == [
        "logs/requests/2024-01-02/part-0.parquet"
    ]
    assert len(store.list_named()) == 4
    store.write_named("other.txt", b"replaced")  # named files may be overwritten, atomically
    assert store.read_named("other.txt") == b"replaced"
    with pytest.raises(NotFoundError, match="list_named"):
        store.read_named("logs/nope.parquet")
    with pytest.raises(NotFoundError):
        store.read_named("logs")  # a folder is not a file
    assert store.delete_named("other.txt")
    assert not store.delete_named("other.txt")
    with pytest.raises(InvalidNameError):
        store.list_named("../")
    # named files never collide with content-addressed objects
    assert _objects(tmp_path / "artifacts") == []


def test_from_settings_uses_the_home_folder(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    store = ArtifactStore.from_settings(sqlite_settings)
    ref = store.put_bytes(b"x")
    assert Path(ref.uri.removeprefix("file://")).is_relative_to(sqlite_settings.resolved_home)


def test_open_accepts_file_urls(tmp_path: Path) -> None:
    store = ArtifactStore.open((tmp_path / "a").as_uri())
    ref = store.put_bytes(b"x")
    assert (tmp_path / "a" / "objects" / ref.sha256[:2]).is_dir()


def test_memory_filesystem_through_fsspec() -> None:
    store = ArtifactStore.open("memory://modelyard-test-artifacts", storage_options={})
    assert not store.is_local
    ref = store.put_bytes(b"in memory")
    assert ref.uri.startswith("memory://")
    assert store.get_bytes(ref.sha256) == b"in memory"
    store.write_named("a/b.txt", b"named")
    assert store.list_named("a/") == ["a/b.txt"]
    store.fs.rm(store.root, recursive=True)


_CHILD = """
import sys
from modelyard.store.artifacts import ArtifactStore
ArtifactStore.open(sys.argv[1]).put_stream(sys.stdin.buffer)
"""


def test_writer_killed_mid_write_leaves_no_object(store: ArtifactStore, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    chunk = os.urandom(1024 * 1024)
    full = chunk * 8
    sha = hashlib.sha256(full).hexdigest()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdin is not None
    try:
        for _ in range(4):  # half of the artifact, then wait until it reached the temp file
            child.stdin.write(chunk)
        child.stdin.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            parts = list((root / "tmp").glob("*.part")) if (root / "tmp").is_dir() else []
            if parts and parts[0].stat().st_size >= 4 * len(chunk):
                break
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            time.sleep(0.01)  # polling the child's progress, bounded by the deadline
        else:
            pytest.fail("the writer never reached the middle of the artifact")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        child.stdin.close()
        if child.stderr is not None:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert not store.exists(sha)
    assert _objects(root) == []
    # the same bytes can be stored later; the dead writer's temp file can be purged
    ref = store.put_bytes(full)
    assert ref.sha256 == sha
    assert store.get_bytes(sha) == full
    assert store.purge_tmp(older_than_s=0) == 1
    assert list((root / "tmp").iterdir()) == []


def test_fsync_can_be_turned_off(tmp_path: Path) -> None:
    store = ArtifactStore.open(tmp_path / "fast", fsync=False)
    assert not store.fsync
    ref = store.put_bytes(b"quick")
    assert store.get_bytes(ref.sha256) == b"quick"
    src = tmp_path / "f.bin"
    src.write_bytes(b"file")
    assert store.get_bytes(store.put_file(src).sha256) == b"file"
    assert ArtifactStore.open(tmp_path / "durable").fsync


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> set[tuple[int, int]]:
    """Spy on ``os.fsync`` (it still runs): the (device, inode) of every file and folder synced."""
    synced: set[tuple[int, int]] = set()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        synced.add((st.st_dev, st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def _ids(*paths: Path) -> set[tuple[int, int]]:
    return {(p.stat().st_dev, p.stat().st_ino) for p in paths}


@pytest.mark.skipif(os.name == "nt", reason="Windows cannot open a folder to fsync it")
def test_a_new_name_is_durable_its_folder_and_new_folders_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "artifacts"
    store = ArtifactStore.open(root)
    synced = _record_fsyncs(monkeypatch)
    ref = store.put_bytes(b"durable")
    obj = root / "objects" / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256
    # the file before its rename, then the folder holding the new name, and the folders that
    # makedirs created for it, each a new name in its parent
    assert synced == _ids(obj, obj.parent, obj.parent.parent, root / "objects", root)

    synced.clear()
    src = tmp_path / "src.bin"
    src.write_bytes(b"put_file")
    ref = store.put_file(src)
    obj = root / "objects" / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256
    # another first byte than b"durable" (cc.. and 54..): two new folders under objects/,
    # which already existed, so the root gained no name and is not synced again
    assert synced == _ids(obj, obj.parent, obj.parent.parent, root / "objects")

    synced.clear()
    store.write_named("logs/a.txt", b"a")
    named = root / "named"
    assert synced == _ids(named / "logs" / "a.txt", named / "logs", named, root)
    synced.clear()
    store.write_named("logs/b.txt", b"b")  # the folder exists: only it gains a name
    assert synced == _ids(named / "logs" / "b.txt", named / "logs")

    synced.clear()
    fast = ArtifactStore.open(tmp_path / "fast", fsync=False)
    fast.put_bytes(b"quick")
    fast.write_named("logs/a.txt", b"a")
    assert synced == set()


@pytest.mark.skipif(os.name == "nt", reason="Windows cannot open a folder to fsync it")
def test_fsync_dir_syncs_a_folder_and_skips_what_it_cannot_open(tmp_path: Path) -> None:
    assert _fsync_dir(str(tmp_path)) is True
    assert _fsync_dir(str(tmp_path / "missing")) is False
    file = tmp_path / "file.txt"
    file.write_bytes(b"not a folder")
    assert _fsync_dir(str(file)) is False


def test_store_recovers_when_its_folder_is_removed(store: ArtifactStore, tmp_path: Path) -> None:
    import shutil

    store.put_bytes(b"first")
    shutil.rmtree(tmp_path / "artifacts")
    ref = store.put_bytes(b"second")
    assert store.get_bytes(ref.sha256) == b"second"


@given(
    st.text(
        alphabet=st.sampled_from(["a", "b", ".", "/", "\\", "\x00", ":", " ", "C"]), max_size=12
    )
)
@settings(max_examples=300, deadline=None)
def test_valid_names_never_leave_the_root(name: str) -> None:
    try:
        validate_relative_name(name)
    except InvalidNameError:
        return
    root = "/srv/store/named"
    resolved = os.path.normpath(os.path.join(root, name))
    assert resolved.startswith(root + "/")
    assert "\\" not in name
    assert "\x00" not in name


def test_generic_fsspec_filesystem_uploads_then_moves(tmp_path: Path) -> None:
    from fsspec.implementations.local import LocalFileSystem

    root = str(tmp_path / "generic")
    store = ArtifactStore(root, fs=LocalFileSystem(), root=root, protocol="file")
    ref = store.put_bytes(b"via a temp key")
    assert (
        ref.uri
        == (
            tmp_path / "generic" / "objects" / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256
        ).as_uri()
    )
    assert store.get_bytes(ref.sha256) == b"via a temp key"
    src = tmp_path / "src.bin"
    src.write_bytes(b"file via a temp key")
    assert store.get_bytes(store.put_file(src).sha256) == b"file via a temp key"
    store.write_named("logs/a.txt", b"n")
    assert store.list_named("logs/") == ["logs/a.txt"]
    assert list((tmp_path / "generic" / "tmp").iterdir()) == []
