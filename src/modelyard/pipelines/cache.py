"""The step cache: a key over (step code, parameters, inputs' sha256s) -> the stored outputs.

Entries live in the ``step_cache`` table; the outputs they point at live in the artifact store.
An entry whose artifacts have gone missing is a miss, never an error.

Output records (the ``outputs`` JSON column, also what executors hand back) look like::

    {"kind": "single", "ref": {"sha256": "...", "codec": "json", "size": 12}}
    {"kind": "tuple",  "items": [ref, ref]}
    {"kind": "dict",   "items": {"model": ref, "score": ref}}
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.store.db import MetadataStore

__all__ = ["CACHE_VERSION", "StepCache", "cache_key", "iter_refs", "record_fingerprint"]

# Bump when the meaning of a stored output changes (serializer formats, record layout).
# 2: tuples nested in JSON values are kept as tuples (the tagged-json codec), so a result
# cached before would hand its consumers lists where a fresh run hands them tuples.
# 3: keys cover the content of the data files a step reads (modelyard.pipelines.datafiles), and
# short string outputs are marked so that a path handed downstream is fingerprinted too.
CACHE_VERSION = 3


def cache_key(
    *,
    pipeline: str,
    step: str,
    code: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, str],
    data: Mapping[str, str] | None = None,
) -> str:
    """sha256 hex over everything a step's result depends on.

    Args:
        pipeline: the pipeline's name (two pipelines never share entries by accident).
        step: the node id.
        code: the step's code fingerprint (:class:`~modelyard.pipelines.codehash.CodeHasher`).
        params: the step call's parameters (JSON-able).
        inputs: input name -> fingerprint of the value passed in.
        data: data file -> content sha256, for the files the step reads.
    """
    import orjson

    fields: dict[str, Any] = {
        "v": CACHE_VERSION,
        "pipeline": pipeline,
        "step": step,
        "code": code,
        "params": dict(params),
        "inputs": dict(inputs),
    }
    if data:
        fields["data"] = dict(data)
    body = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()


def iter_refs(record: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every artifact ref in an output record."""
    kind = record.get("kind")
    if kind == "single":
        yield record["ref"]
    elif kind == "tuple":
        yield from record["items"]
    elif kind == "dict":
        yield from record["items"].values()


def record_fingerprint(
    record: Mapping[str, Any], key: tuple[str | int, ...] = ()
) -> tuple[str, dict[str, Any]]:
    """The fingerprint of (part of) a step's output and a locator to read it with.

    Args:
        record: the step's output record.
        key: the index path of the handle (``out["model"]`` -> ``("model",)``).

    Returns:
        ``(fingerprint, locator)``; the locator is ``{"ref": ref, "path": [...]}`` for one stored
        value (indexed by ``path`` after loading) or ``{"record": record}`` for all the outputs
        of a multi-output step.

    Raises:
        KeyError: ``key`` names no output of the record.
    """
    kind = record["kind"]
    path = list(key)
    if kind == "single":
        ref = record["ref"]
    elif not path:
        shas = [r["sha256"] for r in iter_refs(record)]
        names = list(record["items"]) if kind == "dict" else []
        digest = hashlib.sha256(("|".join(names) + "#" + "|".join(shas)).encode()).hexdigest()
        return digest, {"record": dict(record)}
    else:
        first = path.pop(0)
        items = record["items"]
        if (kind == "tuple" and isinstance(first, int) and -len(items) <= first < len(items)) or (
            kind == "dict" and isinstance(first, str) and first in items
        ):
            ref = items[first]
        else:
            raise KeyError(first)
    if not path:
        return str(ref["sha256"]), {"ref": dict(ref), "path": []}
    digest = hashlib.sha256(f"{ref['sha256']}{path!r}".encode()).hexdigest()
    return digest, {"ref": dict(ref), "path": path}


class StepCache:
    """Reads and writes ``step_cache`` rows.

    Args:
        metadata_store: the metadata store holding the ``step_cache`` table.
        artifact_store: where the cached outputs are (checked on every hit).
    """

    def __init__(self, metadata_store: MetadataStore, artifact_store: ArtifactStore) -> None:
        self.metadata_store = metadata_store
        self.artifact_store = artifact_store

    def get_many(self, keys: list[str]) -> dict[str, tuple[dict[str, Any], str | None]]:
        """Look up several keys at once: key -> (output record, producing run id).

        Entries whose artifacts are missing from the store are left out.
        """
        if not keys:
            return {}
        from modelyard.store.db import json_value

        marks = ", ".join(f":k{i}" for i in range(len(keys)))
        with self.metadata_store.query() as q:
            rows = q.execute(
                f"SELECT cache_key, outputs, run_id FROM step_cache WHERE cache_key IN ({marks})",
                {f"k{i}": k for i, k in enumerate(keys)},
            )
        out: dict[str, tuple[dict[str, Any], str | None]] = {}
        for key, raw, run_id in rows:
            outputs = json_value(raw)
            if all(self.artifact_store.exists(r["sha256"]) for r in iter_refs(outputs)):
                out[key] = (outputs, run_id)
        return out

    def get(self, key: str) -> tuple[dict[str, Any], str | None] | None:
        """One key's (output record, producing run id), or None."""
        return self.get_many([key]).get(key)

    def put(
        self, key: str, *, pipeline: str, step: str, outputs: Mapping[str, Any], run_id: str | None
    ) -> None:
        """Record a step's outputs under ``key`` (replacing an older entry with the same key)."""
        import orjson

        # two runs may finish the same step at once: the last one wins, neither fails
        with self.metadata_store.write() as tx:
            tx.execute(
                "INSERT INTO step_cache (cache_key, pipeline, step, outputs, run_id, created_at) "
                "VALUES (:key, :pipeline, :step, :outputs, :run_id, :at) "
                "ON CONFLICT (cache_key) DO UPDATE SET pipeline = excluded.pipeline, "
                "step = excluded.step, outputs = excluded.outputs, run_id = excluded.run_id, "
                "created_at = excluded.created_at",
                {
                    "key": key,
                    "pipeline": pipeline,
                    "step": step,
                    "outputs": orjson.dumps(dict(outputs)).decode(),
                    "run_id": run_id,
                    "at": time.time(),
                },
            )

    def invalidate(self, *, pipeline: str, step: str | None = None) -> int:
        """Drop the entries of a pipeline (or one of its steps); returns how many."""
        import sqlalchemy as sa

        from modelyard.store.schema import step_cache

        stmt = sa.delete(step_cache).where(step_cache.c.pipeline == pipeline)
        if step is not None:
            stmt = stmt.where(step_cache.c.step == step)
        with self.metadata_store.begin() as conn:
            return int(conn.execute(stmt).rowcount or 0)
