"""Codecs for models: ``model`` (a tar of the package ``modelyard.models.save`` writes:
skops for scikit-learn, never pickle unless the step trusts it) and ``version`` (a registered
model version, as ``{"name", "version"}``)."""

from __future__ import annotations

import io
from typing import Any

from modelyard.errors import PipelineError
from modelyard.pipelines.codecs._base import Target, mro_names

__all__ = ["ModelCodec", "VersionCodec"]


class VersionCodec:
    """``version``: a :class:`~modelyard.registry.registry.ModelVersion` by name and number."""

    name = "version"
    whole_only = True
    type_names: frozenset[str] = frozenset()

    def accepts(self, value: Any) -> bool:
        cls = type(value)
        return cls.__name__ == "ModelVersion" and cls.__module__.startswith("modelyard.registry")

    def encode(self, value: Any, target: Target) -> bytes:
        import orjson

        return orjson.dumps({"name": value.name, "version": int(value.version)})

    def decode(self, data: bytes, *, trust: bool) -> Any:
        import orjson

        return orjson.loads(data)


class ModelCodec:
    """``model``: scikit-learn estimators (and the models ``modelyard.models.save`` knows)."""

    name = "model"
    whole_only = True
    type_names = frozenset({"sklearn.base.BaseEstimator"})

    def accepts(self, value: Any) -> bool:
        return bool(mro_names(type(value)) & self.type_names)

    def encode(self, value: Any, target: Target) -> bytes:
        return _save_model(value, target.step, target.trust)

    def decode(self, data: bytes, *, trust: bool) -> Any:
        return _load_model(data, trust)


def _save_model(value: Any, step: str, trust: bool) -> bytes:
    """A tar of the package ``models.save`` writes (no timestamps: same model, same bytes)."""
    import tarfile
    import tempfile
    from pathlib import Path

    try:
        from modelyard import models
    except ImportError as exc:  # pragma: no cover - the registry package is part of modelyard
        raise PipelineError(
            f"step {step!r} returned a model but modelyard.models is missing"
        ) from exc
    with tempfile.TemporaryDirectory(prefix="modelyard-step-") as tmp:
        pkg = Path(tmp) / "package"
        models.save(value, pkg, name=step, trust_pickle=trust)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path in sorted(p for p in pkg.rglob("*") if p.is_file()):
                info = tar.gettarinfo(str(path), arcname=path.relative_to(pkg).as_posix())
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
        return buf.getvalue()


def _load_model(data: bytes, trust: bool) -> Any:
    import shutil
    import tarfile
    import tempfile
    from pathlib import Path

    from modelyard import models

    tmp = Path(tempfile.mkdtemp(prefix="modelyard-model-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            tar.extractall(tmp, filter="data")
        # the package is one this pipeline wrote, read back by its verified sha256: its skops
        # types are trusted (pickle still needs the step's trust=True)
        loaded = models.load(tmp, trust_pickle=trust, trusted=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # a step wants the estimator its upstream step returned, not the package wrapper
    return getattr(loaded, "raw", loaded)
