"""Progress displays: the live table in a terminal, JSON lines elsewhere, the summary."""

from __future__ import annotations

import io
import json
from typing import Any

import modelyard
from modelyard.pipelines.progress import LiveProgress, LogProgress, summary_text


@modelyard.step
def first(n: int) -> int:
    modelyard.pipelines.log_metric("n", n)
    return n


@modelyard.step
def second(x: int) -> int:
    return x + 1


@modelyard.pipeline
def two(n: int = 1) -> Any:
    return second(first(n=n))


def test_live_progress_draws_every_step_and_its_state(sqlite_settings: Any) -> None:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    result = two.run(settings=sqlite_settings, progress=LiveProgress(console=console))
    text = out.getvalue()
    assert f"pipeline two  run {result.run_id[:12]}" in text
    assert "first" in text
    assert "second" in text
    assert "✓ ran" in text

    out2 = io.StringIO()
    console2 = Console(file=out2, force_terminal=True, width=100, color_system=None)
    two.run(settings=sqlite_settings, progress=LiveProgress(console=console2))
    assert "↺ cached" in out2.getvalue()


def test_log_progress_writes_json_lines(sqlite_settings: Any) -> None:
    from modelyard.logs import configure_logging

    stream = io.StringIO()
    configure_logging("INFO", stream=stream, force=True)
    try:
        result = two.run(settings=sqlite_settings, n=5, progress=LogProgress())
    finally:
        configure_logging("INFO", force=True)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    pipeline_events = [r for r in records if r["logger"] == "modelyard.pipeline"]
    assert [r["msg"] for r in pipeline_events] == [
        "pipeline started",
        "step started",
        "step finished",
        "step started",
        "step finished",
        "pipeline finished",
    ]
    assert all(r["run_id"] == result.run_id for r in pipeline_events)
    assert pipeline_events[2]["step"] == "first"
    assert pipeline_events[2]["status"] == "ran"


def test_summary_text_has_counts_metrics_and_failures(sqlite_settings: Any) -> None:
    result = two.run(settings=sqlite_settings, n=3)
    text = summary_text(result)
    assert text.startswith("pipeline two finished in ")
    assert "steps: 2 ran, 0 cached, 0 failed" in text
    assert "metrics: n=3" in text
