"""One background thread per process that writes the buffered records of open runs.

Runs register when they start and unregister when they end. The thread wakes every
:data:`FLUSH_INTERVAL_S` seconds, or at once when a run's buffer reaches its size threshold, and
flushes every registered run. At interpreter exit (``atexit``) every registered run is flushed
one last time from the main thread, so a process that exits normally loses nothing.

In a forked child the parent's open runs are forgotten (their buffers dropped, nothing ended):
the parent writes them.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Protocol

from modelyard.logs import get_logger

__all__ = ["FLUSH_INTERVAL_S", "Flushable", "flusher"]

FLUSH_INTERVAL_S = 1.0

_log = get_logger("tracking")


class Flushable(Protocol):
    """What the flusher drives: a run with buffered records."""

    id: str

    def flush(self, *, wait_lineage: bool = False) -> None: ...


class _Flusher:
    """The process-wide flusher; the thread starts on the first registration."""

    def __init__(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._runs: dict[str, Flushable] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._atexit = False

    def register(self, run: Flushable) -> None:
        """Flush ``run`` periodically until :meth:`unregister`."""
        with self._lock:
            self._runs[run.id] = run
            if not self._atexit:
                atexit.register(self.flush_all, at_exit=True)
                self._atexit = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="modelyard-tracking-flusher", daemon=True
                )
                self._thread.start()

    def unregister(self, run: Flushable) -> None:
        """Stop flushing ``run`` (it has ended and written everything)."""
        with self._lock:
            self._runs.pop(run.id, None)

    def get(self, run_id: str) -> Flushable | None:
        """The open run with this id in this process, if any."""
        with self._lock:
            return self._runs.get(run_id)

    def wake(self) -> None:
        """Flush soon: a buffer reached its size threshold."""
        self._wake.set()

    def flush_all(self, *, at_exit: bool = False) -> None:
        """Flush every registered run now; failures are logged, the records kept for a retry.

        Args:
            at_exit: also wait for lineage still being captured, so that it is stored.
        """
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            try:
                run.flush(wait_lineage=at_exit)
            except Exception:  # one run's failure must not stop the others being written
                _log.exception("could not flush buffered run records", extra={"run_id": run.id})

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self.flush_all()

    def _after_fork_in_child(self) -> None:
        # The parent's runs belong to the parent: a forked child must neither write their
        # buffered records a second time nor end them at its exit.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        runs, self._runs = list(self._runs.values()), {}
        for run in runs:
            forget = getattr(run, "_forget_after_fork", None)
            if forget is not None:
                forget()


flusher = _Flusher()
os.register_at_fork(after_in_child=flusher._after_fork_in_child)
