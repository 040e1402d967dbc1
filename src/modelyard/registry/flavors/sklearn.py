"""scikit-learn models through skops: no pickle, and untrusted types are refused on load."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from modelyard.errors import InvalidInputError, UnsafeArtifactError
from modelyard.registry.flavors import Flavor, Trust, as_array, module_loaded, package_file

MODEL_FILE = "model.skops"
# scikit-learn's own internal types that skops does not trust by default but that common
# estimators hold (trees, neighbor indexes, optimizers); they carry data, not code.
SKLEARN_INTERNAL_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    }
)
_DIST_METRIC = re.compile(r"^sklearn\.metrics\._dist_metrics\.[A-Za-z]+Distance(32|64)$")
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

        path = package_file(folder, str(options.get("model_file", MODEL_FILE)), files)
        untrusted = list(sio.get_untrusted_types(file=path))
        granted = set(trust.types or ()) if trust.types is not True else set(untrusted)
        allowed = [t for t in untrusted if t in granted or _sklearn_internal(t)]
        refused = sorted(set(untrusted) - set(allowed))
        if refused:
            listed = ", ".join(repr(t) for t in refused)
            raise UnsafeArtifactError(
                f"the skops file {path} holds types that are not trusted by default: {listed}",
                hint=f"if you trust where this package came from, load it with trusted=[{listed}]"
                " (or trusted=True to accept every type)",
                types=refused,
                path=str(path),
            )
        return sio.load(path, trusted=allowed or None)

    def predict(self, raw: Any, batch: Any, options: dict[str, Any]) -> Any:
        method = getattr(raw, str(options.get("method", "predict")))
        return method(_features(raw, batch))


def _sklearn_internal(type_name: str) -> bool:
    return type_name in SKLEARN_INTERNAL_TYPES or bool(_DIST_METRIC.match(type_name))


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
