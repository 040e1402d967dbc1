"""Serializers for NaN/inf, pandas Series, bytes and nested tuples, and where errors point."""

from __future__ import annotations

import hashlib
import math
import os
import struct
import subprocess
import sys
import typing
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelyard
from modelyard.errors import PipelineError, UnsafeArtifactError
from modelyard.pipelines.serializers import check_annotation, decode, encode, is_jsonable


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, and containers of the same type (a tuple is not a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _round_trip(value: Any) -> tuple[str, bytes, Any]:
    codec, data = encode(value, step="s")
    return codec, data, decode(codec, data)


# ---------------------------------------------------------------- NaN and infinities
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "value",
    [
        {"auc": NAN, "n": 3},
        NAN,
        -INF,
        [1.0, INF, -INF, NAN, -0.0],
        {"per_class": {"a": 0.5, "b": NAN}, "curve": [[0.0, NAN], [1.0, INF]]},
    ],
    ids=["metrics dict", "nan", "-inf", "list", "nested"],
)
def test_nan_and_infinities_round_trip_as_themselves_without_pickle(value: Any) -> None:
    codec, data, out = _round_trip(value)
    assert codec == "tagged-json"
    assert _same(out, value)
    assert b"null" not in data  # orjson would have written NaN as null


def test_numpy_nan_and_float16_scalars_come_back_as_python_floats() -> None:
    codec, _, out = _round_trip({"loss": np.float32("nan"), "lr": np.float16(0.5)})
    assert codec == "tagged-json"
    assert math.isnan(out["loss"])
    assert out["lr"] == 0.5
    assert type(out["lr"]) is float


def test_every_nan_has_one_spelling() -> None:
    """Cache keys hash the bytes: a NaN with the sign bit set must not be a different value."""
    (negative_nan,) = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000001))
    assert math.isnan(negative_nan)
    assert encode({"x": negative_nan}, step="s") == encode({"x": NAN}, step="s")
    assert encode({"x": np.float32("nan")}, step="s") == encode({"x": NAN}, step="s")


def test_ordinary_json_keeps_its_codec_and_its_bytes() -> None:
    """The fast path is unchanged: the same bytes as before, so existing cache keys hold."""
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": np.float64(0.25), "d": np.int64(7)}}
    assert encode(value, step="s") == ("json", b'{"a":[1,2.5,"x",null,true],"b":{"c":0.25,"d":7}}')


# ---------------------------------------------------------------- tuples, bytes, big integers
@pytest.mark.parametrize(
    "value",
    [
        {"pairs": [(1, 2), (3, 4)]},
        [("a", (1, (2.5,))), ()],
        (1, [2, (3,)]),
        {"shape": (3, 4), "loss": NAN},
    ],
)
def test_tuples_keep_their_type_at_any_depth(value: Any) -> None:
    codec, _, out = _round_trip(value)
    assert codec == "tagged-json"
    assert _same(out, value)


def test_json_stored_before_tagged_json_still_reads_as_it_did() -> None:
    """Old entries are never reinterpreted: nested arrays stay lists, "$" keys stay keys."""
    assert decode("json", b'{"pairs":[[1,2]]}') == {"pairs": [[1, 2]]}
    assert decode("json", b'{"$tuple":[1,2]}') == {"$tuple": [1, 2]}


@pytest.mark.parametrize(
    "value",
    [
        {"$tuple": [1, 2], "x": (1,)},
        {"a": {"$tuple": [1, 2]}, "b": NAN},
        [{"$float": "nan"}, {"$dict": {"$int": "0x1"}}, (1,)],
        ({"$bytes": "AA=="},),
    ],
)
def test_user_dicts_that_look_like_tags_come_back_unchanged(value: Any) -> None:
    codec, _, out = _round_trip(value)
    assert codec == "tagged-json"
    assert _same(out, value)


def test_bytes_are_stored_raw_and_read_back_as_bytes() -> None:
    blob = bytes(range(256))
    codec, data, out = _round_trip(blob)
    assert (codec, data) == ("bytes", blob)
    assert type(out) is bytes
    assert out == blob
    codec, _, out = _round_trip({"header": b"\x00\xffPNG", "n": 1})
    assert codec == "tagged-json"
    assert out == {"header": b"\x00\xffPNG", "n": 1}


@pytest.mark.parametrize(
    "value",
    [2**64, -(2**63) - 1, 10**5000, {"id": -(2**100)}],
    ids=["2**64", "-2**63-1", "5000 digits", "in a dict"],
)
def test_integers_past_64_bits_round_trip(value: Any) -> None:
    codec, _, out = _round_trip(value)
    assert codec == "tagged-json"
    assert out == value


