"""Pickle, for models no safe flavor handles: only when the caller explicitly trusts it."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from modelyard.errors import UnsafeArtifactError
from modelyard.registry.flavors import Flavor, Trust, as_array, package_file

MODEL_FILE = "model.pkl"

_HINT_LOAD = (
    "loading a pickle runs whatever code it names; if you trust where this package came from, "
    "pass trust_pickle=True to modelyard.models.load"
)


class PickleFlavor(Flavor):
    """Any picklable object with a ``predict`` method (or a callable)."""

    name = "pickle"

    def accepts(self, model: Any) -> bool:
        return True

    def libraries_for(self, model: Any) -> tuple[str, ...]:
        from modelyard.registry.flavors.python import distribution_of

        dist = distribution_of(type(model).__module__)
        return (dist,) if dist else ()

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        with (folder / MODEL_FILE).open("wb") as fh:
            pickle.dump(model, fh, protocol=5)
        return {"model_file": MODEL_FILE}

    def load(
        self, folder: Path, options: dict[str, Any], files: dict[str, str], trust: Trust
    ) -> Any:
        path = package_file(folder, str(options.get("model_file", MODEL_FILE)), files)
        if not trust.pickle:
            raise UnsafeArtifactError(
                f"the package at {folder} stores its model as a pickle ({path.name})",
                hint=_HINT_LOAD,
                path=str(path),
            )
        with path.open("rb") as fh:
            return pickle.load(fh)

    def predict(self, raw: Any, batch: Any, options: dict[str, Any]) -> Any:
        fn = getattr(raw, "predict", None)
        if fn is None and callable(raw):
            fn = raw
        if fn is None:
            from modelyard.errors import InvalidInputError

            raise InvalidInputError(
                f"the pickled {type(raw).__name__} has no predict method and is not callable",
                hint="use .raw to reach the object",
            )
        if isinstance(batch, list) and batch and not isinstance(batch[0], dict):
            batch = as_array(batch)
        return fn(batch)
