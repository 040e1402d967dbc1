"""Model packages: a folder with a ``modelyard.json`` manifest and the model's files.

::

    package/
      modelyard.json     # name, flavor, format_version, created_at, signature, libraries,
                         # flavor_options, files {relative path: sha256}, extra
      model.skops        # the model, in its flavor's safe format
      extra/...          # extra_files given to save()

:func:`save` writes a package into a folder, :func:`register` into a :class:`Registry`;
:func:`load` verifies every file against the manifest's sha256 before the flavor reads it,
warns (a :class:`LibraryVersionWarning` and a log record) when the installed library versions
differ from the recorded ones, and returns a :class:`LoadedModel` with ``predict(batch)``.

Pickle is used only when the caller passes ``trust_pickle=True``, both to save and to load.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    ModelyardError,
    NotFoundError,
    UnsafeArtifactError,
)
from modelyard.logs import get_logger
from modelyard.registry.cache import PackageCache, sha256_file
from modelyard.registry.flavors import FLAVOR_NAMES, Flavor, Trust, detect_flavor, get_flavor
from modelyard.store.artifacts import validate_relative_name

if TYPE_CHECKING:
    from modelyard.data.contract import Contract
    from modelyard.data.profile import Profile
    from modelyard.registry.registry import ModelVersion, Registry

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "LibraryVersionWarning",
    "LoadedModel",
    "ModelyardWarning",
    "infer_signature",
    "is_registry_ref",
    "library_versions",
    "load",
    "read_manifest",
    "register",
    "save",
    "verify_package",
]

MANIFEST_NAME = "modelyard.json"
FORMAT_VERSION = 1
_log = get_logger("registry.packages")


class ModelyardWarning(UserWarning):
    """Base of the warnings modelyard emits."""


class LibraryVersionWarning(ModelyardWarning):
    """A package was saved with other library versions than the ones installed now."""


# ---------------------------------------------------------------------- signatures
def _describe(value: Any, default_name: str) -> list[dict[str, Any]]:
    """[{name, dtype, shape}] of a batch: frames by column, dicts by key, arrays as one."""
    if hasattr(value, "to_pandas") and not hasattr(value, "iloc"):  # polars
        value = value.to_pandas()
    if hasattr(value, "dtypes") and hasattr(value, "columns"):  # pandas DataFrame
        return [
            {"name": str(c), "dtype": _column_dtype(value[c]), "shape": [-1]} for c in value.columns
        ]
    if isinstance(value, Mapping):
        return [_tensor_spec(str(k), v) for k, v in value.items()]
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        import pandas as pd

        return _describe(pd.DataFrame.from_records(value), default_name)
    return [_tensor_spec(default_name, value)]


def _tensor_spec(name: str, value: Any) -> dict[str, Any]:
    from modelyard.registry.flavors import as_array

    arr = as_array(value)
    shape = [-1, *(int(d) for d in arr.shape[1:])] if arr.ndim else []
    return {"name": name, "dtype": _dtype_name(arr.dtype), "shape": shape}


def _column_dtype(column: Any) -> str:
    dtype = column.dtype
    if str(dtype) == "category":  # describe the values, not the pandas container
        return _dtype_name(dtype.categories.dtype)
    return _dtype_name(dtype)


def _dtype_name(dtype: Any) -> str:
    name = str(getattr(dtype, "name", dtype))
    return "str" if name.startswith(("<U", "str")) else name


def infer_signature(input_example: Any, output_example: Any = None) -> dict[str, Any]:
    """The signature ``{"inputs": [{name, dtype, shape}], "outputs": [...]}`` of examples.

    The first dimension (rows) is recorded as ``-1``. DataFrames are described column by
    column, dicts key by key, arrays and lists of rows as a single tensor.
    """
    signature: dict[str, Any] = {"inputs": _describe(input_example, "input")}
    signature["outputs"] = [] if output_example is None else _describe(output_example, "output")
    return signature


def _check_signature(signature: Any) -> dict[str, Any]:
    """Accept a tensor signature (``inputs``/``outputs``) or a contract one (``fields``)."""
    ok = isinstance(signature, Mapping) and (
        isinstance(signature.get("inputs"), list)
        or isinstance(signature.get("fields"), list | dict)
        or isinstance(signature.get("columns"), list | dict)
    )
    if not ok:
        raise InvalidInputError(
            f"signature {signature!r} is not of the form "
            "{'inputs': [{'name', 'dtype', 'shape'}], 'outputs': [...]} "
            "or {'fields': [{'name', 'type', ...}]}",
            hint="pass input_example= to infer it, or build it with "
            "modelyard.models.infer_signature(x, y)",
            field="signature",
        )
    out = dict(signature)
    if "inputs" in out:
        out.setdefault("outputs", [])
    try:
        json.dumps(out)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"signature is not JSON-able: {exc}",
            hint="use plain strings, numbers, lists and dicts",
            field="signature",
        ) from exc
    return out


# ---------------------------------------------------------------------- versions
def _installed_version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def library_versions(distributions: Iterable[str]) -> dict[str, str]:
    """``{"python": ..., "modelyard": ..., <distribution>: <version>}`` of what is installed."""
    from modelyard import __version__

    out = {"python": platform.python_version(), "modelyard": __version__}
    for dist in distributions:
        found = _installed_version(dist)
        if found is not None:
            out[dist] = found
    return out


def _check_versions(manifest: Mapping[str, Any], where: Path) -> None:
    recorded = manifest.get("libraries") or {}
    for dist, saved in sorted(recorded.items()):
        if dist == "modelyard":
            continue
        if dist == "python":
            now = platform.python_version()
            differs = now.split(".")[:2] != str(saved).split(".")[:2]
        else:
            found = _installed_version(dist)
            if found is None:
                continue  # the flavor's own import raises MissingExtraError when it matters
            now, differs = found, found != str(saved)
        if differs:
            message = (
                f"model package {manifest.get('name')!r} at {where} was saved with {dist} "
                f"{saved}, but {dist} {now} is installed; predictions may differ"
            )
            _log.warning(
                "library version differs from the package's",
                extra={
                    "model": manifest.get("name"),
                    "library": dist,
                    "saved_version": str(saved),
                    "installed_version": now,
                    "path": str(where),
                },
            )
            warnings.warn(
                f"{message}; install {dist}=={saved} to match",
                LibraryVersionWarning,
                stacklevel=_caller_depth(),
            )


def _caller_depth() -> int:
    """The ``stacklevel`` of the first frame outside modelyard: warnings point at user code."""
    import sys

    package = str(Path(__file__).resolve().parents[1])
    frame, depth = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth


# ---------------------------------------------------------------------- hashing and manifest
def _hash_folder(folder: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    for dirpath, _dirs, names in os.walk(folder):
        for file_name in names:
            path = Path(dirpath) / file_name
            rel = path.relative_to(folder).as_posix()
            if rel == MANIFEST_NAME:
                continue
            files[validate_relative_name(rel, what="package file path")] = sha256_file(path)
    return dict(sorted(files.items()))


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the package in ``folder`` (not verified; see :func:`verify_package`).

    Raises:
        NotFoundError: ``folder`` holds no ``modelyard.json``.
        InvalidInputError: the manifest is not valid JSON or is from a newer modelyard.
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise NotFoundError(
            f"{folder} is not a model package: it has no {MANIFEST_NAME}",
            hint="pass a folder written by modelyard.models.save, or a registry reference "
            "such as 'models:/NAME@production'",
            path=str(folder),
        ) from exc
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise InvalidInputError(
            f"{path} is not valid JSON: {exc}",
            hint="the manifest was damaged; save the model again",
            path=str(path),
        ) from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise InvalidInputError(
            f"{path} is not a modelyard manifest (no 'files' table)",
            hint="save the model again with modelyard.models.save",
            path=str(path),
        )
    fmt = manifest.get("format_version")
    if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
        raise InvalidInputError(
            f"{path} has package format {fmt!r}; this modelyard reads format {FORMAT_VERSION}",
            hint="upgrade modelyard: pip install -U modelyard",
            path=str(path),
        )
    return manifest


def verify_package(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Check every file of the package in ``folder`` against the manifest; return the manifest.

    Raises:
        InvalidNameError: a manifest path escapes the package (``..``, absolute, ...).
        IntegrityError: a file is missing or its sha256 differs from the manifest's.
    """
    root = Path(folder)
    manifest = read_manifest(root)
    for rel, expected in manifest["files"].items():
        validate_relative_name(rel, what="package file path")
        path = root / rel
        if not path.is_file():
            raise IntegrityError(
                f"model package {root}: file {rel!r} listed in the manifest is missing",
                hint="the package is incomplete; download or save it again",
                path=rel,
            )
        actual = sha256_file(path)
        if actual != expected:
            raise IntegrityError(
                f"model package {root}: file {rel!r} has sha256 {actual}, "
                f"but the manifest records {expected}",
                hint="the file was changed after the package was saved; download it again "
                "from the registry or save the model again",
                path=rel,
                expected=expected,
                actual=actual,
            )
    return manifest


