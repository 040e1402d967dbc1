"""The artifact store: content-addressed bytes on a local folder or anything fsspec speaks.

Objects live at ``<root>/objects/<aa>/<bb>/<sha256>`` and are immutable: the address is the
sha256 of the content, so a put of bytes already stored does nothing, and every read is checked
against its address (:class:`~modelyard.errors.IntegrityError` when they differ). Plain named
files (request and feedback logs written by the server) live under ``<root>/named/``.

Writes never leave a partial object at its final path:

* local folder: the bytes go to a temp file under ``<root>/tmp/`` (same file system), are
  fsynced, then ``os.replace``-d into place, and the folder that holds the new name is fsynced
  (a rename survives power loss only then). The local case bypasses fsspec entirely.
* object stores (S3, GCS, Azure, memory): a PUT or multipart upload only appears when complete,
  so the object is written straight to its final key, but only once its full hash is known.
* other fsspec file systems: upload to a temp key under ``<root>/tmp/``, then move.

``storage_options`` (endpoint_url, key, secret, ...) go to fsspec and are never logged.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from modelyard.errors import (
    ConfigError,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    NotFoundError,
)
from modelyard.logs import get_logger

if TYPE_CHECKING:
    from modelyard.config import Settings

__all__ = ["ArtifactRef", "ArtifactStore", "validate_relative_name"]

_log = get_logger("store.artifacts")
_CHUNK = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Object stores where a single PUT or a multipart upload is atomic: write to the final key.
_ATOMIC_PUT = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"})
_LOCAL = frozenset({"", "file", "local"})
_MAX_NAME = 1024


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """Where some bytes are stored.

    Attributes:
        sha256: the hex sha256 of the content; also its address.
        size_bytes: the content length.
        uri: a URL of the object that fsspec can open (``file:///...``, ``s3://...``).
    """

    sha256: str
    size_bytes: int
    uri: str


def validate_relative_name(name: str, *, what: str = "name") -> str:
    """Check that ``name`` is a safe relative posix path and return it.

    Rejected: empty names, absolute paths, ``..`` or ``.`` segments, empty segments (``a//b``,
    a trailing ``/``), backslashes, NUL and other control characters, drive letters.

    Raises:
        InvalidNameError: naming the value and the rule it broke.
    """
    problem = _name_problem(name)
    if problem is not None:
        raise InvalidNameError(
            f"invalid {what} {name!r}: {problem}",
            hint="use a relative path of '/'-separated segments such as 'logs/2024/part-0.parquet'",
            name=name,
        )
    return name


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"must be a string, not {type(name).__name__}"
    if not name:
        return "it is empty"
    if len(name) > _MAX_NAME:
        return f"it is longer than {_MAX_NAME} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it contains a NUL or control character"
    if "\\" in name:
        return "it contains a backslash"
    if name.startswith("/"):
        return "it is an absolute path"
    if re.match(r"^[A-Za-z]:", name):
        return "it starts with a drive letter"
    for segment in name.split("/"):
        if segment == "":
            return "it has an empty path segment"
        if segment in (".", ".."):
            return f"it has a {segment!r} segment"
    return None


def _check_sha(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise InvalidInputError(
            f"{sha256!r} is not a sha256 address (64 lowercase hex characters)",
            hint="pass the sha256 of an ArtifactRef returned by put_bytes/put_file",
            sha256=str(sha256),
        )
    return sha256


def _integrity_error(sha256: str, actual: str, where: str) -> IntegrityError:
    return IntegrityError(
        f"artifact {where} is corrupt: expected sha256 {sha256}, got {actual}",
        hint=(
            "the stored bytes were changed or truncated; delete the object "
            f"(ArtifactStore.delete({sha256[:12]}...)) and put the original content again, "
            "or restore it from a backup"
        ),
        sha256=sha256,
        actual=actual,
        uri=where,
    )


def _write_all(fd: int, data: bytes | memoryview | Any) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class ArtifactStore:
    """Content-addressed artifact storage.

    Build with :meth:`open` or :meth:`from_settings`; the constructor only stores its arguments.

    Args:
        url: the root: a local folder or a fsspec URL (``s3://bucket/prefix``).
        storage_options: fsspec options for remote URLs (credentials, ``endpoint_url``...).
        fs: an fsspec file system for ``root`` (``None`` for the local fast path).
        root: the root path as ``fs`` names it (a local absolute path when ``fs`` is None).
        protocol: the URL scheme (``""`` for local).
        fsync: local stores fsync each new file before it is renamed into place, and its
            folder after (durable across power loss). ``False`` is several times faster for
            small objects and still atomic against crashed processes: a killed writer never
            leaves a partial object.
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        fs: Any = None,
        root: str,
        protocol: str = "",
        fsync: bool = True,
    ) -> None:
        self.url = url
        self._storage_options = dict(storage_options or {})
        self._fs = fs
        self.root = root.rstrip("/") if fs is not None else root
        self.protocol = protocol
        self.fsync = fsync
        self._tmp_ready = False

    def __repr__(self) -> str:  # never shows storage options (credentials)
        return f"ArtifactStore({self.url!r})"

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(
        cls,
        url: str | os.PathLike[str],
        storage_options: Mapping[str, Any] | None = None,
        *,
        fsync: bool = True,
    ) -> ArtifactStore:
        """Open the store rooted at ``url``.

        Args:
            url: a local folder (created on the first write) or an fsspec URL such as
                ``s3://bucket/prefix``.
            storage_options: options for the fsspec file system (``endpoint_url``, ``key``,
                ``secret``, ...). Never logged.
            fsync: see :class:`ArtifactStore` (local stores only).

        Raises:
            ConfigError: ``url`` is empty.
            MissingExtraError: the URL's file system needs a package that is not installed.
        """
        text = os.fspath(url)
        if not text:
            raise ConfigError(
                "the artifact store URL is empty",
                hint="set artifact_url in [tool.modelyard] or MODELYARD_ARTIFACT_URL",
            )
        protocol, _, rest = text.partition("://")
        if not rest:
            protocol, rest = "", text
        protocol = protocol.lower()
        if protocol in _LOCAL:
            path = Path(rest).expanduser().absolute()
            return cls(
                str(path), storage_options=storage_options, fs=None, root=str(path), fsync=fsync
            )
        from modelyard.errors import MissingExtraError

        try:
            import fsspec
        except ImportError as exc:  # pragma: no cover - fsspec is a core dependency
            raise MissingExtraError("fsspec is not installed", hint="pip install fsspec") from exc
        try:
            fs, root = fsspec.core.url_to_fs(text, **dict(storage_options or {}))
        except ImportError as exc:
            extra = {"s3": "s3", "s3a": "s3"}.get(protocol, protocol)
            raise MissingExtraError(
                f"the artifact store {text!r} needs a file system package that is not installed"
                f" ({exc})",
                hint=f"pip install 'modelyard[{extra}]'",
                url=text,
            ) from exc
        except ValueError as exc:
            raise ConfigError(
                f"cannot open artifact store {text!r}: {exc}",
                hint="check artifact_url and storage_options (`modelyard config show`)",
                url=text,
            ) from exc
        return cls(text, storage_options=storage_options, fs=fs, root=root, protocol=protocol)

    @classmethod
    def from_settings(cls, settings: Settings) -> ArtifactStore:
        """Open the store named by ``settings.resolved_artifact_url``."""
        return cls.open(settings.resolved_artifact_url, settings.storage_options)

    @property
    def storage_options(self) -> dict[str, Any]:
        """The fsspec options the store was opened with (may hold credentials: never log)."""
        return dict(self._storage_options)

    @property
    def is_local(self) -> bool:
        """Whether the store is a local folder (the fast path, without fsspec)."""
        return self._fs is None

    @property
    def fs(self) -> Any:
        """The fsspec file system (a ``LocalFileSystem`` for a local folder)."""
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem

            return LocalFileSystem()
        return self._fs

    # ------------------------------------------------------------------ paths
    def _object_path(self, sha256: str) -> str:
        return f"{self.root}/objects/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def _named_path(self, name: str) -> str:
        return f"{self.root}/named/{name}"

    def _to_uri(self, path: str) -> str:
        if self._fs is None:
            return Path(path).as_uri()
        return f"{self.protocol}://{path}"

    def uri(self, sha256: str) -> str:
        """The URL of the object ``sha256`` (whether or not it exists)."""
        return self._to_uri(self._object_path(_check_sha(sha256)))

    def named_uri(self, name: str) -> str:
        """The URL of the named file ``name`` (for readers such as pyarrow + fsspec)."""
        return self._to_uri(self._named_path(validate_relative_name(name)))

    def _ref(self, sha256: str, size: int) -> ArtifactRef:
        return ArtifactRef(sha256=sha256, size_bytes=size, uri=self.uri(sha256))

    def _open_local_tmp(self) -> tuple[str, int]:
        """Create a new temp file under ``<root>/tmp/``: (path, fd open for writing)."""
        folder = os.path.join(self.root, "tmp")
        path = os.path.join(folder, f"{uuid.uuid4().hex}.part")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        if self._tmp_ready:  # mkdir on an existing folder is a slow failing syscall: skip it
            try:
                return path, os.open(path, flags, 0o644)
            except FileNotFoundError:  # the folder was removed under us
                pass
        os.makedirs(folder, exist_ok=True)
        self._tmp_ready = True
        return path, os.open(path, flags, 0o644)

    # ------------------------------------------------------------------ objects
    def exists(self, sha256: str) -> bool:
        """Whether the object ``sha256`` is stored."""
        path = self._object_path(_check_sha(sha256))
        if self._fs is None:
            return os.path.isfile(path)
        return bool(self._fs.exists(path))

    def put_bytes(self, data: bytes) -> ArtifactRef:
        """Store ``data`` under its sha256; atomic and idempotent.

        Returns:
            The reference of the stored content.
        """
        sha = hashlib.sha256(data).hexdigest()
        final = self._object_path(sha)
        if self._fs is None:
            if not self._local_exists_with_size(final, len(data)):
                self._local_atomic_write(final, data)
                _log.debug("artifact stored", extra={"sha256": sha, "size_bytes": len(data)})
        elif not self._fs.exists(final):
            self._remote_put(final, data=data)
            _log.debug("artifact stored", extra={"sha256": sha, "size_bytes": len(data)})
        return self._ref(sha, len(data))

    def put_file(self, path: str | os.PathLike[str]) -> ArtifactRef:
        """Store the file at ``path``, streaming it; the sha256 is computed while copying.

        Raises:
            NotFoundError: ``path`` is not a file.
        """
        src = Path(path)
        if not src.is_file():
            raise NotFoundError(
                f"cannot store {src}: no such file",
                hint="pass the path of an existing file",
                path=str(src),
            )
        if self._fs is None:
            return self._local_put_file(src)
        # Hash first (one read), then upload the source itself: the final key is only written
        # once the full hash is known, and the upload itself is atomic on object stores.
        hasher = hashlib.sha256()
        size = 0
        with src.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
        sha = hasher.hexdigest()
        final = self._object_path(sha)
        if not self._fs.exists(final):
            self._remote_put(final, local_path=str(src))
            _log.debug("artifact stored", extra={"sha256": sha, "size_bytes": size})
        return self._ref(sha, size)

    def put_stream(self, stream: BinaryIO) -> ArtifactRef:
        """Store everything read from the binary ``stream`` until EOF.

        The bytes are spooled to a temp file (under ``<root>/tmp/`` for a local store, else the
        system temp folder) while being hashed; the object appears at its final path only once
        the stream ended and the hash is known.
        """
        if self._fs is None:
            return self._local_spool(stream)
        fd, tmp = tempfile.mkstemp(prefix="modelyard-spool-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    out.write(chunk)
            return self.put_file(tmp)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def purge_tmp(self, older_than_s: float = 24 * 3600.0) -> int:
        """Remove temp files left by writers that died (local stores); return how many."""
        if self._fs is not None:
            return 0
        folder = os.path.join(self.root, "tmp")
        cutoff = time.time() - older_than_s
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(folder):
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed += 1
        return removed

    def get_bytes(self, sha256: str) -> bytes:
        """Read the object ``sha256`` and check it against its address.

        Raises:
            NotFoundError: no such object.
            IntegrityError: the stored bytes do not hash to ``sha256``.
        """
        path = self._object_path(_check_sha(sha256))
        try:
            if self._fs is None:
                with open(path, "rb") as fh:
                    data = fh.read()
            else:
                data = self._fs.cat_file(path)
        except FileNotFoundError as exc:
            raise self._missing(sha256) from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise _integrity_error(sha256, actual, self._to_uri(path))
        return bytes(data)

    def get_file(self, sha256: str, dest_path: str | os.PathLike[str]) -> Path:
        """Copy the object ``sha256`` to ``dest_path``, checked, atomically.

        The bytes go to a temp file beside ``dest_path`` and replace it only once their hash
        matches, so ``dest_path`` never holds unverified or partial content.

        Raises:
            NotFoundError: no such object.
            IntegrityError: the stored bytes do not hash to ``sha256`` (``dest_path`` untouched).
        """
        path = self._object_path(_check_sha(sha256))
        dest = Path(dest_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            src = open(path, "rb") if self._fs is None else self._fs.open(path, "rb")  # noqa: SIM115
        except FileNotFoundError as exc:
            raise self._missing(sha256) from exc
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            hasher = hashlib.sha256()
            with src, os.fdopen(fd, "wb") as out:
                while chunk := src.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
            actual = hasher.hexdigest()
            if actual != sha256:
                raise _integrity_error(sha256, actual, self._to_uri(path))
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return dest

    def delete(self, sha256: str) -> bool:
        """Remove the object ``sha256``; return whether it existed.

        Objects are shared by every package and run that holds the same bytes: only delete a
        corrupt object (to put it again) or from a garbage collector that knows the references.
        """
        path = self._object_path(_check_sha(sha256))
        if self._fs is None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                return False
            return True
        if not self._fs.exists(path):
            return False
        self._fs.rm_file(path)
        return True

    def put_dir(self, path: str | os.PathLike[str]) -> dict[str, ArtifactRef]:
        """Store every file under the folder ``path``.

        Returns:
            relative posix path -> reference, sorted by path.

        Raises:
            NotFoundError: ``path`` is not a folder.
            InvalidInputError: a symlink points outside the folder.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise NotFoundError(
                f"cannot store {folder}: no such folder",
                hint="pass an existing folder",
                path=str(folder),
            )
        base = folder.resolve()
        refs: dict[str, ArtifactRef] = {}
        for file in sorted(_walk_files(folder)):
            rel = file.relative_to(folder).as_posix()
            if file.is_symlink() and not file.resolve().is_relative_to(base):
                raise InvalidInputError(
                    f"{file} is a symlink to {file.resolve()}, outside {folder}",
                    hint="copy the target into the folder instead of linking to it",
                    path=str(file),
                )
            validate_relative_name(rel, what="file name")
            refs[rel] = self.put_file(file)
        return refs

    def get_dir(self, files: Mapping[str, str | ArtifactRef], dest: str | os.PathLike[str]) -> Path:
        """Materialise ``files`` (relative path -> sha256 or ref) under the folder ``dest``.

        Every path is validated (no ``..``, no absolute paths) before anything is written, and
        every file is checked against its hash.

        Raises:
            InvalidNameError: a path would escape ``dest``.
            NotFoundError / IntegrityError: as :meth:`get_file`.
        """
        out = Path(dest)
        plan: list[tuple[str, str]] = []
        for rel, ref in files.items():
            validate_relative_name(rel, what="file name")
            plan.append((rel, ref.sha256 if isinstance(ref, ArtifactRef) else _check_sha(ref)))
        out.mkdir(parents=True, exist_ok=True)
        for rel, sha in plan:
            self.get_file(sha, out / rel)
        return out

    # ------------------------------------------------------------------ named files
    def write_named(self, name: str, data: bytes | memoryview | Any) -> str:
        """Write ``data`` (bytes or any buffer) to the named file ``name`` under
        ``<root>/named/``, atomically.

        Returns:
            The URL of the file.

        Raises:
            InvalidNameError: ``name`` is absolute, has ``..`` or empty segments, backslashes...
        """
        path = self._named_path(validate_relative_name(name))
        if self._fs is None:
            self._local_atomic_write(path, data)
        else:
            self._remote_put(path, data=data if isinstance(data, bytes) else bytes(data))
        size = memoryview(data).nbytes
        _log.debug("named file written", extra={"artifact_name": name, "size_bytes": size})
        return self._to_uri(path)

    def read_named(self, name: str) -> bytes:
        """Read the named file ``name``.

        Raises:
            NotFoundError: no such file.
        """
        path = self._named_path(validate_relative_name(name))
        try:
            if self._fs is None:
                with open(path, "rb") as fh:
                    return fh.read()
            return bytes(self._fs.cat_file(path))
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise NotFoundError(
                f"no named file {name!r} in the artifact store {self.url}",
                hint="list what exists with ArtifactStore.list_named(prefix)",
                name=name,
            ) from exc

    def delete_named(self, name: str) -> bool:
        """Remove the named file ``name``; return whether it existed."""
        path = self._named_path(validate_relative_name(name))
        if self._fs is None:
            try:
                os.unlink(path)
            except (FileNotFoundError, IsADirectoryError):
                return False
            return True
        if not self._fs.isfile(path):
            return False
        self._fs.rm_file(path)
        return True

    def list_named(self, prefix: str = "") -> list[str]:
        """Names of the named files that start with ``prefix``, sorted.

        ``prefix`` is a plain string prefix of the name (``"logs/requests/"`` or
        ``"logs/req"``); it may end with ``/`` but is otherwise validated like a name.
        """
        if prefix:
            validate_relative_name(prefix.rstrip("/") or ".", what="prefix")
        folder, _, _ = prefix.rpartition("/")
        base = self._named_path(folder) if folder else f"{self.root}/named"
        names: list[str] = []
        named_root = f"{self.root}/named/"
        if self._fs is None:
            if not os.path.isdir(base):
                return []
            for file in _walk_files(Path(base)):
                names.append(file.as_posix()[len(named_root) :])
        else:
            # other processes (the server) add files: never answer from a stale listing cache
            self._fs.invalidate_cache(base)
            if not self._fs.isdir(base):
                return []
            for found in self._fs.find(base):
                names.append(str(found)[len(named_root) :])
        return sorted(n for n in names if n.startswith(prefix))

    # ------------------------------------------------------------------ internals
    def _missing(self, sha256: str) -> NotFoundError:
        return NotFoundError(
            f"no artifact {sha256} in the artifact store {self.url}",
            hint="check the sha256, or that this is the store the object was written to "
            "(`modelyard config show` prints artifact_url)",
            sha256=sha256,
        )

    @staticmethod
    def _local_exists_with_size(path: str, size: int) -> bool:
        try:
            return os.stat(path).st_size == size
        except FileNotFoundError:
            return False

    def _local_atomic_write(self, final: str, data: bytes | memoryview | Any) -> None:
        tmp, fd = self._open_local_tmp()
        try:
            try:
                _write_all(fd, data)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            self._replace_into(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _local_put_file(self, src: Path) -> ArtifactRef:
        with src.open("rb") as fin:
            return self._local_spool(fin)

    def _local_spool(self, fin: BinaryIO) -> ArtifactRef:
        tmp, fd = self._open_local_tmp()
        hasher = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as fout:
                while chunk := fin.read(_CHUNK):
                    hasher.update(chunk)
                    fout.write(chunk)
                    size += len(chunk)
                if self.fsync:
                    fout.flush()
                    os.fsync(fout.fileno())
            sha = hasher.hexdigest()
            final = self._object_path(sha)
            if self._local_exists_with_size(final, size):
                os.unlink(tmp)
            else:
                self._replace_into(tmp, final)
                _log.debug("artifact stored", extra={"sha256": sha, "size_bytes": size})
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return self._ref(sha, size)

    def _replace_into(self, tmp: str, final: str) -> None:
        """``os.replace``, creating the destination folder only when it is missing.

        With ``fsync``, the folder that holds the new name is fsynced after the rename, and so
        is the parent of each folder created for it: on POSIX a rename, like a new folder, is
        durable only once the folder holding the name is.
        """
        folder = os.path.dirname(final)
        created: list[str] = []
        try:
            os.replace(tmp, final)
        except FileNotFoundError:
            if not os.path.exists(tmp):
                raise
            missing = folder
            while not os.path.isdir(missing) and os.path.dirname(missing) != missing:
                created.append(missing)
                missing = os.path.dirname(missing)
            os.makedirs(folder, exist_ok=True)
            os.replace(tmp, final)
        if not self.fsync:
            return
        _fsync_dir(folder)
        for new in created:  # fsync only the parents that gained a folder: each costs a flush
            _fsync_dir(os.path.dirname(new))

    def _remote_put(
        self, final: str, *, data: bytes | None = None, local_path: str | None = None
    ) -> None:
        fs = self._fs
        target = final
        direct = self.protocol in _ATOMIC_PUT
        if not direct:
            target = f"{self.root}/tmp/{uuid.uuid4().hex}.part"
        parent = target.rsplit("/", 1)[0]
        if not direct:
            fs.makedirs(parent, exist_ok=True)
        if data is not None:
            fs.pipe_file(target, data)
        else:
            fs.put_file(local_path, target)
        if not direct:
            fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            fs.mv(target, final)


def _fsync_dir(path: str) -> bool:
    """fsync the folder ``path``; return whether it was.

    A no-op (``False``) where the folder cannot be opened: on Windows, where ``os.open``
    refuses folders, or when ``path`` is gone or is not a folder. A file system that cannot
    fsync a folder (``EINVAL``) is skipped too; other errors (``EIO``) raise.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return False
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}:
            raise
        return False
    finally:
        os.close(fd)
    return True


def _walk_files(folder: Path) -> Iterator[Path]:
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            yield Path(dirpath) / name
