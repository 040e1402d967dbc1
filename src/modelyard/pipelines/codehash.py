"""Fingerprints of a step's code: its source plus the project code it reaches.

A step's cache must be invalidated when a helper it calls changes (ZenML's zenml#1011 misses
this). The fingerprint hashes the step's source and, transitively, the source of every function
or class it references by global name (including ``module.attr`` and ``package.module.attr``
through project modules), as long as that code lives under the project root and outside
site-packages. What a step reaches through a decorator (``functools.wraps``, ``lru_cache``), a
``functools.partial``, a bound method, a default argument or a module-level instance of a project
class counts too. Constants built of literals (numbers, strings, and tuples, lists, sets and dicts
of them) are hashed by value, so changing a module-level threshold or feature list invalidates the
cache too; sets are hashed sorted, so the fingerprint is the same in every process whatever
``PYTHONHASHSEED`` is. Library code is not hashed: pin libraries instead.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
import types
from pathlib import Path
from typing import Any

__all__ = ["CodeHasher", "source_text"]

_CONST_TYPES = (int, float, str, bytes, bool, type(None), complex)
_EXCLUDED_PARTS = {"site-packages", "dist-packages", ".venv", "venv", ".tox"}


_MODULE_DEPTH = 4  # package.module.attr chains followed through project modules


def _const_repr(value: Any, depth: int = 0) -> str | None:
    """A text for a constant built of literals, the same in every process; None if not one.

    Sets are written sorted: their iteration order (and ``repr``) depends on string hashing,
    which ``PYTHONHASHSEED`` randomises per process.
    """
    if isinstance(value, _CONST_TYPES):
        return repr(value)
    if depth >= 4:
        return None
    if isinstance(value, tuple | list | set | frozenset):
        parts = [_const_repr(v, depth + 1) for v in value]
        if any(p is None for p in parts):
            return None
        texts = [p for p in parts if p is not None]
        if isinstance(value, set | frozenset):
            texts.sort()
        return f"{type(value).__name__}[{', '.join(texts)}]"
    if isinstance(value, dict):
        pairs = [(_const_repr(k, depth + 1), _const_repr(v, depth + 1)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return f"{type(value).__name__}{{{', '.join(f'{k}: {v}' for k, v in pairs)}}}"
    return None


class CodeHasher:
    """Hash project code reachable from steps; memoised per instance (one run).

    Args:
        project_root: code under this folder (and not in a virtual environment or
            site-packages) is the project's and is hashed transitively.
    """

    def __init__(self, project_root: Path) -> None:
        self.project_root = project_root.resolve()
        self._memo: dict[int, str] = {}
        self._local_files: dict[str, bool] = {}

    def add_local_object(self, obj: Any) -> None:
        """Count the file defining ``obj`` (a step) as project code, wherever it lives.

        Helpers next to a step are hashed even when the pipeline module sits outside the
        project root (a notebook folder, a test suite).
        """
        obj = _unwrap(obj)
        if isinstance(obj, type):
            module = sys.modules.get(obj.__module__)
            filename = getattr(module, "__file__", None)
        else:
            code = getattr(obj, "__code__", None)
            filename = code.co_filename if code is not None else None
        if filename and not filename.startswith("<"):
            self._local_files[filename] = True

    # ------------------------------------------------------------ what counts as project code
    def _is_local_file(self, filename: str | None) -> bool:
        if not filename or filename.startswith("<"):
            return False
        cached = self._local_files.get(filename)
        if cached is not None:
            return cached
        try:
            path = Path(filename).resolve()
            rel = path.relative_to(self.project_root)
        except (ValueError, OSError):
            ok = False
        else:
            ok = not (set(rel.parts) & _EXCLUDED_PARTS) and not _is_modelyard(path)
        self._local_files[filename] = ok
        return ok

    def _is_local(self, obj: Any) -> bool:
        if isinstance(obj, types.FunctionType):
            return self._is_local_file(obj.__code__.co_filename)
        if isinstance(obj, type):
            module = sys.modules.get(obj.__module__)
            return self._is_local_file(getattr(module, "__file__", None))
        if isinstance(obj, types.ModuleType):
            file = getattr(obj, "__file__", None)
            if file is None:  # a namespace package: no __init__.py, only folders
                file = next(iter(getattr(obj, "__path__", ())), None)
            return self._is_local_file(file)
        return False

    # ------------------------------------------------------------ hashing
    def fingerprint(self, obj: Any) -> str:
        """sha256 hex of ``obj``'s code (a function, a class, or a step) and what it reaches."""
        obj = _unwrap(obj)
        key = id(obj)
        if key in self._memo:
            return self._memo[key]
        h = hashlib.sha256()
        seen: set[int] = set()
        self._visit(obj, h, seen, root=True)
        digest = h.hexdigest()
        self._memo[key] = digest
        return digest

    def _visit(self, obj: Any, h: Any, seen: set[int], *, root: bool = False) -> None:
        obj = _unwrap(obj)
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, types.FunctionType):
            # the qualified name without the module: moving code does not change what it does
            h.update(f"fn {obj.__qualname__}\n".encode())
            h.update(source_text(obj).encode())
            self._visit_code(obj.__code__, obj.__globals__, h, seen)
            for cell in obj.__closure__ or ():
                try:
                    value = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                self._visit_value("<closure>", value, h, seen)
            for default in (obj.__defaults__ or ()) + tuple((obj.__kwdefaults__ or {}).values()):
                self._visit_value("<default>", default, h, seen)
        elif isinstance(obj, type):
            h.update(f"class {obj.__qualname__}\n".encode())
            h.update(source_text(obj).encode())
            module = sys.modules.get(obj.__module__)
            globs = vars(module) if module is not None else {}
            for value in vars(obj).values():
                fn = value.__func__ if isinstance(value, classmethod | staticmethod) else value
                if isinstance(fn, property):
                    fn = fn.fget
                if callable(fn) and hasattr(fn, "__wrapped__"):  # a decorated method
                    fn = _unwrap_decorated(fn)
                if isinstance(fn, types.FunctionType):
                    self._visit_code(fn.__code__, globs, h, seen)
            for base in obj.__mro__[1:]:
                if self._is_local(base):
                    self._visit(base, h, seen)

    def _visit_code(
        self, code: types.CodeType, globs: dict[str, Any], h: Any, seen: set[int]
    ) -> None:
        names = _all_names(code)
        for name in names:
            if name not in globs:
                continue
            value = globs[name]
            if isinstance(value, types.ModuleType):
                self._visit_module(name, value, names, h, seen)
                continue
            self._visit_value(name, value, h, seen)

    def _visit_module(
        self,
        prefix: str,
        module: types.ModuleType,
        names: list[str],
        h: Any,
        seen: set[int],
        *,
        depth: int = 0,
    ) -> None:
        if depth >= _MODULE_DEPTH or not self._is_local(module):
            return
        # module.attr: attribute names of the code are in co_names too; so are the submodule
        # names of package.module.attr
        mod_dict = vars(module)
        for attr in names:
            if attr not in mod_dict:
                continue
            value = mod_dict[attr]
            if isinstance(value, types.ModuleType):
                self._visit_module(f"{prefix}.{attr}", value, names, h, seen, depth=depth + 1)
            else:
                self._visit_value(f"{prefix}.{attr}", value, h, seen)

    def _visit_value(self, name: str, value: Any, h: Any, seen: set[int]) -> None:
        if isinstance(value, functools.partial):
            h.update(f"partial {name}\n".encode())
            self._visit_value(f"{name}.func", value.func, h, seen)
            for i, arg in enumerate(value.args):
                self._visit_value(f"{name}.args[{i}]", arg, h, seen)
            for key, arg in value.keywords.items():
                self._visit_value(f"{name}.{key}", arg, h, seen)
            return
        if isinstance(value, types.MethodType):
            self._visit_value(name, value.__func__, h, seen)
            self._visit_value(f"{name}.__self__", value.__self__, h, seen)
            return
        target = _unwrap(value)
        if isinstance(target, types.FunctionType | type):
            if self._is_local(target):
                self._visit(target, h, seen)
            if isinstance(target, types.FunctionType):
                # a decorator's wrapper (perhaps a library's): the wrapped function counts
                inner = _unwrap_decorated(target)
                if inner is not target:
                    self._visit_value(name, inner, h, seen)
            return
        if callable(value) and hasattr(value, "__wrapped__"):  # functools.lru_cache and kin
            inner = _unwrap_decorated(value)
            if inner is not value:
                self._visit_value(name, inner, h, seen)
                return
        text = _const_repr(value)
        if text is not None:
            h.update(f"const {name}={text}\n".encode())
            return
        cls = type(value)
        if self._is_local(cls) and id(value) not in seen:
            # a module-level instance of a project class: its class's code and its plain state
            seen.add(id(value))
            h.update(f"instance {name}\n".encode())
            self._visit(cls, h, seen)
            for attr, item in sorted(getattr(value, "__dict__", {}).items()):
                text = _const_repr(item)
                if text is not None:
                    h.update(f"attr {attr}={text}\n".encode())


