"""Plain Python model classes that save and load themselves.

The protocol (see :class:`PythonModel`)::

    class MyModel:
        def save(self, path: Path) -> None: ...          # write files under the folder path
        @classmethod
        def load(cls, path: Path) -> "MyModel": ...       # read them back
        def predict(self, batch): ...                    # one output per row of batch

The package stores ``module:Class`` and the files under ``model/``; loading imports the class,
which must be importable where the package is loaded (installed, or on PYTHONPATH).
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from modelyard.registry.flavors import Flavor, Trust, class_path, import_object

MODEL_DIR = "model"


@runtime_checkable
class PythonModel(Protocol):
    """What the ``python`` flavor needs from a model class."""

    def save(self, path: Path) -> None:
        """Write the model's files under the (existing, empty) folder ``path``."""

    @classmethod
    def load(cls, path: Path) -> Any:
        """Read a model written by :meth:`save` from the folder ``path``."""

    def predict(self, batch: Any) -> Any:
        """One output per row of ``batch``."""


@functools.cache
def _distributions() -> dict[str, list[str]]:
    from importlib.metadata import packages_distributions

    return dict(packages_distributions())  # scans every installed distribution: once


def distribution_of(module: str) -> str | None:
    """The installed distribution that provides the top-level package of ``module``."""
    dists = _distributions().get(module.partition(".")[0])
    return dists[0] if dists else None


class PythonFlavor(Flavor):
    """Objects following :class:`PythonModel`."""

    name = "python"

    def accepts(self, model: Any) -> bool:
        load = getattr(type(model), "load", None)
        return (
            callable(getattr(model, "save", None))
            and callable(getattr(model, "predict", None))
            and load is not None
            and inspect.ismethod(load)  # a classmethod, bound to the class
        )

    def libraries_for(self, model: Any) -> tuple[str, ...]:
        dist = distribution_of(type(model).__module__)
        return (dist,) if dist else ()

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        target = class_path(model)
        (folder / MODEL_DIR).mkdir()
        model.save(folder / MODEL_DIR)
        return {"class": target, "model_dir": MODEL_DIR}

    def load(
        self, folder: Path, options: dict[str, Any], files: dict[str, str], trust: Trust
    ) -> Any:
        from modelyard.store.artifacts import validate_relative_name

        cls = import_object(str(options["class"]))
        model_dir = validate_relative_name(str(options.get("model_dir", MODEL_DIR)))
        path = folder / model_dir
        path.mkdir(exist_ok=True)  # a model that wrote no files still gets its folder
        return cls.load(path)

    def predict(self, raw: Any, batch: Any, options: dict[str, Any]) -> Any:
        return raw.predict(batch)
