"""Data a step reads, fingerprinted by content: a changed CSV re-runs the steps that read it.

A step's cache key covers its code, its parameters and its inputs. A parameter such as
``path="data/train.csv"`` is only a string, though: without more, editing the file would leave
the key unchanged and every step cached. So the runner adds to a step's key the content sha256
of the files it reads:

* every string among its parameters (nested in lists and dicts too) and every short string
  output handed to it as an input that names an existing file or folder (relative paths are
  tried against the current folder, then the project root; a folder counts with every file
  under it, hidden ones and ``__pycache__`` aside);
* the files of ``[tool.modelyard.pipeline] data_sources`` that the step reads: named by such a
  path, or mentioned (their path or file name) in the step's source; a declared file no step
  names or mentions counts for every step without upstream steps, so that changed declared data
  always re-runs something.

Files are hashed in chunks; a file whose size and modification time (ns) match what
``<home>/cache/data-fingerprints.json`` remembers is not read again. Paths naming the project
root itself (or a folder above it) and the modelyard home are never fingerprinted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from modelyard.logs import get_logger

__all__ = ["FileHasher", "StepData", "changed_files", "path_strings"]

_CHUNK = 1024 * 1024
MAX_FOLDER_FILES = 10_000  # past this, a folder counts by its files' sizes and times, unread
MAX_PATH_CHARS = 4096

_log = get_logger("pipeline.data")


class FileHasher:
    """Content sha256 of files and folders, skipping files whose size and mtime are unchanged.

    Args:
        memo_path: a JSON file remembering ``path -> [size, mtime_ns, sha256]`` between runs;
            None hashes every file every time.
    """

    def __init__(self, memo_path: Path | None = None) -> None:
        self.memo_path = memo_path
        self._memo: dict[str, list[Any]] | None = None
        self._dirty = False

    def _entries(self) -> dict[str, list[Any]]:
        if self._memo is None:
            import orjson

            self._memo = {}
            if self.memo_path is not None:
                with contextlib.suppress(OSError, orjson.JSONDecodeError, TypeError, ValueError):
                    self._memo = dict(orjson.loads(self.memo_path.read_bytes()))
        return self._memo

    def file(self, path: Path) -> str:
        """The content sha256 of one file (from the memo when its size and mtime match)."""
        key = str(path)
        stat = path.stat()
        memo = self._entries()
        seen = memo.get(key)
        if seen is not None and seen[:2] == [stat.st_size, stat.st_mtime_ns]:
            return str(seen[2])
        h = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
        memo[key] = [stat.st_size, stat.st_mtime_ns, h.hexdigest()]
        self._dirty = True
        return h.hexdigest()

    def tree(self, folder: Path) -> dict[Path, str]:
        """``file -> sha256`` for every file under ``folder`` (hidden ones aside), sorted.

        A folder of more than :data:`MAX_FOLDER_FILES` files counts by each file's size and
        mtime instead of its content (a warning says so).
        """
        files = sorted(_walk(folder))
        if len(files) > MAX_FOLDER_FILES:
            _log.warning(
                "data folder too large to hash by content; using sizes and times",
                extra={"folder": str(folder), "files": len(files)},
            )
            out: dict[Path, str] = {}
            for f in files:
                st = f.stat()
                out[f] = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
            return out
        return {f: self.file(f) for f in files}

    def save(self) -> None:
        """Write the memo back (atomically); a read-only home only costs hashing again."""
        if not self._dirty or self.memo_path is None or self._memo is None:
            return
        import orjson

        tmp = self.memo_path.with_name(f".{self.memo_path.name}.{os.getpid()}.tmp")
        try:
            self.memo_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(orjson.dumps(self._memo))
            os.replace(tmp, self.memo_path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        self._dirty = False


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
        for name in filenames:
            if not name.startswith("."):
                yield Path(dirpath, name)


def path_strings(value: Any, _depth: int = 0) -> Iterator[str]:
    """Every string in a JSON-able value (lists, tuples and dict values, four levels deep)."""
    if isinstance(value, str):
        if 0 < len(value) <= MAX_PATH_CHARS and "\n" not in value and "\0" not in value:
            yield value
    elif _depth < 4 and isinstance(value, list | tuple):
        for v in value:
            yield from path_strings(v, _depth + 1)
    elif _depth < 4 and isinstance(value, dict):
        for v in value.values():
            yield from path_strings(v, _depth + 1)


class StepData:
    """Which data files each step reads, and their content fingerprints.

    Args:
        hasher: hashes the files.
        project_root: relative paths are tried against ``cwd`` and then this folder; files
            under it are named relative to it.
        cwd: the folder steps run in.
        excluded: folders never fingerprinted (the modelyard home, the artifact store).
        declared: ``data_sources`` files, ``relative path -> sha256``.
    """

    def __init__(
        self,
        hasher: FileHasher,
        *,
        project_root: Path,
        cwd: Path,
        excluded: Iterable[Path] = (),
        declared: Mapping[str, str] | None = None,
    ) -> None:
        self.hasher = hasher
        self.project_root = project_root.resolve()
        self.cwd = cwd.resolve()
        self.excluded = tuple(p.resolve() for p in excluded)
        self.declared = dict(declared or {})
        self._fallback: dict[str, str] = {}
        self._roots: set[str] = set()

    def label(self, path: Path) -> str:
        """How a file is named in cache keys and messages: relative to the project root."""
        try:
            return path.relative_to(self.project_root).as_posix()
        except ValueError:
            return path.as_posix()

    def resolve(self, text: str) -> Path | None:
        """The file or folder ``text`` names, or None when it names none worth hashing."""
        try:
            given = Path(text).expanduser()
            candidates = (
                [given] if given.is_absolute() else [self.cwd / given, self.project_root / given]
            )
            for candidate in candidates:
                if candidate.exists():
                    found = candidate.resolve()
                    break
            else:
                return None
        except (OSError, ValueError, RuntimeError):  # bad names, loops, no home folder
            return None
        if self.project_root.is_relative_to(found):  # the project itself, or above it
            return None
        if any(found.is_relative_to(x) for x in self.excluded):
            return None
        return found

    def files_of(self, strings: Iterable[str]) -> dict[str, str]:
        """``label -> sha256`` of every file the strings name (folders expanded)."""
        out: dict[str, str] = {}
        for text in strings:
            found = self.resolve(text)
            if found is None:
                continue
            try:
                if found.is_dir():
                    out.update({self.label(f): sha for f, sha in self.hasher.tree(found).items()})
                elif found.is_file():
                    out[self.label(found)] = self.hasher.file(found)
            except OSError:  # gone or unreadable between the check and the read: the step says
                continue
        return out

    def plan(self, steps: Mapping[str, tuple[Any, Any, bool]]) -> None:
        """Attribute declared files that no step names nor mentions to the root steps.

        Args:
            steps: node id -> (its parameters, its code object, whether it has no upstream).
        """
        claimed: set[str] = set()
        for params, code, _root in steps.values():
            claimed |= set(self.files_of(path_strings(params)))
            claimed |= set(self._mentioned(code))
        self._fallback = {k: v for k, v in self.declared.items() if k not in claimed}
        self._roots = {node for node, (_p, _c, root) in steps.items() if root}

    def _mentioned(self, code: Any) -> dict[str, str]:
        if not self.declared:
            return {}
        from modelyard.pipelines.codehash import source_text

        text = source_text(code)
        return {
            label: sha
            for label, sha in self.declared.items()
            if label in text or Path(label).name in text
        }

    def for_step(
        self, node_id: str, params: Any, code: Any, inputs: Iterable[str]
    ) -> dict[str, str]:
        """``label -> sha256`` of the files step ``node_id`` reads (see the module docstring).

        Args:
            node_id: the node's id.
            params: the call's parameters.
            code: the step's code object (function or class), searched for declared files.
            inputs: short string values handed to it by upstream steps.
        """
        out = self.files_of(path_strings(params))
        out.update(self.files_of(inputs))
        out.update(self._mentioned(code))
        if node_id in self._roots:
            out.update(self._fallback)
        return dict(sorted(out.items()))


def changed_files(before: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """Files added, removed or changed between two ``label -> sha256`` maps, sorted."""
    return sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
