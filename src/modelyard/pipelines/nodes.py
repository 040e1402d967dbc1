"""The parts of a traced pipeline graph: nodes, lazy output handles, fan-in, the checked graph.

:mod:`.graph` builds these by tracing a pipeline function; :mod:`.runner` schedules them. Both
import this module and neither imports the other's internals, so the graph, the steps and the
runner form no import cycle. :class:`PipelineSpec` is what the runner needs of a pipeline.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelyard.errors import InvalidInputError, PipelineError
from modelyard.pipelines.step import FunctionStep, Step

__all__ = [
    "AnyStep",
    "Gathered",
    "Graph",
    "Node",
    "PipelineSpec",
    "StepOutput",
    "step_location",
]

AnyStep = FunctionStep | Step


def _where(code: types.CodeType | None, line: int | None = None) -> str:
    if code is None:
        return "<unknown>"
    return f"{code.co_filename}:{line if line is not None else code.co_firstlineno}"


def step_location(s: AnyStep) -> str:
    """``file:line`` where a step is defined."""
    target = s.code_object()
    if isinstance(target, type):
        try:
            file = inspect.getsourcefile(target) or "<unknown>"
            line = inspect.getsourcelines(target)[1]
        except (OSError, TypeError):
            return f"{target.__module__}.{target.__qualname__}"
        return f"{file}:{line}"
    return _where(getattr(target, "__code__", None))


class StepOutput:
    """A lazy handle on (part of) a step's result inside a pipeline definition.

    Index it (``out["model"]``, ``out[0]``) to pass one element on; unpack it
    (``x, y = split(data)``) when the step declares how many outputs it has. ``.after(h)``
    orders a node after another one without passing data.
    """

    __slots__ = ("key", "node")

    def __init__(self, node: Node, key: tuple[str | int, ...] = ()) -> None:
        self.node = node
        self.key = key

    def __getitem__(self, key: str | int) -> StepOutput:
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise InvalidInputError(
                f"step outputs are indexed by str or int, got {key!r} for step {self.node.id!r}"
            )
        return StepOutput(self.node, (*self.key, key))

    def __iter__(self) -> Iterator[StepOutput]:
        n = self.node.n_outputs
        if n is None or self.key:
            raise PipelineError(
                f"cannot unpack the output of step {self.node.id!r} (called at {self.node.where}):"
                " its number of outputs is unknown",
                hint="declare it: @step(outputs=2) or annotate the return as -> tuple[A, B]; "
                "or index the handle: out[0]",
            )
        names = self.node.output_names
        if names:
            return iter([StepOutput(self.node, (k,)) for k in names])
        return iter([StepOutput(self.node, (i,)) for i in range(n)])

    def __bool__(self) -> bool:
        raise PipelineError(
            f"the output of step {self.node.id!r} (called at {self.node.where}) is a lazy handle;"
            " its value is not known while the pipeline is being built",
            hint="move the condition into a step, or make it a pipeline parameter",
        )

    def after(self, *others: StepOutput) -> StepOutput:
        """Run this handle's node after the nodes of ``others`` (no data is passed)."""
        for other in others:
            if not isinstance(other, StepOutput):
                raise InvalidInputError(
                    f".after() takes step outputs, got {type(other).__name__} "
                    f"for step {self.node.id!r} at {self.node.where}"
                )
            self.node.after.append(other.node)
        return self

    def __repr__(self) -> str:
        suffix = "".join(f"[{k!r}]" for k in self.key)
        return f"<output of {self.node.id}{suffix}>"


@dataclass(frozen=True)
class Gathered:
    """Several step outputs passed as one input: the fan-in of a list, tuple or dict of handles.

    ``join(parts=[work(x, i=i) for i in range(8)])`` hands ``join`` a list of the eight values;
    a dict (string keys) or a tuple keeps its shape.

    Attributes:
        kind: ``list``, ``tuple`` or ``dict``.
        items: ``(index or key, handle)`` in order.
    """

    kind: str
    items: tuple[tuple[str | int, StepOutput], ...]

    def handles(self) -> list[StepOutput]:
        """The handles, in order."""
        return [h for _, h in self.items]


def _gather(value: Any) -> Gathered | None:
    """A :class:`Gathered` when ``value`` is a list/tuple/dict holding only step outputs."""
    if not isinstance(value, list | tuple | dict) or not value:
        return None
    if isinstance(value, list | tuple) and all(isinstance(v, StepOutput) for v in value):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return Gathered(kind, tuple(enumerate(value)))
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, StepOutput) for k, v in value.items()
    ):
        return Gathered("dict", tuple(value.items()))
    return None


def _holds_step_output(value: Any) -> bool:
    if isinstance(value, StepOutput):
        return True
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds_step_output(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_step_output(v) for v in (*value.keys(), *value.values()))
    return False


@dataclass(eq=False)
class Node:
    """One step call in a pipeline graph."""

    id: str
    step: AnyStep
    inputs: dict[str, StepOutput | Gathered]
    params: dict[str, Any]
    where: str  # file:line of the call site
    after: list[Node] = field(default_factory=list)
    n_outputs: int | None = None
    output_names: tuple[str, ...] = ()

    def upstream(self) -> list[Node]:
        """Nodes this one depends on (inputs and ``after``), without repeats, in order."""
        seen: dict[int, Node] = {}
        for value in self.inputs.values():
            for h in value.handles() if isinstance(value, Gathered) else (value,):
                seen.setdefault(id(h.node), h.node)
        for n in self.after:
            seen.setdefault(id(n), n)
        return list(seen.values())


@dataclass
class Graph:
    """A checked pipeline graph: nodes in a topological order and the pipeline's return value."""

    name: str
    nodes: list[Node]
    returned: Any
    params: dict[str, Any]

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise PipelineError(
            f"no step {node_id!r} in pipeline {self.name!r}",
            hint="steps are: " + ", ".join(n.id for n in self.nodes),
        )

    def downstream_of(self, node_id: str) -> set[str]:
        """Ids of the nodes that depend, directly or not, on ``node_id``."""
        out: set[str] = set()
        frontier = {node_id}
        while frontier:
            nxt = {n.id for n in self.nodes if any(u.id in frontier for u in n.upstream())}
            frontier = nxt - out
            out |= nxt
        return out


class PipelineSpec(Protocol):
    """What the runner needs of a pipeline (:class:`~modelyard.pipelines.graph.Pipeline`)."""

    name: str
    fn: Callable[..., Any]

    def resolve_params(
        self,
        given: Mapping[str, Any] | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        config_source: str = ...,
        strings: bool = False,
    ) -> dict[str, Any]:
        """Merge defaults, project values and given values; check every key."""
        ...

    def check_params(
        self, values: Mapping[str, Any], *, source: str, strings: bool = False
    ) -> dict[str, Any]:
        """Check that every key of ``values`` is a parameter."""
        ...

    def build(self, **params: Any) -> Graph:
        """Trace the pipeline with ``params`` and check the graph."""
        ...
