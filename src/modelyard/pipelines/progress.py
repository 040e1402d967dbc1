"""Progress of a pipeline run: a live table in a terminal, JSON log lines elsewhere.

:class:`LiveProgress` (rich) is for an interactive terminal; :class:`LogProgress` writes one JSON
line per event on stderr (through :mod:`modelyard.logs`) and is what CI and pipes get.
:func:`summary_text` renders the end-of-run summary for humans.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.logs import get_logger

if TYPE_CHECKING:
    from modelyard.pipelines.result import PipelineResult

__all__ = ["LiveProgress", "LogProgress", "Progress", "SilentProgress", "summary_text"]

_log = get_logger("pipeline")


class Progress(Protocol):
    """Receives a run's events (all from the runner's thread)."""

    def start(self, pipeline: str, run_id: str, steps: list[str]) -> None: ...

    def step_started(self, step: str) -> None: ...

    def step_retrying(self, step: str, attempt: int, error: str) -> None: ...

    def step_finished(
        self, step: str, status: str, duration_s: float, error: str | None
    ) -> None: ...

    def finish(self, result: PipelineResult) -> None: ...


class SilentProgress:
    """Says nothing: for callers that report on their own (the demo, a sweep's trials)."""

    def start(self, pipeline: str, run_id: str, steps: list[str]) -> None:
        return None

    def step_started(self, step: str) -> None:
        return None

    def step_retrying(self, step: str, attempt: int, error: str) -> None:
        return None

    def step_finished(self, step: str, status: str, duration_s: float, error: str | None) -> None:
        return None

    def finish(self, result: PipelineResult) -> None:
        return None


class LogProgress:
    """One JSON log line per event (``pipeline started``, ``step finished``, ...)."""

    def __init__(self) -> None:
        self.run_id: str | None = None

    def start(self, pipeline: str, run_id: str, steps: list[str]) -> None:
        self.run_id = run_id
        _log.info(
            "pipeline started", extra={"pipeline": pipeline, "run_id": run_id, "steps": len(steps)}
        )

    def step_started(self, step: str) -> None:
        _log.info("step started", extra={"step": step, "run_id": self.run_id})

    def step_retrying(self, step: str, attempt: int, error: str) -> None:
        _log.warning(
            "step retrying",
            extra={"step": step, "attempt": attempt, "error": error, "run_id": self.run_id},
        )

    def step_finished(self, step: str, status: str, duration_s: float, error: str | None) -> None:
        extra: dict[str, Any] = {
            "step": step,
            "status": status,
            "duration_s": round(duration_s, 4),
            "run_id": self.run_id,
        }
        if error:
            extra["error"] = error
        if status == "failed":
            _log.error("step finished", extra=extra)
        else:
            _log.info("step finished", extra=extra)

    def finish(self, result: PipelineResult) -> None:
        _log.info(
            "pipeline finished",
            extra={
                "pipeline": result.pipeline,
                "run_id": result.run_id,
                "status": result.status,
                "ran": len(result.ran),
                "cached": len(result.cached),
                "failed": len(result.failed),
                "duration_s": round(result.duration_s, 4),
            },
        )


_ICONS = {
    "pending": "·",
    "running": "▶",
    "ran": "✓",
    "cached": "↺",
    "failed": "✗",
    "retrying": "↻",
}


class LiveProgress:
    """A rich Live table: one row per step with its state and time.

    Args:
        console: a ``rich.console.Console`` (default: stderr).
    """

    def __init__(self, console: Any = None) -> None:
        self.console = console
        self._live: Any = None
        self._rows: dict[str, list[Any]] = {}
        self._title = ""

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(
            title=self._title, show_edge=False, pad_edge=False, min_width=len(self._title) + 2
        )
        table.add_column("step")
        table.add_column("state")
        table.add_column("time", justify="right")
        now = time.perf_counter()
        for step, (state, t0, finished_s) in self._rows.items():
            took = now - t0 if state in ("running", "retrying") and t0 is not None else finished_s
            shown = f"{took:.2f}s" if took is not None else ""
            table.add_row(step, f"{_ICONS.get(state, '?')} {state}", shown)
        return table

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def start(self, pipeline: str, run_id: str, steps: list[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        self._title = f"pipeline {pipeline}  run {run_id[:12]}"
        self._rows = {s: ["pending", None, None] for s in steps}
        console = self.console or Console(stderr=True)
        self._live = Live(self._render(), console=console, refresh_per_second=8, transient=False)
        self._live.start()

    def step_started(self, step: str) -> None:
        self._rows[step] = ["running", time.perf_counter(), None]
        self._refresh()

    def step_retrying(self, step: str, attempt: int, error: str) -> None:
        self._rows[step][0] = "retrying"
        self._refresh()

    def step_finished(self, step: str, status: str, duration_s: float, error: str | None) -> None:
        self._rows[step] = [status, None, duration_s]
        self._refresh()

    def finish(self, result: PipelineResult) -> None:
        for step, res in result.steps.items():
            if res.status == "skipped" and step in self._rows:
                self._rows[step] = ["skipped", None, None]
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None


def summary_text(result: PipelineResult) -> str:
    """A few plain lines: status, counts, time, metrics and registered versions."""
    if result.status == "UNCHANGED":
        return f"pipeline {result.pipeline}: nothing changed; not run"
    lines = [
        f"pipeline {result.pipeline} {result.status.lower()} in {result.duration_s:.2f}s "
        f"(run {result.run_id})",
        f"steps: {len(result.ran)} ran, {len(result.cached)} cached, {len(result.failed)} failed"
        + (
            f", {len(result.steps) - len(result.ran) - len(result.cached) - len(result.failed)}"
            " skipped"
            if result.status == "FAILED"
            else ""
        ),
    ]
    for reason in result.reasons:
        lines.append(f"trigger: {reason}")
    readers: dict[str, list[str]] = {}
    for name, res in result.steps.items():
        for path in res.data_changed:
            readers.setdefault(path, []).append(name)
    for path, steps in readers.items():
        lines.append(f"data changed: {path} (re-ran {', '.join(steps)})")
    for name, res in result.steps.items():
        if res.status == "failed":
            lines.append(f"failed: {name}: {res.error}")
    if result.metrics:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items()))
        lines.append(f"metrics: {shown}")
    for reg in result.registered:
        if reg.get("reused"):
            lines.append(
                f"reused: {reg['name']} version {reg['version']} (step {reg['step']} was cached; "
                "nothing registered this run)"
            )
        else:
            lines.append(f"registered: {reg['name']} version {reg['version']} (step {reg['step']})")
    return "\n".join(lines)
