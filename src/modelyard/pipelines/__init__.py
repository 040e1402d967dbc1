"""Continuous-training pipelines: steps, a checked graph, caching, executors, triggers.

Public API::

    import modelyard

    @modelyard.step
    def load(n: int = 10) -> list[int]: ...

    @modelyard.step(retries=2, retry_backoff_s=0.5, timeout_s=600)
    def fit(data: list[int]) -> dict[str, float]: ...

    @modelyard.pipeline
    def train(n: int = 10):
        data = load(n=n)
        return fit(data)

    result = train.run(n=20)          # PipelineResult: run_id, steps, result["fit"], timings

The decorators are re-exported at the top as ``modelyard.step`` and ``modelyard.pipeline``; this
package is ``modelyard.pipelines`` (plural, as ``zenml.pipelines`` and ``prefect.flows`` beside
their ``pipeline`` and ``flow`` decorators), so a name means one thing. The package used to be
``modelyard.pipeline``; importing from that name now fails with an error naming this one.
Class-form steps subclass :class:`Step`. ``modelyard run`` is the command line.

Execution (:mod:`modelyard.pipelines.runner`): outputs are stored by content (sha256) in the
artifact store with a serializer chosen by type (:mod:`.serializers`); a step is skipped when its
cache key (its code and the project code it calls, its parameters, its inputs' sha256s) has a
result in the ``step_cache`` table. Steps run in-process when only one is runnable, in forked
child processes when several can run at once or a timeout must be enforced, or on Ray.
"""

from __future__ import annotations

from modelyard.pipelines.graph import Graph, Node, Pipeline, StepOutput, pipeline
from modelyard.pipelines.step import (
    FunctionStep,
    Step,
    StepContext,
    StepOptions,
    current_context,
    current_run_id,
    current_settings,
    log_metric,
    step,
)

__all__ = [
    "FunctionStep",
    "Graph",
    "Node",
    "Pipeline",
    "Step",
    "StepContext",
    "StepOptions",
    "StepOutput",
    "current_context",
    "current_run_id",
    "current_settings",
    "log_metric",
    "pipeline",
    "step",
]
