"""The Ray executor: each attempt is a Ray task; same semantics as the local executor.

A task gets the step, its parameters and its inputs' artifact refs; it opens the artifact store
(by URL, so it works on another machine when the store is S3/GCS), loads the inputs by sha256,
runs the step and writes its outputs back, then returns the small output record. Steps defined
in project modules (not installed packages) are shipped by value, so workers need not have the
project on their path. A task past ``timeout_s`` is cancelled with ``force=True``.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from modelyard.errors import require_extra
from modelyard.logs import get_logger
from modelyard.pipelines.executors import Completed, StepTask

__all__ = ["RayExecutor"]

_log = get_logger("pipeline.ray")
_stores: dict[str, Any] = {}


def _attempt_in_worker(task: StepTask, url: str, storage_options: dict[str, Any]) -> Completed:
    from modelyard.pipelines.executors import run_attempt
    from modelyard.store.artifacts import ArtifactStore

    store = _stores.get(url)
    if store is None:
        store = _stores[url] = ArtifactStore.open(url, storage_options)
    result = run_attempt(task, store, None)
    result.exception = None  # the text travels; the object may not unpickle on the driver
    return result


class RayExecutor:
    """Runs attempts as Ray tasks.

    Args:
        artifact_url: the artifact store's URL (workers open it themselves).
        storage_options: fsspec options for the store.
        address: a Ray cluster to connect to (default: the running Ray, else a new local one).
        project_root: modules of steps under this folder are shipped by value.
        num_cpus: CPUs each task reserves.
    """

    def __init__(
        self,
        artifact_url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        address: str | None = None,
        project_root: Path | None = None,
        num_cpus: float = 1.0,
    ) -> None:
        self.artifact_url = artifact_url
        self.storage_options = dict(storage_options or {})
        self.address = address
        self.project_root = project_root
        self.num_cpus = num_cpus
        self._pending: deque[StepTask] = deque()
        self._running: dict[Any, tuple[StepTask, float, float | None]] = {}
        self._remote: Any = None
        self._started_ray = False
        self._by_value: set[str] = set()

    def _ensure_started(self) -> Any:
        ray = require_extra("ray", "ray")
        if self._remote is None:
            if not ray.is_initialized():
                kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
                if self.address:
                    kwargs["address"] = self.address
                ray.init(**kwargs)
                self._started_ray = not self.address
            self._remote = ray.remote(max_retries=0)(_attempt_in_worker)
        return ray

    def _ship_by_value(self, task: StepTask) -> None:
        """Pickle the step's module by value unless it is an installed package."""
        import ray.cloudpickle as cp

        target = task.step.code_object()
        name = target.__module__
        if name in self._by_value or name == "__main__" or name.startswith("modelyard."):
            return
        module = sys.modules.get(name)
        filename = getattr(module, "__file__", None) or ""
        if module is None or "site-packages" in filename or "dist-packages" in filename:
            return
        cp.register_pickle_by_value(module)  # type: ignore[no-untyped-call]
        self._by_value.add(name)

    def submit(self, task: StepTask) -> None:
        self._pending.append(task)

    def busy(self) -> bool:
        return bool(self._pending or self._running)

    def _start_due(self) -> None:
        now = time.monotonic()
        for task in [t for t in self._pending if t.ready_at <= now]:
            self._pending.remove(task)
            self._ship_by_value(task)
            ref = self._remote.options(num_cpus=self.num_cpus).remote(
                task, self.artifact_url, self.storage_options
            )
            started = time.perf_counter()
            deadline = started + task.timeout_s if task.timeout_s else None
            self._running[ref] = (task, started, deadline)

    def wait(self) -> list[Completed]:
        ray = self._ensure_started()
        while True:
            self._start_due()
            if not self._running:
                if not self._pending:
                    return []
                nxt = min(t.ready_at for t in self._pending)
                time.sleep(max(0.0, nxt - time.monotonic()))
                continue
            now = time.perf_counter()
            limits = [d - now for _, _, d in self._running.values() if d is not None]
            limits += [t.ready_at - time.monotonic() for t in self._pending]
            timeout = max(0.0, min(limits)) if limits else None
            ready, _ = ray.wait(list(self._running), num_returns=1, timeout=timeout)
            out = [self._collect(ray, ref) for ref in ready]
            now = time.perf_counter()
            for ref, (task, started, deadline) in list(self._running.items()):
                if deadline is not None and now >= deadline:
                    ray.cancel(ref, force=True)
                    del self._running[ref]
                    out.append(
                        Completed(
                            task.node_id,
                            ok=False,
                            duration_s=now - started,
                            error_type="TimeoutExceeded",
                            error=f"attempt {task.attempt} ran past timeout_s={task.timeout_s}"
                            " and was stopped",
                            timed_out=True,
                        )
                    )
            if out:
                return out

    def _collect(self, ray: Any, ref: Any) -> Completed:
        task, started, _ = self._running.pop(ref)
        try:
            result: Completed = ray.get(ref)
        except Exception as exc:  # a worker crash or a task error Ray wrapped
            return Completed(
                task.node_id,
                ok=False,
                duration_s=time.perf_counter() - started,
                error_type=type(exc).__name__,
                error=str(exc).splitlines()[0] if str(exc) else repr(exc),
            )
        return result

    def close(self) -> None:
        if self._remote is not None:
            import ray

            for ref in list(self._running):
                ray.cancel(ref, force=True)
            self._running.clear()
            if self._started_ray:
                ray.shutdown()
        self._pending.clear()
