"""The step_cache table: keys, hits, misses when artifacts vanish, overwrites, invalidation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelyard.pipelines.cache import StepCache, cache_key, record_fingerprint


@pytest.fixture
def cache(db_url: str, tmp_path: Path) -> StepCache:
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.store.db import MetadataStore

    return StepCache(MetadataStore.open(db_url), ArtifactStore.open(tmp_path / "artifacts"))


def _record(cache: StepCache, data: bytes) -> dict[str, Any]:
    ref = cache.artifact_store.put_bytes(data)
    return {"kind": "single", "ref": {"sha256": ref.sha256, "codec": "json", "size": len(data)}}


def test_key_depends_on_every_part() -> None:
    base = {"pipeline": "p", "step": "s", "code": "c", "params": {"a": 1}, "inputs": {"x": "f"}}
    key = cache_key(**base)
    assert cache_key(**base) == key
    assert cache_key(**{**base, "params": {"a": 1}}) == key  # equal dicts, same key
    for field, value in (
        ("pipeline", "q"),
        ("step", "t"),
        ("code", "d"),
        ("params", {"a": 2}),
        ("inputs", {"x": "g"}),
    ):
        assert cache_key(**{**base, field: value}) != key, field


def test_put_get_overwrite_and_invalidate(cache: StepCache) -> None:
    first = _record(cache, b"1")
    cache.put("k" * 64, pipeline="p", step="s", outputs=first, run_id=None)
    assert cache.get("k" * 64) == (first, None)
    second = _record(cache, b"2")
    cache.put("k" * 64, pipeline="p", step="s", outputs=second, run_id=None)  # no conflict
    assert cache.get("k" * 64) == (second, None)
    assert cache.get_many(["k" * 64, "z" * 64]) == {"k" * 64: (second, None)}
    assert cache.invalidate(pipeline="p", step="s") == 1
    assert cache.get("k" * 64) is None


def test_an_entry_whose_artifact_is_gone_is_a_miss(cache: StepCache) -> None:
    record = _record(cache, b"gone")
    cache.put("a" * 64, pipeline="p", step="s", outputs=record, run_id=None)
    assert cache.artifact_store.delete(record["ref"]["sha256"])
    assert cache.get("a" * 64) is None


def test_record_fingerprints_for_items_and_paths() -> None:
    ref_a = {"sha256": "a" * 64, "codec": "json", "size": 1}
    ref_b = {"sha256": "b" * 64, "codec": "npy", "size": 1}
    multi = {"kind": "dict", "items": {"x": ref_a, "y": ref_b}}
    assert record_fingerprint(multi, ("x",)) == ("a" * 64, {"ref": ref_a, "path": []})
    whole, locator = record_fingerprint(multi)
    assert locator == {"record": multi}
    assert whole not in ("a" * 64, "b" * 64)
    single = {"kind": "single", "ref": ref_a}
    deep, loc = record_fingerprint(single, ("k", 0))
    assert loc == {"ref": ref_a, "path": ["k", 0]}
    assert deep != "a" * 64
    with pytest.raises(KeyError):
        record_fingerprint(multi, ("nope",))
    with pytest.raises(KeyError):
        record_fingerprint({"kind": "tuple", "items": [ref_a]}, (3,))
