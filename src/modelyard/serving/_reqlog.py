"""The front's side of the request log: configuration for the workers, and the few records
only the front has.

The model workers write the request log (``modelyard.requestlog``): they hold each batch's
input tensor and outputs already, so the front neither imports pyarrow nor encodes a record per
request on its event loop. The front keeps, in a bounded buffer, only what the workers cannot
see - feedback and requests refused before they reached a batch (bad input, overload) - and
ships it to a worker as one frame about every 100 ms.

Nothing is dropped silently: a record that does not fit the buffer is counted in
:attr:`LogRelay.dropped`, and the workers report theirs (``modelyard_log_records_dropped_total``
is the sum).
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

__all__ = ["LogRelay", "LogStore"]


class LogStore(Protocol):
    """What the log needs from an artifact store: where it is (``ArtifactStore`` has it; the
    workers open their own)."""

    @property
    def url(self) -> str: ...

    @property
    def storage_options(self) -> dict[str, Any]: ...


class LogRelay:
    """Where the workers write the log, and the front's own small buffer of records.

    Args:
        url: the artifact store's URL (a folder or ``s3://...``).
        storage_options: fsspec options for it (sent to the workers over their socket, never
            on a command line or in a log).
        sample_rate: fraction of requests logged (feedback is always kept).
        flush_s: how often the workers write.
        max_records: records buffered per worker (and in the front) beyond which they are
            dropped and counted.
    """

    def __init__(
        self,
        url: str,
        storage_options: dict[str, Any] | None = None,
        *,
        sample_rate: float = 1.0,
        flush_s: float = 10.0,
        max_records: int = 100_000,
    ) -> None:
        self.url = url
        self.storage_options = dict(storage_options or {})
        self.sample_rate = sample_rate
        self.flush_s = flush_s
        self.max_records = max_records
        self.dropped = 0
        self._feedback: list[tuple[str, Any, Any, Any]] = []
        self._records: list[tuple[str, int, float]] = []

    @classmethod
    def for_store(cls, store: LogStore, **kwargs: Any) -> LogRelay:
        """A relay for an ``ArtifactStore`` (its URL and storage options)."""
        return cls(store.url, store.storage_options, **kwargs)

    def config(self, model: str, version: str) -> dict[str, Any]:
        """The ``KIND_LOG_CONFIG`` frame for the workers."""
        return {
            "url": self.url,
            "storage_options": self.storage_options,
            "model": model,
            "version": version,
            "sample_rate": self.sample_rate,
            "flush_s": self.flush_s,
            "max_records": self.max_records,
        }

    def _full(self) -> bool:
        if len(self._feedback) + len(self._records) >= self.max_records:
            self.dropped += 1
            return True
        return False

    def add_feedback(self, request_id: str, label: Any, outcome: Any, extra: Any) -> bool:
        """Buffer one feedback record; ``False`` (and counted) when the buffer is full."""
        if self._full():
            return False
        self._feedback.append((request_id, label, outcome, extra or None))
        return True

    def add_refused(self, request_id: str, status: int, latency_s: float) -> None:
        """Buffer a request answered without a model result (its columns are null)."""
        if not self._full():
            self._records.append((request_id, status, latency_s * 1000.0))

    def take(self) -> bytes | None:
        """The buffered records as one ``KIND_LOG`` payload (emptying the buffer), or None."""
        if not self._feedback and not self._records:
            return None
        payload = orjson.dumps(
            {"fb": self._feedback, "rec": self._records},
            option=orjson.OPT_SERIALIZE_NUMPY,
            default=str,
        )
        self._feedback = []
        self._records = []
        return payload

    def put_back(self, payload: bytes) -> None:
        """Keep a payload no worker could take (none alive) for the next try."""
        doc = orjson.loads(payload)
        for rid, label, outcome, extra in doc["fb"]:
            self.add_feedback(rid, label, outcome, extra)
        for rid, status, latency_ms in doc["rec"]:
            self.add_refused(rid, status, latency_ms / 1000.0)
