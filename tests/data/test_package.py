"""The package surface: a sorted ``__all__`` and a light import."""

from __future__ import annotations

import subprocess
import sys

import modelyard.data


def test_all_is_sorted_and_importable() -> None:
    assert modelyard.data.__all__ == sorted(modelyard.data.__all__)
    for name in modelyard.data.__all__:
        assert getattr(modelyard.data, name) is not None


def test_import_does_not_load_frame_libraries() -> None:
    code = (
        "import sys, modelyard.data.contract, modelyard.data.profile, modelyard.data.splits;"
        "print(sorted(m for m in ('numpy', 'pandas', 'polars', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
