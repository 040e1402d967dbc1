"""Batch scoring: a registered model version over Parquet/CSV files (``modelyard score``).

See :func:`modelyard.batch.scoring.score`; the names below load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.batch.scoring import ScoreResult, score

__all__ = ["ScoreResult", "score"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from modelyard.batch import scoring

        return getattr(scoring, name)
    raise AttributeError(f"module 'modelyard.batch' has no attribute {name!r}")
