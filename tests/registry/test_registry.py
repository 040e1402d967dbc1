"""Registry behaviour on SQLite and PostgreSQL: versions, aliases, history, tags, bad input."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from modelyard.errors import (
    ConflictError,
    InvalidInputError,
    InvalidNameError,
    NotFoundError,
)
from modelyard.registry.registry import MANIFEST_NAME, Registry
from modelyard.store import schema
from modelyard.store.artifacts import ArtifactStore
from modelyard.store.db import MetadataStore


class FakeClock:
    """Deterministic timestamps: each call is one second later."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def time(self) -> float:
        self.now += 1.0
        return self.now

    def monotonic(self) -> float:
        return self.now


def _registry(settings: Any) -> Registry:
    return Registry(
        MetadataStore.from_settings(settings),
        ArtifactStore.from_settings(settings),
        user="alice",
        clock=FakeClock(),
    )


@pytest.fixture
def reg(settings: Any) -> Registry:
    """A registry on SQLite, then on PostgreSQL."""
    return _registry(settings)


@pytest.fixture
def lite(sqlite_settings: Any) -> Registry:
    """A registry on SQLite only: for input checks that never reach the database."""
    return _registry(sqlite_settings)


def _package(root: Path, name: str = "pkg", *, payload: bytes = b"weights") -> Path:
    folder = root / name
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_NAME).write_text('{"flavor": "python"}')
    (folder / "model.bin").write_bytes(payload)
    (folder / "sub" / "vocab.txt").write_text("a\nb\n")
    return folder


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- register
def test_register_a_folder_records_every_file_by_sha256(reg: Registry, tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    v = reg.register_version("churn", pkg, flavor="python", extra={"gate": {"passed": True}})
    assert (v.name, v.version, v.flavor) == ("churn", 1, "python")
    assert v.files == {
        MANIFEST_NAME: _sha(b'{"flavor": "python"}'),
        "model.bin": _sha(b"weights"),
        "sub/vocab.txt": _sha(b"a\nb\n"),
    }
    assert v.manifest_sha256 == v.files[MANIFEST_NAME]
    assert v.artifact_uri == reg.artifact_store.uri(v.manifest_sha256)
    assert v.created_by == "alice"
    assert reg.get_version("churn", 1) == v
    for sha in v.files.values():
        assert reg.artifact_store.exists(sha)


def test_versions_count_up_per_model(reg: Registry, tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    numbers = [reg.register_version("a", pkg).version for _ in range(3)]
    assert numbers == [1, 2, 3]
    assert reg.register_version("b", pkg).version == 1
    assert [v.version for v in reg.list_versions("a")] == [1, 2, 3]
    assert [(m.name, m.latest_version) for m in reg.list_models()] == [("a", 3), ("b", 1)]


def test_register_a_single_file_or_uploaded_refs(reg: Registry, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx-bytes")
    v1 = reg.register_version("m", model)
    assert v1.files == {"model.onnx": _sha(b"onnx-bytes")}
    assert v1.manifest_sha256 == _sha(b"onnx-bytes")  # no manifest: the first file

    refs = {
        "weights.bin": reg.artifact_store.put_bytes(b"w"),
        "config.json": reg.artifact_store.put_bytes(b"{}"),
    }
    v2 = reg.register_version("m", refs)
    assert v2.version == 2
    assert v2.manifest_sha256 == _sha(b"{}")  # sorted: config.json comes first


def test_registered_versions_are_immutable(reg: Registry, tmp_path: Path) -> None:
    first = reg.register_version("m", _package(tmp_path, "one", payload=b"v1"))
    reg.register_version("m", _package(tmp_path, "two", payload=b"v2"))
    again = reg.get_version("m", 1)
    assert again.files == first.files
    assert again.manifest_sha256 == first.manifest_sha256
    # The database itself refuses a second row with the same number.
    with reg.metadata_store.begin() as conn:
        model_id = conn.execute(
            sa.select(schema.models.c.id).where(schema.models.c.name == "m")
        ).scalar_one()
    duplicate = sa.insert(schema.model_versions).values(
        model_id=model_id, version=1, artifact_uri="x", manifest_sha256="0" * 64, created_at=0.0
    )
    with pytest.raises(sa.exc.IntegrityError), reg.metadata_store.begin() as conn:
        conn.execute(duplicate)


def test_register_records_the_run_and_takes_its_commit(reg: Registry, tmp_path: Path) -> None:
    run_id = uuid.uuid4().hex
    with reg.metadata_store.begin() as conn:
        exp = conn.execute(
            sa.insert(schema.experiments)
            .values(name="default", created_at=0.0)
            .returning(schema.experiments.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(schema.runs).values(
                id=run_id,
                experiment_id=exp,
                status="FINISHED",
                start_time=0.0,
                git_commit="abc123",
            )
        )
    v = reg.register_version("m", _package(tmp_path), run_id=run_id)
    assert (v.run_id, v.source_commit) == (run_id, "abc123")
    assert reg.get_version("m", 1).source_commit == "abc123"
    explicit = reg.register_version("m", _package(tmp_path), run_id=run_id, source_commit="f00")
    assert explicit.source_commit == "f00"


def test_register_with_an_unknown_run_fails_and_leaves_no_gap(
    reg: Registry, tmp_path: Path
) -> None:
    pkg = _package(tmp_path)
    reg.register_version("m", pkg)
    with pytest.raises(NotFoundError, match="run 'nope' does not exist"):
        reg.register_version("m", pkg, run_id="nope")
    assert reg.register_version("m", pkg).version == 2


def test_signature_extra_description_and_tags_round_trip(reg: Registry, tmp_path: Path) -> None:
    signature = {"inputs": [{"name": "x", "type": "float64"}], "outputs": None}
    extra = {"gate": {"passed": True, "auc": 0.91}, "profile": "sha"}
    v = reg.register_version(
        "m",
        _package(tmp_path),
        signature=signature,
        extra=extra,
        description="first",
        tags={"team": "fraud"},
    )
    got = reg.resolve("m:1")
    assert (got.signature, got.extra, got.description, got.tags) == (
        signature,
        extra,
        "first",
        {"team": "fraud"},
    )
    assert got == v


# --------------------------------------------------------------------------- resolve
def test_resolve_forms(reg: Registry, tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    for _ in range(3):
        reg.register_version("m", pkg)
    reg.set_alias("m", "production", 2)
    assert reg.resolve("m@production").version == 2
    assert reg.resolve("m:1").version == 1
    assert reg.resolve("m:v3").version == 3
    assert reg.resolve("m").version == 3
    assert reg.resolve("m@latest").version == 3
    assert reg.resolve("m@production").aliases == ("production",)


def test_unknown_model_version_or_alias(reg: Registry, tmp_path: Path) -> None:
    reg.register_version("m", _package(tmp_path))
    for ref, message in [
        ("ghost", "no model named 'ghost'"),
        ("ghost@production", "no model named 'ghost'"),
        ("m:7", "model 'm' has no version 7"),
        ("m@shadow", "model 'm' has no alias 'shadow'"),
    ]:
        with pytest.raises(NotFoundError, match=message) as info:
            reg.resolve(ref)
        assert "modelyard models" in (info.value.hint or "")
        assert info.value.exit_code == 4


def test_unknown_model_everywhere(reg: Registry) -> None:
    for call in (
        lambda: reg.get_version("ghost", 1),
        lambda: reg.list_versions("ghost"),
        lambda: reg.get_model("ghost"),
        lambda: reg.alias_history("ghost"),
        lambda: reg.set_alias("ghost", "production", 1),
        lambda: reg.rollback("ghost"),
        lambda: reg.set_model_tag("ghost", "k", "v"),
    ):
        with pytest.raises(NotFoundError, match="ghost"):
            call()


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    "name", ["", "-lead", ".hidden", "has space", "a/b", "a..b", "x" * 256, "ünï"]
)
def test_illegal_model_names(lite: Registry, tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        lite.register_version(name, _package(tmp_path))
    assert repr(name) in info.value.message
    assert "A-Z a-z 0-9" in info.value.message
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("alias", "why"),
    [("123", "purely numeric"), ("latest", "reserved"), ("bad alias", "not a valid name")],
)
def test_illegal_aliases(lite: Registry, tmp_path: Path, alias: str, why: str) -> None:
    lite.register_version("m", _package(tmp_path))
    with pytest.raises(InvalidNameError, match=why):
        lite.set_alias("m", alias, 1)
    with pytest.raises(InvalidNameError, match=why):
        lite.register_version("m", _package(tmp_path), aliases=[alias])
    assert lite.get_model("m").latest_version == 1  # nothing was registered


def test_bad_packages(lite: Registry, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="holds no files"):
        lite.register_version("m", tmp_path / "empty")
    with pytest.raises(NotFoundError, match="does not exist"):
        lite.register_version("m", tmp_path / "missing")
    ghost_ref = type(lite.artifact_store.put_bytes(b"x"))("0" * 64, 1, "file:///nowhere")
    with pytest.raises(NotFoundError, match="not in the artifact store"):
        lite.register_version("m", {"model.bin": ghost_ref})
    with pytest.raises(InvalidInputError, match="not an ArtifactRef"):
        lite.register_version("m", {"model.bin": "0" * 64})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="version 'zero'"):
        lite.get_version("m", "zero")
    pkg = _package(tmp_path)
    with pytest.raises(InvalidInputError, match="extra holds NaN"):
        lite.register_version("m", pkg, extra={"gate": {"p_value": float("nan")}})
    with pytest.raises(InvalidInputError, match="signature is not JSON data"):
        lite.register_version("m", pkg, signature={"x": object()})
    assert lite.list_models() == []


def test_numpy_values_in_extra_are_stored_as_json(reg: Registry, tmp_path: Path) -> None:
    import numpy as np

    v = reg.register_version(
        "m", _package(tmp_path), extra={"auc": np.float32(0.5), "n": np.int64(3), "w": np.ones(2)}
    )
    assert v.extra == {"auc": 0.5, "n": 3, "w": [1.0, 1.0]}
    assert reg.get_version("m", 1).extra == v.extra


# --------------------------------------------------------------------------- aliases
def test_alias_moves_are_recorded_with_who_when_why(reg: Registry, tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    reg.register_version("m", pkg, aliases=["candidate"])
    reg.register_version("m", pkg)
    reg.set_alias("m", "production", 1, reason="first release")
    reg.set_alias("m", "production", 2, reason="beats v1")
    reg.set_alias("m", "production", 2, reason="no-op")  # already there: not recorded
    history = reg.alias_history("m", "production")
    assert [(e.from_version, e.to_version, e.reason, e.action) for e in history] == [
        (None, 1, "first release", "set"),
        (1, 2, "beats v1", "set"),
    ]
    assert all(e.actor == "alice" for e in history)
    assert history[0].at < history[1].at
    every = reg.alias_history("m")
    assert [e.alias for e in every] == ["candidate", "production", "production"]
    assert reg.get_model("m").aliases == {"candidate": 1, "production": 2}
    assert reg.get_version("m", 1).aliases == ("candidate",)
    assert reg.alias_history("m", "never-set") == []


def test_rollback_walks_back_one_move_at_a_time(reg: Registry, tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    for _ in range(3):
        reg.register_version("m", pkg)
    for n in (1, 2, 3):
        reg.set_alias("m", "production", n)
    assert reg.rollback("m", reason="v3 broke latency").version == 2
    assert reg.resolve("m@production").version == 2
    assert reg.rollback("m").version == 1
    with pytest.raises(ConflictError, match="no earlier version"):
        reg.rollback("m")
    reg.set_alias("m", "production", 3)
    assert reg.rollback("m").version == 1
    last = reg.alias_history("m", "production")[-1]
    assert (last.from_version, last.to_version, last.action) == (3, 1, "rollback")


def test_rollback_of_a_missing_alias(reg: Registry, tmp_path: Path) -> None:
    reg.register_version("m", _package(tmp_path))
    with pytest.raises(NotFoundError, match="no alias 'production'"):
        reg.rollback("m")


def test_delete_alias(reg: Registry, tmp_path: Path) -> None:
    reg.register_version("m", _package(tmp_path), aliases=["shadow"])
    reg.delete_alias("m", "shadow", reason="experiment over")
    with pytest.raises(NotFoundError, match="no alias 'shadow'"):
        reg.resolve("m@shadow")
    last = reg.alias_history("m", "shadow")[-1]
    assert (last.from_version, last.to_version, last.action) == (1, None, "delete")
    with pytest.raises(NotFoundError):
        reg.delete_alias("m", "shadow")


def test_alias_cannot_point_at_a_missing_version(reg: Registry, tmp_path: Path) -> None:
    reg.register_version("m", _package(tmp_path))
    with pytest.raises(NotFoundError, match="no version 5"):
        reg.set_alias("m", "production", 5)


# --------------------------------------------------------------------------- tags, models
def test_model_and_version_tags(reg: Registry, tmp_path: Path) -> None:
    reg.create_model("m", description="churn model", tags={"owner": "ml"})
    reg.create_model("m")  # idempotent
    reg.register_version("m", _package(tmp_path))
    reg.set_model_tag("m", "owner", "fraud-team")
    reg.set_version_tag("m", 1, "validated", "yes")
    reg.set_version_tag("m", 1, "validated", "twice")
    model = reg.get_model("m")
    assert (model.description, model.tags) == ("churn model", {"owner": "fraud-team"})
    assert reg.get_version("m", 1).tags == {"validated": "twice"}
    assert reg.delete_version_tag("m", 1, "validated") is True
    assert reg.delete_version_tag("m", 1, "validated") is False
    assert reg.get_version("m", 1).tags == {}
    # one tag rule for runs, models and versions (store.keys): the same keys, values and limit
    with pytest.raises(InvalidNameError, match="invalid tag key '/bad'"):
        reg.set_model_tag("m", "/bad", "v")
    with pytest.raises(InvalidInputError, match="the limit is 8000"):
        reg.set_model_tag("m", "k", "x" * 8001)
    reg.set_model_tag("m", "team/owner", 3)  # type: ignore[arg-type]
    assert reg.get_model("m").tags["team/owner"] == "3"
    with pytest.raises(NotFoundError, match="no version 9"):
        reg.set_version_tag("m", 9, "k", "v")


def test_download_writes_verified_files(reg: Registry, tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    v = reg.register_version("m", pkg, aliases=["production"])
    out = reg.download("m@production", tmp_path / "out")
    for rel in v.files:
        assert (out / rel).read_bytes() == (pkg / rel).read_bytes()


def test_from_settings(settings: Any, tmp_path: Path) -> None:
    reg = Registry.from_settings(settings)
    v = reg.register_version("m", _package(tmp_path))
    assert v.created_by == settings.resolved_user
    assert Registry.from_settings(settings).resolve("m").manifest_sha256 == v.manifest_sha256
