"""scikit-learn models through skops: no pickle, and untrusted types are refused on load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.errors import InvalidInputError, UnsafeArtifactError
from modelyard.registry.flavors import Flavor, Trust, as_array, module_loaded, package_file

MODEL_FILE = "model.skops"
_METHODS = ("predict", "predict_proba", "decision_function", "transform", "score_samples")


class SklearnFlavor(Flavor):
    """scikit-learn estimators and pipelines, stored with ``skops.io``.

    Options (``flavor_options``): ``method`` (default ``predict``): the estimator method that
    ``predict`` calls, e.g. ``predict_proba``.
    """

    name = "sklearn"
    libraries = ("scikit-learn", "skops", "numpy")

    def accepts(self, model: Any) -> bool:
        base = module_loaded("sklearn.base")
        return base is not None and isinstance(model, base.BaseEstimator)

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        sio = _skops_io()

        method = str(options.get("method", "predict"))
        if method not in _METHODS or not callable(getattr(model, method, None)):
            raise InvalidInputError(
                f"{type(model).__name__} has no method {method!r} for predict",
                hint=f"pass flavor_options={{'method': ...}} with one of {', '.join(_METHODS)}",
                method=method,
            )
        sio.dump(model, folder / MODEL_FILE)
        return {"model_file": MODEL_FILE, "method": method}

    def load(
        self, folder: Path, options: dict[str, Any], files: dict[str, str], trust: Trust
    ) -> Any:
        sio = _skops_io()
        from skops.io.exceptions import UntrustedTypesFoundException

        path = package_file(folder, str(options.get("model_file", MODEL_FILE)), files)
        if trust.types is True:
            return sio.load(path, trusted=list(sio.get_untrusted_types(file=path)) or None)
        granted = list(trust.types or ())
        try:  # one parse when the file holds only trusted types (the common case)
            return sio.load(path, trusted=granted or None)
        except UntrustedTypesFoundException:
            untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(granted))
        raise _untrusted_error(path, untrusted)

    def predict(self, raw: Any, batch: Any, options: dict[str, Any]) -> Any:
        method = getattr(raw, str(options.get("method", "predict")))
        return method(_features(raw, batch))


# array-api backends that scikit-learn vendors; importing one imports the whole framework
_ARRAY_API_BACKENDS = ("torch", "cupy", "dask", "jax", "paddle")


def _skops_io() -> Any:
    """Import ``skops.io`` without importing torch, cupy, dask, ... as a side effect.

    On import, skops lists scikit-learn's estimators with ``all_estimators()``, which walks every
    scikit-learn package, including the vendored ``array_api_compat.<framework>`` shims; each of
    those imports its framework. With torch installed that costs seconds of CPU in every process
    that loads a model (server workers included), for nothing: the shims are only needed when
    arrays of that framework are passed in, and then the framework is already imported. Shims
    of frameworks not yet imported are hidden for the duration of the import (``pkgutil``
    skips a package whose import fails) and put back afterwards.
    """
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    hidden = [
        f"sklearn.externals.array_api_compat.{name}"
        for name in _ARRAY_API_BACKENDS
        if name not in sys.modules
    ]
    blocked = [name for name in hidden if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import skops.io as sio
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return sio


def _untrusted_error(path: Path, untrusted: list[str]) -> UnsafeArtifactError:
    from skops.io.exceptions import UNTRUSTED_TYPE_REASONS

    listed = ", ".join(repr(t) for t in untrusted)
    reasons = "".join(
        f"\n- {UNTRUSTED_TYPE_REASONS[t]}" for t in untrusted if t in UNTRUSTED_TYPE_REASONS
    )
    return UnsafeArtifactError(
        f"the skops file {path} holds types that are not trusted by default: {listed}{reasons}",
        hint="if you created this package or fully trust its source, load it with "
        f"trusted=[{listed}] (review each type; trusted=True accepts every type)",
        types=untrusted,
        path=str(path),
    )


def _features(raw: Any, batch: Any) -> Any:
    names = getattr(raw, "feature_names_in_", None)
    if names is None:
        if hasattr(batch, "columns"):
            return batch
        return as_array(batch)
    import pandas as pd

    columns = [str(c) for c in names]
    if isinstance(batch, pd.DataFrame):
        return batch
    if hasattr(batch, "to_pandas"):  # polars
        return batch.to_pandas()
    if isinstance(batch, dict):
        return pd.DataFrame(batch, columns=columns)
    if isinstance(batch, list) and batch and isinstance(batch[0], dict):
        return pd.DataFrame.from_records(batch, columns=columns)
    # rows of values in the training column order: name them, as sklearn expects
    return pd.DataFrame(as_array(batch, dtype=object if _mixed(batch) else None), columns=columns)


def _mixed(batch: Any) -> bool:
    return isinstance(batch, list) and any(
        isinstance(v, str) for row in batch[:10] if isinstance(row, list | tuple) for v in row
    )
