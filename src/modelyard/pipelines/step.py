"""Steps: the units of work of a pipeline, as decorated functions or :class:`Step` subclasses.

A step called inside a ``@modelyard.pipeline`` definition does not run: it records a node in the
graph being built and returns a lazy :class:`~modelyard.pipelines.graph.StepOutput` handle. Called
anywhere else, a function step is just its function, so it can be unit-tested directly.

Arguments of a step call that are handles are the step's *inputs* (artifacts produced upstream);
every other argument is a *parameter* and must be JSON-able, since it is part of the cache key.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, overload

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from modelyard.config import Settings

__all__ = ["FunctionStep", "Step", "StepOptions", "current_metrics", "log_metric", "step"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class StepOptions:
    """How a step runs.

    Attributes:
        name: node name in the graph (default: the function or class name).
        retries: extra attempts after a failure.
        retry_backoff_s: wait before the first retry; doubles on each further retry.
        timeout_s: per-attempt limit; the attempt runs in a child process that is killed past it.
        cache: reuse a previous result when code, parameters and inputs are unchanged.
        trust: allow outputs that only pickle can store (loading them runs code).
        outputs: number of outputs (a tuple) or their names (a dict) so that the handle can be
            unpacked in the pipeline body; a ``-> tuple[A, B]`` annotation does the same.
    """

    name: str | None = None
    retries: int = 0
    retry_backoff_s: float = 0.5
    timeout_s: float | None = None
    cache: bool = True
    trust: bool = False
    outputs: int | tuple[str, ...] | None = None

    def check(self, where: str) -> None:
        """Raise :class:`InvalidInputError` on impossible values, naming ``where`` they were set."""
        if self.retries < 0:
            raise InvalidInputError(f"retries={self.retries} at {where}: must be 0 or more")
        if self.retry_backoff_s < 0:
            raise InvalidInputError(
                f"retry_backoff_s={self.retry_backoff_s} at {where}: must be 0 or more"
            )
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise InvalidInputError(f"timeout_s={self.timeout_s} at {where}: must be positive")
        if isinstance(self.outputs, int) and self.outputs < 1:
            raise InvalidInputError(f"outputs={self.outputs} at {where}: must be 1 or more")


class _StepBase:
    """What the graph builder needs from a step, for both forms."""

    options: StepOptions

    @property
    def name(self) -> str:
        raise NotImplementedError

    def target(self) -> Callable[..., Any]:
        """The callable that does the work (its signature lists inputs and parameters)."""
        raise NotImplementedError

    def code_object(self) -> Any:
        """What the cache hashes as this step's code (a function or a class)."""
        raise NotImplementedError

    def bound_params(self) -> dict[str, Any]:
        """Parameters fixed when the step was made (class form: the constructor's arguments)."""
        return {}

    def invoke(self, kwargs: dict[str, Any]) -> Any:
        """Run the work with the inputs and parameters of one call."""
        return self.target()(**kwargs)

    def _trace(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The step output handle when a pipeline is being built, else None."""
        tracer = _TRACER.get()
        if tracer is None:
            return None
        assert isinstance(self, FunctionStep | Step)  # the only two subclasses
        return tracer.add_call(self, args, kwargs)


class FunctionStep(_StepBase):
    """A function made into a step by :func:`step`. Calling it outside a pipeline runs it."""

    def __init__(self, fn: Callable[..., Any], options: StepOptions) -> None:
        self.fn = fn
        self.options = options
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        return self.options.name or self.fn.__name__

    def target(self) -> Callable[..., Any]:
        return self.fn

    def code_object(self) -> Any:
        return self.fn

    def with_options(self, **changes: Any) -> FunctionStep:
        """A copy of this step with some options changed (``load.with_options(name="load2")``)."""
        options = replace(self.options, **changes)
        options.check(f"{self.fn.__code__.co_filename}:{self.fn.__code__.co_firstlineno}")
        return FunctionStep(self.fn, options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        handle = self._trace(args, kwargs)
        if handle is not None:
            return handle
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<step {self.name}>"


class Step(_StepBase):
    """Base class of class-form steps, in the scikit-learn habit: the constructor only stores.

    Subclass it, take parameters as keyword arguments of ``__init__`` (stored on ``self`` under
    the same names, or simply by this base constructor), and do the work in
    ``run(self, **inputs)``::

        class Scale(modelyard.pipelines.Step):
            retries = 1

            def __init__(self, factor: float = 2.0) -> None:
                self.factor = factor

            def run(self, data: list[float]) -> list[float]:
                return [x * self.factor for x in data]

    Inside a pipeline, ``Scale(factor=3)(data=handle)`` adds a node.

    Class attributes ``retries``, ``retry_backoff_s``, ``timeout_s``, ``cache``, ``trust`` and
    ``outputs`` set the step's options.
    """

    retries: ClassVar[int] = 0
    retry_backoff_s: ClassVar[float] = 0.5
    timeout_s: ClassVar[float | None] = None
    cache: ClassVar[bool] = True
    trust: ClassVar[bool] = False
    outputs: ClassVar[int | tuple[str, ...] | None] = None
    step_name: ClassVar[str | None] = None

    def __init__(self, **params: Any) -> None:
        for key, value in params.items():
            setattr(self, key, value)
        self._params = dict(params)

    def run(self, **inputs: Any) -> Any:
        """Do the work; override in subclasses."""
        raise NotImplementedError(f"{type(self).__name__}.run is not implemented")

    @property
    def options(self) -> StepOptions:  # type: ignore[override]
        return StepOptions(
            name=self.step_name,
            retries=self.retries,
            retry_backoff_s=self.retry_backoff_s,
            timeout_s=self.timeout_s,
            cache=self.cache,
            trust=self.trust,
            outputs=self.outputs,
        )

    @property
    def name(self) -> str:
        return self.step_name or type(self).__name__

    def target(self) -> Callable[..., Any]:
        return self.run

    def code_object(self) -> Any:
        return type(self)

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters and their current values."""
        if "_params" in self.__dict__ and type(self).__init__ is Step.__init__:
            return dict(self._params)
        sig = inspect.signature(type(self).__init__)
        out: dict[str, Any] = {}
        for pname, param in sig.parameters.items():
            if pname == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if hasattr(self, pname):
                out[pname] = getattr(self, pname)
        return out

    def bound_params(self) -> dict[str, Any]:
        return {f"init.{k}": v for k, v in self.get_params().items()}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        handle = self._trace(args, kwargs)
        if handle is not None:
            return handle
        return self.run(*args, **kwargs)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({inner})"


AnyStep = FunctionStep | Step


@overload
def step(fn: F, /) -> FunctionStep: ...


@overload
def step(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_backoff_s: float = 0.5,
    timeout_s: float | None = None,
    cache: bool = True,
    trust: bool = False,
    outputs: int | tuple[str, ...] | None = None,
) -> Callable[[F], FunctionStep]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_backoff_s: float = 0.5,
    timeout_s: float | None = None,
    cache: bool = True,
    trust: bool = False,
    outputs: int | tuple[str, ...] | None = None,
) -> FunctionStep | Callable[[F], FunctionStep]:
    """Make a function a pipeline step: ``@step`` or ``@step(retries=2, timeout_s=60)``.

    Args:
        fn: the function (when used without parentheses).
        name: node name (default: the function's name).
        retries: extra attempts after a failure.
        retry_backoff_s: wait before the first retry, doubled for each further one.
        timeout_s: per-attempt time limit; the attempt runs in a child process.
        cache: set False to always run this step.
        trust: allow outputs that need pickle (the reader must trust the store).
        outputs: number or names of outputs, so the handle can be unpacked.

    Raises:
        InvalidInputError: an option is out of range.
    """
    options = StepOptions(
        name=name,
        retries=retries,
        retry_backoff_s=retry_backoff_s,
        timeout_s=timeout_s,
        cache=cache,
        trust=trust,
        outputs=outputs,
    )

    def wrap(func: Callable[..., Any]) -> FunctionStep:
        if not callable(func) or isinstance(func, type):
            raise InvalidInputError(
                f"@step decorates functions, not {func!r}",
                hint="for a class, subclass modelyard.pipelines.Step and implement run()",
            )
        code = getattr(func, "__code__", None)
        where = f"{code.co_filename}:{code.co_firstlineno}" if code else repr(func)
        options.check(where)
        return FunctionStep(func, options)

    if fn is not None:
        return wrap(fn)
    return wrap


