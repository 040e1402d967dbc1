"""modelyard: CI/CD/CT for machine-learning models in one package.

``import modelyard`` is kept light: the public names below are resolved on first use, so that
importing the package never pulls in SQLAlchemy, web servers, Ray or torch.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # tracking (fluent API, MLflow-compatible names)
    "start_run": "modelyard.tracking.fluent",
    "end_run": "modelyard.tracking.fluent",
    "active_run": "modelyard.tracking.fluent",
    "log_param": "modelyard.tracking.fluent",
    "log_params": "modelyard.tracking.fluent",
    "log_metric": "modelyard.tracking.fluent",
    "log_metrics": "modelyard.tracking.fluent",
    "set_tag": "modelyard.tracking.fluent",
    "set_tags": "modelyard.tracking.fluent",
    "log_artifact": "modelyard.tracking.fluent",
    "log_artifacts": "modelyard.tracking.fluent",
    "log_dataset": "modelyard.tracking.fluent",
    "search_runs": "modelyard.tracking.fluent",
    "get_run": "modelyard.tracking.fluent",
    "Run": "modelyard.tracking.run",
    # pipelines
    "step": "modelyard.pipelines.step",
    "pipeline": "modelyard.pipelines.graph",
    "Pipeline": "modelyard.pipelines.graph",
    # the composition root and the registry
    "Workspace": "modelyard.workspace",
    "set_workspace": "modelyard.workspace",
    "get_workspace": "modelyard.workspace",
    "Registry": "modelyard.registry.registry",
    # config
    "Settings": "modelyard.config",
    "load_settings": "modelyard.config",
}
_SUBMODULES = frozenset(
    {
        "config",
        "errors",
        "logs",
        "models",
        "data",
        "store",
        "tracking",
        "registry",
        "pipelines",
        "evaluate",
        "serving",
        "workspace",
        "delivery",
        "monitoring",
        "packaging",
        "sweep",
        "testing",
    }
)

__all__ = [  # noqa: RUF022  (grouped as in _LAZY; a test checks it matches)
    "__version__",
    "active_run",
    "end_run",
    "get_run",
    "get_workspace",
    "load_settings",
    "log_artifact",
    "log_artifacts",
    "log_dataset",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "models",
    "pipeline",
    "Pipeline",
    "Registry",
    "Run",
    "search_runs",
    "set_tag",
    "set_tags",
    "set_workspace",
    "Settings",
    "start_run",
    "step",
    "Workspace",
]


class _RenamedModules:
    """Imports of ``modelyard.pipeline.X`` fail naming the package's new name,
    ``modelyard.pipelines``.

    ``modelyard.pipeline`` is the decorator; the package was renamed so that one name means
    one thing. Consulted last (after every real finder), so it costs nothing on other imports.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        old = "modelyard.pipeline"
        if fullname == old or fullname.startswith(old + "."):
            new = "modelyard.pipelines" + fullname[len(old) :]
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: the pipelines package is {new!r} now "
                "(modelyard.pipeline.X moved to modelyard.pipelines.X); `@modelyard.pipeline` "
                "is the decorator",
                name=fullname,
            )


if not any(isinstance(f, _RenamedModules) for f in sys.meta_path):
    sys.meta_path.append(_RenamedModules())


_FLUENT = "modelyard.tracking.fluent"
_fluent_wired = False


def _wire_fluent(fluent: Any) -> None:
    """The fluent API's client is the active workspace's (``modelyard.set_workspace``): wired here,
    at the top, so that ``modelyard.tracking`` reads no settings itself.

    Through ``importlib``, as every name here: the modules below import ``modelyard`` (for
    ``__version__``), so this package imports none of them by an import statement.
    """
    global _fluent_wired
    if not _fluent_wired:
        workspace = importlib.import_module("modelyard.workspace")
        fluent.set_client_factory(workspace._fluent_client)
        _fluent_wired = True


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        if module.__name__ == _FLUENT:
            _wire_fluent(module)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"modelyard.{name}")
    raise AttributeError(f"module 'modelyard' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)


if TYPE_CHECKING:  # pragma: no cover
    from modelyard import models as models
    from modelyard.config import Settings as Settings
    from modelyard.config import load_settings as load_settings
    from modelyard.pipelines.graph import Pipeline as Pipeline
    from modelyard.pipelines.graph import pipeline as pipeline
    from modelyard.pipelines.step import step as step
    from modelyard.registry.registry import Registry as Registry
    from modelyard.tracking.fluent import (
        active_run as active_run,
    )
    from modelyard.tracking.fluent import (
        end_run as end_run,
    )
    from modelyard.tracking.fluent import (
        get_run as get_run,
    )
    from modelyard.tracking.fluent import (
        log_artifact as log_artifact,
    )
    from modelyard.tracking.fluent import (
        log_artifacts as log_artifacts,
    )
    from modelyard.tracking.fluent import (
        log_dataset as log_dataset,
    )
    from modelyard.tracking.fluent import (
        log_metric as log_metric,
    )
    from modelyard.tracking.fluent import (
        log_metrics as log_metrics,
    )
    from modelyard.tracking.fluent import (
        log_param as log_param,
    )
    from modelyard.tracking.fluent import (
        log_params as log_params,
    )
    from modelyard.tracking.fluent import (
        search_runs as search_runs,
    )
    from modelyard.tracking.fluent import (
        set_tag as set_tag,
    )
    from modelyard.tracking.fluent import (
        set_tags as set_tags,
    )
    from modelyard.tracking.fluent import (
        start_run as start_run,
    )
    from modelyard.tracking.run import Run as Run
    from modelyard.workspace import Workspace as Workspace
    from modelyard.workspace import get_workspace as get_workspace
    from modelyard.workspace import set_workspace as set_workspace
