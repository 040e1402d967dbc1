"""What a worker serves: a user's class (``module:Class``) or a model package folder.

A user's class has ``load(self)`` and a batched ``predict(self, batch)`` returning one output
per input, and optionally ``preprocess(self, instance)`` / ``postprocess(self, output)`` that
run per instance in the front process, a ``signature`` (see :func:`normalize_signature`), a
``name`` and a ``version``. A model package is loaded with ``modelyard.models.load``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from modelyard.data.contract import Contract

__all__ = [
    "ModelSpec",
    "apply_contract",
    "check_model_name",
    "load_model",
    "normalize_signature",
    "proba_method",
]

# Open Inference Protocol datatypes -> numpy dtype names
V2_TO_NUMPY: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
NUMPY_TO_V2 = {v: k for k, v in V2_TO_NUMPY.items()}
_ALIASES = {"float": "FP32", "double": "FP64", "int": "INT64", "long": "INT64", "bytes": "BYTES"}


@dataclass(frozen=True)
class ModelSpec:
    """Where a worker gets its model from.

    Attributes:
        kind: ``"class"`` (``target`` is ``module:Class``) or ``"package"`` (a folder).
        target: the class path or the package folder.
        python_path: folders prepended to ``sys.path`` before importing (workers and front).
        trust_pickle: passed to ``modelyard.models.load`` for pickle-flavoured packages.
        version: the version label the workers report and log (default: the model's own;
            a registry version overrides what its package's manifest says).
    """

    kind: str
    target: str
    python_path: tuple[str, ...] = ()
    trust_pickle: bool = False
    version: str | None = None

    def with_version(self, version: str | None) -> ModelSpec:
        """This spec, labelled ``version``."""
        return replace(self, version=version)

    @classmethod
    def for_class(cls, target: str, python_path: tuple[str, ...] = ()) -> ModelSpec:
        """A ``module:Class`` spec; checks the form, not the import."""
        module, _, attr = target.partition(":")
        if not module or not attr:
            raise InvalidInputError(
                f"model class {target!r} is not of the form 'module:Class'",
                hint="pass e.g. --model mypkg.model:MyModel",
                value=target,
            )
        return cls("class", target, python_path)

    @classmethod
    def for_package(cls, folder: str | Path, *, trust_pickle: bool = False) -> ModelSpec:
        """A model package folder (as written by ``modelyard.models.save``)."""
        path = Path(folder)
        if not path.is_dir():
            raise InvalidInputError(
                f"model package folder {str(path)!r} does not exist",
                hint="pass a folder written by modelyard.models.save, or NAME@alias",
                value=str(path),
            )
        return cls("package", str(path.resolve()), (), trust_pickle)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "python_path": list(self.python_path),
            "trust_pickle": self.trust_pickle,
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(
            str(data["kind"]),
            str(data["target"]),
            tuple(data.get("python_path", ())),
            bool(data.get("trust_pickle", False)),
            None if data.get("version") is None else str(data["version"]),
        )


def check_model_name(name: str) -> str:
    """Return ``name`` if the registry would accept it as a model name, else raise.

    The name becomes a URL segment and a folder of the request log (``model=<name>``), so a
    name that could escape its root is refused before the server starts.

    Raises:
        InvalidNameError: the name is not a legal model name.
    """
    from modelyard.registry.registry import validate_model_name

    return validate_model_name(name)


def check_version_label(version: str) -> str:
    """Return ``version`` if it may label a served version, else raise.

    It names the request log's folders (``version=<label>``) like a model name does.

    Raises:
        InvalidNameError: the label could escape its folder or is otherwise illegal.
    """
    from modelyard.errors import InvalidNameError

    try:
        return check_model_name(version)
    except InvalidNameError as exc:
        raise InvalidNameError(
            f"version label {version!r} is not valid: it must be 1-255 characters from "
            "A-Z a-z 0-9 . _ -, starting with a letter or digit, no '..'",
            hint="label versions like '7' or 'v2.candidate'",
            value=version,
        ) from exc


def import_class(spec: ModelSpec) -> Any:
    """Import the class of a ``class`` spec (its module may live on ``python_path``)."""
    for folder in reversed(spec.python_path):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    module_name, _, attr = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import module {module_name!r} for model class {spec.target!r}: {exc}",
            hint="check the module path, or add its folder to PYTHONPATH",
            value=spec.target,
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(
                f"module {module_name!r} has no attribute {part!r} (model class {spec.target!r})",
                hint="check the class name after the colon",
                value=spec.target,
            )
        obj = getattr(obj, part)
    if not callable(getattr(obj, "predict", None)):
        raise ConfigError(
            f"model class {spec.target!r} has no predict(self, batch) method",
            hint="define load(self) and predict(self, batch) on the class",
            value=spec.target,
        )
    return obj


def load_model(spec: ModelSpec) -> tuple[Any, dict[str, Any]]:
    """Load the model (in a worker); return it and its description for the front.

    The description holds ``name``, ``version``, ``signature`` (normalised) and whether the
    class defines ``preprocess`` / ``postprocess``.
    """
    if spec.kind == "class":
        cls = import_class(spec)
        model = cls()
        if callable(getattr(model, "load", None)):
            model.load()
        raw_sig = getattr(model, "signature", None)
        desc = {
            "name": str(getattr(model, "name", cls.__name__.lower())),
            "version": str(getattr(model, "version", "1")),
            "signature": normalize_signature(raw_sig() if callable(raw_sig) else raw_sig),
            "preprocess": callable(getattr(model, "preprocess", None)),
            "postprocess": callable(getattr(model, "postprocess", None)),
            "platform": "python",
        }
        if spec.version is not None:
            desc["version"] = spec.version
        _describe_outputs(model, desc)
        return model, desc
    if spec.kind == "package":
        from modelyard import models

        loaded: Any = models.load(spec.target, trust_pickle=spec.trust_pickle)
        manifest = dict(getattr(loaded, "manifest", {}) or {})
        desc = {
            "name": str(manifest.get("name") or Path(spec.target).name),
            "version": str(manifest.get("version") or "1"),
            "signature": normalize_signature(manifest.get("signature")),
            "preprocess": False,
            "postprocess": False,
            "platform": str(manifest.get("flavor") or "modelyard"),
        }
        if spec.version is not None:
            desc["version"] = spec.version
        _describe_outputs(loaded, desc)
        return loaded, desc
    raise ConfigError(f"unknown model spec kind {spec.kind!r}", value=spec.kind)


def proba_method(model: Any) -> Callable[[Any], Any] | None:
    """The class-probability function of a loaded model (``predict_proba``), if it has one.

    A model package's estimator is reached through ``LoadedModel.raw``.
    """
    for obj in (model, getattr(model, "raw", None)):
        fn = getattr(obj, "predict_proba", None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return None


def _describe_outputs(model: Any, desc: dict[str, Any]) -> None:
    """Add ``classes`` (JSON-able labels) when the model is a classifier with probabilities."""
    if proba_method(model) is None:
        return
    for obj in (model, getattr(model, "raw", None)):
        classes = getattr(obj, "classes_", None)
        if classes is not None:
            labels = classes.tolist() if hasattr(classes, "tolist") else list(classes)
            desc["classes"] = [
                x if isinstance(x, int | float | str | bool) else str(x) for x in labels
            ]
            return


# data-contract dtypes -> the types the codec checks JSON values against
_CONTRACT_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "string": "string"}


def contract_fields(contract: Contract) -> list[dict[str, Any]]:
    """The contract's columns as signature fields (type, ``min``/``max``, categories, nulls).

    Datetimes, dates, durations and objects travel as JSON strings and are not type-checked.
    """
    out: list[dict[str, Any]] = []
    for col in contract.columns.values():
        kind = _CONTRACT_TYPES.get(col.dtype, "any")
        field: dict[str, Any] = {"name": col.name, "type": kind, "nullable": col.nullable}
        if kind in ("integer", "number"):
            if col.min is not None:
                field["min"] = float(col.min)
            if col.max is not None:
                field["max"] = float(col.max)
        if col.categories is not None:
            field["categories"] = list(col.categories)
        out.append(field)
    return out


def apply_contract(signature: dict[str, Any] | None, contract: Contract | None) -> Any:
    """The signature a server validates requests with, once the version's contract is known.

    Fields (JSON-object instances) take the contract's type, range, categories and
    nullability column by column; a signature without inputs takes the contract's columns as
    its fields; a 2-d numeric input whose width is the number of columns gets per-column
    bounds and the column names.
    """
    if contract is None:
        return signature
    fields = contract_fields(contract)
    by_name = {f["name"]: f for f in fields}
    sig: dict[str, Any] = dict(signature or {"inputs": [], "outputs": [], "fields": []})
    inputs = list(sig.get("inputs") or [])
    if sig.get("fields"):
        sig["fields"] = [{**f, **by_name.get(f["name"], {})} for f in sig["fields"]]
    elif not inputs:
        sig["fields"] = fields
    elif len(inputs) == 1 and (inputs[0].get("shape") or [])[1:] == [len(fields)]:
        tensor = dict(inputs[0])
        tensor["columns"] = [f["name"] for f in fields]
        tensor["min"] = [f.get("min") for f in fields]
        tensor["max"] = [f.get("max") for f in fields]
        sig["inputs"] = [tensor]
    return sig


def _datatype(value: Any) -> str:
    text = str(value or "FP32")
    upper = text.upper()
    if upper in V2_TO_NUMPY or upper == "BYTES":
        return upper
    if text.lower() in NUMPY_TO_V2:
        return NUMPY_TO_V2[text.lower()]
    if text.lower() in _ALIASES:
        return _ALIASES[text.lower()]
    if text.lower() in ("object", "str", "string"):
        return "BYTES"
    raise ConfigError(
        f"signature datatype {text!r} is not known",
        hint=f"use one of {sorted([*V2_TO_NUMPY, 'BYTES'])} or a numpy dtype name",
        value=text,
    )


def _tensor(entry: Any, default_name: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ConfigError(f"signature tensor entry {entry!r} is not a table", value=str(entry))
    shape = entry.get("shape")
    return {
        "name": str(entry.get("name") or default_name),
        "datatype": _datatype(entry.get("datatype") or entry.get("dtype") or entry.get("type")),
        "shape": [int(d) if d is not None else -1 for d in shape] if shape is not None else None,
    }


def _field(entry: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": str(entry["name"])}
    kind = str(entry.get("type") or entry.get("dtype") or "number").lower()
    if kind.startswith(("float", "double", "number", "fp")):
        kind = "number"
    elif kind.startswith(("int", "uint")):
        kind = "integer"
    elif kind.startswith("bool"):
        kind = "boolean"
    elif kind in ("str", "string", "object", "category", "categorical"):
        kind = "string"
    out["type"] = kind
    for key in ("min", "max"):
        if entry.get(key) is not None:
            out[key] = float(entry[key])
    cats = entry.get("categories") or entry.get("allowed")
    if cats:
        out["categories"] = list(cats)
    out["nullable"] = bool(entry.get("nullable", False))
    return out


def normalize_signature(raw: Any) -> dict[str, Any] | None:
    """Bring a signature to one form: ``{"inputs": [...], "outputs": [...], "fields": [...]}``.

    Accepted: Open Inference Protocol style ``{"inputs": [{"name", "datatype", "shape"}],
    "outputs": [...]}`` (``dtype`` works for ``datatype``, ``-1``/``None`` for a free dimension),
    optionally with per-feature ``"min"``/``"max"`` bounds on the input, and data-contract style
    ``{"fields"|"columns": [{"name", "type", "min", "max", "categories", "nullable"}]}`` for
    instances that are JSON objects. ``None`` means no validation beyond the protocol.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"model signature must be a table, got {type(raw).__name__}",
            hint="see modelyard.serving docs for the signature format",
        )
    sig: dict[str, Any] = {"inputs": [], "outputs": [], "fields": []}
    raw_inputs = list(raw.get("inputs") or [])
    if len(raw_inputs) > 1 and all(
        isinstance(e, dict) and len(e.get("shape") or [-1]) == 1 for e in raw_inputs
    ):
        # one 1-d input per column (a data frame's signature): instances are JSON objects
        raw = {
            **raw,
            "fields": [{**e, "type": e.get("dtype") or e.get("datatype")} for e in raw_inputs],
        }
        raw_inputs = []
    for i, entry in enumerate(raw_inputs):
        spec = _tensor(entry, f"input-{i}")
        for key in ("min", "max"):
            if isinstance(entry, dict) and entry.get(key) is not None:
                spec[key] = float(entry[key])
        sig["inputs"].append(spec)
    for i, entry in enumerate(raw.get("outputs") or []):
        sig["outputs"].append(_tensor(entry, f"output-{i}"))
    columns = raw.get("fields") or raw.get("columns") or []
    if isinstance(columns, dict):
        columns = [
            {"name": k, **(v if isinstance(v, dict) else {"type": v})} for k, v in columns.items()
        ]
    for entry in columns:
        if isinstance(entry, dict) and "name" in entry:
            sig["fields"].append(_field(entry))
    return sig
