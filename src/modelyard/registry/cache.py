"""The local cache of model packages: one atomic, hash-verified fetch from the registry.

A version's package is cached at ``<root>/<manifest_sha256>/``. A cached copy is used only
after every file of the version (the manifest among them) hashes to the sha256 the metadata
store records for it; anything else (a partial download, an edited file, a manifest rewritten
to match an edited file) is replaced by a fresh download. A download
is written to a temporary folder beside the cache entry, verified, and renamed into place, so a
reader never sees half a package. Both ``modelyard serve`` and ``modelyard.models.load`` fetch
through here (via :meth:`modelyard.workspace.Workspace.fetch`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from modelyard.errors import IntegrityError
from modelyard.logs import get_logger
from modelyard.store.artifacts import validate_relative_name

if TYPE_CHECKING:
    from modelyard.config import Settings
    from modelyard.registry.registry import ModelVersion, Registry

__all__ = ["PackageCache", "sha256_file"]

_log = get_logger("registry.cache")
_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of the file at ``path``, read in 1 MiB chunks."""
    hasher = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


class PackageCache:
    """Registry packages cached on local disk by manifest sha256.

    Args:
        root: the cache folder (``<home>/cache/packages`` for a project: :meth:`from_settings`).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @classmethod
    def from_settings(cls, settings: Settings) -> PackageCache:
        """The project's cache: ``<home>/cache/packages``."""
        return cls(settings.resolved_home / "cache" / "packages")

    def path_of(self, version: ModelVersion) -> Path:
        """Where ``version``'s package is (or would be) cached."""
        return self.root / version.manifest_sha256

    def fetch(self, registry: Registry, version: ModelVersion) -> Path:
        """The local folder holding ``version``'s package, verified; downloaded when needed.

        Raises:
            IntegrityError: the artifact store itself holds other bytes than were registered.
        """
        folder = self.path_of(version)
        problem = self._problem(folder, version)
        if problem is None:
            return folder
        if folder.exists():
            # the registry is the source of truth: a changed cached copy is never served
            _log.warning(
                "cached model package failed verification; downloading it again",
                extra={
                    "model": version.name,
                    "version": version.version,
                    "path": str(folder),
                    "error": problem,
                },
            )
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            registry.download(version, staging)  # each file verified against its sha256
            wrong = self._problem(staging, version)
            if wrong is not None:
                raise IntegrityError(
                    f"model {version.name} version {version.version}: the downloaded package "
                    f"does not match the registry: {wrong}",
                    hint="the artifact store holds other bytes than were registered; check it",
                    model=version.name,
                    version=version.version,
                )
            if self._problem(folder, version) is None:
                return folder  # another process filled the cache meanwhile
            self._discard(folder)
            with contextlib.suppress(OSError):  # another process won the race: use its copy
                os.replace(staging, folder)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        again = self._problem(folder, version)
        if again is not None:
            raise IntegrityError(
                f"model {version.name} version {version.version}: the cached package at "
                f"{folder} changed while it was fetched: {again}",
                hint=f"remove {folder} and try again",
                model=version.name,
                version=version.version,
            )
        return folder

    def _discard(self, folder: Path) -> None:
        """Move a bad cache entry aside and delete it (a rename is atomic, a delete is not)."""
        if not folder.exists():
            return
        trash = self.root / f".{folder.name}.{uuid.uuid4().hex[:8]}.bad"
        try:
            os.replace(folder, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    @staticmethod
    def _problem(folder: Path, version: ModelVersion) -> str | None:
        """None when ``folder`` holds ``version``'s files with the sha256 the metadata store
        records for each (the manifest among them), else the first difference."""
        for rel, expected in version.files.items():
            path = folder / validate_relative_name(rel, what="package file path")
            if not path.is_file():
                return f"file {rel!r} is missing"
            actual = sha256_file(path)
            if actual != expected:
                return f"file {rel!r} has sha256 {actual}, the registry records {expected}"
        return None
