"""Code fingerprints (what invalidates a step's cache) and the serializers between steps."""

from __future__ import annotations

import io
import textwrap
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import PipelineError, UnsafeArtifactError
from modelyard.pipelines.codehash import CodeHasher
from modelyard.pipelines.serializers import check_annotation, decode, encode, is_jsonable

# ---------------------------------------------------------------- code fingerprints
MODULE = """
import json
import {helper}

LIMIT = {limit}

def step_fn(x):
    return {helper}.clean(x) + LIMIT + len(json.dumps(x))

class Model:
    def predict(self, x):
        return {helper}.clean(x)
"""

HELPER = """
def clean(x):
    return _strip(x)

def _strip(x):
    return x {op} 1
"""


def _fingerprints(project_modules: Any, limit: int, op: str) -> tuple[str, str]:
    helper = f"helper_{abs(hash((op, id(project_modules))))}"
    project_modules.write_named(helper, HELPER.format(op=op))
    mod = project_modules.write("steps", MODULE.format(helper=helper, limit=limit))
    hasher = CodeHasher(project_modules.root)
    return hasher.fingerprint(mod.step_fn), hasher.fingerprint(mod.Model)


def test_fingerprint_is_stable_for_the_same_code(project_modules: Any) -> None:
    assert _fingerprints(project_modules, 1, "+") == _fingerprints(project_modules, 1, "+")


def test_fingerprint_follows_helpers_transitively_and_constants(project_modules: Any) -> None:
    base_fn, base_cls = _fingerprints(project_modules, 1, "+")
    changed_helper = _fingerprints(project_modules, 1, "-")
    changed_const = _fingerprints(project_modules, 2, "+")
    assert changed_helper[0] != base_fn
    assert changed_helper[1] != base_cls  # a method's callee changed
    assert changed_const[0] != base_fn
    assert changed_const[1] == base_cls  # the class does not use LIMIT


def test_library_code_is_not_hashed(tmp_path: Path) -> None:
    import json

    def uses_json(x: Any) -> str:
        return json.dumps(x)

    hasher = CodeHasher(tmp_path)  # this test file is outside tmp_path: only its own source
    digest = hasher.fingerprint(uses_json)
    assert len(digest) == 64
    assert hasher._is_local(json.dumps) is False
    hasher_here = CodeHasher(Path(__file__).resolve().parents[2])
    assert hasher_here._is_local(pytest.raises) is False  # site-packages never counts


def test_closures_are_followed(tmp_path: Path) -> None:
    def make(k: int) -> Callable[[int], int]:
        def inner(x: int) -> int:
            return x * k

        return inner

    hasher = CodeHasher(tmp_path)
    assert hasher.fingerprint(make(2)) != CodeHasher(tmp_path).fingerprint(make(3))


# A helper module in two versions and a step (`import helper as h`) using it in one way each.
LRU = "import functools\n@functools.lru_cache\ndef f(x):\n    return x + {}\n"
CTX = "import contextlib\n@contextlib.contextmanager\ndef f():\n    yield {}\n"
PARTIAL = "import functools\ndef _f(x, k):\n    return x * {}\nf = functools.partial(_f, k=1)\n"
CLASS = (
    "class S:\n    def __init__(self, k):\n        self.k = k\n"
    "    def m(self, x):\n        return x + {}\n"
)
REACHED = {
    "list constant": ("COLS = ['a', 'b']", "COLS = ['a', 'c']", "return len(h.COLS)"),
    "dict constant": ("CFG = {'depth': 3}", "CFG = {'depth': 4}", "return len(h.CFG)"),
    "set constant": ("TAGS = {'a', 'b'}", "TAGS = {'a', 'c'}", "return len(h.TAGS)"),
    "lru_cache helper": (LRU.format(1), LRU.format(2), "return h.f(x)"),
    "library decorator": (CTX.format(1), CTX.format(2), "with h.f() as v:\n        return v"),
    "functools.partial": (PARTIAL.format(1), PARTIAL.format(2), "return h.f(x)"),
    "bound method": (
        CLASS.format(1) + "m = S(0).m",
        CLASS.format(2) + "m = S(0).m",
        "return h.m(x)",
    ),
    "instance method": (
        CLASS.format(1) + "s = S(0)",
        CLASS.format(2) + "s = S(0)",
        "return h.s.m(x)",
    ),
    "instance state": (
        CLASS.format(1) + "s = S(0)",
        CLASS.format(1) + "s = S(5)",
        "return h.s.m(x)",
    ),
    "default argument": (LRU.format(1), LRU.format(2), "fn=h.f"),
}


@pytest.mark.parametrize("case", sorted(REACHED))
def test_a_change_in_what_a_step_reaches_changes_its_fingerprint(
    project_modules: Any, case: str
) -> None:
    *versions, body = REACHED[case]
    digests = []
    for source in versions:
        helper = f"reached_{abs(hash((case, source, id(project_modules))))}"
        project_modules.write_named(helper, textwrap.dedent(source) + "\n")
        if body.startswith("fn="):  # the helper is a default argument of the step
            step_src = f"import {helper} as h\n\ndef step_fn(x, {body}):\n    return fn(x)\n"
        else:
            step_src = f"import {helper} as h\n\ndef step_fn(x):\n    {body}\n"
        mod = project_modules.write("steps", step_src)
        digests.append(CodeHasher(project_modules.root).fingerprint(mod.step_fn))
    assert digests[0] != digests[1]