# ---------------------------------------------------------------- pandas Series
SERIES = {
    "int, named": pd.Series([1, 2, 3], name="a"),
    "float with NaN, unnamed": pd.Series([1.0, np.nan], name=None),
    "str index": pd.Series(["x", "y", None], name="s", index=["a", "b", "c"]),
    "object dtype": pd.Series(["x", "y"], dtype=object, name="o"),
    "category, int name": pd.Series(["a", "b", "a"], dtype="category", name=0),
    "nullable Int64": pd.Series([1, None], dtype="Int64", name="n"),
    "tz datetimes": pd.Series(pd.date_range("2024-03-30", periods=3, tz="Europe/Paris")),
    "datetime64[s]": pd.Series(pd.to_datetime(["2024-01-01", "2024-06-01"]).astype("M8[s]")),
    "tuple name, MultiIndex": pd.Series(
        [1.5, 2.5],
        name=("metric", 1),
        index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "i"]),
    ),
    "stepped RangeIndex": pd.Series([True, False], index=pd.RangeIndex(5, 9, 2), name="flag"),
    "empty float32": pd.Series([], dtype="float32", name="e"),
    "name that collides with the column": pd.Series([1], name="modelyard:series"),
}


@pytest.mark.parametrize("case", list(SERIES))
def test_a_series_round_trips_with_its_name_dtype_and_index(case: str) -> None:
    series = SERIES[case]
    codec, data, out = _round_trip(series)
    assert codec == "series"
    assert data[:4] == b"PAR1"
    assert isinstance(out, pd.Series)
    pd.testing.assert_series_equal(out, series, check_index_type=True, check_exact=True)
    assert out.name == series.name
    assert type(out.name) is type(series.name)


def test_a_series_parquet_cannot_hold_needs_trust() -> None:
    mixed = pd.Series([1, "a", b"b"], dtype=object, name="mixed")
    with pytest.raises(PipelineError, match="step 'feats' returned a pandas Series") as info:
        encode(mixed, step="feats")
    assert "astype(str)" in (info.value.hint or "")
    assert "trust=True" in (info.value.hint or "")
    codec, data = encode(mixed, step="feats", trust=True)
    assert codec == "pickle"
    with pytest.raises(UnsafeArtifactError):
        decode(codec, data)


def test_a_series_whose_name_cannot_be_stored_says_so() -> None:
    with pytest.raises(PipelineError, match=r"named frozenset\(.*\(builtins\.frozenset\)") as info:
        encode(pd.Series([1], name=frozenset({"a"})), step="feats")
    assert info.value.details["step"] == "feats"
    assert "series.rename" in (info.value.hint or "")


# ---------------------------------------------------------------- errors say where
class Weights:
    pass


@pytest.mark.parametrize(
    ("value", "where", "what", "hint"),
    [
        (
            {"model": {"weights": [1, 2, 3, Weights()]}},
            'output["model"]["weights"][3]',
            f"is a {__name__}.Weights",
            "convert it",
        ),
        ([{"ok": 1}, ({"bad": {1, 2}},)], 'output[1][0]["bad"]', "is a builtins.set", "convert"),
        (
            {"by_id": {7: "a"}},
            'output["by_id"]',
            "has the key 7 (builtins.int), and JSON keys must be strings",
            "str keys",
        ),
        ({"arrays": [np.zeros(2)]}, 'output["arrays"][0]', "is a numpy.ndarray", "whole output"),
        ([pd.Series([1.0])], "output[0]", "is a pandas.Series", "item of the tuple or dict"),
        ([lambda x: x], "output[0]", "is a lambda (builtins.function)", "convert"),
        ({"buf": bytearray(b"x")}, 'output["buf"]', "is a builtins.bytearray", "bytes(...)"),
    ],
    ids=["object", "set in tuple", "int key", "array in list", "series", "lambda", "bytearray"],
)
def test_an_unstorable_part_is_named_by_its_path_and_type(
    value: Any, where: str, what: str, hint: str
) -> None:
    with pytest.raises(PipelineError) as info:
        encode(value, step="train")
    message = info.value.message
    assert message.startswith("step 'train' returned a value modelyard cannot store between")
    assert message.endswith(f"{where} {what}")
    assert info.value.details["path"] == where
    assert hint in (info.value.hint or "")
    assert "@step(trust=True)" in (info.value.hint or "")
    if "lambda" in what:  # pickle cannot store it either, and says which step returned it
        with pytest.raises(PipelineError, match=r"'train' returned a builtins\.list that even"):
            encode(value, step="train", trust=True)
    else:
        assert encode(value, step="train", trust=True)[0] == "pickle"


