"""Model flavors: how each kind of model is written into a package, loaded and called.

A flavor is a small class with four methods; the package code (``registry.packages``) does the
manifest, hashing, signatures and version checks around it. Flavor modules import their
library (torch, onnxruntime, skops, ...) inside their methods, so listing flavors is cheap.

| flavor     | files                                  | loads with                            |
| ---------- | -------------------------------------- | ------------------------------------- |
| sklearn    | ``model.skops``                        | skops, refusing untrusted types       |
| onnx       | ``model.onnx``                         | onnxruntime (CPU)                     |
| torch      | ``model.pt2`` (torch.export),          | ``torch.export.load``,                |
|            | ``model.pt`` (TorchScript), or weights | ``torch.jit.load``, or the module     |
|            | + ``module:Class`` and kwargs          | class + ``torch.load(weights_only)``  |
| xgboost    | ``model.ubj``                          | xgboost's native loader               |
| lightgbm   | ``model.txt``                          | ``lightgbm.Booster(model_file=...)``  |
| python     | ``model/`` written by ``obj.save()``   | ``Class.load(path)``                  |
| pickle     | ``model.pkl``                          | pickle, only with ``trust_pickle``    |
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.store.artifacts import validate_relative_name

__all__ = [
    "FLAVOR_NAMES",
    "Flavor",
    "Trust",
    "class_path",
    "detect_flavor",
    "get_flavor",
    "import_object",
    "package_file",
]

# flavor name -> "module:Class"; modules are imported on first use
_FLAVORS: dict[str, str] = {
    "sklearn": "modelyard.registry.flavors.sklearn:SklearnFlavor",
    "onnx": "modelyard.registry.flavors.onnx:OnnxFlavor",
    "torch": "modelyard.registry.flavors.torch:TorchFlavor",
    "xgboost": "modelyard.registry.flavors.boosters:XGBoostFlavor",
    "lightgbm": "modelyard.registry.flavors.boosters:LightGBMFlavor",
    "python": "modelyard.registry.flavors.python:PythonFlavor",
    "pickle": "modelyard.registry.flavors.pickle:PickleFlavor",
}
FLAVOR_NAMES = tuple(_FLAVORS)
# order of auto-detection; pickle is never picked unless trusted (see detect_flavor)
# the boosters first: their scikit-learn wrappers (XGBClassifier, LGBMRegressor) are sklearn
# estimators too, but save smaller, faster and version-portable in their native formats
_DETECT_ORDER = ("xgboost", "lightgbm", "sklearn", "onnx", "torch", "python")


@dataclass(frozen=True, slots=True)
class Trust:
    """What the caller of ``load`` agreed to run.

    Attributes:
        pickle: loading pickles is allowed (arbitrary code on load).
        types: skops types allowed beyond skops' defaults; ``True`` allows every type.
    """

    pickle: bool = False
    types: bool | tuple[str, ...] = ()


class Flavor:
    """Base of the flavors. Subclasses set ``name`` and ``libraries`` and implement the rest."""

    name: ClassVar[str] = ""
    #: distributions whose versions are recorded in the manifest and checked on load
    libraries: ClassVar[tuple[str, ...]] = ()

    def accepts(self, model: Any) -> bool:
        """Whether ``model`` is an object this flavor can save (used by auto-detection)."""
        raise NotImplementedError

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        """Write ``model``'s files into ``folder``; return JSON-able loading options."""
        raise NotImplementedError

    def load(
        self, folder: Path, options: dict[str, Any], files: dict[str, str], trust: Trust
    ) -> Any:
        """Load the raw model from a verified package folder."""
        raise NotImplementedError

    def predict(self, raw: Any, batch: Any, options: dict[str, Any]) -> Any:
        """Call the raw model on ``batch`` (rows stacked on axis 0); one output per row."""
        raise NotImplementedError

    def describe(self, raw: Any) -> dict[str, Any] | None:
        """The signature the loaded model declares itself (ONNX does), else None."""
        return None

    def libraries_for(self, model: Any) -> tuple[str, ...]:
        """The distributions to record for ``model`` (default: :attr:`libraries`)."""
        return self.libraries


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``.

    Raises:
        InvalidInputError: no such flavor; the message lists the known ones.
    """
    target = _FLAVORS.get(name)
    if target is None:
        raise InvalidInputError(
            f"unknown model flavor {name!r}",
            hint=f"use one of: {', '.join(FLAVOR_NAMES)}",
            flavor=name,
        )
    cls = import_object(target)
    flavor: Flavor = cls()
    return flavor


def detect_flavor(model: Any) -> Flavor | None:
    """The first flavor that accepts ``model`` (pickle excluded), or None."""
    for name in _DETECT_ORDER:
        flavor = get_flavor(name)
        if flavor.accepts(model):
            return flavor
    return None


def module_loaded(name: str) -> Any:
    """The module ``name`` if it was already imported (no import side effects), else None."""
    return sys.modules.get(name)


def class_path(obj_or_cls: Any) -> str:
    """``module:QualName`` of a class (or of an object's class), checked to be importable.

    Raises:
        InvalidInputError: the class is defined in ``__main__`` or inside a function.
    """
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    module, qual = cls.__module__, cls.__qualname__
    if module == "__main__" or "<locals>" in qual:
        raise InvalidInputError(
            f"class {qual} is defined in {'a function' if '<locals>' in qual else '__main__'}, "
            "so a package cannot name it for loading",
            hint="move the class into an importable module of your project (e.g. mypkg/model.py)",
            cls=f"{module}.{qual}",
        )
    return f"{module}:{qual}"


def import_object(path: str) -> Any:
    """Import ``module:QualName``.

    Raises:
        InvalidInputError: ``path`` is not of the form ``module:Name``.
        NotFoundError: the module or the name does not exist.
    """
    module_name, sep, qual = path.partition(":")
    if not sep or not module_name or not qual:
        raise InvalidInputError(
            f"{path!r} is not a 'module:Name' path", hint="write it as 'mypkg.model:MyModel'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise NotFoundError(
            f"cannot import module {module_name!r} (for {path!r}): {exc}",
            hint="install the package that defines it, or add its folder to PYTHONPATH",
            path=path,
        ) from exc
    for part in qual.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise NotFoundError(
                f"module {module_name!r} has no {qual!r} (for {path!r})",
                hint="check the class name, or install the version of the code the package "
                "was saved with",
                path=path,
            ) from exc
    return obj


def package_file(folder: Path, rel: str, files: dict[str, str]) -> Path:
    """The path of the package file ``rel``, which must be listed (and so verified) in ``files``.

    Raises:
        InvalidNameError: ``rel`` escapes the package.
        InvalidInputError: ``rel`` is not one of the package's verified files.
    """
    validate_relative_name(rel, what="package file path")
    if rel not in files:
        raise InvalidInputError(
            f"the package at {folder} refers to {rel!r}, which is not among its hashed files",
            hint="the manifest was edited by hand; save the model again with modelyard.models.save",
            path=rel,
        )
    return folder / rel


def as_array(batch: Any, dtype: Any = None) -> Any:
    """``batch`` as a numpy array (lists of rows, tensors and frames are converted)."""
    import numpy as np

    if hasattr(batch, "detach") and hasattr(batch, "cpu"):  # a torch tensor
        batch = batch.detach().cpu().numpy()
    elif hasattr(batch, "to_numpy") and not isinstance(batch, np.ndarray):
        batch = batch.to_numpy()
    return np.asarray(batch, dtype=dtype)
