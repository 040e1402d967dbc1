"""`modelyard monitor`: drift, data quality and live quality of a served version, and the loop.

Exit codes: 0 when every scored window is within the policy (or has no verdict: the reason is
printed), 3 (:class:`~modelyard.errors.ValidationFailed`) when a window crossed it, naming the
signals and features.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from modelyard.config import Settings
    from modelyard.monitoring import Deployer, Monitor, Trigger, WindowResult

_HELP = """Monitor a served version: drift against its reference profile, contract violations
and live quality, from its request and feedback logs. Results are stored per window.

REF is NAME (latest version), NAME@ALIAS or NAME:VERSION. Exit 3 when a window crosses the
policy of [tool.modelyard.monitor].
"""


def register(app: typer.Typer) -> None:
    """Add ``modelyard monitor`` to the root app."""
    app.command("monitor", help=_HELP)(monitor)


def _iso(value: str | None, flag: str) -> dt.datetime | None:
    from modelyard.errors import InvalidInputError

    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(
            f"{flag} {value!r} is not an ISO time",
            hint=f"e.g. {flag} 2026-01-31T09:00:00Z (UTC when no zone is given)",
        ) from exc
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


def _named(signal: dict[str, Any]) -> list[str]:
    """What a crossed signal names: features, outputs, columns or metrics."""
    named = signal.get("features") or signal.get("outputs") or signal.get("columns")
    return [str(n) for n in (named or signal.get("metrics", {}))]


def _line(r: WindowResult) -> str:
    head = f"{r.model}:{r.version} {r.window} rows={r.rows:,} verdict={r.verdict}"
    if r.error:
        head += f": {r.error}"
    for s in r.signals:
        head += f"\n  {s['signal']}: {', '.join(_named(s))}"
    if r.drift is not None and r.verdict != "no_verdict":
        top = sorted(r.drift.features, key=lambda f: -f.psi)[:5]
        head += "\n  " + "  ".join(
            f"{f.feature} psi={f.psi:.3f} js={f.jensen_shannon:.3f}"
            + (f" w={f.wasserstein:.3f}" if f.wasserstein is not None else "")
            + (" DRIFT" if f.drifted else "")
            for f in top
        )
    if r.quality is not None and (r.quality.metrics or r.quality.estimated):
        q = r.quality
        parts = [f"{k}={v.value:.3f} [{v.low:.3f}, {v.high:.3f}]" for k, v in q.metrics.items()]
        parts += [f"est.{k}={v.value:.3f}" for k, v in q.estimated.items()]
        head += f"\n  quality ({q.labelled:,} labelled, {q.unlabelled:,} not): " + " ".join(parts)
    if r.skipped_files:
        head += f"\n  {r.skipped_files} corrupt request-log file(s) skipped"
    return head


def monitor(  # noqa: PLR0917  (a Typer command: one parameter per flag)
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME:VERSION")],
    since: Annotated[
        str | None, typer.Option("--since", help="ISO time: windows from here until now")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="ISO time: end of the last window")
    ] = None,
    window: Annotated[
        str | None, typer.Option("--window", help="window length: 30m, 1h, 1d (default: policy)")
    ] = None,
    last: Annotated[int, typer.Option("--last", help="the last N aligned windows")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
    history: Annotated[
        bool, typer.Option("--history", help="print the stored results instead of scoring")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", help="rows of --history")] = 50,
    report: Annotated[
        Path | None, typer.Option("--report", help="write an HTML report of the latest window")
    ] = None,
    grafana: Annotated[
        Path | None, typer.Option("--grafana", help="write a Grafana dashboard JSON and exit")
    ] = None,
    act: Annotated[
        bool, typer.Option("--act", help="start the training pipeline when the policy says so")
    ] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="score the current window every --interval-s")
    ] = False,
    interval_s: Annotated[
        float | None, typer.Option("--interval-s", help="seconds between --watch rounds")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="serve Prometheus gauges (0: any port)")
    ] = None,
    executor: Annotated[
        str,
        typer.Option("--executor", help="local, or ray: fan each window out over a Ray cluster"),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="the Ray cluster (default: a local one)"),
    ] = None,
    deploy_url: Annotated[
        str | None,
        typer.Option(
            "--deploy-url",
            help="the server a retrained version is rolled out on (with deploy_strategy; "
            "default: [tool.modelyard.monitor] deploy_url, else serving host:port)",
        ),
    ] = None,
) -> None:
    from modelyard.cli.state import emit_json, state
    from modelyard.monitoring import Monitor, parse_duration_s
    from modelyard.workspace import Workspace

    settings = state.settings()
    if grafana is not None:
        _write_grafana(grafana, ref)
        return
    overrides: dict[str, Any] = {}
    if window is not None:
        overrides["window_s"] = parse_duration_s(window)
    deployer = _deployer(settings, deploy_url) if act or watch else None
    mon = Monitor.from_workspace(
        Workspace.open(settings),
        deployer=deployer,
        executor=executor,
        ray_address=ray_address,
        **overrides,
    )
    if history:
        rows = mon.history(ref, limit=limit)
        if as_json:
            emit_json([row.to_dict() for row in rows])
        else:
            for row in rows:
                start = dt.datetime.fromtimestamp(row.window_start, dt.UTC).isoformat()
                score = "-" if row.drift_score is None else f"{row.drift_score:.3f}"
                named = "; ".join(s["signal"] for s in row.signals)
                typer.echo(
                    f"{start} v{row.version} {row.verdict:<17} rows={row.rows:<9,} "
                    f"score={score} {named}"
                )
        return
    if watch:
        _watch(mon, ref, act=act, interval_s=interval_s, metrics_port=metrics_port, as_json=as_json)
        return
    results = mon.check(ref, since=_iso(since, "--since"), until=_iso(until, "--until"), last=last)
    if as_json:
        emit_json([r.summary() for r in results])
    else:
        for r in results:
            typer.echo(_line(r))
    if report is not None and results:
        _write_report(mon, report, results[-1], as_json=as_json)
    if act:
        for r in results:
            trigger = mon.act(r)
            if trigger is not None and not as_json:
                typer.echo(_trigger_line(trigger))
    _exit_code(results)


def _trigger_line(trigger: Trigger) -> str:
    line = (
        f"retraining {trigger.id}: {trigger.status}"
        + (f", run {trigger.run_id}" if trigger.run_id else "")
        + (f", registered version {trigger.new_version}" if trigger.new_version else "")
        + (f": {trigger.error}" if trigger.error else "")
    )
    rollout = trigger.rollout
    if rollout is not None:
        if rollout.get("error"):
            line += f"\n  not rolled out ({rollout['strategy']}): {rollout['error']}"
        else:
            line += f"\n  rollout {rollout.get('id')}: {rollout['strategy']} {rollout.get('state')}"
    return line


def _deployer(settings: Settings, url: str | None) -> Deployer | None:
    """Rolls a retrained version out on the running server, through modelyard.delivery's
    client (monitoring does not import delivery: the two are wired here)."""
    if settings.monitor.deploy_strategy is None:
        return None
    from modelyard.cli.deploy import client_for

    def deploy(model: str, candidate: int, strategy: str) -> dict[str, Any]:
        # naming the model: a server that serves another one refuses the rollout
        client = client_for(settings, url or settings.monitor.deploy_url, model)
        answer = client.deploy(candidate=candidate, strategy=strategy)
        return {**answer, "url": client.url}

    return deploy


def _write_report(mon: Monitor, path: Path, result: WindowResult, *, as_json: bool) -> None:
    import sys

    stored = mon.report(result, path)  # also kept in the artifact store, linked by the UI
    # stdout stays pure JSON with --json
    out = sys.stderr if as_json else sys.stdout
    print(f"report: {path.resolve()} (kept as {stored.report})", file=out)


def _write_grafana(path: Path, ref: str) -> None:
    import orjson

    from modelyard.monitoring import grafana_dashboard
    from modelyard.registry.registry import parse_ref

    name, _, _ = parse_ref(ref)
    data = orjson.dumps(grafana_dashboard(name), option=orjson.OPT_INDENT_2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data + b"\n")
    typer.echo(f"grafana dashboard: {path.resolve()}")


def _exit_code(results: list[WindowResult]) -> None:
    from modelyard.errors import ValidationFailed

    crossed = [r for r in results if r.crossed]
    if not crossed:
        return
    what = sorted({f"{s['signal']} ({', '.join(_named(s))})" for r in crossed for s in r.signals})
    raise ValidationFailed(
        f"{len(crossed)} window(s) of {crossed[0].model}:{crossed[0].version} crossed the "
        f"monitoring policy: {'; '.join(what)}",
        hint="see the report (--report report.html) or retrain (--act)",
        signals=what,
    )


def _watch(
    mon: Monitor,
    ref: str,
    *,
    act: bool,
    interval_s: float | None,
    metrics_port: int | None,
    as_json: bool,
) -> None:
    import signal
    import threading

    from modelyard.cli.state import emit_json
    from modelyard.monitoring import MonitorGauges, watch

    settings = mon.workspace.settings.monitor
    port = metrics_port if metrics_port is not None else settings.metrics_port
    gauges = MonitorGauges()
    server = None
    if port is not None:
        server, bound = gauges.serve(port)
        typer.echo(f"metrics: http://127.0.0.1:{bound}/metrics")
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        watch(
            mon,
            ref,
            stop=stop,
            act=act,
            gauges=gauges,
            interval_s=interval_s if interval_s is not None else settings.interval_s,
            on_result=lambda r: emit_json(r.summary()) if as_json else typer.echo(_line(r)),
            on_trigger=lambda t: (
                emit_json(t.to_dict()) if as_json else typer.echo(_trigger_line(t))
            ),
        )
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if server is not None:
            server.shutdown()
            server.server_close()
