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
        import skops.io as sio

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
        import skops.io as sio
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