def _unwrap(obj: Any) -> Any:
    """The function or class behind a step, a pipeline or a decorated function."""
    from modelyard.pipelines.step import FunctionStep, Step

    if isinstance(obj, FunctionStep):
        return obj.fn
    if isinstance(obj, Step):
        return type(obj)
    inner = getattr(obj, "__wrapped__", None)
    if inner is not None and isinstance(obj, types.FunctionType):
        return obj  # hash the wrapper's source; its globals lead to the wrapped function
    return obj


def _unwrap_decorated(obj: Any) -> Any:
    """The innermost function behind ``__wrapped__`` links (``obj`` itself on a loop)."""
    try:
        return inspect.unwrap(obj)
    except ValueError:  # a wrapper loop, or an object answering any attribute (a mock)
        return obj


def _all_names(code: types.CodeType) -> list[str]:
    out: list[str] = []
    stack = [code]
    while stack:
        c = stack.pop()
        out.extend(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return list(dict.fromkeys(out))


def source_text(obj: Any) -> str:
    """The source of a function or class (its bytecode and constants when it has no file)."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        if code is not None:  # no source file (exec'd code): hash the bytecode instead
            consts = [k for k in code.co_consts if not isinstance(k, types.CodeType)]
            return str(code.co_code.hex()) + repr(consts)
        return repr(obj)


_MODELYARD_ROOT = Path(__file__).resolve().parents[1]


def _is_modelyard(path: Path) -> bool:
    return path.is_relative_to(_MODELYARD_ROOT)
