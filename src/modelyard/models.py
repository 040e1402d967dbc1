"""Save and load model packages: ``modelyard.models.save`` / ``modelyard.models.load``.

::

    import modelyard.models

    modelyard.models.save(clf, "pkg/", input_example=X[:5])     # a folder with modelyard.json
    model = modelyard.models.load("pkg/")                        # every file hash-checked
    model.predict(X)

    modelyard.models.save(clf, registry, name="churn", aliases=["candidate"])
    model = modelyard.models.load("models:/churn@production", registry=registry)

Implemented in :mod:`modelyard.registry.packages`; flavors in :mod:`modelyard.registry.flavors`.
"""

from __future__ import annotations

from modelyard.registry.flavors import FLAVOR_NAMES
from modelyard.registry.flavors.python import PythonModel
from modelyard.registry.packages import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    LibraryVersionWarning,
    LoadedModel,
    ModelyardWarning,
    infer_signature,
    load,
    read_manifest,
    save,
    verify_package,
)

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
    "save",
    "verify_package",
]
