"""A registry with a model whose v1 is in production and v2, v3 are registered, per store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.registry import Registry
from modelyard.store.artifacts import ArtifactStore
from modelyard.store.db import MetadataStore


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    store = MetadataStore.open(db_url)
    reg = Registry(store, ArtifactStore.open(tmp_path / "artifacts"), user="tester")
    for i in (1, 2, 3):
        pkg = tmp_path / f"pkg{i}"
        pkg.mkdir()
        (pkg / "model.bin").write_bytes(f"weights {i}".encode())
        reg.register_version("churn", pkg, aliases=["production"] if i == 1 else ())
    yield reg
    store.dispose()
