"""The fluent API, with the names an MLflow user already knows::

    import modelyard

    with modelyard.start_run(experiment="churn", name="baseline"):
        modelyard.log_params({"lr": 0.1, "depth": 6})
        for step, loss in enumerate(losses):
            modelyard.log_metric("loss", loss, step=step)
        modelyard.log_dataset(train_df, "train", context="train")

The stores come from :func:`modelyard.config.load_settings`, read once per process on first
use (:func:`set_client` points the API at another client). A run started while another is
active becomes its child. Logging with no active run starts one, as MLflow does; runs still
active at interpreter exit are ended ``FINISHED`` (``FAILED`` when the interpreter is exiting
on an uncaught exception) after their buffered records are written.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from modelyard.store.artifacts import ArtifactRef
    from modelyard.tracking.client import TrackingClient
    from modelyard.tracking.entities import Page, RunInfo
    from modelyard.tracking.run import Run

__all__ = [
    "active_run",
    "end_run",
    "get_client",
    "get_run",
    "log_artifact",
    "log_artifacts",
    "log_dataset",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "search_runs",
    "set_client",
    "set_tag",
    "set_tags",
    "start_run",
]

_lock = threading.RLock()
_client: TrackingClient | None = None
_stack: list[Run] = []
_atexit_registered = False


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()
    _stack.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def get_client() -> TrackingClient:
    """The client the fluent API uses (built from ``load_settings()`` on first use)."""
    global _client
    client = _client
    if client is None:
        with _lock:
            if _client is None:
                from modelyard.config import load_settings
                from modelyard.tracking.client import TrackingClient

                _client = TrackingClient.from_settings(load_settings())
            client = _client
    return client


def set_client(client: TrackingClient | None) -> None:
    """Use ``client`` for the fluent API (``None``: rebuild from settings on next use).

    Active runs of the previous client are left as they are; end them first.
    """
    global _client
    with _lock:
        _client = client


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        # registered after the flusher's handler, so (atexit is LIFO) runs end before the
        # flusher's last pass
        atexit.register(_end_all_at_exit)
        _atexit_registered = True


def _end_all_at_exit() -> None:
    status = "FAILED" if getattr(sys, "last_value", None) is not None else "FINISHED"
    while True:
        with _lock:
            if not _stack:
                return
            run = _stack.pop()
        try:
            run.end(status)
        except Exception:  # keep ending the others; the flusher logs what stays unwritten
            from modelyard.logs import get_logger

            get_logger("tracking").exception("could not end run at exit", extra={"run_id": run.id})


def start_run(
    name: str | None = None,
    *,
    experiment: str | None = None,
    tags: dict[str, Any] | None = None,
    parent_run_id: str | None = None,
    nested: bool = True,
    kind: str = "run",
    source: str | None = None,
    capture_lineage: bool = True,
    run_name: str | None = None,
) -> Run:
    """Start a run and make it the active one; use it as a context manager.

    Args:
        name: the run's name (``run_name`` is accepted too, as in MLflow).
        experiment: the experiment's name (default: the parent's for a nested run, else the
            ``experiment`` setting).
        tags: initial tags.
        parent_run_id: the parent run; by default the active run, if any (see ``nested``).
        nested: make a run started inside another one its child (default True); with False,
            starting a run while one is active raises.
        kind: ``run``, ``pipeline`` or ``step``.
        source: the entry point recorded (default: the running script).
        capture_lineage: record git state and the environment.
        run_name: MLflow's name for ``name``.

    Raises:
        InvalidInputError: a run is active and ``nested`` is False, or a bad argument.
    """
    client = get_client()
    with _lock:
        current = _active()
        if current is not None and parent_run_id is None:
            if not nested:
                raise InvalidInputError(
                    f"run {current.id} is already active",
                    hint="end it with modelyard.end_run(), or pass nested=True to start a child",
                    run_id=current.id,
                )
            parent_run_id = current.id
            if experiment is None:
                experiment = current.experiment
        run = client.start_run(
            experiment=experiment,
            name=name if name is not None else run_name,
            tags=tags,
            kind=kind,
            parent_run_id=parent_run_id,
            source=source,
            capture_lineage=capture_lineage,
        )
        _stack.append(run)
        _register_atexit()
    return run


def _active() -> Run | None:
    while _stack and _stack[-1].status != "RUNNING":
        _stack.pop()
    return _stack[-1] if _stack else None


def active_run() -> Run | None:
    """The innermost run started by :func:`start_run` that has not ended, or None."""
    with _lock:
        return _active()


def _run() -> Run:
    with _lock:
        run = _active()
    return run if run is not None else start_run()


def end_run(status: str = "FINISHED") -> None:
    """End the active run (no-op when none is active)."""
    with _lock:
        run = _active()
        if run is None:
            return
        _stack.pop()
    run.end(status)


def log_param(key: str, value: Any) -> None:
    """Log a param on the active run (see :meth:`Run.log_param`)."""
    _run().log_param(key, value)


def log_params(params: dict[str, Any]) -> None:
    """Log params on the active run."""
    _run().log_params(params)


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: float | None = None
) -> None:
    """Log a metric value on the active run (buffered; see :meth:`Run.log_metric`)."""
    try:
        run = _stack[-1]  # the hot path: no lock, no call
    except IndexError:
        run = _run()
    if run._ended:
        run = _run()
    run.log_metric(key, value, step, timestamp)


def log_metrics(
    metrics: dict[str, float], step: int | None = None, timestamp: float | None = None
) -> None:
    """Log several metrics at one step on the active run."""
    _run().log_metrics(metrics, step, timestamp)


def set_tag(key: str, value: Any) -> None:
    """Set a tag on the active run."""
    _run().set_tag(key, value)


def set_tags(tags: dict[str, Any]) -> None:
    """Set tags on the active run."""
    _run().set_tags(tags)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> ArtifactRef:
    """Store a file and attach it to the active run."""
    return _run().log_artifact(path, name)


def log_artifacts(
    folder: str | os.PathLike[str], prefix: str | None = None
) -> dict[str, ArtifactRef]:
    """Store every file under ``folder`` and attach them to the active run."""
    return _run().log_artifacts(folder, prefix)


def log_dataset(
    frame: Any, name: str, context: str | None = None, source: str | None = None
) -> dict[str, Any]:
    """Fingerprint a data frame and record it on the active run."""
    return _run().log_dataset(frame, name, context=context, source=source)


def get_run(run_id: str) -> RunInfo:
    """Everything stored about one run."""
    return get_client().get_run(run_id)


def search_runs(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: Sequence[str] | str | None = None,
    max_results: int = 100,
    page_token: str | None = None,
) -> Page[RunInfo]:
    """Search runs (see :meth:`TrackingClient.search_runs`)."""
    return get_client().search_runs(
        experiment=experiment,
        filter=filter,
        order_by=order_by,
        max_results=max_results,
        page_token=page_token,
    )
