"""Tracking: runs, params, metrics (with steps), datasets, artifacts, lineage and search.

- :mod:`modelyard.tracking.fluent`: ``modelyard.start_run()``, ``log_metric`` and friends;
  :func:`activate` makes a run active in a block (what a pipeline step's executor calls).
- :mod:`modelyard.tracking.client`: :class:`TrackingClient` over explicit stores.
- :mod:`modelyard.tracking.run`: :class:`Run`, the live run with buffered writes.
- :mod:`modelyard.tracking.grammar`: the search filter grammar (parser with pointed errors).
- :mod:`modelyard.tracking.search`: a search compiled to one SQL query; page tokens.
- :mod:`modelyard.tracking.lineage`: ``capture(project_root)``: git state and environment.
- :mod:`modelyard.tracking.fingerprint`: ``fingerprint_frame(frame)``: content hashes of data.

Submodules are imported on first use so that ``import modelyard.tracking`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Page",
    "Run",
    "RunInfo",
    "TrackingClient",
    "activate",
    "capture",
    "fingerprint_frame",
]

_LAZY = {
    "activate": "modelyard.tracking.fluent",
    "Page": "modelyard.tracking.entities",
    "Run": "modelyard.tracking.run",
    "RunInfo": "modelyard.tracking.entities",
    "TrackingClient": "modelyard.tracking.client",
    "capture": "modelyard.tracking.lineage",
    "fingerprint_frame": "modelyard.tracking.fingerprint",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modelyard.tracking' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from modelyard.tracking.client import TrackingClient as TrackingClient
    from modelyard.tracking.entities import Page as Page
    from modelyard.tracking.entities import RunInfo as RunInfo
    from modelyard.tracking.fingerprint import fingerprint_frame as fingerprint_frame
    from modelyard.tracking.fluent import activate as activate
    from modelyard.tracking.lineage import capture as capture
    from modelyard.tracking.run import Run as Run
