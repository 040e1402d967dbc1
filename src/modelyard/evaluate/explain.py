"""Feature attributions for a candidate, computed on a bounded sample of the test rows.

:func:`explain` picks the explainer by model type: SHAP's ``TreeExplainer`` for tree ensembles
(scikit-learn, XGBoost, LightGBM), SHAP's ``LinearExplainer`` for linear models (anything with
``coef_`` and ``intercept_``), and scikit-learn's ``permutation_importance`` (model-agnostic,
needs the labels) otherwise. The result is an :class:`Explanation`: each feature's mean
``|attribution|`` over the sample, largest first. ``shap`` is imported only here and only when
a tree or linear model is explained; without it :class:`~modelyard.errors.MissingExtraError`
names ``pip install 'modelyard[explain]'``.

:func:`explain_or_reason` is what the gate path calls: it never raises, it returns an
:class:`Explanation` whose ``error`` says why no attributions were computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.errors import InvalidInputError, ModelyardError, require_extra

__all__ = ["Explanation", "explain", "explain_or_reason"]

_TREE_MODULES = ("sklearn.ensemble", "sklearn.tree", "xgboost", "lightgbm", "catboost")


@dataclass(frozen=True)
class Explanation:
    """Mean absolute feature attributions of one model on a sample.

    Attributes:
        method: ``shap-tree``, ``shap-linear``, ``permutation`` or ``none``.
        n_rows: rows of the sample explained.
        features: ``(feature, mean |attribution|)`` pairs, largest first.
        error: why no attributions were computed (``method == "none"``), else None.
    """

    method: str
    n_rows: int
    features: tuple[tuple[str, float], ...]
    error: str | None = None

    @property
    def importances(self) -> dict[str, float]:
        """feature -> mean |attribution|, the weights monitoring's drift verdict takes."""
        return dict(self.features)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, as stored in a version's ``extra["explanation"]``."""
        return {
            "method": self.method,
            "n_rows": self.n_rows,
            "features": [{"feature": f, "mean_abs": v} for f, v in self.features],
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Explanation:
        """Rebuild an explanation from :meth:`to_dict` output."""
        return cls(
            method=str(data.get("method", "none")),
            n_rows=int(data.get("n_rows", 0)),
            features=tuple(
                (str(f["feature"]), float(f["mean_abs"])) for f in data.get("features") or ()
            ),
            error=data.get("error"),
        )

    def render_text(self, top: int = 10) -> str:
        """Readable lines: the method and the ``top`` features with their mean |attribution|."""
        if self.error is not None:
            return f"explanation: none ({self.error})"
        lines = [f"explanation: {self.method} on {self.n_rows} rows (mean |attribution|)"]
        width = max((len(f) for f, _ in self.features[:top]), default=0)
        lines.extend(f"  {f:<{width}}  {v:.4g}" for f, v in self.features[:top])
        if len(self.features) > top:
            lines.append(f"  ... {len(self.features) - top} more")
        return "\n".join(lines)


def _kind(model: Any) -> str:
    module = type(model).__module__
    if module.startswith(_TREE_MODULES) and (
        hasattr(model, "estimators_")
        or hasattr(model, "tree_")
        or hasattr(model, "_predictors")
        or hasattr(model, "get_booster")
        or hasattr(model, "booster_")
    ):
        return "tree"
    if hasattr(model, "coef_") and hasattr(model, "intercept_"):
        return "linear"
    return "other"


def _per_feature(values: Any, n_features: int) -> np.ndarray:
    """Mean |attribution| per feature from SHAP output of any shape (list per class, 2-D, 3-D)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 3 and arr.shape[0] != n_features and arr.shape[-1] != n_features:
        arr = np.moveaxis(arr, 1, -1)  # (rows, features, classes) -> (rows, classes, features)
    if arr.ndim == 3 and arr.shape[-1] != n_features:
        arr = np.moveaxis(arr, -1, 0)  # (rows, features, classes) -> (classes, rows, features)
    mean: np.ndarray = np.abs(arr).reshape(-1, n_features).mean(axis=0)
    return mean


def explain(
    model: Any,
    features: Any,
    *,
    y: Any = None,
    max_rows: int = 200,
    background_rows: int = 100,
    seed: int = 0,
) -> Explanation:
    """Compute mean |feature attribution| of ``model`` on at most ``max_rows`` rows.

    Args:
        model: a fitted model (scikit-learn-style).
        features: the feature rows (a pandas DataFrame; its columns name the features).
        y: the labels of ``features``; needed only by the model-agnostic explainer.
        max_rows: the sample size explained (rows drawn without replacement, seeded).
        background_rows: rows of the sample used as the linear explainer's background.
        seed: the sampling seed.

    Returns:
        The :class:`Explanation`, features sorted by mean |attribution|, largest first.

    Raises:
        MissingExtraError: a tree or linear model and ``shap`` is not installed.
        InvalidInputError: no rows, or a model-agnostic explanation without labels.
    """
    if not hasattr(features, "iloc") and hasattr(features, "to_pandas"):
        features = features.to_pandas()  # polars
    names = [str(c) for c in getattr(features, "columns", [])]
    n = len(features)
    if n == 0 or not names:
        raise InvalidInputError(
            "cannot explain a model on an empty frame",
            hint="pass the test rows (a DataFrame with named feature columns)",
        )
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(n, size=min(n, max_rows), replace=False))
    sample = features.iloc[take]
    kind = _kind(model)
    if kind in ("tree", "linear"):
        shap = require_extra("shap", "explain")
        if kind == "tree":
            values = shap.TreeExplainer(model).shap_values(sample)
            method = "shap-tree"
        else:
            background = sample.iloc[: max(1, background_rows)]
            values = shap.LinearExplainer(model, background).shap_values(sample)
            method = "shap-linear"
        scores = _per_feature(values, len(names))
    else:
        if y is None:
            raise InvalidInputError(
                f"a {type(model).__name__} is explained by permutation importance, which "
                "needs the labels",
                hint="pass y=... (the gate path passes the test labels)",
            )
        from sklearn.inspection import permutation_importance

        labels = np.asarray(y)[take]
        result = permutation_importance(model, sample, labels, n_repeats=3, random_state=seed)
        scores = np.abs(np.asarray(result.importances_mean, dtype=float))
        method = "permutation"
    pairs = sorted(zip(names, (float(s) for s in scores), strict=True), key=lambda p: -p[1])
    return Explanation(method=method, n_rows=len(take), features=tuple(pairs))


def explain_or_reason(
    model: Any, features: Any, *, y: Any = None, max_rows: int = 200
) -> Explanation:
    """:func:`explain`, or an :class:`Explanation` with ``method="none"`` and the reason.

    The gate path calls this so that a model that cannot be explained (the ``explain`` extra
    missing, an unsupported model or input) is still registered, with the reason recorded.
    """
    try:
        return explain(model, features, y=y, max_rows=max_rows)
    except ModelyardError as exc:
        reason = exc.message + (f"; {exc.hint}" if exc.hint else "")
    except Exception as exc:  # a third-party explainer refusing this model or input
        reason = f"{type(model).__name__} could not be explained: {type(exc).__name__}: {exc}"
    return Explanation(method="none", n_rows=0, features=(), error=reason)
