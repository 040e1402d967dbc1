"""modelyard.registry: models, immutable versions, aliases with history, optional git tags.

``from modelyard.registry import Registry`` works; the names resolve on first use so that
importing this package stays light (SQLAlchemy loads with :mod:`modelyard.registry.registry`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["AliasEvent", "ModelVersion", "RegisteredModel", "Registry", "SyncReport"]

_LAZY = {
    "AliasEvent": "modelyard.registry.entities",
    "ModelVersion": "modelyard.registry.entities",
    "RegisteredModel": "modelyard.registry.entities",
    "Registry": "modelyard.registry.registry",
    "SyncReport": "modelyard.registry.gittags",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modelyard.registry' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from modelyard.registry.entities import AliasEvent as AliasEvent
    from modelyard.registry.entities import ModelVersion as ModelVersion
    from modelyard.registry.entities import RegisteredModel as RegisteredModel
    from modelyard.registry.gittags import SyncReport as SyncReport
    from modelyard.registry.registry import Registry as Registry
