"""Executors run step attempts: in-process or in forked processes (local), or on Ray.

Every executor takes :class:`StepTask` objects and hands back :class:`Completed` ones; the
runner decides what is ready, what is cached, and what to retry, so all executors share one set
of semantics. An attempt reads its inputs from the artifact store by sha256 (or from memory when
they were produced in the same process) and writes its outputs back before it reports.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.errors import ModelyardError, PipelineError
from modelyard.pipelines.datafiles import MAX_PATH_CHARS

if TYPE_CHECKING:
    from modelyard.pipelines.step import FunctionStep, Step, StepContext
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.tracking.client import TrackingClient

__all__ = ["Completed", "Executor", "StepTask", "run_attempt"]


@dataclass
class StepTask:
    """One attempt of one node.

    Attributes:
        node_id: the node's id in the graph.
        step: the step object (function or class form).
        params: the call's parameters.
        inputs: input name -> locator (see :func:`modelyard.pipelines.cache.record_fingerprint`).
        n_outputs: declared number of outputs, or None.
        output_names: declared output names (a dict return), or ().
        attempt: 1 for the first attempt.
        timeout_s: per-attempt limit, or None.
        ready_at: monotonic time before which the attempt must not start (retry backoff).
        context: what the step sees through :func:`modelyard.pipelines.current_context`.
        tracking: the runner's tracking client, so that ``modelyard.log_metric`` inside the
            step logs to the step's run (not pickled: elsewhere a client is opened from the
            context's settings).
        origin_pid: the runner's process.
    """

    node_id: str
    step: FunctionStep | Step
    params: dict[str, Any]
    inputs: dict[str, dict[str, Any]]
    n_outputs: int | None = None
    output_names: tuple[str, ...] = ()
    attempt: int = 1
    timeout_s: float | None = None
    ready_at: float = 0.0
    context: StepContext | None = None
    tracking: TrackingClient | None = field(default=None, compare=False)
    origin_pid: int = field(default_factory=os.getpid)

    def __getstate__(self) -> dict[str, Any]:
        # a client holds connections: a task sent to another interpreter opens its own
        return {**self.__dict__, "tracking": None}


@dataclass
class Completed:
    """The outcome of one attempt.

    Attributes:
        node_id: the node's id.
        ok: whether the attempt succeeded.
        record: the output record (when ok).
        metrics: metrics the step logged with :func:`modelyard.pipelines.log_metric`.
        duration_s: the attempt's duration.
        error_type: the exception's class name (when not ok).
        error: the exception's message.
        hint: the exception's hint, for modelyard errors.
        traceback: the formatted traceback, for logs.
        timed_out: the attempt was stopped at its timeout.
        exception: the exception itself when it ran in this process.
    """

    node_id: str
    ok: bool
    record: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    error_type: str = ""
    error: str = ""
    hint: str | None = None
    traceback: str = ""
    timed_out: bool = False
    exception: BaseException | None = None


class Executor(Protocol):
    """What the runner needs from an executor."""

    def submit(self, task: StepTask) -> None:
        """Queue an attempt; it starts no earlier than ``task.ready_at``."""

    def wait(self) -> list[Completed]:
        """Run or wait until at least one queued attempt completes; return the completed ones."""

    def busy(self) -> bool:
        """Whether attempts are queued or running."""

    def close(self) -> None:
        """Stop what is running and release resources."""


# ---------------------------------------------------------------- one attempt, wherever it runs
def load_input(
    locator: dict[str, Any], store: ArtifactStore, memo: dict[str, Any], *, trust: bool
) -> Any:
    """Load the value a locator points at (from ``memo`` when this process made it)."""
    if "gather" in locator:  # a list, tuple or dict of step outputs (fan-in)
        items = [(key, load_input(loc, store, memo, trust=trust)) for key, loc in locator["items"]]
        if locator["gather"] == "dict":
            return dict(items)
        values = [v for _, v in items]
        return tuple(values) if locator["gather"] == "tuple" else values
    if "record" in locator:
        record = locator["record"]
        if record["kind"] == "tuple":
            return tuple(_load_ref(r, store, memo, trust) for r in record["items"])
        return {k: _load_ref(r, store, memo, trust) for k, r in record["items"].items()}
    value = _load_ref(locator["ref"], store, memo, trust)
    for key in locator.get("path", ()):
        value = value[key]
    return value


def _load_ref(ref: dict[str, Any], store: ArtifactStore, memo: dict[str, Any], trust: bool) -> Any:
    from modelyard.pipelines.serializers import decode

    sha = ref["sha256"]
    if sha in memo:
        return memo[sha]
    value = decode(ref["codec"], store.get_bytes(sha), trust=trust)
    memo[sha] = value
    return value


def store_outputs(
    value: Any, task: StepTask, store: ArtifactStore, memo: dict[str, Any] | None
) -> dict[str, Any]:
    """Serialise a step's return value into the artifact store; return its output record."""
    name = task.node_id
    trust = task.step.options.trust
    if task.n_outputs is not None:
        if task.output_names:
            if not isinstance(value, dict) or set(value) != set(task.output_names):
                raise PipelineError(
                    f"step {name!r} declares outputs {list(task.output_names)} but returned "
                    f"{_describe(value)}",
                    hint="return a dict with exactly those keys",
                    step=name,
                )
            items = {
                k: _put(value[k], name, trust, store, memo, where=f'output["{k}"]')
                for k in task.output_names
            }
            return {"kind": "dict", "items": items}
        if not isinstance(value, tuple | list) or len(value) != task.n_outputs:
            raise PipelineError(
                f"step {name!r} declares {task.n_outputs} outputs but returned {_describe(value)}",
                hint=f"return a tuple of {task.n_outputs} values",
                step=name,
            )
        return {
            "kind": "tuple",
            "items": [
                _put(v, name, trust, store, memo, where=f"output[{i}]") for i, v in enumerate(value)
            ],
        }
    if isinstance(value, tuple):
        return {
            "kind": "tuple",
            "items": [
                _put(v, name, trust, store, memo, where=f"output[{i}]") for i, v in enumerate(value)
            ],
        }
    if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        from modelyard.pipelines.serializers import stores_as_one_document

        if not stores_as_one_document(value):
            items = {
                k: _put(v, name, trust, store, memo, where=f'output["{k}"]')
                for k, v in value.items()
            }
            return {"kind": "dict", "items": items}
    return {"kind": "single", "ref": _put(value, name, trust, store, memo)}


