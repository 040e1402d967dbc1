"""The load test's requests: rebuilt from a real request log, or synthesised from a signature."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from modelyard.delivery.replay import replay_bodies, synthetic_bodies
from modelyard.requestlog import RequestLogWriter
from modelyard.store.artifacts import ArtifactStore

FIELDS = [
    {"name": "income", "type": "number", "min": 0.0, "max": 1e6},
    {"name": "term", "type": "integer", "min": 6, "max": 60},
    {"name": "region", "type": "string", "categories": ["north", "south"]},
    {"name": "owner", "type": "boolean"},
]


def _instances(bodies: list[bytes]) -> list[object]:
    return [orjson.loads(b)["instances"][0] for b in bodies]


def test_field_instances_are_replayed_newest_first_without_refused_requests(
    tmp_path: Path,
) -> None:
    store = ArtifactStore.open(tmp_path / "artifacts")
    writer = RequestLogWriter(store, "m", "1")
    old = pd.DataFrame({"income": [1.0, 2.0], "region": ["north", "south"]})
    writer.add_batch(["a", "b"], None, old, np.array([0, 1]))
    writer.add_records([("c", 422, 1.0)])  # refused: its inputs were not logged
    writer.flush()
    new = pd.DataFrame({"income": [3.0], "region": ["south"]})
    writer.add_batch(["d"], None, new, np.array([1]))
    writer.flush()
    bodies = replay_bodies(store, "m", "1", 10, fields=[{"name": "income"}, {"name": "region"}])
    assert _instances(bodies)[0] == {"income": 3.0, "region": "south"}
    assert sorted(i["income"] for i in _instances(bodies)) == [1.0, 2.0, 3.0]  # type: ignore[index]
    assert len(replay_bodies(store, "m", "1", 2, fields=[{"name": "income"}])) == 2
    assert replay_bodies(store, "m", "2", 10) == []  # nothing logged for v2
    # outside the window: nothing
    assert replay_bodies(store, "m", "1", 10, now_s=time.time() + 3 * 3600) == []


def test_tensor_rows_are_replayed_as_the_signature_takes_them(tmp_path: Path) -> None:
    store = ArtifactStore.open(tmp_path / "artifacts")
    writer = RequestLogWriter(store, "m", "1")
    writer.add_batch(["a"], [2], np.arange(8.0).reshape(2, 2, 2), np.array([0, 1]))
    writer.flush()
    spec = {"name": "input", "datatype": "FP64", "shape": [-1, 2, 2]}
    assert sorted(map(str, _instances(replay_bodies(store, "m", "1", 10, input_spec=spec)))) == [
        "[[0.0, 1.0], [2.0, 3.0]]",
        "[[4.0, 5.0], [6.0, 7.0]]",
    ]


def test_synthetic_instances_follow_types_ranges_and_categories() -> None:
    instances = _instances(synthetic_bodies(None, FIELDS, 50))
    assert len(instances) == 50
    for inst in instances:
        assert isinstance(inst, dict)
        assert 0.0 <= inst["income"] <= 1e6
        assert isinstance(inst["term"], int)
        assert 6 <= inst["term"] <= 60
        assert inst["region"] in ("north", "south")
        assert isinstance(inst["owner"], bool)
    tensor = {"name": "x", "datatype": "FP32", "shape": [-1, 3], "min": [0, 0, 10],
              "max": [1, 1, 20]}  # fmt: skip
    rows = _instances(synthetic_bodies(tensor, [], 20))
    assert all(len(r) == 3 and 10 <= r[2] <= 20 for r in rows)  # type: ignore[arg-type,index]
    # a signature that says too little: nothing to send (the load test is then skipped)
    assert synthetic_bodies({"name": "x", "datatype": "BYTES", "shape": [-1]}, [], 5) == []
    assert synthetic_bodies(None, [], 5) == []
