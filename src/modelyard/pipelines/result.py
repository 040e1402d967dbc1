"""What a pipeline run hands back: a :class:`PipelineResult` of :class:`StepResult` s.

Below the runner and the progress reporters (both use it), so that neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.errors import NotFoundError

if TYPE_CHECKING:
    from modelyard.pipelines.nodes import Graph
    from modelyard.store.artifacts import ArtifactStore

__all__ = ["PipelineResult", "StepResult"]


@dataclass
class StepResult:
    """What happened to one step in a run.

    Attributes:
        name: the node id.
        status: ``ran``, ``cached``, ``failed`` or ``skipped`` (never started after a failure).
        run_id: the step's tracked run.
        duration_s: time spent on the step in this run (all attempts).
        attempts: attempts made (0 when cached or skipped).
        cache_key: the step's cache key.
        source_run: for a cached step, the step run that produced the result.
        error: the failure, ``Type: message``.
        hint: what the failure's error suggests doing.
        metrics: metrics the step logged.
        outputs: the output record (artifact refs).
        data_changed: data files the step reads that changed since its last finished run
            (why it ran again).
    """

    name: str
    status: str
    run_id: str | None = None
    duration_s: float = 0.0
    attempts: int = 0
    cache_key: str | None = None
    source_run: str | None = None
    error: str | None = None
    hint: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    data_changed: list[str] = field(default_factory=list)


@dataclass
class PipelineResult:
    """The outcome of :meth:`Pipeline.run <modelyard.pipelines.graph.Pipeline.run>`.

    ``result["fit"]`` loads the output of step ``fit`` from the artifact store;
    :meth:`output` loads what the pipeline function returned.

    Attributes:
        pipeline: the pipeline's name.
        run_id: the pipeline's tracked run (None when ``--if-changed`` found nothing changed).
        status: ``FINISHED``, ``FAILED`` or ``UNCHANGED``.
        steps: node id -> :class:`StepResult`, in graph order.
        params: the resolved parameters.
        duration_s: wall time of the run.
        metrics: every metric the steps logged.
        registered: model versions returned by steps, ``{"name", "version", "step"}``, with
            ``"reused": True`` for a version returned by a cached step (registered by an
            earlier run, not this one).
        reasons: why an ``--if-changed`` run ran or did not.
    """

    pipeline: str
    run_id: str | None
    status: str
    steps: dict[str, StepResult]
    params: dict[str, Any]
    duration_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    registered: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    _store: ArtifactStore | None = field(default=None, repr=False)
    _graph: Graph | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the run finished (or had nothing to do)."""
        return self.status in ("FINISHED", "UNCHANGED")

    def _names(self, status: str) -> list[str]:
        return [n for n, s in self.steps.items() if s.status == status]

    @property
    def ran(self) -> list[str]:
        """Steps that ran in this run."""
        return self._names("ran")

    @property
    def cached(self) -> list[str]:
        """Steps whose results came from the cache."""
        return self._names("cached")

    @property
    def failed(self) -> list[str]:
        """Steps that failed."""
        return self._names("failed")

    def __getitem__(self, step: str) -> Any:
        """Load the output of ``step`` (a tuple or dict for multi-output steps)."""
        from modelyard.pipelines.cache import record_fingerprint
        from modelyard.pipelines.executors import load_input

        res = self.steps.get(step)
        if res is None:
            raise NotFoundError(
                f"no step {step!r} in this run of pipeline {self.pipeline!r}",
                hint="steps are: " + ", ".join(self.steps),
            )
        if res.outputs is None or self._store is None:
            raise NotFoundError(f"step {step!r} has no outputs ({res.status})")
        _, locator = record_fingerprint(res.outputs)
        trust = self._graph.node(step).step.options.trust if self._graph else False
        return load_input(locator, self._store, {}, trust=trust)

    def output(self) -> Any:
        """Load what the pipeline function returned (handles replaced by their values)."""
        from modelyard.pipelines.cache import record_fingerprint
        from modelyard.pipelines.executors import load_input
        from modelyard.pipelines.nodes import StepOutput

        store = self._store
        if self._graph is None or store is None:
            return None

        def resolve(value: Any) -> Any:
            if isinstance(value, StepOutput):
                record = self.steps[value.node.id].outputs
                if record is None:
                    raise NotFoundError(f"step {value.node.id!r} has no outputs")
                _, locator = record_fingerprint(record, value.key)
                return load_input(locator, store, {}, trust=value.node.step.options.trust)
            if isinstance(value, tuple | list):
                return type(value)(resolve(v) for v in value)
            if isinstance(value, dict):
                return {k: resolve(v) for k, v in value.items()}
            return value

        return resolve(self._graph.returned)

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary: counts, timings, metrics, registered versions."""
        return {
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "status": self.status,
            "duration_s": round(self.duration_s, 4),
            "params": self.params,
            "ran": self.ran,
            "cached": self.cached,
            "failed": self.failed,
            "skipped": self._names("skipped"),
            "steps": {
                n: {
                    "status": s.status,
                    "duration_s": round(s.duration_s, 4),
                    "attempts": s.attempts,
                    "run_id": s.run_id,
                    "source_run": s.source_run,
                    "error": s.error,
                    "data_changed": s.data_changed,
                }
                for n, s in self.steps.items()
            },
            "metrics": self.metrics,
            "registered": self.registered,
            "reasons": self.reasons,
        }
