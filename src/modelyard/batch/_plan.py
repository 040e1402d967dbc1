"""What a scoring job reads: the input files, their fingerprints and the chunks they split into.

A chunk is the unit of parallel work and of resumption: a run of row groups of one Parquet
file (at most ``chunk_rows`` rows, unless one row group is larger), or one whole CSV file
(streamed in blocks). Its output part is written once, atomically, so a part on disk is a chunk
that is done. :func:`check_inputs` reads every file's columns before any row is scored, so an
input missing a feature column is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    import pyarrow as pa

    from modelyard.data.contract import Contract

__all__ = [
    "Chunk",
    "InputFile",
    "check_inputs",
    "is_url",
    "open_csv",
    "open_input",
    "plan_chunks",
    "scan_inputs",
]

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


def is_url(path: str | os.PathLike[str]) -> bool:
    """True for a remote input (``s3://bucket/key``, any fsspec URL); False for a local path."""
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


@contextmanager
def open_input(path: str, storage_options: dict[str, Any] | None = None) -> Iterator[Any]:
    """What Arrow's readers take for ``path``: the path itself, or an open remote file."""
    if not is_url(path):
        yield path
        return
    import fsspec

    with fsspec.open(path, "rb", **(storage_options or {})) as fh:
        yield fh


def _digest(fh: Any) -> str:
    return hashlib.file_digest(fh, "sha256").hexdigest()


def _wanted(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in _SUFFIXES


def _hidden(relative: str) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.split("/") if part)


def _no_file(where: str) -> InvalidInputError:
    return InvalidInputError(
        f"folder {where!r} holds no .parquet or .csv file",
        hint="point at the files to score",
        file=where,
    )


def _not_scorable(where: str) -> InvalidInputError:
    return InvalidInputError(
        f"{where!r} is neither Parquet (.parquet) nor CSV (.csv)",
        hint="convert it, or rename it if it is one of them",
        file=where,
    )


def _scan_local(item: str | os.PathLike[str]) -> list[InputFile]:
    path = Path(item)
    if path.is_dir():
        found = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and _wanted(p.name) and not _hidden(p.relative_to(path).as_posix())
        )
        if not found:
            raise _no_file(str(path))
    elif path.is_file():
        if not _wanted(path.name):
            raise _not_scorable(str(path))
        found = [path]
    else:
        raise NotFoundError(f"input {str(path)!r} does not exist", file=str(path))
    out = []
    for p in found:
        with p.open("rb") as fh:
            sha256 = _digest(fh)
        out.append(
            InputFile(
                path=str(p.resolve()),
                format=_SUFFIXES[p.suffix.lower()],
                size_bytes=p.stat().st_size,
                sha256=sha256,
            )
        )
    return out


def _scan_url(url: str, storage_options: dict[str, Any]) -> list[InputFile]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, **storage_options)
    root = root.rstrip("/")
    if fs.isdir(root):
        found = sorted(p for p in fs.find(root) if _wanted(p) and not _hidden(p[len(root) :]))
        if not found:
            raise _no_file(url)
    elif fs.isfile(root):
        if not _wanted(root):
            raise _not_scorable(url)
        found = [root]
    else:
        raise NotFoundError(f"input {url!r} does not exist", file=url)
    out = []
    for p in found:
        with fs.open(p, "rb") as fh:
            sha256 = _digest(fh)
        out.append(
            InputFile(
                path=fs.unstrip_protocol(p),
                format=_SUFFIXES[os.path.splitext(p)[1].lower()],
                size_bytes=int(fs.size(p)),
                sha256=sha256,
            )
        )
    return out


def scan_inputs(
    inputs: Sequence[str | os.PathLike[str]], storage_options: dict[str, Any] | None = None
) -> list[InputFile]:
    """Expand folders into their Parquet/CSV files (sorted) and fingerprint every file.

    An input is a local file or folder, or a URL of one (``s3://bucket/day/``, read with
    fsspec and ``storage_options``). Files and folders whose name starts with ``_`` or ``.``
    inside a folder are skipped (``_SUCCESS``, ``.crc`` files of other tools' outputs).

    Raises:
        NotFoundError: an input does not exist.
        InvalidInputError: a file is neither Parquet nor CSV, or a folder holds none.
    """
    if not inputs:
        raise InvalidInputError("no input given", hint="modelyard score NAME@ALIAS data.parquet")
    out: list[InputFile] = []
    for item in inputs:
        if is_url(item):
            out.extend(_scan_url(os.fspath(item), storage_options or {}))
        else:
            out.extend(_scan_local(item))
    return out


def plan_chunks(
    files: Sequence[InputFile], chunk_rows: int, storage_options: dict[str, Any] | None = None
) -> list[Chunk]:
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
            with open_input(f.path, storage_options) as source:
                meta = pq.ParquetFile(source).metadata
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


def open_csv(
    source: Any, numeric: Sequence[str] = (), *, path: str, block_bytes: int = 8 << 20
) -> Any:
    """A streaming reader of a CSV file; the ``numeric`` columns are read as text.

    Arrow infers a column's type from the first block, so a number column whose first bad value
    comes later would stop the whole job; read as text, each value is parsed by the row checks
    and a bad one quarantines its row. Empty cells and ``NA``-like values are nulls.

    Raises:
        InvalidInputError: the file is empty or not CSV.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        return pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=block_bytes),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(numeric, pa.string()), strings_can_be_null=True
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInputError(
            f"{path} is not a readable CSV file: {exc}",
            hint="a CSV input needs a header line naming its columns",
            file=path,
        ) from exc


def _schema(
    f: InputFile, numeric: Sequence[str], storage_options: dict[str, Any] | None
) -> pa.Schema:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open_input(f.path, storage_options) as source:
        if f.format == "csv":
            return open_csv(source, numeric, path=f.path, block_bytes=1 << 20).schema
        try:
            return pq.read_schema(source)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInputError(
                f"{f.path} is not a readable Parquet file: {exc}", file=f.path
            ) from exc


def check_inputs(
    files: Sequence[InputFile],
    features: Sequence[str],
    contract: Contract | None,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Check that every file holds the ``features`` columns with types the contract can read.

    Raises:
        InvalidInputError: a file misses a feature column or holds a type that can never be the
            contract's (a timestamp where a number is expected), naming the file and column.
    """
    from modelyard.batch._rows import check_rows, numeric_columns

    numeric = numeric_columns(features, contract)
    for f in files:
        schema = _schema(f, numeric, storage_options)
        check_rows(schema.empty_table(), features, contract, source=f.path)
