"""The fluent API, with the names an MLflow user already knows::

    import modelyard

    with modelyard.start_run(experiment="churn", name="baseline"):
        modelyard.log_params({"lr": 0.1, "depth": 6})
        for step, loss in enumerate(losses):
            modelyard.log_metric("loss", loss, step=step)
        modelyard.log_dataset(train_df, "train", context="train")

The stores are the active :class:`~modelyard.workspace.Workspace`'s: the one given to
``modelyard.set_workspace(ws)``, else the current project's, opened on first use by the layer
above (``modelyard/__init__.py`` hands this module a factory through
:func:`set_client_factory`; this package reads no settings). :func:`set_client` points the API
at one client directly. As in MLflow, ``start_run(run_id)`` resumes an existing run, and a run
started while another is active needs ``nested=True`` to become its child. Each thread (and
asyncio task) has its own stack of active runs; :func:`activate` makes a run active inside a
block (a pipeline step's run, around the step).
Logging with no active run starts one, as MLflow does; runs still active at interpreter exit
are ended ``FINISHED`` (``FAILED`` when the interpreter is exiting on an uncaught exception)
after their buffered records are written.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from modelyard.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from modelyard.store.artifacts import ArtifactRef
    from modelyard.tracking.client import TrackingClient
    from modelyard.tracking.entities import Page, RunInfo
    from modelyard.tracking.run import Run

__all__ = [
    "activate",
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
    "set_client_factory",
    "set_tag",
    "set_tags",
    "start_run",
]

_lock = threading.RLock()
_client: TrackingClient | None = None
# builds the client on first use when none was set (installed by the layer that owns settings)
_client_factory: Callable[[], TrackingClient] | None = None
# the active runs of this thread / asyncio task, innermost last; a new thread starts with none
_STACK: contextvars.ContextVar[tuple[Run, ...]] = contextvars.ContextVar(
    "modelyard_active_runs", default=()
)
_started: dict[str, Run] = {}  # runs start_run began and nobody ended yet, for the exit handler
_atexit_registered = False


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()
    _started.clear()
    _STACK.set(())  # the forking thread's runs belong to the parent


os.register_at_fork(after_in_child=_after_fork_in_child)


def get_client() -> TrackingClient:
    """The client the fluent API uses: the one :func:`set_client` gave, else one built by the
    factory of :func:`set_client_factory` on first use.

    Raises:
        ConfigError: neither was given (this module was used without ``import modelyard``'s
            public names or a workspace).
    """
    global _client
    client = _client
    if client is None:
        with _lock:
            if _client is None:
                if _client_factory is None:
                    raise ConfigError(
                        "the fluent tracking API has no tracking client",
                        hint="call modelyard.set_workspace(modelyard.Workspace.open(settings)) "
                        "once, or use the API through `import modelyard` (modelyard.start_run)",
                    )
                _client = _client_factory()
            client = _client
    return client


def set_client(client: TrackingClient | None) -> None:
    """Use ``client`` for the fluent API (``None``: build one with the factory on next use).

    Active runs of the previous client are left as they are; end them first.
    """
    global _client
    with _lock:
        _client = client


def set_client_factory(factory: Callable[[], TrackingClient] | None) -> None:
    """How :func:`get_client` builds the client when none was set: ``factory()``, on first use.

    ``modelyard/__init__.py`` installs one that returns the active workspace's tracking client
    (``modelyard.set_workspace``), so this package never reads settings itself. A client already
    in use stays in use.
    """
    global _client_factory
    with _lock:
        _client_factory = factory


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
            if not _started:
                return
            _, run = _started.popitem()
        try:
            run.end(status)
        except Exception:  # keep ending the others; the flusher logs what stays unwritten
            from modelyard.logs import get_logger

            get_logger("tracking").exception("could not end run at exit", extra={"run_id": run.id})


def start_run(
    run_id: str | None = None,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    tags: dict[str, Any] | None = None,
    parent_run_id: str | None = None,
    kind: str = "run",
    source: str | None = None,
    capture_lineage: bool = True,
    name: str | None = None,
) -> Run:
    """Start a run, or resume run ``run_id``, and make it this thread's active run.

    The arguments mean what they mean in ``mlflow.start_run``; use the run as a context
    manager to end it. Each thread (and asyncio task) has its own stack of active runs.

    Args:
        run_id: an existing run to resume (its status becomes RUNNING again); None starts a
            new run.
        experiment: the experiment's name (default: the parent's for a nested run, else the
            ``experiment`` setting).
        run_name: the new run's name (``name`` is accepted too).
        nested: with a run already active, start this one as its child; without it, starting
            a run while one is active raises, as in MLflow.
        tags: initial tags (set on a resumed run too).
        parent_run_id: the parent run (default: the active run, with ``nested=True``).
        kind: ``run``, ``pipeline`` or ``step``.
        source: the entry point recorded (default: the running script).
        capture_lineage: record git state and the environment.
        name: the same as ``run_name``.

    Raises:
        NotFoundError: ``run_id`` names no run.
        InvalidInputError: a run is active and ``nested`` is False, or a bad argument.
    """
    client = get_client()
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
    if run_id is not None:
        run = client.resume_run(run_id)
        if tags:
            run.set_tags(tags)
    else:
        run = client.start_run(
            experiment=experiment,
            name=run_name if run_name is not None else name,
            tags=tags,
            kind=kind,
            parent_run_id=parent_run_id,
            source=source,
            capture_lineage=capture_lineage,
        )
    _STACK.set((*_STACK.get(), run))
    with _lock:
        if len(_started) >= 64:  # runs ended through their context manager leave them here
            for rid in [rid for rid, r in _started.items() if r.status != "RUNNING"]:
                del _started[rid]
        _started[run.id] = run
        _register_atexit()
    return run


@contextlib.contextmanager
def activate(run: Run) -> Iterator[Run]:
    """Make ``run`` the active run of this thread inside the block, without ending it after.

    What a pipeline step's executor wraps a step in, so that ``modelyard.log_metric`` and the
    other fluent calls inside the step log to the step's run::

        with modelyard.tracking.activate(step_run):
            result = step_function(**inputs)

    In another process, activate a handle from ``TrackingClient.attach_run(run_id)``.
    """
    token = _STACK.set((*_STACK.get(), run))
    try:
        yield run
    finally:
        _STACK.reset(token)


def _active() -> Run | None:
    stack = _STACK.get()
    if not stack or stack[-1].status == "RUNNING":
        return stack[-1] if stack else None
    alive = tuple(r for r in stack if r.status == "RUNNING")
    _STACK.set(alive)
    return alive[-1] if alive else None


def active_run() -> Run | None:
    """This thread's innermost active run that has not ended, or None."""
    return _active()


def _run() -> Run:
    run = _active()
    return run if run is not None else start_run()


def end_run(status: str = "FINISHED") -> None:
    """End this thread's active run (no-op when none is active)."""
    run = _active()
    if run is None:
        return
    _STACK.set(_STACK.get()[:-1])
    with _lock:
        _started.pop(run.id, None)
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
    stack = _STACK.get()  # the hot path: no lock
    run = stack[-1] if stack else _run()
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
