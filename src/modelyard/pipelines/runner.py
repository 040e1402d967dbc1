"""Run a pipeline: resolve parameters, build and check the graph, then schedule its steps.

The runner owns the semantics every executor shares:

1. A node is *ready* when every node it depends on has outputs.
2. Its cache key is computed from its code fingerprint, its parameters and its inputs'
   fingerprints (artifact sha256s). A hit in ``step_cache`` (whose artifacts still exist) is
   reused; the step's tracked run records ``cache.source_run``.
3. Otherwise an attempt is submitted; failures are retried with exponential backoff; a success is
   written to the cache right away, so that a failed run resumes from what succeeded.
4. After a failure no new node starts; running ones finish (and are cached); the pipeline run
   ends FAILED and :class:`~modelyard.errors.PipelineError` names the step.

Every run, cached or not, is a tracked run (kind ``pipeline``) with one child run per step
(kind ``step``).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from modelyard.errors import GateFailed, InvalidInputError, PipelineError
from modelyard.logs import get_logger
from modelyard.pipelines.result import PipelineResult, StepResult

if TYPE_CHECKING:
    from modelyard.config import Settings
    from modelyard.pipelines.datafiles import StepData
    from modelyard.pipelines.executors import Completed, Executor, StepTask
    from modelyard.pipelines.nodes import Graph, Node, PipelineSpec, StepOutput
    from modelyard.pipelines.progress import Progress
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.store.db import MetadataStore
    from modelyard.tracking.client import TrackingClient
    from modelyard.tracking.run import Run

__all__ = ["PipelineResult", "StepResult", "run_pipeline", "sigterm_as_exit"]

_log = get_logger("pipeline")
_TAG_CHARS = 8000  # longer tag values are cut by the runner; a cut JSON document is useless


def _entrypoint_of(p: PipelineSpec) -> str:
    return f"{p.fn.__module__}:{p.fn.__qualname__}"


def run_pipeline(
    p: PipelineSpec,
    params: Mapping[str, Any] | None = None,
    *,
    settings: Settings,
    metadata_store: MetadataStore | None = None,
    artifact_store: ArtifactStore | None = None,
    tracking: TrackingClient | None = None,
    executor: str | Executor | None = None,
    force: bool = False,
    max_parallel: int | None = None,
    ray_address: str | None = None,
    entrypoint: str | None = None,
    resume: str | None = None,
    progress: Progress | None = None,
    params_are_strings: bool = False,
    if_changed: bool = False,
    parent_run_id: str | None = None,
    run_tags: Mapping[str, Any] | None = None,
) -> PipelineResult:
    """Run ``p``; see :meth:`Pipeline.run <modelyard.pipelines.graph.Pipeline.run>`.

    The stores, the tracking client and the executor are parameters: a composition root (the
    Workspace, a test) passes its own; whatever is not passed is opened from ``settings``.

    Args:
        p: the pipeline.
        params: parameter values (strings from ``-p`` when ``params_are_strings``).
        settings: the pipeline settings (parameters, data sources, executor, experiment) and,
            for what is not passed, where the stores are.
        metadata_store: runs, the step cache (default: opened from ``settings``).
        artifact_store: step outputs (default: opened from ``settings``).
        tracking: records the runs (default: a client over the two stores).
        executor: an :class:`~modelyard.pipelines.executors.Executor`, or the name of one:
            ``local`` or ``ray`` (default: ``settings.pipeline.executor``). An executor
            passed in is closed when the run ends.
        force: do not reuse cached results.
        max_parallel: most steps at once.
        ray_address: Ray cluster address (implies the Ray executor).
        entrypoint: recorded as the run's source.
        resume: a failed pipeline run to resume: its parameters are reused, what it finished
            is taken from the cache, the rest runs.
        progress: a progress reporter (default: JSON log lines).
        params_are_strings: convert ``params`` by the pipeline's signature.
        if_changed: run only when code or declared data changed since the last successful run.
        parent_run_id: make the pipeline's run a child of this run (a sweep's trials are
            children of the study's run).
        run_tags: more tags for the pipeline's run.

    Raises:
        PipelineError: the graph is invalid or a step failed.
        InvalidInputError: bad parameters or options.
    """
    from modelyard.pipelines.progress import LogProgress

    started = time.perf_counter()
    given_executor: Executor | None = None
    if executor is None or isinstance(executor, str):
        executor_name = executor or ("ray" if ray_address else settings.pipeline.executor)
    else:
        given_executor, executor_name = executor, type(executor).__name__
    if given_executor is None and executor_name not in ("local", "ray"):
        raise InvalidInputError(
            f"unknown executor {executor_name!r}", hint="use --executor local or --executor ray"
        )
    max_parallel = max_parallel or settings.pipeline.max_parallel
    progress = progress or LogProgress()
    ms, store, tc = _stores(settings, metadata_store, artifact_store, tracking)

    given: dict[str, Any] = dict(params or {})
    strings = params_are_strings
    if resume is not None:
        given, strings = _resume_params(tc, p, resume, given, strings)
    resolved = p.resolve_params(given, config=settings.pipeline.params, strings=strings)
    graph = p.build(**resolved)

    from modelyard.pipelines.codehash import CodeHasher

    hasher = CodeHasher(settings.project_root)
    for node in graph.nodes:
        hasher.add_local_object(node.step.code_object())
    codes = {n.id: hasher.fingerprint(n.step.code_object()) for n in graph.nodes}

    from modelyard.pipelines import triggers

    code_digest = triggers.code_digest(codes)
    step_data = _step_data(settings, graph)
    data_files = step_data.declared
    reasons: list[str] = []
    if if_changed:
        reasons = triggers.changes_since_last_success(
            ms, p.name, settings.project_root, code_digest, data_files
        )
        if not reasons:
            result = PipelineResult(p.name, None, "UNCHANGED", {}, resolved, 0.0)
            result.reasons = ["nothing changed since the last successful run"]
            progress.finish(result)
            return result

    import orjson

    tags: dict[str, Any] = {
        "pipeline": p.name,
        "pipeline.executor": executor_name,
        "pipeline.params": orjson.dumps(resolved, default=str).decode()[:8000],
        "trigger.code": code_digest,
    }
    if data_files:
        tags["trigger.data"] = triggers.combine(data_files)
        tags["trigger.data_files"] = orjson.dumps(data_files).decode()[:8000]
    from modelyard.pipelines.step import importing_module

    imported_by = importing_module()
    if imported_by is not None:
        tags["pipeline.imported"] = imported_by
        _log.warning(
            "pipeline run while modelyard run imported its module; --if-changed ignores it",
            extra={"pipeline": p.name, "pipeline_module": imported_by},
        )
    if resume:
        tags["resume.of"] = resume
    if force:
        tags["cache.force"] = "true"
    tags.update(run_tags or {})
    run = tc.start_run(
        experiment=settings.experiment,
        name=p.name,
        kind="pipeline",
        parent_run_id=parent_run_id,
        source=entrypoint or _entrypoint_of(p),
        tags=tags,
        capture_lineage=True,
    )
    run.log_params({k: _param_str(v) for k, v in resolved.items()})
    sched = _Scheduler(
        p=p,
        graph=graph,
        codes=codes,
        run=run,
        tc=tc,
        ms=ms,
        store=store,
        settings=settings,
        force=force,
        progress=progress,
        step_data=step_data,
    )
    exec_obj = given_executor or _make_executor(
        executor_name,
        store=store,
        settings=settings,
        max_parallel=max_parallel,
        ray_address=ray_address,
        memo=sched.memo,
    )
    progress.start(p.name, run.id, [n.id for n in graph.nodes])
    try:
        with sigterm_as_exit():
            sched.run(exec_obj)
    except BaseException as exc:
        exec_obj.close()
        status = "KILLED" if isinstance(exc, KeyboardInterrupt | SystemExit) else "FAILED"
        for r in sched.step_runs.values():
            r.end(status)  # ending an ended run does nothing
        run.end(status)
        raise
    exec_obj.close()
    status = "FAILED" if sched.failed_node else "FINISHED"
    result = PipelineResult(
        pipeline=p.name,
        run_id=run.id,
        status=status,
        steps=sched.results,
        params=resolved,
        duration_s=time.perf_counter() - started,
        metrics=sched.metrics,
        registered=sched.registered,
        reasons=reasons,
        _store=store,
        _graph=graph,
    )
    run.set_tags(
        {
            "steps.ran": len(result.ran),
            "steps.cached": len(result.cached),
            "steps.failed": len(result.failed),
        }
    )
    if sched.metrics:
        run.log_metrics(sched.metrics)
    for reg in sched.registered:  # the last new version, and the last one reused from the cache
        run.set_tag(
            "reused" if reg.get("reused") else "registered", f"{reg['name']}:{reg['version']}"
        )
    run.end(status)
    progress.finish(result)
    if sched.failed_node:
        res = result.steps[sched.failed_node]
        # a refused candidate keeps its own error class (and exit code) through the runner
        error_cls = GateFailed if (res.error or "").startswith("GateFailed:") else PipelineError
        err = error_cls(
            f"step {sched.failed_node!r} of pipeline {p.name!r} failed: {res.error}",
            hint=(f"{res.hint}; then " if res.hint else "fix it, then ")
            + f"resume: modelyard run --resume {run.id}",
            step=sched.failed_node,
            run_id=run.id,
        )
        err.result = result  # type: ignore[attr-defined]
        raise err
    return result


def _stores(
    settings: Settings,
    metadata_store: MetadataStore | None,
    artifact_store: ArtifactStore | None,
    tracking: TrackingClient | None,
) -> tuple[MetadataStore, ArtifactStore, TrackingClient]:
    """The stores and tracking client given, the others opened from ``settings``."""
    if tracking is not None:
        metadata_store = metadata_store or tracking.metadata_store
        artifact_store = artifact_store or tracking.artifact_store
    if metadata_store is None:
        from modelyard.store.db import MetadataStore

        metadata_store = MetadataStore.from_settings(settings)
    if artifact_store is None:
        from modelyard.store.artifacts import ArtifactStore

        artifact_store = ArtifactStore.from_settings(settings)
    if tracking is None:
        from modelyard.tracking.client import TrackingClient

        tracking = TrackingClient(
            metadata_store,
            artifact_store,
            user=settings.resolved_user,
            project_root=settings.project_root,
            default_experiment=settings.experiment,
        )
    return metadata_store, artifact_store, tracking


def _step_data(settings: Settings, graph: Graph) -> StepData:
    """What data each step of ``graph`` reads (see :mod:`modelyard.pipelines.datafiles`)."""
    from pathlib import Path

    from modelyard.pipelines import triggers
    from modelyard.pipelines.datafiles import FileHasher, StepData

    hasher = FileHasher(settings.resolved_home / "cache" / "data-fingerprints.json")
    declared = triggers.data_fingerprints(
        settings.project_root, settings.pipeline.data_sources, hasher=hasher
    )
    excluded = [settings.resolved_home]
    if "://" not in settings.resolved_artifact_url:
        excluded.append(Path(settings.resolved_artifact_url))
    step_data = StepData(
        hasher,
        project_root=settings.project_root,
        cwd=Path.cwd(),
        excluded=excluded,
        declared=declared,
    )
    step_data.plan({n.id: (n.params, n.step.code_object(), not n.upstream()) for n in graph.nodes})
    return step_data


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit(143)`` while the steps run, as Ctrl-C is turned into
    KeyboardInterrupt.

    A CI cancel or Kubernetes stopping a pod sends SIGTERM, whose default action ends the
    process at once: the run stayed RUNNING and forked step processes kept running, orphaned.
    Raised instead, it ends the runs KILLED and stops the children. Only in the main thread,
    and only where nobody installed a handler of their own.
    """
    import signal
    import threading

    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _param_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    import orjson

    return orjson.dumps(value, default=str).decode()


