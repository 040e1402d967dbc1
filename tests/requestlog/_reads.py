"""A local file system that records how many bytes each read asked for: what a Parquet reader
fetches at once is what it holds at once, so a test can bound a reader's memory without
measuring RSS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fsspec.implementations.local import LocalFileOpener, LocalFileSystem

from modelyard.store.artifacts import ArtifactStore


class _RecordingFile(LocalFileOpener):  # type: ignore[misc]
    def read(self, *args: Any, **kwargs: Any) -> Any:
        data = super().read(*args, **kwargs)
        self.fs.read_sizes.append(len(data))
        return data


class ReadSizes(LocalFileSystem):  # type: ignore[misc]
    """``LocalFileSystem`` whose files record the size of every ``read`` in ``read_sizes``."""

    cachable = False  # fsspec would hand every test the same instance

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.read_sizes: list[int] = []

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, **kwargs: Any) -> Any:
        if "r" not in mode:
            return super()._open(path, mode, block_size, **kwargs)
        return _RecordingFile(self._strip_protocol(path), mode, fs=self, **kwargs)


def recording_store(root: Path) -> ArtifactStore:
    """An artifact store on a local folder read through :class:`ReadSizes` (``store.fs``)."""
    return ArtifactStore(str(root), fs=ReadSizes(auto_mkdir=True), root=str(root), fsync=False)