def test_where_names_the_output_an_item_belongs_to() -> None:
    with pytest.raises(PipelineError, match=r'outputs\["model"\]\["weights"\]\[1\] is a '):
        encode({"weights": [0, Weights()]}, step="train", where='outputs["model"]')


def test_too_deep_nesting_is_named() -> None:
    value: Any = NAN
    for _ in range(120):
        value = [value]
    with pytest.raises(PipelineError, match=r"is nested more than 100 levels deep"):
        encode(value, step="deep")


# ---------------------------------------------------------------- annotations agree with encode
@pytest.mark.parametrize(
    ("annotation", "value", "bad"),
    [
        (pd.Series, pd.Series([1.0], name="x"), None),
        (bytes, b"raw", None),
        (float, NAN, None),
        (dict[str, float], {"auc": NAN}, None),
        (list[tuple[int, int]], [(1, 2)], None),
        (tuple[pd.Series, bytes], (pd.Series([1]), b"x"), None),
        (dict[str, pd.Series], {"a": pd.Series([1])}, None),
        (bytes | None, None, None),
        (set[int], {1}, "builtins.set"),
        (frozenset[str], frozenset({"a"}), "builtins.frozenset"),
        (bytearray, bytearray(b"x"), "builtins.bytearray"),
        (dict[str, list[np.ndarray]], {"a": [np.zeros(1)]}, "numpy.ndarray inside a list or dict"),
        (list[list[pd.Series]], [[pd.Series([1])]], "pandas.Series inside a list or dict"),
    ],
)
def test_check_annotation_refuses_what_encode_refuses(
    annotation: Any, value: Any, bad: Any
) -> None:
    assert check_annotation(annotation) == bad
    assert check_annotation(annotation, trust=True) is None
    # a returned tuple, and a str-keyed dict that is not plain JSON, is stored item by item
    items = list(value) if isinstance(value, tuple) else [value]
    if isinstance(value, dict) and not is_jsonable(value):
        items = list(value.values())
    assert _stores(items) is (bad is None)


def _stores(items: list[Any]) -> bool:
    try:
        for item in items:
            decode(*encode(item, step="s"))
    except PipelineError:
        return False
    return True


def test_check_annotation_still_lets_unknown_classes_and_any_through() -> None:
    assert check_annotation(typing.Any) is None
    assert check_annotation(Weights) is None  # checked again at run time
    assert check_annotation(list[pd.Series]) is None  # a step with outputs=n returns a list


# ---------------------------------------------------------------- through a real pipeline run
@modelyard.step
def metrics(seed: int) -> dict[str, float]:
    return {"auc": float("nan"), "loss": float("inf"), "n": float(seed)}


@modelyard.step
def scores(seed: int) -> pd.Series:
    return pd.Series([0.5, float("nan")], index=["x", "y"], name="score", dtype="float32")


@modelyard.step
def blob(seed: int) -> bytes:
    return bytes([seed, 0, 255])


@modelyard.step
def shapes(seed: int) -> dict[str, Any]:
    return {"pairs": [(seed, 1), (2, 3)], "meta": {"shape": (4, 5)}}


@modelyard.step
def report(
    m: dict[str, float], s: pd.Series, b: bytes, sh: dict[str, Any], tag: int
) -> dict[str, Any]:
    return {
        "auc_is_nan": math.isnan(m["auc"]),
        "loss": m["loss"],
        "series": [type(s).__name__, s.name, str(s.dtype), list(s.index)],
        "blob": [type(b).__name__, list(b)],
        "pair_types": [type(p).__name__ for p in sh["pairs"]],
        "shape": sh["meta"]["shape"],
        "tag": tag,
    }


@modelyard.pipeline
def typed(seed: int = 1, tag: int = 0) -> Any:
    return report(metrics(seed), scores(seed), blob(seed), shapes(seed), tag=tag)