def _resume_params(
    tc: Any, p: PipelineSpec, run_id: str, given: dict[str, Any], strings: bool
) -> tuple[dict[str, Any], bool]:
    import orjson

    info = tc.get_run(tc.resolve_run_id(run_id))
    if info.kind != "pipeline" or info.name != p.name:
        raise InvalidInputError(
            f"run {run_id!r} is a {info.kind} run named {info.name!r}, not a run of pipeline "
            f"{p.name!r}",
            hint="pass the id of a pipeline run of this pipeline (modelyard runs list)",
        )
    if info.status == "FINISHED":
        _log.info("resuming a finished run: every step is expected to be cached")
    stored = orjson.loads(info.tags.get("pipeline.params", "{}"))
    # explicit values still win over the resumed run's values
    explicit = p.check_params(given, source="the arguments", strings=strings)
    return {**stored, **explicit}, False


def _make_executor(
    name: str,
    *,
    store: ArtifactStore,
    settings: Settings,
    max_parallel: int | None,
    ray_address: str | None,
    memo: dict[str, Any],
) -> Executor:
    if name == "ray":
        from modelyard.pipelines.executors.ray import RayExecutor

        return RayExecutor(
            settings.resolved_artifact_url,
            storage_options=settings.storage_options,
            address=ray_address,
            project_root=settings.project_root,
        )
    from modelyard.pipelines.executors.local import LocalExecutor

    return LocalExecutor(store, max_parallel=max_parallel, memo=memo)