# ---------------------------------------------------------------------- the loaded model
class LoadedModel:
    """A model loaded from a package.

    Attributes:
        manifest: the package manifest (name, flavor, signature, libraries, files, extra).
        flavor: the flavor name.
        raw: the underlying model (estimator, InferenceSession, nn.Module, ...).
        path: the package folder.
        version: the registry version it came from, if any.
    """

    def __init__(
        self,
        manifest: dict[str, Any],
        raw: Any,
        flavor: Flavor,
        path: Path,
        version: ModelVersion | None = None,
    ) -> None:
        self.manifest = manifest
        self.raw = raw
        self._flavor = flavor
        self.path = path
        self.version = version

    def __repr__(self) -> str:
        return f"LoadedModel(name={self.name!r}, flavor={self.flavor!r}, path={str(self.path)!r})"

    @property
    def flavor(self) -> str:
        """The flavor name (``sklearn``, ``onnx``, ``torch``, ...)."""
        return self._flavor.name

    @property
    def name(self) -> str:
        """The model name recorded in the manifest."""
        return str(self.manifest.get("name", ""))

    @property
    def model(self) -> Any:
        """Same as :attr:`raw`."""
        return self.raw

    @property
    def signature(self) -> dict[str, Any] | None:
        """The input/output signature, if one was recorded."""
        sig = self.manifest.get("signature")
        return dict(sig) if isinstance(sig, dict) else None

    def predict(self, batch: Any) -> Any:
        """Run the model on ``batch``: rows stacked on axis 0, or a list of instances.

        Returns:
            One output per row (a numpy array for most flavors).
        """
        options = dict(self.manifest.get("flavor_options") or {})
        out = self._flavor.predict(self.raw, batch, options)
        rows, got = _length(batch), _length(out)
        if rows is not None and got is not None and rows != got:
            raise ModelyardError(
                f"model {self.name!r} returned {got} outputs for {rows} input rows",
                hint="predict must return one output per input row",
                model=self.name,
            )
        return out


