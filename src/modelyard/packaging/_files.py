"""Writing generated files: a whole folder at once, or one file in place, never half of either."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from modelyard.errors import ConflictError, InvalidInputError, InvalidNameError

__all__ = ["write_file", "write_folder"]


def _check_relative(name: str) -> None:
    path = Path(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise InvalidNameError(f"generated file name {name!r} escapes its folder")


def write_folder(
    folder: Path,
    files: Mapping[str, str | bytes],
    *,
    replace_own: bool = False,
    fill: Callable[[Path], object] | None = None,
) -> Path:
    """Write ``files`` (relative name -> content) as the new folder ``folder``.

    Everything is written into a temporary folder beside ``folder`` and renamed into place, so a
    failure leaves nothing behind. ``folder`` may exist only if it is empty, or, with
    ``replace_own``, if it holds nothing but files of the same names (an earlier generation).
    ``fill(staging)`` may write more (large) files into the staging folder before the rename.

    Raises:
        ConflictError: ``folder`` exists and holds other files.
        InvalidInputError: ``folder`` is a file.
    """
    folder = folder.resolve()
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(
            f"{folder} is a file, not a folder", hint="pick a folder name that does not exist"
        )
    previous = None
    if folder.is_dir():
        present = sorted(p.name for p in folder.iterdir())
        if present and replace_own and set(present) <= {Path(n).parts[0] for n in files}:
            previous = folder
        elif present:
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            raise ConflictError(
                f"folder {folder} is not empty (it holds {shown}); nothing was written",
                hint="pick a new or empty folder, or remove these files first",
                folder=str(folder),
            )
    for name in files:
        _check_relative(name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, content in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            target.write_bytes(data)
        if fill is not None:
            fill(staging)
        # readable by every user (a pod's server may run as another uid than its init
        # container; temporary files are created 0600)
        for path in staging.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        staging.chmod(0o755)
        if previous is not None:  # swap: the old generation goes aside, then away
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            folder.rename(old / "previous")
            staging.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if folder.is_dir():
                folder.rmdir()  # empty, checked above
            staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def write_file(path: Path, content: str | bytes) -> bool:
    """Replace ``path`` with ``content`` atomically (temporary file, fsync, rename).

    Returns:
        Whether the file changed (``False`` when it already held exactly ``content``).
    """
    data = content.encode() if isinstance(content, str) else content
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True
