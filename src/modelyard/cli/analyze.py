"""`modelyard analyze`: candidate vs stable from Prometheus and the feedback log; exit 0/1/2."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli.state import emit_json, state

_HELP = """Compare a candidate version with the stable one over a window, as a rollout does.

Counters come from Prometheus (the metrics `modelyard serve` exports, labelled by version),
quality from the request and feedback logs in the artifact store. Thresholds come from
[tool.modelyard.delivery]. Exit code: 0 pass, 1 fail, 2 inconclusive or insufficient data
(for an Argo Rollouts AnalysisTemplate Job metric).
"""


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("analyze", help=_HELP)(analyze)


def analyze(  # noqa: PLR0917  (a Typer command: one parameter per flag)
    name: Annotated[str, typer.Argument(help="the model's name")],
    candidate: Annotated[str, typer.Option("--candidate", "-c", help="the candidate's version")],
    prometheus: Annotated[
        str, typer.Option("--prometheus", help="Prometheus base URL, http://HOST:9090")
    ],
    stable: Annotated[
        str | None, typer.Option("--stable", help="the stable version (default: @production)")
    ] = None,
    window: Annotated[str, typer.Option("--window", help="how far back: 10m, 1h, 90s")] = "10m",
    feedback: Annotated[
        bool, typer.Option("--feedback/--no-feedback", help="judge quality from the feedback log")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print the analysis as JSON")] = False,
) -> None:
    import datetime as dt

    from modelyard.delivery.analysis import Outcome, Thresholds
    from modelyard.delivery.analysis import analyze as run_analysis
    from modelyard.delivery.client import parse_duration_s
    from modelyard.delivery.external import feedback_quality, prometheus_stats
    from modelyard.workspace import Workspace

    settings = state.settings()
    window_s = parse_duration_s(window)
    ws = Workspace.open(settings)
    stable_v = stable or str(ws.resolve(f"{name}@production").version)
    cand_v = str(ws.registry.get_version(name, candidate).version)
    arms = {v: prometheus_stats(prometheus, name, v, window_s) for v in (cand_v, stable_v)}
    if feedback:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=window_s)
        arms = {
            v: counts + feedback_quality(ws.artifact_store, name, v, since)
            for v, counts in arms.items()
        }
    verdict = run_analysis(
        arms[cand_v], arms[stable_v], Thresholds.from_settings(settings.delivery)
    )
    code = {Outcome.PASS: 0, Outcome.FAIL: 1}.get(verdict.outcome, 2)
    if as_json:
        emit_json({"candidate_version": cand_v, "stable_version": stable_v, **verdict.to_dict()})
    else:
        typer.echo(f"{name} v{cand_v} vs v{stable_v} over {window}: {verdict.reason}")
        for check in verdict.checks:
            typer.echo(
                f"  {check.name:<14} {check.outcome:<18} candidate {check.candidate} "
                f"stable {check.stable} {check.detail}".rstrip()
            )
    raise typer.Exit(code)
