"""Serving code for the credit-risk model.

Serve it with ``modelyard serve --model examples.credit.serve:CreditModel``.

The class loads the registered ``credit-risk@production`` version (from the registry of the
current project's settings: ``--home`` / ``MODELYARD_HOME`` / ``[tool.modelyard]``) and answers
with the probability of default for each application. Its ``signature`` comes from the data
contract, so the server rejects a request with a missing field, a wrong type, an out-of-range
number or an unknown category with a 4xx that names the field, before the model sees it.

The registered package can also be served as is: ``modelyard serve credit-risk@production``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

if __package__:
    from . import data
else:  # a copy of this folder, run with `modelyard run` inside it: the modules are top-level
    import data

CONTRACT_FILE = Path(__file__).resolve().parent / "contract.toml"
_TYPES = {"int": "integer", "float": "number", "string": "string", "bool": "boolean"}


def contract_signature(contract_file: Path = CONTRACT_FILE) -> dict[str, Any]:
    """The serving signature of the model's inputs, read from the data contract."""
    with contract_file.open("rb") as fh:
        columns = tomllib.load(fh)["columns"]
    fields = []
    for name in data.FEATURES:
        spec = columns[name]
        entry: dict[str, Any] = {"name": name, "type": _TYPES[spec["dtype"]]}
        for key in ("min", "max", "categories"):
            if key in spec:
                entry[key] = spec[key]
        entry["nullable"] = bool(spec.get("nullable", False))
        fields.append(entry)
    return {"fields": fields}


_NUMPY = {"int": "int64", "float": "float64", "string": "str", "bool": "bool"}


def package_signature(contract_file: Path = CONTRACT_FILE) -> dict[str, Any]:
    """The signature stored in the registered package: one 1-D input per feature, with the
    contract's ranges and categories, so ``modelyard serve credit-risk@production`` validates
    each field; the output is the two class probabilities."""
    inputs = []
    for entry in contract_signature(contract_file)["fields"]:
        spec = {k: v for k, v in entry.items() if k not in ("type",)}
        spec["dtype"] = _NUMPY[{v: k for k, v in _TYPES.items()}[entry["type"]]]
        spec["shape"] = [-1]
        inputs.append(spec)
    return {
        "inputs": inputs,
        "outputs": [{"name": "probabilities", "dtype": "float64", "shape": [-1, 2]}],
    }


class CreditModel:
    """The production credit-risk model, as a modelyard serving class.

    Args:
        ref: the registry reference to serve.
        home: the modelyard home holding the registry (default: from settings).
    """

    name = "credit-risk"

    def __init__(self, ref: str = "credit-risk@production", home: str | None = None) -> None:
        self.ref = ref
        self.home = home
        self.model: Any = None
        self.version = "0"
        self.signature = contract_signature()

    def load(self) -> None:
        """Fetch and verify the registered package, then load the estimator."""
        from modelyard import models
        from modelyard.config import load_settings
        from modelyard.registry.registry import Registry

        settings = load_settings(home=self.home)
        registry = Registry.from_settings(settings)
        loaded = models.load(
            self.ref, registry=registry, cache_dir=settings.resolved_home / "cache" / "packages"
        )
        self.model = loaded.raw
        self.version = str(loaded.version.version if loaded.version else "1")

    def predict(self, batch: Any) -> Any:
        """Probability of default for each application (a list of JSON objects or a frame)."""
        import pandas as pd

        frame = batch if isinstance(batch, pd.DataFrame) else pd.DataFrame.from_records(batch)
        features = list(getattr(self.model, "feature_names_in_", data.FEATURES))
        return self.model.predict_proba(frame[features])[:, 1]
