"""Pipelines: Python code composing steps, traced into a graph that is checked before it runs.

``@modelyard.pipeline`` turns a function into a :class:`Pipeline`. Building it calls the function
once with the resolved parameters while a builder is active; every step call records a
:class:`Node` and returns a lazy :class:`StepOutput`. The graph is then checked (missing inputs,
unknown arguments, cycles, outputs that cannot be stored, non-JSON parameters); each error names
the user's file and line.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, overload

from modelyard.errors import InvalidInputError, PipelineError
from modelyard.pipelines.nodes import (
    AnyStep,
    Gathered,
    Graph,
    Node,
    StepOutput,
    _gather,
    _holds_step_output,
    _where,
    step_location,
)
from modelyard.pipelines.step import tracer_var

if TYPE_CHECKING:
    from modelyard.config import Settings
    from modelyard.pipelines.executors import Executor
    from modelyard.pipelines.runner import PipelineResult
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.store.db import MetadataStore
    from modelyard.tracking.client import TrackingClient

__all__ = [
    "Gathered",
    "Graph",
    "Node",
    "Pipeline",
    "StepOutput",
    "current_builder",
    "pipeline",
]


def current_builder() -> _Builder | None:
    """The graph builder active in this context, if a pipeline is being built."""
    builder = tracer_var().get()
    return builder if isinstance(builder, _Builder) else None


def _return_shape(s: AnyStep) -> tuple[int | None, tuple[str, ...]]:
    opt = s.options.outputs
    if isinstance(opt, int):
        return opt, ()
    if isinstance(opt, tuple):
        return len(opt), tuple(str(x) for x in opt)
    hints = _hints(s)
    ret = hints.get("return")
    if ret is not None and getattr(ret, "__origin__", None) is tuple:
        args = getattr(ret, "__args__", ())
        if args and Ellipsis not in args:
            return len(args), ()
    return None, ()


def _hints(s: AnyStep) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(s.target())
    except Exception:  # forward references we cannot resolve: no static checks
        return {}


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._ids: dict[str, int] = {}

    def add_call(self, s: AnyStep, args: tuple[Any, ...], kwargs: dict[str, Any]) -> StepOutput:
        frame = sys._getframe(3)  # the pipeline body: add_call <- _trace <- __call__ <- body
        where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
        target = s.target()
        sig = inspect.signature(target)
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInputError(
                f"bad arguments for step {s.name!r} at {where}: {exc}",
                hint=f"the step is defined at {step_location(s)} with signature {sig}",
                step=s.name,
            ) from exc
        inputs: dict[str, StepOutput | Gathered] = {}
        params: dict[str, Any] = dict(s.bound_params())
        for pname, value in bound.arguments.items():
            kind = sig.parameters[pname].kind
            if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise InvalidInputError(
                    f"step {s.name!r} takes *args/**kwargs; steps need named arguments "
                    f"(called at {where})",
                    hint=f"name every input in the signature at {step_location(s)}",
                )
            gathered = _gather(value)
            if isinstance(value, StepOutput):
                inputs[pname] = value
            elif gathered is not None:
                inputs[pname] = gathered
            elif _holds_step_output(value):
                raise InvalidInputError(
                    f"input {pname!r} of step {s.name!r} at {where} mixes step outputs with "
                    "other values (or nests them)",
                    hint="pass a flat list, tuple or dict (string keys) of step outputs only, "
                    "and the other values as separate parameters",
                    step=s.name,
                    param=pname,
                )
            else:
                _check_param(s, pname, value, where)
                params[pname] = value
        for pname, param in sig.parameters.items():
            if pname in bound.arguments or param.default is not inspect.Parameter.empty:
                continue
            raise InvalidInputError(  # pragma: no cover - sig.bind reports it first
                f"step {s.name!r} at {where} is missing input {pname!r}"
            )
        base = s.name
        count = self._ids.get(base, 0) + 1
        self._ids[base] = count
        node_id = base if count == 1 else f"{base}_{count}"
        n_out, names = _return_shape(s)
        node = Node(node_id, s, inputs, params, where, n_outputs=n_out, output_names=names)
        self.nodes.append(node)
        return StepOutput(node)


def _check_param(s: AnyStep, pname: str, value: Any, where: str) -> None:
    from modelyard.pipelines.serializers import is_jsonable

    if not is_jsonable(value):
        raise InvalidInputError(
            f"parameter {pname!r} of step {s.name!r} at {where} is a {type(value).__name__}; "
            "parameters must be JSON-able (they are part of the cache key)",
            hint="pass data between steps as step outputs, or pass a path/number/string",
            step=s.name,
            param=pname,
        )


def _check_graph(name: str, nodes: list[Node]) -> list[Node]:
    """Check every node and return the nodes in a topological order."""
    from modelyard.pipelines.serializers import check_annotation

    known = {id(n) for n in nodes}
    for n in nodes:
        for u in n.upstream():
            if id(u) not in known:
                raise PipelineError(
                    f"step {n.id!r} at {n.where} uses the output of step {u.id!r} from another "
                    f"pipeline build; pipeline {name!r} has no such step",
                    hint="call the upstream step inside the same pipeline function",
                )
        ret = _hints(n.step).get("return")
        if ret is not None:
            problem = check_annotation(ret, trust=n.step.options.trust)
            if problem:
                raise PipelineError(
                    f"step {n.step.name!r} at {step_location(n.step)} declares an output of type "
                    f"{problem}, which modelyard cannot store between steps",
                    hint="return a JSON-able value, a numpy array, a pandas/polars DataFrame or a "
                    "model; or declare @step(trust=True) to store it with pickle",
                    step=n.step.name,
                )
    # Kahn's algorithm, stable with respect to call order
    indeg = {id(n): len(n.upstream()) for n in nodes}
    order: list[Node] = []
    ready = [n for n in nodes if indeg[id(n)] == 0]
    down: dict[int, list[Node]] = {id(n): [] for n in nodes}
    for n in nodes:
        for u in n.upstream():
            down[id(u)].append(n)
    while ready:
        n = ready.pop(0)
        order.append(n)
        for d in down[id(n)]:
            indeg[id(d)] -= 1
            if indeg[id(d)] == 0:
                ready.append(d)
    if len(order) != len(nodes):
        stuck = [n for n in nodes if indeg[id(n)] > 0]
        cycle = " -> ".join(f"{n.id} ({n.where})" for n in stuck)
        raise PipelineError(
            f"pipeline {name!r} has a cycle between steps: {cycle}",
            hint="remove one of the .after() dependencies that close the loop",
        )
    return order


class Pipeline:
    """A pipeline definition: a function composing steps, plus its name.

    Build and check the graph with :meth:`build`; run it with :meth:`run`.
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def where(self) -> str:
        """``file:line`` of the pipeline definition."""
        return _where(getattr(self.fn, "__code__", None))

    def signature(self) -> inspect.Signature:
        """The pipeline's parameters."""
        return inspect.signature(self.fn)

    def resolve_params(
        self,
        given: Mapping[str, Any] | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        config_source: str = "[tool.modelyard.pipeline] params",
        strings: bool = False,
    ) -> dict[str, Any]:
        """Merge defaults < ``config`` (settings) < ``given`` and check every key.

        A project's ``[tool.modelyard.pipeline] params`` serve every pipeline of the project:
        a pipeline takes the keys it declares, and all the keys of a table named after it
        (``[tool.modelyard.pipeline.params.sweep]``), which must all be its parameters.

        Args:
            given: explicit values (Python keyword arguments or ``-p key=value``); every key
                must be a parameter.
            config: values from ``settings.pipeline.params``.
            config_source: where ``config`` came from, for error messages.
            strings: ``given`` values are strings from the command line, to be converted to the
                type of each parameter (its annotation, else its default's type).

        Raises:
            InvalidInputError: an unknown key, a value of the wrong type, a missing value.
        """
        sig = self.signature()
        out: dict[str, Any] = {}
        for pname, param in sig.parameters.items():
            if param.default is not inspect.Parameter.empty:
                out[pname] = param.default
        shared, scoped = self._config_for(config or {})
        out.update(self.check_params(shared, source=config_source))
        out.update(
            self.check_params(scoped, source=f"[tool.modelyard.pipeline.params.{self.name}]")
        )
        out.update(self.check_params(given or {}, source="the arguments", strings=strings))
        missing = [
            p
            for p, v in sig.parameters.items()
            if p not in out and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)
        ]
        if missing:
            raise InvalidInputError(
                f"pipeline {self.name!r} needs a value for {', '.join(map(repr, missing))}",
                hint=f"pass it: modelyard run -p {missing[0]}=VALUE, or set it in "
                "[tool.modelyard.pipeline] params",
            )
        return out

    def _config_for(self, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The project values this pipeline takes: (declared keys, its own table)."""
        params = self.signature().parameters
        accepts_any = any(v.kind == v.VAR_KEYWORD for v in params.values())
        own = config.get(self.name)
        scoped = dict(own) if self.name not in params and isinstance(own, Mapping) else {}
        shared = {
            k: v
            for k, v in config.items()
            if k in params or (accepts_any and not (k == self.name and scoped))
        }
        return shared, scoped

    def check_params(
        self, values: Mapping[str, Any], *, source: str, strings: bool = False
    ) -> dict[str, Any]:
        """Check that every key of ``values`` is a parameter; convert strings when asked.

        Raises:
            InvalidInputError: an unknown key (naming ``source``) or a badly typed string.
        """
        sig = self.signature()
        names = [p for p, v in sig.parameters.items() if v.kind not in (v.VAR_POSITIONAL,)]
        accepts_any = any(v.kind == v.VAR_KEYWORD for v in sig.parameters.values())
        out: dict[str, Any] = {}
        for key, value in values.items():
            if key not in sig.parameters and not accepts_any:
                raise InvalidInputError(
                    f"unknown parameter {key!r} for pipeline {self.name!r} (from {source})",
                    hint=f"pipeline {self.name!r} at {self.where} takes: "
                    + (", ".join(names) or "no parameters"),
                    param=key,
                )
            out[key] = _convert(self, key, value, sig.parameters.get(key)) if strings else value
        return out

    def build(self, **params: Any) -> Graph:
        """Trace the pipeline with ``params`` (already resolved) and check the graph.

        Raises:
            PipelineError: a cycle, an output type that cannot be stored, a handle misused.
            InvalidInputError: a step called with a missing or unknown argument.
        """
        builder = _Builder()
        token = tracer_var().set(builder)
        try:
            returned = self.fn(**params)
        finally:
            tracer_var().reset(token)
        if not builder.nodes:
            raise PipelineError(
                f"pipeline {self.name!r} at {self.where} calls no step",
                hint="decorate the functions it calls with @modelyard.step",
            )
        order = _check_graph(self.name, builder.nodes)
        return Graph(self.name, order, returned, dict(params))

    def run(
        self,
        *,
        settings: Settings | None = None,
        executor: str | Executor | None = None,
        metadata_store: MetadataStore | None = None,
        artifact_store: ArtifactStore | None = None,
        tracking: TrackingClient | None = None,
        force: bool = False,
        max_parallel: int | None = None,
        ray_address: str | None = None,
        entrypoint: str | None = None,
        resume: str | None = None,
        if_changed: bool = False,
        progress: Any = None,
        params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> PipelineResult:
        """Build, check and run the pipeline; every run is tracked.

        Args:
            settings: where the stores are (default :func:`modelyard.load_settings`).
            executor: ``"local"`` (default from settings), ``"ray"``, or an
                :class:`~modelyard.pipelines.executors.Executor` object.
            metadata_store: the store for runs and the step cache (default: from settings).
            artifact_store: the store for step outputs (default: from settings).
            tracking: the tracking client (default: one over the two stores).
            force: ignore cached results (new results are still cached).
            max_parallel: most steps at once (default: settings, else the number of cores).
            ray_address: connect Ray to this cluster (implies ``executor="ray"``).
            entrypoint: ``module:function`` recorded as the run's source.
            resume: id of an earlier pipeline run to resume (its parameters are reused).
            if_changed: run only if the steps' code, the git state or a declared data source
                changed since the last successful run; else return a result with status
                ``UNCHANGED`` and no run.
            progress: a progress reporter (see :mod:`modelyard.pipelines.progress`).
            params: pipeline parameters as a dict (for names that clash with the options
                above, such as a parameter called ``force``).
            **kwargs: pipeline parameters.

        Returns:
            The :class:`~modelyard.pipelines.runner.PipelineResult`.

        Raises:
            PipelineError: a step failed (the run is recorded as FAILED), or the graph is invalid.
        """
        from modelyard.pipelines.runner import run_pipeline

        if settings is None:  # the Python API's edge: the project's settings, read once here
            from modelyard.config import load_settings

            settings = load_settings()
        return run_pipeline(
            self,
            {**(params or {}), **kwargs},
            settings=settings,
            metadata_store=metadata_store,
            artifact_store=artifact_store,
            tracking=tracking,
            executor=executor,
            force=force,
            max_parallel=max_parallel,
            ray_address=ray_address,
            entrypoint=entrypoint,
            resume=resume,
            if_changed=if_changed,
            progress=progress,
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = current_builder()
        if builder is not None:  # a pipeline used inside another one: inline its steps
            return self.fn(*args, **kwargs)
        raise PipelineError(
            f"pipeline {self.name!r} is not called directly",
            hint=f"run it: {self.name}.run(...) or `modelyard run module:{self.name}`",
        )

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


_SCALARS: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}
_NONE = {"none", "null"}


def _scalar_annotation(ann: Any) -> tuple[type | None, bool]:
    """The scalar type an annotation names, through ``Optional[X]`` and ``X | None`` (as
    objects or, under ``from __future__ import annotations``, as strings); and whether None is
    allowed.
    """
    import typing

    if isinstance(ann, str):
        text = ann.strip().removeprefix("typing.")
        if text.startswith("Optional[") and text.endswith("]"):
            names = [text[len("Optional[") : -1].strip(), "None"]
        else:
            names = [part.strip() for part in text.split("|")]
        rest = [n for n in names if n != "None"]
        scalar = _SCALARS.get(rest[0]) if len(rest) == 1 else None
        return scalar, len(rest) < len(names)
    if isinstance(ann, type):
        return (ann if ann in _SCALARS.values() else None), False
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = typing.get_args(ann)
        members = [a for a in args if a is not type(None)]
        if len(members) == 1 and members[0] in _SCALARS.values():
            return members[0], len(members) < len(args)
    return None, False


def _convert(p: Pipeline, key: str, raw: Any, param: inspect.Parameter | None) -> Any:
    if not isinstance(raw, str):
        return raw
    target: Any = None
    if param is not None:
        target, optional = _scalar_annotation(param.annotation)
        if optional and target is not str and raw.strip().lower() in _NONE:
            return None
        if (
            target is None
            and param.annotation is inspect.Parameter.empty
            and type(param.default) in _SCALARS.values()
        ):
            target = type(param.default)
    try:
        if target is bool:
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(raw)
        if target in (int, float, str):
            return target(raw)
    except ValueError:
        raise InvalidInputError(
            f"parameter {key!r} of pipeline {p.name!r} must be a {target.__name__}, got {raw!r}",
            hint=f"for example: modelyard run -p {key}="
            + {"int": "10", "float": "0.5", "bool": "true"}.get(target.__name__, "VALUE"),
            param=key,
        ) from None
    import orjson

    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(
    fn: None = None, /, *, name: str | None = None
) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Make a function a :class:`Pipeline`: ``@modelyard.pipeline`` or
    ``@modelyard.pipeline(name="train")``.

    The body calls steps; calling them records the graph instead of running them, and
    :meth:`Pipeline.run` runs it.

    Raises:
        InvalidInputError: ``fn`` is not callable.
    """

    def wrap(func: Callable[..., Any]) -> Pipeline:
        if not callable(func):
            raise InvalidInputError(f"@pipeline decorates functions, not {func!r}")
        return Pipeline(func, name=name)

    if fn is not None:
        return wrap(fn)
    return wrap
