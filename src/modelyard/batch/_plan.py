"""What a scoring job reads: the input files, their fingerprints and the chunks they split into.

A chunk is the unit of parallel work and of resumption: a run of row groups of one Parquet
file (at most ``chunk_rows`` rows, unless one row group is larger), or one whole CSV file
(streamed in blocks). Its output part is written once, atomically, so a part on disk is a chunk
that is done.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.errors import InvalidInputError, NotFoundError

__all__ = ["Chunk", "InputFile", "plan_chunks", "scan_inputs"]

_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input file: its path, format, size and content hash."""

    path: str
    format: str
    size_bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True)
class Chunk:
    """A unit of work: ``row_groups`` of a Parquet file (empty for a whole CSV file)."""

    index: int
    path: str
    format: str
    row_groups: tuple[int, ...]
    rows: int | None

    @property
    def part_name(self) -> str:
        return f"part-{self.index:05d}.parquet"


def _digest(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def scan_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[InputFile]:
    """Expand folders into their Parquet/CSV files (sorted) and fingerprint every file.

    Raises:
        NotFoundError: an input does not exist.
        InvalidInputError: a file is neither Parquet nor CSV, or a folder holds none.
    """
    if not inputs:
        raise InvalidInputError("no input given", hint="modelyard score NAME@ALIAS data.parquet")
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES
            )
            found = [p for p in found if not any(part.startswith(("_", ".")) for part in p.parts)]
            if not found:
                raise InvalidInputError(
                    f"folder {str(path)!r} holds no .parquet or .csv file",
                    hint="point at the files to score",
                    file=str(path),
                )
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in _SUFFIXES:
                raise InvalidInputError(
                    f"{str(path)!r} is neither Parquet (.parquet) nor CSV (.csv)",
                    hint="convert it, or rename it if it is one of them",
                    file=str(path),
                )
            files.append(path)
        else:
            raise NotFoundError(f"input {str(path)!r} does not exist", file=str(path))
    out = []
    for path in files:
        out.append(
            InputFile(
                path=str(path.resolve()),
                format=_SUFFIXES[path.suffix.lower()],
                size_bytes=path.stat().st_size,
                sha256=_digest(path),
            )
        )
    return out


def plan_chunks(files: Sequence[InputFile], chunk_rows: int) -> list[Chunk]:
    """Split the files into chunks of about ``chunk_rows`` rows (whole row groups).

    Raises:
        InvalidInputError: a Parquet file cannot be read (not Parquet, truncated).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    chunks: list[Chunk] = []
    for f in files:
        if f.format == "csv":
            chunks.append(Chunk(len(chunks), f.path, "csv", (), None))
            continue
        try:
            meta = pq.ParquetFile(f.path).metadata
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInputError(
                f"{f.path} is not a readable Parquet file: {exc}", file=f.path
            ) from exc
        group: list[int] = []
        rows = 0
        for i in range(meta.num_row_groups):
            n = meta.row_group(i).num_rows
            if group and rows + n > chunk_rows:
                chunks.append(Chunk(len(chunks), f.path, "parquet", tuple(group), rows))
                group, rows = [], 0
            group.append(i)
            rows += n
        if group or meta.num_row_groups == 0:
            chunks.append(Chunk(len(chunks), f.path, "parquet", tuple(group), rows))
    return chunks
