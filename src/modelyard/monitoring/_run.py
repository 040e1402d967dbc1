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
from typing import TYPE_CHECKING, Any

from modelyard.errors import ModelyardError
from modelyard.logs import get_logger
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
    from modelyard.pipeline.graph import Pipeline
    from modelyard.registry.registry import ModelVersion
    from modelyard.workspace import Workspace

__all__ = ["Monitor", "watch"]

log = get_logger("modelyard.monitoring")


class Monitor:
    """Monitors the served versions of one project.

    Args:
        workspace: the project's stores and registry.
        policy: the monitoring policy.
        clock: wall-clock time source (UNIX seconds).
        batch_rows: request-log rows read per batch.
    """

    def __init__(
        self,
        workspace: Workspace,
        policy: MonitorPolicy,
        *,
        clock: Callable[[], float] = time.time,
        batch_rows: int = 65_536,
    ) -> None:
        self.workspace = workspace
        self.policy = policy
        self.clock = clock
        self.batch_rows = batch_rows
        self.store = MonitorStore(workspace.metadata_store, clock=clock)

    @classmethod
    def from_workspace(cls, workspace: Workspace, **policy: Any) -> Monitor:
        """A monitor with the policy of ``[tool.modelyard.monitor]`` (``policy`` overrides)."""
        return cls(workspace, MonitorPolicy.from_settings(workspace.settings.monitor, **policy))

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
        gate registered, or the error.

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
        from modelyard.pipeline.loader import load_pipeline

        settings = self.workspace.settings
        run_id: str | None = None
        try:
            if pipeline is None:
                pipeline = load_pipeline(settings.pipeline.entrypoint, settings.project_root)
            given = {**params, **_window_params(pipeline, result.window)}
            outcome = self.workspace.run_pipeline(pipeline, given)
            run_id = outcome.run_id
            mine = [r for r in outcome.registered if r.get("name") == result.model]
            new_version = int(mine[-1]["version"]) if mine else None
            return self.store.finish_trigger(
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
                if act:
                    monitor.act(result)
        except ModelyardError as exc:
            log.warning("monitoring round failed", extra={"ref": ref, "error": str(exc)})
        stop.wait(interval_s)
    return rounds