def test_the_new_types_cross_a_real_artifact_store(sqlite_settings: Any) -> None:
    from modelyard.store.artifacts import ArtifactStore

    first = typed.run(settings=sqlite_settings)
    assert first.status == "FINISHED"
    # a new consumer parameter: producers are cache hits, so report reads them from the store
    second = typed.run(settings=sqlite_settings, tag=1)
    assert sorted(second.cached) == ["blob", "metrics", "scores", "shapes"]
    assert second.ran == ["report"]
    expected = {
        "auc_is_nan": True,
        "loss": float("inf"),
        "series": ["Series", "score", "float32", ["x", "y"]],
        "blob": ["bytes", [1, 0, 255]],
        "pair_types": ["tuple", "tuple"],
        "shape": (4, 5),
        "tag": 1,
    }
    assert second.output() == expected

    store = ArtifactStore.open(sqlite_settings.resolved_artifact_url)
    blob_ref = second.steps["blob"].outputs["ref"]  # type: ignore[index]
    assert blob_ref["codec"] == "bytes"
    assert store.get_bytes(blob_ref["sha256"]) == bytes([1, 0, 255])
    assert second.steps["scores"].outputs["ref"]["codec"] == "series"  # type: ignore[index]
    metric_ref = second.steps["metrics"].outputs["ref"]  # type: ignore[index]
    assert metric_ref["codec"] == "tagged-json"  # the whole dict, one document
    stored = store.get_bytes(metric_ref["sha256"])
    assert stored.startswith(b'{"auc":{"$float":"nan"},"loss":{"$float":"inf"},"n":')


@modelyard.step
def gives_weights() -> dict[str, Any]:
    return {"model": {"weights": [1, 2, 3, Weights()]}, "n": 1}


@modelyard.pipeline
def unstorable() -> Any:
    return gives_weights()


def test_a_pipeline_error_names_the_step_the_path_and_the_type(sqlite_settings: Any) -> None:
    with pytest.raises(PipelineError) as info:
        unstorable.run(settings=sqlite_settings)
    message = info.value.message
    assert "'gives_weights'" in message
    assert f'output["model"]["weights"][3] is a {__name__}.Weights' in message


@modelyard.step
def nested_arrays() -> dict[str, list[np.ndarray]]:
    return {"a": [np.zeros(1)]}


@modelyard.pipeline
def refused() -> Any:
    return nested_arrays()


def test_the_graph_refuses_a_declared_type_encode_would_refuse() -> None:
    with pytest.raises(PipelineError, match=r"numpy\.ndarray inside a list or dict") as info:
        refused.build()
    assert "'nested_arrays'" in info.value.message


# ---------------------------------------------------------------- stable across processes
SCRIPT = """
import hashlib, math, sys
from modelyard.pipelines.serializers import encode
value = {
    "auc": float("nan"),
    "bounds": (float("-inf"), float("inf")),
    "labels": {name: i for i, name in enumerate(sorted({"b", "a", "c", "d"}))},
    "blob": b"\\x00\\x01",
    "n": 3,
}
codec, data = encode(value, step="metrics")
print(codec, hashlib.sha256(data).hexdigest())
"""


def test_a_nan_bearing_output_has_the_same_bytes_in_every_process() -> None:
    runs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        runs.add(out.stdout.strip())
    assert len(runs) == 1
    codec, data = encode(
        {
            "auc": float("nan"),
            "bounds": (float("-inf"), float("inf")),
            "labels": {"a": 0, "b": 1, "c": 2, "d": 3},
            "blob": b"\x00\x01",
            "n": 3,
        },
        step="metrics",
    )
    assert runs == {f"{codec} {hashlib.sha256(data).hexdigest()}"}
    assert codec == "tagged-json"


@modelyard.step
def metrics_dict(with_model: bool) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {"auc": np.float64(0.9), "loss": float("nan"), "pair": (1, 2)}
    if with_model:
        from sklearn.dummy import DummyClassifier

        out["model"] = DummyClassifier().fit([[0], [1]], [0, 1])
    return out


@modelyard.pipeline
def returns_metrics(with_model: bool = False) -> Any:
    return metrics_dict(with_model=with_model)


def test_a_dict_of_json_values_is_one_document_and_one_with_a_model_is_split(
    sqlite_settings: Any,
) -> None:
    plain = returns_metrics.run(settings=sqlite_settings)
    record = plain.steps["metrics_dict"].outputs
    assert record is not None
    assert record["kind"] == "single"  # numpy floats, NaN and tuples fit one JSON document
    assert record["ref"]["codec"] == "tagged-json"
    out = plain.output()
    assert out["auc"] == 0.9
    assert math.isnan(out["loss"])
    assert out["pair"] == (1, 2)

    split = returns_metrics.run(settings=sqlite_settings, with_model=True)
    record = split.steps["metrics_dict"].outputs
    assert record is not None
    assert record["kind"] == "dict"  # the model needs its own codec: stored key by key
    assert record["items"]["model"]["codec"] == "model"
    assert split["metrics_dict"]["auc"] == 0.9
