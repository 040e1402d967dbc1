"""Save, register and load model packages: ``modelyard.models``.

::

    import modelyard.models

    modelyard.models.save(clf, "pkg/", input_example=X[:5])     # -> Path of the package folder
    model = modelyard.models.load("pkg/")                        # every file hash-checked
    model.predict(X)

    version = modelyard.models.register(clf, registry, name="churn", aliases=["candidate"])
    model = modelyard.models.load("models:/churn@production")   # the project's registry

:func:`save` always returns the package folder and :func:`register` always returns the
:class:`~modelyard.registry.registry.ModelVersion`. Implemented in
:mod:`modelyard.registry.packages`; flavors in :mod:`modelyard.registry.flavors`. With
``registry=None`` the project's registry and package cache are used (from its settings).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from modelyard.registry import packages
from modelyard.registry.flavors import FLAVOR_NAMES
from modelyard.registry.flavors.python import PythonModel
from modelyard.registry.packages import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    LibraryVersionWarning,
    LoadedModel,
    ModelyardWarning,
    infer_signature,
    read_manifest,
    save,
    verify_package,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from modelyard.registry.registry import ModelVersion, Registry

__all__ = [
    "FLAVOR_NAMES",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "LibraryVersionWarning",
    "LoadedModel",
    "ModelyardWarning",
    "PythonModel",
    "infer_signature",
    "load",
    "read_manifest",
    "register",
    "save",
    "verify_package",
]


def register(
    model: Any, registry: Registry | None = None, *, name: str, **options: Any
) -> ModelVersion:
    """Package ``model`` and register it as a new version of ``name``.

    Args:
        model: the fitted model.
        registry: the registry (default: the current project's, from its settings).
        name: the model name.
        **options: as :func:`modelyard.registry.packages.register` (``input_example``,
            ``signature``, ``flavor``, ``run_id``, ``aliases``, ``extra``, ``contract``,
            ``profile``, ``description``, ``tags``, ...).

    Returns:
        The registered :class:`~modelyard.registry.registry.ModelVersion`.
    """
    if registry is None:
        registry = _project_registry()
    return packages.register(model, registry, name=name, **options)


def _project_registry() -> Registry:
    """The current project's registry: this module is an edge of the API, like the fluent
    tracking calls, so it reads the project's settings when it is given no registry."""
    from modelyard.config import load_settings
    from modelyard.registry.registry import Registry

    return Registry.from_settings(load_settings())


def load(
    path_or_uri: str | os.PathLike[str],
    *,
    registry: Registry | None = None,
    trust_pickle: bool = False,
    trusted: bool | Sequence[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
) -> LoadedModel:
    """Load a model package, verifying every file; see :func:`modelyard.registry.packages.load`.

    A registry reference (``models:/NAME@alias``, ``models:/NAME/3``, ``NAME@alias``,
    ``NAME:3``) is fetched through the project's package cache, with the project's registry
    unless ``registry`` is given.
    """
    is_ref = isinstance(path_or_uri, str) and packages.is_registry_ref(path_or_uri, registry)
    if is_ref and (registry is None or cache_dir is None):
        from modelyard.config import load_settings
        from modelyard.registry.cache import PackageCache

        registry = registry or _project_registry()
        cache_dir = cache_dir or PackageCache.from_settings(load_settings()).root
    return packages.load(
        path_or_uri,
        registry=registry,
        trust_pickle=trust_pickle,
        trusted=trusted,
        cache_dir=cache_dir,
    )