def _describe(value: Any) -> str:
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    return f"a {type(value).__module__}.{type(value).__qualname__}"


def _put(
    value: Any,
    step: str,
    trust: bool,
    store: ArtifactStore,
    memo: dict[str, Any] | None,
    *,
    where: str = "output",
) -> dict[str, Any]:
    from modelyard.pipelines.serializers import encode

    codec, data = encode(value, step=step, trust=trust, where=where)
    ref = store.put_bytes(data)
    if memo is not None:
        memo[ref.sha256] = value
    out: dict[str, Any] = {"sha256": ref.sha256, "codec": codec, "size": ref.size_bytes}
    if isinstance(value, str) and len(value) <= MAX_PATH_CHARS:
        out["text"] = True  # may name a file: the runner fingerprints what it names downstream
    return out


@contextlib.contextmanager
def _step_run_active(task: StepTask) -> Iterator[None]:
    """Make the step's tracked run the active run while the step runs.

    ``modelyard.log_metric`` (and the other fluent calls) inside a step then log to the step's
    run. In the runner's process that is the runner's own handle; in a forked child, a
    forkserver child or on Ray a handle attached to the same run, flushed when the step ends.
    """
    ctx = task.context
    if ctx is None or ctx.run_id is None:
        yield
        return
    from modelyard.tracking.fluent import activate

    client = task.tracking
    if client is None:
        if ctx.settings is None:
            yield
            return
        from modelyard.tracking.client import TrackingClient

        client = TrackingClient.from_settings(ctx.settings)
    run = client.attach_run(ctx.run_id)
    try:
        with activate(run):
            yield
    finally:
        if os.getpid() != task.origin_pid or task.tracking is None:
            run.flush()  # this process's handle: the runner ends the run, not this one


def run_attempt(
    task: StepTask, store: ArtifactStore, memo: dict[str, Any] | None = None
) -> Completed:
    """Load inputs, call the step, store its outputs; never raises for a step's own error."""
    from modelyard.pipelines.step import current_metrics, step_context_var

    started = time.perf_counter()
    metrics: dict[str, float] = {}
    cache = memo if memo is not None else {}
    token = current_metrics().set(metrics)
    context_token = step_context_var().set(task.context)
    try:
        trust = task.step.options.trust
        kwargs = dict(task.params)
        for key in list(kwargs):
            if key.startswith("init."):
                del kwargs[key]
        for arg, locator in task.inputs.items():
            kwargs[arg] = load_input(locator, store, cache, trust=trust)
        with _step_run_active(task):
            value = task.step.invoke(kwargs)
        record = store_outputs(value, task, store, memo)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return Completed(
            task.node_id,
            ok=False,
            metrics=metrics,
            duration_s=time.perf_counter() - started,
            error_type=type(exc).__name__,
            error=exc.message if isinstance(exc, ModelyardError) else str(exc),
            hint=exc.hint if isinstance(exc, ModelyardError) else None,
            traceback=traceback.format_exc(),
            exception=exc,
        )
    finally:
        current_metrics().reset(token)
        step_context_var().reset(context_token)
    return Completed(
        task.node_id,
        ok=True,
        record=record,
        metrics=metrics,
        duration_s=time.perf_counter() - started,
    )