def _length(value: Any) -> int | None:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else None
    if isinstance(value, list | tuple):
        return len(value)
    return None


# ---------------------------------------------------------------------- save
def save(
    model: Any,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    flavor: str | None = None,
    signature: Mapping[str, Any] | None = None,
    input_example: Any = None,
    extra_files: Mapping[str, str | os.PathLike[str]]
    | Sequence[str | os.PathLike[str]]
    | None = None,
    trust_pickle: bool = False,
    extra: Mapping[str, Any] | None = None,
    flavor_options: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` as a package into the folder ``path``; see :func:`register` for a registry.

    Args:
        model: the fitted model.
        path: a folder that does not exist yet (or is empty).
        name: the model name recorded in the manifest (default the folder name).
        flavor: one of ``sklearn, onnx, torch, xgboost, lightgbm, python, pickle``; default
            detected from the model's type.
        signature: ``{"inputs": [...], "outputs": [...]}``; default inferred from
            ``input_example`` (and the model's output on it).
        input_example: a few input rows, used for the signature (and ONNX conversion).
        extra_files: files to ship with the model, as ``{name in package: path}`` or paths;
            stored under ``extra/``.
        trust_pickle: allow the pickle flavor (anything loading it can run arbitrary code).
        extra: JSON-able data stored in the manifest.
        flavor_options: flavor settings, e.g. ``{"method": "predict_proba"}`` (sklearn),
            ``{"init_kwargs": {...}}`` (torch modules), ``{"output": "probabilities"}`` (onnx).

    Returns:
        The package folder.

    Raises:
        UnsafeArtifactError: the model needs pickle and ``trust_pickle`` is False.
        ConflictError: the target folder exists and is not empty.
        InvalidInputError: unknown flavor, bad signature or extra file name, or ``path`` is a
            registry (use :func:`register`).
    """
    if isinstance(model, LoadedModel):  # re-saving a loaded package: save what it wraps
        model = model.raw
    if not isinstance(path, str | os.PathLike) or os.fspath(path).startswith("registry:"):
        raise InvalidInputError(
            f"modelyard.models.save writes a package folder; {path!r} is not a folder path",
            hint="to register the model, call modelyard.models.register(model, registry, "
            "name='my-model'), which returns the ModelVersion",
        )
    dest = Path(os.fspath(path))
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConflictError(
            f"cannot save the model package to {dest}: it exists and is not an empty folder",
            hint="pass a new folder, or remove the old package first",
            path=str(dest),
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        _write_package(
            model,
            staging,
            name=name or dest.name,
            flavor_name=flavor,
            signature=signature,
            input_example=input_example,
            extra_files=extra_files,
            trust_pickle=trust_pickle,
            extra=extra,
            flavor_options=flavor_options,
        )
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.replace(staging, dest)  # the package appears complete, or not at all
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _log.info("model package saved", extra={"model": name or dest.name, "path": str(dest)})
    return dest


def register(
    model: Any,
    registry: Registry,
    *,
    name: str,
    flavor: str | None = None,
    signature: Mapping[str, Any] | None = None,
    input_example: Any = None,
    extra_files: Mapping[str, str | os.PathLike[str]]
    | Sequence[str | os.PathLike[str]]
    | None = None,
    trust_pickle: bool = False,
    run_id: str | None = None,
    aliases: Iterable[str] = (),
    alias_reason: str | None = None,
    extra: Mapping[str, Any] | None = None,
    flavor_options: Mapping[str, Any] | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    contract: Contract | None = None,
    profile: Profile | None = None,
) -> ModelVersion:
    """Package ``model`` and register it as a new version of ``name`` in ``registry``.

    The arguments shared with :func:`save` mean the same; the rest are those of
    :meth:`~modelyard.registry.registry.Registry.register_version`.

    Returns:
        The registered :class:`~modelyard.registry.registry.ModelVersion`.

    Raises:
        UnsafeArtifactError: the model needs pickle and ``trust_pickle`` is False.
        InvalidNameError: an illegal model name, alias or tag key.
    """
    if isinstance(model, LoadedModel):
        model = model.raw
    with tempfile.TemporaryDirectory(prefix="modelyard-package-") as tmp:
        folder = save(
            model,
            Path(tmp) / "package",
            name=name,
            flavor=flavor,
            signature=signature,
            input_example=input_example,
            extra_files=extra_files,
            trust_pickle=trust_pickle,
            extra=extra,
            flavor_options=flavor_options,
        )
        manifest = read_manifest(folder)
        return registry.register_version(
            name,
            folder,
            run_id=run_id,
            flavor=manifest["flavor"],
            signature=manifest.get("signature"),
            extra=dict(extra) if extra is not None else None,
            description=description,
            tags=tags,
            aliases=tuple(aliases),
            alias_reason=alias_reason,
            contract=contract,
            profile=profile,
        )


def _write_package(
    model: Any,
    folder: Path,
    *,
    name: str,
    flavor_name: str | None,
    signature: Mapping[str, Any] | None,
    input_example: Any,
    extra_files: Any,
    trust_pickle: bool,
    extra: Mapping[str, Any] | None,
    flavor_options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    flavor = _choose_flavor(model, flavor_name, trust_pickle)
    folder.mkdir(parents=True)
    options = dict(flavor_options or {})
    if input_example is not None and flavor.name == "onnx":
        options.setdefault("input_example", input_example)
    if input_example is not None and flavor.name == "torch" and "dtype" not in options:
        from modelyard.registry.flavors import as_array

        dtype = as_array(input_example).dtype
        if dtype.kind in "iub":  # token ids, masks; float inputs stay float32 (the weights')
            options["dtype"] = dtype.name
    saved_options = flavor.save(model, folder, options)
    if signature is not None:
        sig: dict[str, Any] | None = _check_signature(signature)
    elif input_example is not None:
        sig = _infer_with_output(flavor, model, folder, saved_options, input_example)
    else:
        sig = None
    _copy_extra_files(extra_files, folder)
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "flavor": flavor.name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "signature": sig,
        "libraries": library_versions(flavor.libraries_for(model)),
        "flavor_options": saved_options,
        "files": _hash_folder(folder),
        "extra": dict(extra or {}),
    }
    try:
        body = json.dumps(manifest, indent=2, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"the package manifest is not JSON-able ({exc}); check extra= and flavor_options=",
            field="extra",
        ) from exc
    (folder / MANIFEST_NAME).write_text(body + "\n", encoding="utf-8")
    return manifest


def _choose_flavor(model: Any, flavor_name: str | None, trust_pickle: bool) -> Flavor:
    if flavor_name is None:
        detected = detect_flavor(model)
        if detected is not None:
            return detected
        if not trust_pickle:
            raise UnsafeArtifactError(
                f"no safe flavor can save a {type(model).__module__}.{type(model).__name__}",
                hint="give it save()/load()/predict() methods (the 'python' flavor), convert it "
                "to ONNX, or pass trust_pickle=True to store it as a pickle (loading a pickle "
                f"can run arbitrary code); known flavors: {', '.join(FLAVOR_NAMES)}",
                type=type(model).__name__,
            )
        return get_flavor("pickle")
    flavor = get_flavor(flavor_name)
    if flavor.name == "pickle" and not trust_pickle:
        raise UnsafeArtifactError(
            "the pickle flavor needs trust_pickle=True: loading a pickle can run arbitrary code",
            hint="pass trust_pickle=True to save (and to load) if you accept that, or use a safe "
            "flavor",
            flavor="pickle",
        )
    return flavor


def _infer_with_output(
    flavor: Flavor, model: Any, folder: Path, options: dict[str, Any], example: Any
) -> dict[str, Any]:
    # Run the saved package, not the live object: the output describes what load() returns,
    # and a model that does not survive its own round trip fails here, at save time.
    files = _hash_folder(folder)
    raw = flavor.load(folder, options, files, Trust(pickle=True, types=True))
    output = flavor.predict(raw, example, options)
    declared = flavor.describe(raw)
    if declared is not None:  # the model's own declaration wins over the example's dtypes
        return declared
    return infer_signature(example, output)


def _copy_extra_files(extra_files: Any, folder: Path) -> None:
    if not extra_files:
        return
    if isinstance(extra_files, Mapping):
        pairs = [(str(k), Path(v)) for k, v in extra_files.items()]
    else:
        pairs = [(Path(p).name, Path(p)) for p in extra_files]
    for rel, src in pairs:
        validate_relative_name(rel, what="extra file name")
        if not src.is_file():
            raise NotFoundError(
                f"extra file {src} does not exist", hint="pass paths of existing files",
                path=str(src),
            )  # fmt: skip
        dest = folder / "extra" / rel
        if dest.exists():
            raise ConflictError(f"two extra files are both named {rel!r}", path=rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)


# ---------------------------------------------------------------------- load
def load(
    path_or_uri: str | os.PathLike[str],
    *,
    registry: Registry | None = None,
    trust_pickle: bool = False,
    trusted: bool | Sequence[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
) -> LoadedModel:
    """Load a model package, verifying every file against its manifest.

    Args:
        path_or_uri: a package folder; or a registry reference: ``models:/NAME@alias``,
            ``models:/NAME/3``, ``NAME@alias``, ``NAME:3``.
        registry: the registry for references.
        trust_pickle: allow loading a pickled model (it can run arbitrary code); it implies
            ``trusted=True``.
        trusted: skops types to trust beyond skops' defaults, or ``True`` for all. Tree
            models (``sklearn.tree._tree.Tree``) need it: skops does not trust their node
            arrays, which a malicious file can point out of bounds.
        cache_dir: where registry packages are cached, by manifest sha256
            (:class:`~modelyard.registry.cache.PackageCache`).

    Raises:
        IntegrityError: a file does not match the manifest.
        UnsafeArtifactError: a pickle without ``trust_pickle``, or untrusted skops types.
        NotFoundError: no package at the path, or no such model/version/alias.
    """
    # trusting a source with pickles (arbitrary code) covers every skops type too
    types: bool | tuple[str, ...] = True
    if trusted is not True and not trust_pickle:
        types = tuple(trusted or ())
    trust = Trust(pickle=trust_pickle, types=types)
    version = None
    if isinstance(path_or_uri, str) and is_registry_ref(path_or_uri, registry):
        if registry is None or cache_dir is None:
            raise InvalidInputError(
                f"loading the registry reference {path_or_uri!r} needs registry= and cache_dir=",
                hint="modelyard.models.load fills them from the project's settings, or use "
                "Workspace.open(settings).fetch(ref)",
            )
        version = registry.resolve(_parse_models_uri(path_or_uri))
        folder = PackageCache(cache_dir).fetch(registry, version)
    else:
        folder = Path(path_or_uri)
    manifest = verify_package(folder)
    flavor = get_flavor(str(manifest.get("flavor")))
    _check_versions(manifest, folder)
    raw = flavor.load(folder, dict(manifest.get("flavor_options") or {}), manifest["files"], trust)
    _log.debug("model package loaded", extra={"model": manifest.get("name"), "path": str(folder)})
    return LoadedModel(manifest, raw, flavor, folder, version)


def is_registry_ref(text: str, registry: Any = None) -> bool:
    """Whether ``text`` names a registry version (``models:/...``, ``NAME@alias``, ``NAME:3``)
    rather than a package folder."""
    if text.startswith("models:/"):
        return True
    if Path(text).exists():
        return False
    return ("@" in text or ":" in text or registry is not None) and "/" not in text


def _parse_models_uri(text: str) -> str:
    ref = text[len("models:/") :] if text.startswith("models:/") else text
    name, sep, rest = ref.partition("/")
    if sep:  # models:/NAME/3 (MLflow's form)
        return f"{name}:{rest}"
    return ref