@pytest.mark.parametrize("namespace", [False, True], ids=["package", "namespace package"])
def test_a_change_in_a_submodule_reached_as_package_module_attr_counts(
    project_modules: Any, namespace: bool
) -> None:
    import sys

    pkg = f"pkg_{abs(hash((namespace, id(project_modules))))}"
    folder = project_modules.root / pkg
    folder.mkdir()
    if not namespace:
        (folder / "__init__.py").write_text("")
    project_modules.names += [pkg, f"{pkg}.features"]
    step_src = f"import {pkg}.features\n\ndef step_fn(x):\n    return {pkg}.features.build(x)\n"
    digests = []
    for op in ("+", "-"):
        (folder / "features.py").write_text(f"def build(x):\n    return x {op} 1\n")
        sys.modules.pop(f"{pkg}.features", None)
        sys.modules.pop(pkg, None)
        mod = project_modules.write("steps", step_src)
        assert mod.step_fn(1) == (2 if op == "+" else 0)
        digests.append(CodeHasher(project_modules.root).fingerprint(mod.step_fn))
    assert digests[0] != digests[1]


def test_fingerprint_is_the_same_in_every_process(tmp_path: Path) -> None:
    """Set constants iterate in an order PYTHONHASHSEED randomises; the key must not."""
    import os
    import subprocess
    import sys

    (tmp_path / "flow_consts.py").write_text(
        "FEATURES = frozenset({'age', 'income', 'debt', 'score', 'zip', 'region'})\n"
        "NAMES = {'a', 'b', 'c', 'd', 'e'}\n\n"
        "def step_fn(x, cols=frozenset({'x', 'y', 'z', 'w'})):\n"
        "    return len(FEATURES) + len(NAMES) + x\n"
    )
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "import flow_consts; from modelyard.pipelines.codehash import CodeHasher;"
        "print(CodeHasher(Path(sys.argv[1])).fingerprint(flow_consts.step_fn))"
    )
    digests = set()
    for seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1


# ---------------------------------------------------------------- serializers
@pytest.mark.parametrize(
    "value",
    [None, True, 3, 2.5, "text", [1, "a", None], {"a": [1, 2], "b": {"c": 1.5}}],
)
def test_json_values_round_trip(value: Any) -> None:
    codec, data = encode(value, step="s")
    assert codec == "json"
    assert decode(codec, data) == value


def test_numpy_arrays_use_npy_without_pickle() -> None:
    import numpy as np

    arr = np.arange(12, dtype="float32").reshape(3, 4)
    codec, data = encode(arr, step="s")
    assert codec == "npy"
    assert data.startswith(b"\x93NUMPY")
    out = decode(codec, data)
    assert out.dtype == np.float32
    assert (out == arr).all()


def test_object_arrays_need_trust() -> None:
    import numpy as np

    arr = np.array([{"a": 1}, None], dtype=object)
    with pytest.raises(PipelineError, match="numpy array of Python objects"):
        encode(arr, step="objects")
    codec, data = encode(arr, step="objects", trust=True)
    assert codec == "pickle"
    with pytest.raises(UnsafeArtifactError, match="trust=True"):
        decode(codec, data)
    assert decode(codec, data, trust=True)[0] == {"a": 1}


def test_pandas_and_polars_frames_use_parquet() -> None:
    import pandas as pd
    import polars as pl

    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=[10, 11])
    codec, data = encode(frame, step="s")
    assert codec == "pandas"
    assert data[:4] == b"PAR1"
    pd.testing.assert_frame_equal(decode(codec, data), frame)

    pframe = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    codec, data = encode(pframe, step="s")
    assert codec == "polars"
    assert decode(codec, data).equals(pframe)


def test_unstorable_values_name_the_step_and_the_type() -> None:
    with pytest.raises(PipelineError) as info:
        encode(lambda x: x, step="make_fn")
    assert "'make_fn'" in info.value.message
    assert "lambda" in info.value.message
    buf = io.StringIO("x")
    with pytest.raises(PipelineError, match=r"_io\.StringIO"):
        encode(buf, step="s")


def test_is_jsonable_rejects_nan_and_non_string_keys() -> None:
    assert is_jsonable({"a": (1, 2)})
    assert not is_jsonable(float("nan"))
    assert not is_jsonable({1: "a"})
    assert not is_jsonable({"a": object()})


def test_unknown_codec_is_an_error() -> None:
    with pytest.raises(PipelineError, match="unknown serializer 'zip'"):
        decode("zip", b"")


@pytest.mark.parametrize(
    ("annotation", "bad"),
    [
        (int, None),
        (dict[str, float], None),
        (typing.Any, None),
        (tuple[list[int], str], None),
        (Callable[[int], int], "collections.abc.Callable"),
        (Iterator[int], "collections.abc.Iterator"),
        (typing.IO[str], "typing.IO"),
        (io.TextIOWrapper, "_io.TextIOWrapper"),
        (tuple[int, Callable[[], None]], "collections.abc.Callable"),
        (int | typing.BinaryIO, "typing.BinaryIO"),
    ],
)
def test_annotations_that_cannot_be_stored_are_found(annotation: Any, bad: str | None) -> None:
    assert check_annotation(annotation) == bad
    assert check_annotation(annotation, trust=True) is None
