"""XGBoost and LightGBM models, in their own native file formats (no pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.registry.flavors import (
    Flavor,
    Trust,
    as_array,
    class_path,
    import_object,
    module_loaded,
    package_file,
)


class XGBoostFlavor(Flavor):
    """``xgboost.Booster`` and the scikit-learn wrappers (``XGBClassifier``...), as UBJSON."""

    name = "xgboost"
    libraries = ("xgboost", "numpy")

    def accepts(self, model: Any) -> bool:
        xgb = module_loaded("xgboost")
        return xgb is not None and isinstance(model, xgb.Booster | xgb.XGBModel)

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        model.save_model(str(folder / "model.ubj"))
        return {"model_file": "model.ubj", "class": class_path(model)}

    def load(
        self, folder: Path, options: dict[str, Any], files: dict[str, str], trust: Trust
    ) -> Any:
        from modelyard.errors import require_extra

        xgb = require_extra("xgboost", "xgboost")
        path = package_file(folder, str(options.get("model_file", "model.ubj")), files)
        cls = import_object(str(options.get("class", "xgboost.core:Booster")))
        if not (isinstance(cls, type) and issubclass(cls, xgb.Booster | xgb.XGBModel)):
            cls = xgb.Booster  # the manifest may only name xgboost's own classes
        model = cls()
        model.load_model(str(path))
        return model

    def predict(self, raw: Any, batch: Any, options: dict[str, Any]) -> Any:
        import xgboost as xgb

        if isinstance(raw, xgb.Booster):
            return raw.predict(xgb.DMatrix(as_array(batch)))
        return raw.predict(as_array(batch))


class LightGBMFlavor(Flavor):
    """``lightgbm.Booster`` and the scikit-learn wrappers, as LightGBM's text model file.

    A wrapper is stored as its booster; ``predict`` then returns the booster's raw predictions
    (probabilities for classifiers).
    """

    name = "lightgbm"
    libraries = ("lightgbm", "numpy")

    def accepts(self, model: Any) -> bool:
        lgb = module_loaded("lightgbm")
        return lgb is not None and isinstance(model, lgb.Booster | lgb.LGBMModel)

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        booster = getattr(model, "booster_", model)
        booster.save_model(str(folder / "model.txt"))
        return {"model_file": "model.txt", "wrapper": class_path(model)}

    def load(
        self, folder: Path, options: dict[str, Any], files: dict[str, str], trust: Trust
    ) -> Any:
        from modelyard.errors import require_extra

        lgb = require_extra("lightgbm", "lightgbm")
        path = package_file(folder, str(options.get("model_file", "model.txt")), files)
        return lgb.Booster(model_file=str(path))

    def predict(self, raw: Any, batch: Any, options: dict[str, Any]) -> Any:
        return raw.predict(as_array(batch))
