"""PyTorch models: ``torch.export`` programs, TorchScript, or weights plus the module class.

* an ``ExportedProgram`` (``torch.export.export(...)``) is saved with ``torch.export.save``
  (``model.pt2``) and needs no Python code to load;
* a ``ScriptModule`` is saved as TorchScript (``model.pt``); TorchScript is deprecated by torch
  2.10+, whose deprecation warnings are silenced here (narrowly) so that loading stays quiet;
* any other ``nn.Module`` is saved as its ``state_dict`` (``model.safetensors`` when
  safetensors is installed, else ``weights.pt``) plus ``module:Class`` and the JSON-able
  constructor arguments given in ``flavor_options={"init_kwargs": {...}}``. Loading imports the
  class, builds it with those arguments and loads the weights with ``weights_only=True``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from modelyard.errors import InvalidInputError
from modelyard.registry.flavors import (
    Flavor,
    Trust,
    as_array,
    class_path,
    import_object,
    module_loaded,
    package_file,
)

_JIT_DEPRECATED = r"`torch\.jit\.\w+` is deprecated"


class TorchFlavor(Flavor):
    """``torch.nn.Module``, ``torch.jit.ScriptModule`` and ``torch.export.ExportedProgram``.

    Options: ``init_kwargs`` (for state_dict packages), ``dtype`` of the input tensor
    (default ``float32``).
    """

    name = "torch"
    libraries = ("torch", "numpy")

    def accepts(self, model: Any) -> bool:
        torch = module_loaded("torch")
        if torch is None:
            return False
        if isinstance(model, torch.nn.Module):
            return True
        export = module_loaded("torch.export")
        return export is not None and isinstance(model, export.ExportedProgram)

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        import torch

        dtype = str(options.get("dtype", "float32"))
        if isinstance(model, torch.export.ExportedProgram):
            torch.export.save(model, folder / "model.pt2")
            return {"format": "export", "model_file": "model.pt2", "dtype": dtype}
        if isinstance(model, torch.jit.ScriptModule):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", _JIT_DEPRECATED, DeprecationWarning)
                torch.jit.save(model, str(folder / "model.pt"))
            return {"format": "torchscript", "model_file": "model.pt", "dtype": dtype}
        kwargs = dict(options.get("init_kwargs") or {})
        try:
            json.dumps(kwargs)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"init_kwargs of {type(model).__name__} are not JSON-able: {exc}",
                hint="pass plain numbers, strings, lists and dicts, or save a torch.export "
                "program (torch.export.export(model, example)) instead",
            ) from exc
        target = class_path(model)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        weights = _save_weights(state, folder)
        return {
            "format": "state_dict",
            "class": target,
            "init_kwargs": kwargs,
            "weights_file": weights,
            "dtype": dtype,
        }

    def load(
        self, folder: Path, options: dict[str, Any], files: dict[str, str], trust: Trust
    ) -> Any:
        from modelyard.errors import require_extra

        torch = require_extra("torch", "torch")
        fmt = options.get("format")
        if fmt == "export":
            path = package_file(folder, str(options["model_file"]), files)
            return torch.export.load(str(path))
        if fmt == "torchscript":
            path = package_file(folder, str(options["model_file"]), files)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", _JIT_DEPRECATED, DeprecationWarning)
                return torch.jit.load(str(path), map_location="cpu")
        if fmt == "state_dict":
            cls = import_object(str(options["class"]))
            module = cls(**dict(options.get("init_kwargs") or {}))
            path = package_file(folder, str(options["weights_file"]), files)
            module.load_state_dict(_load_weights(path))
            module.eval()
            return module
        raise InvalidInputError(
            f"unknown torch package format {fmt!r} in {folder}",
            hint="save the model again with this version of modelyard",
        )

    def predict(self, raw: Any, batch: Any, options: dict[str, Any]) -> Any:
        import torch

        if isinstance(batch, torch.Tensor):
            tensor = batch
        else:
            tensor = torch.from_numpy(as_array(batch, options.get("dtype", "float32")))
        call = raw.module() if isinstance(raw, torch.export.ExportedProgram) else raw
        with torch.inference_mode():
            out = call(tensor)
        if isinstance(out, tuple | list):
            out = out[0]
        return out.detach().cpu().numpy()


def _save_weights(state: dict[str, Any], folder: Path) -> str:
    try:
        from safetensors.torch import save_file
    except ImportError:
        import torch

        torch.save(state, folder / "weights.pt")
        return "weights.pt"
    save_file(state, str(folder / "model.safetensors"))
    return "model.safetensors"


def _load_weights(path: Path) -> Any:
    if path.suffix == ".safetensors":
        from modelyard.errors import require_extra

        st = require_extra("safetensors.torch", "torch")
        return st.load_file(str(path), device="cpu")
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)