# ---------------------------------------------------------------- tracing a pipeline body
class Tracer(Protocol):
    """Records step calls while a pipeline function is traced (the graph builder)."""

    def add_call(
        self, s: FunctionStep | Step, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Record a call of ``s`` and return its lazy output handle."""
        ...


_TRACER: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar(
    "modelyard_pipeline_builder", default=None
)


def tracer_var() -> contextvars.ContextVar[Tracer | None]:
    """The context variable the graph builder sets while it traces a pipeline function.

    It lives here, below the graph, so that a step reaches the builder without importing it.
    """
    return _TRACER


_IMPORTING: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "modelyard_importing_pipeline_module", default=None
)


def importing_module() -> str | None:
    """The module ``modelyard run`` is importing right now to find its pipeline, if any.

    A pipeline run while its module is imported (``tiny.run()`` at module level, without an
    ``if __name__ == "__main__":`` guard) is not what ``modelyard run`` was asked to run; the
    runner marks such a run so that ``--if-changed`` does not count it.
    """
    return _IMPORTING.get()


def importing_module_var() -> contextvars.ContextVar[str | None]:
    """The context variable :func:`modelyard.pipelines.loader.load_pipeline` sets."""
    return _IMPORTING


# ---------------------------------------------------------------- metrics from inside a step
_METRICS: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "modelyard_step_metrics", default=None
)


def log_metric(key: str, value: float) -> None:
    """Record a metric of the running step; it is logged on the step's run and the pipeline's.

    Outside a running step this does nothing, so step functions stay callable in plain tests.
    """
    metrics = _METRICS.get()
    if metrics is not None:
        metrics[str(key)] = float(value)


def current_metrics() -> contextvars.ContextVar[dict[str, float] | None]:
    """The context variable executors set around a step to collect its metrics."""
    return _METRICS


# ---------------------------------------------------------------- what a running step can see
@dataclass(frozen=True)
class StepContext:
    """Where the running step runs: the run's settings and the tracked runs it belongs to.

    Attributes:
        step: the step's node id in the graph.
        run_id: the step's own tracked run.
        pipeline_run_id: the pipeline's tracked run (the step run's parent).
        settings: the settings the pipeline was started with (the same stores, home and
            experiment), so a step that registers a model writes to the run's registry.
    """

    step: str
    run_id: str | None
    pipeline_run_id: str | None
    settings: Settings | None


_CONTEXT: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "modelyard_step_context", default=None
)


def current_context() -> StepContext | None:
    """The running step's :class:`StepContext`, or None outside a pipeline run."""
    return _CONTEXT.get()


def current_settings() -> Settings:
    """The settings of the running pipeline.

    A step that opens the registry or the stores should use this rather than
    :func:`modelyard.config.load_settings`, so that ``modelyard --home X run`` and
    ``Pipeline.run(settings=...)`` reach the step.

    Raises:
        PipelineError: no pipeline step is running in this context (a step function called
            directly, in a unit test): pass the settings to it instead.
    """
    ctx = _CONTEXT.get()
    if ctx is not None and ctx.settings is not None:
        return ctx.settings
    from modelyard.errors import PipelineError

    raise PipelineError(
        "current_settings() is only known inside a running pipeline step",
        hint="outside a run, read them once at the edge: modelyard.load_settings(), and pass "
        "them in",
    )


def current_run_id() -> str | None:
    """The tracked run of the pipeline the running step belongs to (None outside a run)."""
    ctx = _CONTEXT.get()
    return ctx.pipeline_run_id if ctx is not None else None


def step_context_var() -> contextvars.ContextVar[StepContext | None]:
    """The context variable executors set around a step (see :func:`current_context`)."""
    return _CONTEXT
