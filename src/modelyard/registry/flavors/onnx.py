"""ONNX models, run with onnxruntime on CPU; scikit-learn models can be converted on save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.errors import InvalidInputError
from modelyard.registry.flavors import Flavor, Trust, as_array, module_loaded, package_file

MODEL_FILE = "model.onnx"
# onnxruntime type strings -> numpy dtype names
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


class OnnxFlavor(Flavor):
    """``onnx.ModelProto`` objects (or serialized ONNX bytes).

    A scikit-learn model saved with ``flavor="onnx"`` is converted with skl2onnx, using the
    ``input_example`` for the input type. Options: ``output`` (name or index, default 0): the
    output that ``predict`` returns; ``.raw`` is the ``InferenceSession`` for the others.
    """

    name = "onnx"
    libraries = ("onnxruntime", "numpy")

    def accepts(self, model: Any) -> bool:
        onnx = module_loaded("onnx")
        return onnx is not None and isinstance(model, onnx.ModelProto)

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        if isinstance(model, bytes | bytearray):
            data = bytes(model)
        elif hasattr(model, "SerializeToString"):
            data = model.SerializeToString()
        elif SklearnLike.check(model):
            data = _convert_sklearn(model, options.get("input_example")).SerializeToString()
        else:
            raise InvalidInputError(
                f"cannot save a {type(model).__name__} as ONNX",
                hint="pass an onnx.ModelProto, its serialized bytes, or a scikit-learn model "
                "with input_example=",
            )
        (folder / MODEL_FILE).write_bytes(data)
        out: dict[str, Any] = {"model_file": MODEL_FILE}
        if "output" in options:
            out["output"] = options["output"]
        return out

    def load(
        self, folder: Path, options: dict[str, Any], files: dict[str, str], trust: Trust
    ) -> Any:
        from modelyard.errors import require_extra

        ort = require_extra("onnxruntime", "onnx")
        path = package_file(folder, str(options.get("model_file", MODEL_FILE)), files)
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def describe(self, raw: Any) -> dict[str, Any] | None:
        def spec(arg: Any) -> dict[str, Any]:
            shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or [])]
            return {"name": arg.name, "dtype": ORT_DTYPES.get(arg.type, arg.type), "shape": shape}

        return {
            "inputs": [spec(a) for a in raw.get_inputs()],
            "outputs": [spec(a) for a in raw.get_outputs()],
        }

    def predict(self, raw: Any, batch: Any, options: dict[str, Any]) -> Any:
        inputs = raw.get_inputs()
        if len(inputs) == 1 and not isinstance(batch, dict):
            feed = {inputs[0].name: as_array(batch, ORT_DTYPES.get(inputs[0].type))}
        else:
            if hasattr(batch, "columns"):
                batch = {c: batch[c] for c in batch.columns}
            if not isinstance(batch, dict):
                raise InvalidInputError(
                    f"this ONNX model has {len(inputs)} inputs "
                    f"({', '.join(i.name for i in inputs)}); pass a dict of arrays by input name",
                )
            feed = {}
            for spec in inputs:
                if spec.name not in batch:
                    raise InvalidInputError(
                        f"input {spec.name!r} is missing from the batch",
                        hint=f"pass every input: {', '.join(i.name for i in inputs)}",
                        field=spec.name,
                    )
                arr = as_array(batch[spec.name], ORT_DTYPES.get(spec.type))
                if arr.ndim == 1 and len(spec.shape) == 2:
                    arr = arr.reshape(-1, 1)
                feed[spec.name] = arr
        output = options.get("output", 0)
        names = [o.name for o in raw.get_outputs()]
        name = names[output] if isinstance(output, int) else str(output)
        return raw.run([name], feed)[0]


class SklearnLike:
    @staticmethod
    def check(model: Any) -> bool:
        base = module_loaded("sklearn.base")
        return base is not None and isinstance(model, base.BaseEstimator)


def _convert_sklearn(model: Any, example: Any) -> Any:
    from modelyard.errors import require_extra

    skl2onnx = require_extra("skl2onnx", "onnx")
    if example is None:
        raise InvalidInputError(
            "converting a scikit-learn model to ONNX needs an input example",
            hint="pass input_example= (a few rows of the training features) to save()",
        )
    arr = as_array(example)
    if arr.dtype.kind == "f":
        arr = arr.astype("float32")
    from sklearn.base import is_classifier

    # plain probability tensors rather than a list of dicts per row
    options = {id(model): {"zipmap": False}} if is_classifier(model) else None
    return skl2onnx.to_onnx(model, arr[:1], options=options)