class _Scheduler:
    def __init__(
        self,
        *,
        p: PipelineSpec,
        graph: Graph,
        codes: dict[str, str],
        run: Run,
        tc: Any,
        ms: Any,
        store: ArtifactStore,
        settings: Settings,
        force: bool,
        progress: Progress,
        step_data: StepData,
    ) -> None:
        from modelyard.pipelines.cache import StepCache

        self.p = p
        self.graph = graph
        self.codes = codes
        self.run_ = run
        self.tc = tc
        self.cache = StepCache(ms, store)
        self.store = store
        self.settings = settings
        self.force = force
        self.progress = progress
        self.step_data = step_data
        self.data: dict[str, dict[str, str]] = {}
        self._fps: dict[str, dict[str, str]] = {}
        self.memo: dict[str, Any] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.results: dict[str, StepResult] = {
            n.id: StepResult(n.id, "skipped") for n in graph.nodes
        }
        self.keys: dict[str, str] = {}
        self.step_runs: dict[str, Run] = {}
        self.metrics: dict[str, float] = {}
        self.registered: list[dict[str, Any]] = []
        self.failed_node: str | None = None
        self.failure: BaseException | None = None
        self._started: set[str] = set()
        self._t0: dict[str, float] = {}
        self._tasks: dict[str, StepTask] = {}

    # ------------------------------------------------------------ scheduling
    def run(self, executor: Executor) -> None:
        while True:
            if self.failed_node is None:
                self._dispatch_ready(executor)
            if not executor.busy():
                return
            for done in executor.wait():
                self._on_completed(done, executor)

    def _ready(self) -> list[Node]:
        out = []
        for n in self.graph.nodes:
            if n.id in self._started:
                continue
            if all(u.id in self.records for u in n.upstream()):
                out.append(n)
        return out

    def _dispatch_ready(self, executor: Executor) -> None:
        while True:
            ready = self._ready()
            if not ready:
                return
            prepared: list[tuple[Node, str, dict[str, dict[str, Any]]]] = []
            for n in ready:
                self._started.add(n.id)
                fps, locators = self._inputs(n)
                self._fps[n.id] = fps
                self.data[n.id] = self._files_read(n, locators)
                key = self._key(n, self.data[n.id])
                self.keys[n.id] = key
                self.results[n.id].cache_key = key
                prepared.append((n, key, locators))
            lookup = [k for n, k, _ in prepared if n.step.options.cache and not self.force]
            hits = self.cache.get_many(lookup)
            any_hit = False
            for n, key, locators in prepared:
                if key in hits:
                    any_hit = True
                    self._use_cached(n, key, *hits[key])
                else:
                    self._submit(n, locators, executor, attempt=1)
            if not any_hit:  # cache hits can make more nodes ready right away
                return

    def _inputs(self, n: Node) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        import orjson

        from modelyard.pipelines.cache import record_fingerprint
        from modelyard.pipelines.nodes import Gathered

        fps: dict[str, str] = {}
        locators: dict[str, dict[str, Any]] = {}
        for arg, value in n.inputs.items():
            if isinstance(value, Gathered):  # fan-in: one fingerprint over the parts, in order
                parts = [(key, *self._locate(n, arg, h)) for key, h in value.items]
                body = orjson.dumps([value.kind, [[k, fp] for k, fp, _ in parts]])
                fps[arg] = hashlib.sha256(body).hexdigest()
                locators[arg] = {"gather": value.kind, "items": [[k, loc] for k, _, loc in parts]}
            else:
                fps[arg], locators[arg] = self._locate(n, arg, value)
        for u in n.after:
            fps[f"after:{u.id}"] = record_fingerprint(self.records[u.id])[0]
        return fps, locators

    def _files_read(self, n: Node, locators: dict[str, dict[str, Any]]) -> dict[str, str]:
        """The data files ``n`` reads and their content sha256s, now."""
        strings = self._input_strings(locators.values())
        return self.step_data.for_step(n.id, n.params, n.step.code_object(), strings)

    def _key(self, n: Node, data: dict[str, str]) -> str:
        from modelyard.pipelines.cache import cache_key

        return cache_key(
            pipeline=self.p.name,
            step=n.id,
            code=self.codes[n.id],
            params=n.params,
            inputs=self._fps[n.id],
            data=data,
        )

    def _input_strings(self, locators: Any) -> list[str]:
        """The short string values among the inputs (a path handed down by an upstream step)."""
        from modelyard.pipelines.cache import iter_refs
        from modelyard.pipelines.executors import load_input

        out: list[str] = []
        for loc in locators:
            if "gather" in loc:
                out += self._input_strings(item for _, item in loc["items"])
            elif "record" in loc:
                refs = iter_refs(loc["record"])
                out += self._input_strings({"ref": ref, "path": []} for ref in refs)
            elif "ref" in loc and loc["ref"].get("text") and not loc.get("path"):
                value = load_input(loc, self.store, self.memo, trust=False)
                if isinstance(value, str):
                    out.append(value)
        return out

    def _data_tags(self, node_id: str) -> dict[str, Any]:
        import orjson

        files = self.data.get(node_id)
        if not files:
            return {}
        text = orjson.dumps(files).decode()
        return {"data.files": text} if len(text) <= _TAG_CHARS else {}

    def _data_changed(self, n: Node) -> list[str]:
        """The data files that changed since the step's last finished run (none on a first run)."""
        import orjson

        from modelyard.pipelines.datafiles import changed_files

        now = self.data.get(n.id)
        if not now:
            return []
        with self.cache.metadata_store.query() as q:
            rows = q.execute(
                "SELECT f.value FROM runs r "
                "JOIN run_tags p ON p.run_id = r.id AND p.key = 'pipeline' AND p.value = :pipeline "
                "JOIN run_tags f ON f.run_id = r.id AND f.key = 'data.files' "
                "WHERE r.kind = 'step' AND r.name = :step AND r.status = 'FINISHED' "
                "ORDER BY r.start_time DESC LIMIT 1",
                {"pipeline": self.p.name, "step": n.id},
            )
        if not rows:
            return []
        try:
            before = dict(orjson.loads(rows[0][0]))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            return []
        return changed_files(before, now)

    def _locate(self, n: Node, arg: str, handle: StepOutput) -> tuple[str, dict[str, Any]]:
        from modelyard.pipelines.cache import record_fingerprint

        try:
            return record_fingerprint(self.records[handle.node.id], handle.key)
        except KeyError as exc:
            raise PipelineError(
                f"step {n.id!r} (called at {n.where}) takes {handle!r} as {arg!r}, but step "
                f"{handle.node.id!r} has no output {exc.args[0]!r}",
                hint="check the index against what the upstream step returns",
                step=n.id,
            ) from None

    def _start_step_run(self, n: Node, tags: dict[str, Any]) -> Run:
        step_run: Run = self.tc.start_run(
            experiment=self.settings.experiment,
            name=n.id,
            kind="step",
            parent_run_id=self.run_.id,
            source=f"{n.step.code_object().__module__}:{n.step.code_object().__qualname__}",
            tags={"pipeline": self.p.name, "cache.key": self.keys[n.id], **tags},
            capture_lineage=False,
        )
        if n.params:
            step_run.log_params({k: _param_str(v) for k, v in n.params.items()})
        self.step_runs[n.id] = step_run
        return step_run

    def _use_cached(
        self, n: Node, key: str, outputs: dict[str, Any], source_run: str | None
    ) -> None:
        step_run = self._start_step_run(
            n, {"cache.source_run": source_run or "", "cached": "true", **self._data_tags(n.id)}
        )
        step_run.end("FINISHED")
        res = self.results[n.id]
        res.status = "cached"
        res.run_id = step_run.id
        res.source_run = source_run
        res.outputs = outputs
        self.records[n.id] = outputs
        self._note_registered(n.id, outputs, reused=True)
        self.progress.step_finished(n.id, "cached", 0.0, None)

    def _submit(
        self, n: Node, locators: dict[str, dict[str, Any]], executor: Executor, *, attempt: int
    ) -> None:
        from modelyard.pipelines.executors import StepTask
        from modelyard.pipelines.step import StepContext

        if attempt == 1:
            changed = self._data_changed(n)
            self._start_step_run(n, self._data_tags(n.id))
            if changed:
                self.results[n.id].data_changed = changed
                _log.info(
                    "step data changed",
                    extra={"step": n.id, "files": changed, "run_id": self.run_.id},
                )
            self._t0[n.id] = time.perf_counter()
            self.progress.step_started(n.id)
        opts = n.step.options
        ready_at = 0.0
        if attempt > 1:
            ready_at = time.monotonic() + opts.retry_backoff_s * 2 ** (attempt - 2)
        task = StepTask(
            node_id=n.id,
            step=n.step,
            params=n.params,
            inputs=locators,
            n_outputs=n.n_outputs,
            output_names=n.output_names,
            attempt=attempt,
            timeout_s=opts.timeout_s,
            ready_at=ready_at,
            context=StepContext(
                step=n.id,
                run_id=self.step_runs[n.id].id,
                pipeline_run_id=self.run_.id,
                settings=self.settings,
            ),
            tracking=self.tc,
        )
        executor.submit(task)
        self._tasks[n.id] = task

    def _on_completed(self, done: Completed, executor: Executor) -> None:
        n = self.graph.node(done.node_id)
        res = self.results[n.id]
        task = self._tasks[n.id]
        res.attempts = task.attempt
        res.metrics.update(done.metrics)
        step_run = self.step_runs[n.id]
        if not done.ok:
            _log.warning(
                "step attempt failed",
                extra={
                    "step": n.id,
                    "attempt": task.attempt,
                    "error": f"{done.error_type}: {done.error}",
                },
            )
            if task.attempt <= n.step.options.retries and self.failed_node is None:
                self.progress.step_retrying(n.id, task.attempt, done.error)
                self._submit(n, task.inputs, executor, attempt=task.attempt + 1)
                return
            res.status = "failed"
            res.error = f"{done.error_type}: {done.error}"
            res.hint = done.hint
            res.duration_s = time.perf_counter() - self._t0[n.id]
            step_run.set_tags({"error": res.error[:8000], "attempts": task.attempt})
            if done.traceback:
                step_run.set_tag("error.traceback", done.traceback[-8000:])
            step_run.end("FAILED")
            if self.failed_node is None:
                self.failed_node = n.id
                self.failure = done.exception
            self.progress.step_finished(n.id, "failed", res.duration_s, res.error)
            return
        assert done.record is not None  # ok attempts carry a record
        res.status = "ran"
        res.outputs = done.record
        res.run_id = step_run.id
        res.duration_s = time.perf_counter() - self._t0[n.id]
        self.records[n.id] = done.record
        keys = [self.keys[n.id]]
        # a step that writes a file it names (an output path, a log it appends to) leaves
        # it changed: its result also answers for the files as it left them, so the next run
        # re-runs it only when something else changes them
        after = self._files_read(n, task.inputs)
        if after != self.data[n.id]:
            self.data[n.id] = after
            keys.append(self._key(n, after))
            step_run.set_tags(self._data_tags(n.id))
        if n.step.options.cache:
            for key in keys:
                self.cache.put(
                    key, pipeline=self.p.name, step=n.id, outputs=done.record, run_id=step_run.id
                )
        if done.metrics:
            step_run.log_metrics(done.metrics)
            self.metrics.update(done.metrics)
        step_run.set_tag("attempts", task.attempt)
        step_run.end("FINISHED")
        self._note_registered(n.id, done.record)
        self.progress.step_finished(n.id, "ran", res.duration_s, None)

    def _note_registered(
        self, node_id: str, record: dict[str, Any], *, reused: bool = False
    ) -> None:
        """Note the model versions a step returned; ``reused`` ones came from the cache (the
        step did not run, so nothing was registered this time)."""
        from modelyard.pipelines.cache import iter_refs

        for ref in iter_refs(record):
            if ref.get("codec") == "version":
                import orjson

                info = orjson.loads(self.store.get_bytes(ref["sha256"]))
                self.registered.append(
                    {**info, "step": node_id, **({"reused": True} if reused else {})}
                )
