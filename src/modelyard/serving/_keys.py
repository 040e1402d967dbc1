"""Batch keys: requests with equal keys can share a batch."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["JSON_KEY", "BatchKey"]


class BatchKey(NamedTuple):
    """What a batch is made of: a tensor of one dtype and row shape, or JSON instances.

    Attributes:
        kind: ``"t"`` (raw tensor bytes) or ``"j"`` (a list of JSON instances).
        dtype: the numpy dtype name of a tensor's values (``""`` for JSON).
        shape: the shape of one row of a tensor (``()`` for JSON).
        method: the model method the batch runs: ``""`` (predict) or ``"proba"``
            (predict_proba).
    """

    kind: str
    dtype: str = ""
    shape: tuple[int, ...] = ()
    method: str = ""

    @property
    def tensor(self) -> bool:
        """True for raw tensor bytes."""
        return self.kind == "t"


JSON_KEY = BatchKey("j")
