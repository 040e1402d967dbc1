"""The Python API behind ``modelyard monitor``: score windows, keep history, close the loop.

Example:
    >>> from modelyard import Workspace, load_settings
    >>> from modelyard.monitoring import Monitor
    >>> mon = Monitor.from_workspace(Workspace.open(load_settings()))
    >>> results = mon.check("churn@production", last=3)       # scored and stored
    >>> [r.verdict for r in results]
    ['ok', 'ok', 'crossed']
    >>> mon.act(results[-1])                                  # retrain if the policy says so
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.errors import InvalidInputError, ModelyardError
from modelyard.logs import get_logger
from modelyard.monitoring._fanout import Counter, RayCounter
from modelyard.monitoring._monitor import (
    References,
    Window,
    WindowResult,
    monitor_window,
    windows,
)
from modelyard.monitoring._policy import MonitorPolicy
from modelyard.monitoring._results import MonitorStore, StoredResult, Trigger

if TYPE_CHECKING:
    from pathlib import Path

    from modelyard.pipelines.graph import Pipeline
    from modelyard.registry.registry import ModelVersion
    from modelyard.workspace import Workspace

__all__ = ["Deployer", "Monitor", "watch"]

log = get_logger("modelyard.monitoring")


class Deployer(Protocol):
    """Sends a newly registered version out (``modelyard.delivery``'s ``RolloutClient.deploy``
    against the running server, wired by the CLI: monitoring does not import delivery).

    Returns the rollout as the server answers it (at least ``id`` and ``state``).
    """

    def __call__(self, model: str, candidate: int, strategy: str) -> Mapping[str, Any]: ...


class Monitor:
    """Monitors the served versions of one project.

    Args:
        workspace: the project's stores and registry.
        policy: the monitoring policy.
        clock: wall-clock time source (UNIX seconds).
        batch_rows: request-log rows read per batch.
        deployer: sends a retrained version out when ``policy.deploy_strategy`` says so.
        counter: where windows are read and counted (default here; a
            :class:`~modelyard.monitoring.RayCounter` fans each out over Ray).
    """

    def __init__(
        self,
        workspace: Workspace,
        policy: MonitorPolicy,
        *,
        clock: Callable[[], float] = time.time,
        batch_rows: int = 65_536,
        deployer: Deployer | None = None,
        counter: Counter | None = None,
    ) -> None:
        self.workspace = workspace
        self.policy = policy
        self.clock = clock
        self.batch_rows = batch_rows
        self.deployer = deployer
        self.counter = counter
        self.store = MonitorStore(workspace.metadata_store, clock=clock)

    @classmethod
    def from_workspace(
        cls,
        workspace: Workspace,
        *,
        deployer: Deployer | None = None,
        executor: str = "local",
        ray_address: str | None = None,
        **policy: Any,
    ) -> Monitor:
        """A monitor with the policy of ``[tool.modelyard.monitor]`` (``policy`` overrides).

        Args:
            workspace: the project's stores.
            deployer: sends retrained versions out (see :class:`Deployer`).
            executor: ``local``, or ``ray`` to fan each window out over a Ray cluster whose
                tasks read the workspace's artifact store by URL.
            ray_address: the Ray cluster (default: the running Ray, else a local one).
            **policy: fields of :class:`MonitorPolicy` to override.

        Raises:
            InvalidInputError: an unknown executor.
        """
        counter: Counter | None = None
        if executor == "ray":
            s = workspace.settings
            counter = RayCounter(
                s.resolved_artifact_url, storage_options=s.storage_options, address=ray_address
            )
        elif executor != "local":
            raise InvalidInputError(
                f"unknown executor {executor!r}", hint="use --executor local or --executor ray"
            )
        return cls(
            workspace,
            MonitorPolicy.from_settings(workspace.settings.monitor, **policy),
            deployer=deployer,
            counter=counter,
        )

    def windows(
        self,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        last: int = 1,
    ) -> list[Window]:
        """The windows :meth:`check` scores for these arguments (see :func:`windows`)."""
        return windows(self.policy.window_s, now=self.clock(), since=since, until=until, last=last)

    def check(
        self,
        ref: str | ModelVersion,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        last: int = 1,
        record: bool = True,
    ) -> list[WindowResult]:
        """Score (and store) the windows of a version's request log.

        Args:
            ref: ``NAME``, ``NAME@ALIAS``, ``NAME:VERSION`` or a version.
            since: first window's start (ISO times on the CLI); default the aligned windows.
            until: end of the last window (default now).
            last: how many aligned windows, newest last, when ``since`` is not given.
            record: store each result in the metadata store.

        Raises:
            NotFoundError: no such model, version or alias.
        """
        from modelyard.requestlog import RequestLog

        version = self.workspace.resolve(ref) if isinstance(ref, str) else ref
        refs = self.references(version)
        out: list[WindowResult] = []
        for window in self.windows(since=since, until=until, last=last):
            reader = RequestLog(self.workspace.artifact_store, version.name, str(version.version))
            result = monitor_window(
                reader,
                refs,
                self.policy,
                model=version.name,
                version=version.version,
                window=window,
                batch_rows=self.batch_rows,
                counter=self.counter,
            )
            if record:
                result.record(self.store)
            out.append(result)
        return out

    def references(self, version: ModelVersion) -> References:
        """A version's references; one that cannot be read counts as missing (logged)."""
        try:
            return References.of_version(version)
        except ModelyardError as exc:
            log.warning(
                "references of the version not readable",
                extra={"model": version.name, "version": version.version, "error": exc.message},
            )
            return References(profile=None)

    def report(self, result: WindowResult, path: str | Path | None = None) -> StoredResult:
        """Render a window's HTML report, keep it in the artifact store (a named file,
        :func:`~modelyard.monitoring.report_name`) and record it with the stored window, so
        the UI links to it; also write it to ``path`` when given.

        Returns:
            The stored window, with :attr:`StoredResult.report` set.
        """
        from modelyard.monitoring._report import render_report, report_name, write_report

        stored = result.stored or result.record(self.store)
        version = self.workspace.resolve(f"{result.model}:{result.version}")
        profile = self.references(version).profile
        history = self.store.history(result.model, result.version)
        text = render_report(result, profile, history)
        if path is not None:
            write_report(path, result, profile, history, text=text)
        name = report_name(result.model, result.version, stored.window_start, stored.window_end)
        self.workspace.artifact_store.write_named(name, text.encode())
        result.stored = self.store.set_report(stored.id, name)
        return result.stored

    def history(self, ref: str, *, limit: int = 100) -> list[StoredResult]:
        """Stored windows of a model (every version with ``NAME``, one with ``NAME:V``/``@A``)."""
        from modelyard.registry.registry import parse_ref

        name, number, alias = parse_ref(ref)
        if number is None and alias is not None:
            number = self.workspace.resolve(ref).version
        return self.store.history(name, number, limit=limit)

    def act(
        self,
        result: WindowResult,
        *,
        pipeline: Pipeline | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Trigger | None:
        """Start the project's training pipeline when the policy says so; record the trigger.

        Only a ``crossed`` window can start a retraining, and only when ``consecutive`` windows
        in a row crossed and the cooldown after the last retraining has passed. The pipeline
        (``[tool.modelyard.pipeline] entrypoint``) gets the triggering window as its
        ``window_start`` / ``window_end`` parameters (ISO strings) when it declares them. The
        trigger is stored before the pipeline starts and updated with its run, the version the
        gate registered, or the error. When the policy has a ``deploy_strategy``, the
        registered version is then rolled out through the :class:`Deployer` and the rollout
        recorded with the trigger (:attr:`Trigger.rollout`): window -> run -> version ->
        rollout.

        Args:
            result: the scored window.
            pipeline: the pipeline to run instead of the configured entrypoint.
            params: more parameters for it (the window's are added when it declares them).

        Returns:
            The trigger, or None when the policy did not call for a retraining.
        """
        if result.stored is None:
            result.record(self.store)
        history = self.store.history(result.model, result.version)
        triggers = self.store.triggers(result.model)
        go, why = self.policy.should_retrain(history, triggers, now=self.clock())
        if not go:
            log.info(
                "no retraining",
                extra={"model": result.model, "version": result.version, "reason": why},
            )
            return None
        streak = [h.id for h in history[-self.policy.consecutive :]]
        trigger = self.store.start_trigger(
            model=result.model,
            version=result.version,
            result_id=result.stored.id if result.stored else None,
            window_start=result.window.start_s,
            window_end=result.window.end_s,
            evidence={"reason": why, "signals": result.signals, "results": streak},
        )
        log.info(
            "retraining started",
            extra={"model": result.model, "version": result.version, "trigger": trigger.id},
        )
        return self._retrain(trigger, result, pipeline, params or {})

    def _retrain(
        self,
        trigger: Trigger,
        result: WindowResult,
        pipeline: Pipeline | None,
        params: Mapping[str, Any],
    ) -> Trigger:
        from modelyard.errors import GateFailed
        from modelyard.pipelines.loader import load_pipeline

        settings = self.workspace.settings
        run_id: str | None = None
        try:
            if pipeline is None:
                pipeline = load_pipeline(settings.pipeline.entrypoint, settings.project_root)
            given = {**params, **_window_params(pipeline, result.window)}
            outcome = self.workspace.run_pipeline(pipeline, given)
            run_id = outcome.run_id
            mine = [
                r
                for r in outcome.registered
                if r.get("name") == result.model and not r.get("reused")
            ]
            new_version = int(mine[-1]["version"]) if mine else None
            done = self.store.finish_trigger(
                trigger.id, status="succeeded", run_id=run_id, new_version=new_version
            )
        except ModelyardError as exc:
            found = exc.details.get("run_id")
            run_id = run_id or (str(found) if found else None)
            if isinstance(exc, GateFailed) or isinstance(exc.__cause__, GateFailed):
                return self.store.finish_trigger(
                    trigger.id, status="gate_refused", run_id=run_id, error=exc.message
                )
            log.warning("retraining failed", extra={"trigger": trigger.id, "error": exc.message})
            return self.store.finish_trigger(
                trigger.id, status="failed", run_id=run_id, error=exc.message
            )
        return self._deploy(done)

    def _deploy(self, trigger: Trigger) -> Trigger:
        """Roll the retrained version out when the policy says so; a rollout that cannot
        start is recorded with the trigger (the version stays registered, nothing moves)."""
        strategy = self.policy.deploy_strategy
        if strategy is None or trigger.new_version is None:
            return trigger
        fields = {"model": trigger.model, "version": trigger.new_version, "trigger": trigger.id}
        if self.deployer is None:
            log.warning("retrained version not rolled out", extra=fields)
            return self.store.record_rollout(
                trigger.id,
                {
                    "strategy": strategy,
                    "error": "no deployer: start the loop with `modelyard monitor --act` "
                    "(it deploys on [tool.modelyard.monitor] deploy_url) or pass "
                    "Monitor(deployer=...)",
                },
            )
        try:
            answer = dict(self.deployer(trigger.model, trigger.new_version, strategy))
        except ModelyardError as exc:
            log.warning("rollout not started", extra={**fields, "error": exc.message})
            return self.store.record_rollout(
                trigger.id, {"strategy": strategy, "error": exc.message}
            )
        keep = ("id", "state", "strategy", "candidate_version", "stable_version", "url")
        rollout = {k: answer[k] for k in keep if k in answer}
        rollout.setdefault("strategy", strategy)
        log.info("rollout started", extra={**fields, "rollout": rollout.get("id")})
        return self.store.record_rollout(trigger.id, rollout)


def _window_params(pipeline: Any, window: Window) -> dict[str, Any]:
    """The triggering window, for the ``window_start``/``window_end`` parameters the pipeline
    declares (its other parameters come from ``[tool.modelyard.pipeline] params``)."""
    names = set(pipeline.signature().parameters)
    given = {"window_start": window.start.isoformat(), "window_end": window.end.isoformat()}
    return {k: v for k, v in given.items() if k in names}


def watch(
    monitor: Monitor,
    ref: str,
    *,
    stop: Any,
    act: bool = False,
    gauges: Any = None,
    interval_s: float = 60.0,
    on_result: Callable[[WindowResult], None] | None = None,
    on_trigger: Callable[[Trigger], None] | None = None,
) -> int:
    """Score the current window of ``ref`` every ``interval_s`` until ``stop`` is set.

    Nothing a window holds stops the watcher: each error is logged and the next round tries
    again. Returns the number of rounds.

    Args:
        monitor: the monitor.
        ref: ``NAME@ALIAS`` follows the alias as it moves; ``NAME:V`` stays on one version.
        stop: a ``threading.Event`` (set from a signal handler).
        act: start retraining when the policy says so.
        gauges: a :class:`~modelyard.monitoring.MonitorGauges` to update.
        interval_s: seconds between rounds.
        on_result: called with each result (the CLI prints it).
        on_trigger: called with each retraining ``act`` started, once it ended (with its run,
            version and rollout).
    """
    rounds = 0
    while not stop.is_set():
        rounds += 1
        try:
            for result in monitor.check(ref, last=1):
                if gauges is not None:
                    gauges.update(result)
                if on_result is not None:
                    on_result(result)
                trigger = monitor.act(result) if act else None
                if trigger is not None and on_trigger is not None:
                    on_trigger(trigger)
        except ModelyardError as exc:
            log.warning("monitoring round failed", extra={"ref": ref, "error": str(exc)})
        except Exception as exc:  # a watcher outlives any one round's failure
            log.error(
                "monitoring round crashed",
                extra={"ref": ref, "error": f"{type(exc).__name__}: {exc}"[:500]},
            )
        stop.wait(interval_s)
    return rounds
