"""Find the pipeline an entrypoint names: ``package.module:function`` or ``file.py:function``."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

from modelyard.errors import ConfigError, InvalidInputError, NotFoundError
from modelyard.pipelines.graph import Pipeline
from modelyard.pipelines.step import importing_module, importing_module_var

__all__ = ["importing_module", "load_pipeline"]


@contextlib.contextmanager
def _importing(module_name: str) -> Iterator[None]:
    token = importing_module_var().set(module_name)
    try:
        yield
    finally:
        importing_module_var().reset(token)


def load_pipeline(entrypoint: str | None, project_root: Path) -> Pipeline:
    """Import the module of ``entrypoint`` (with the project root on ``sys.path``) and return
    its pipeline.

    Raises:
        ConfigError: no entrypoint given and none configured.
        InvalidInputError: the entrypoint is malformed or names something that is not a pipeline.
        NotFoundError: the module or the attribute does not exist.
    """
    if not entrypoint:
        raise ConfigError(
            "no pipeline to run",
            hint="pass one (modelyard run flows.train:train) or set entrypoint in "
            "[tool.modelyard.pipeline]",
        )
    module_name, sep, attr = entrypoint.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidInputError(
            f"entrypoint {entrypoint!r} is not 'module:function'",
            hint="for example: modelyard run flows.train:train",
        )
    root = str(project_root)
    # like `python -m`: the project root, then the current folder, are importable
    for folder in (str(Path.cwd()), root):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_absolute():
            path = project_root / path
        if not path.is_file():
            raise NotFoundError(f"pipeline file {str(path)!r} does not exist")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
            raise InvalidInputError(f"cannot import {str(path)!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        with _importing(module_name):
            spec.loader.exec_module(module)
    else:
        try:
            with _importing(module_name):
                module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise NotFoundError(
                    f"pipeline module {module_name!r} not found (entrypoint {entrypoint!r})",
                    hint=f"run from the project root ({root}) or fix the entrypoint",
                ) from exc
            raise
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise NotFoundError(
            f"module {module_name!r} has no attribute {attr!r} (entrypoint {entrypoint!r})",
            hint="define it with @modelyard.pipeline in "
            + str(getattr(module, "__file__", module_name)),
        ) from None
    if not isinstance(obj, Pipeline):
        raise InvalidInputError(
            f"{entrypoint!r} is a {type(obj).__name__}, not a pipeline",
            hint="decorate the function with @modelyard.pipeline",
        )
    return obj
