"""`modelyard runs`: list, search and show tracked runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard.cli.state import emit_json, state

if TYPE_CHECKING:
    from modelyard.tracking.client import TrackingClient
    from modelyard.tracking.entities import RunInfo

app = typer.Typer(help="List, search and inspect tracked runs.", no_args_is_help=True)


def _client() -> TrackingClient:
    from modelyard.workspace import Workspace

    return Workspace.open(state.settings()).tracking


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _duration(info: RunInfo) -> str:
    d = info.duration_s
    if d is None:
        return "-"
    if d < 60:
        return f"{d:.1f}s"
    if d < 3600:
        return f"{d / 60:.1f}m"
    return f"{d / 3600:.1f}h"


def _fmt_number(v: float) -> str:
    return f"{v:.6g}"


@app.command("list")
def list_runs(  # noqa: PLR0917 - Typer maps each parameter to an option
    experiment: Annotated[
        list[str] | None,
        typer.Option("--experiment", "-e", help="only this experiment (repeatable)"),
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter",
            "-f",
            help="e.g. \"metrics.auc > 0.8 and params.lr = '0.1' and status = 'FINISHED'\"",
        ),
    ] = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option("--order-by", "-o", help="e.g. 'metrics.auc DESC' (repeatable)"),
    ] = None,
    max_results: Annotated[int, typer.Option("--max", "-n", help="page size")] = 50,
    page_token: Annotated[
        str | None, typer.Option("--page-token", help="next_page_token of the previous page")
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option("--parent", help="only the runs nested under this run (id or prefix)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List runs, newest first, optionally filtered and ordered."""
    client = _client()
    if parent is not None:  # a resolved id is hex: nothing to quote; filters are only `and`s
        nested = f"parent_run_id = '{client.resolve_run_id(parent)}'"
        filter_ = f"{filter_} and {nested}" if filter_ else nested  # the user's error offsets hold
    page = client.search_runs(
        experiment=experiment or None,
        filter=filter_,
        order_by=order_by or None,
        max_results=max_results,
        page_token=page_token,
    )
    if as_json:
        emit_json(
            {
                "runs": [r.to_dict() for r in page.items],
                "next_page_token": page.next_page_token,
            }
        )
        return
    if not page.items:
        typer.echo("no runs found")
        return
    metric_keys = _shown_metrics(page.items, order_by or [])
    header = ["RUN", "EXPERIMENT", "NAME", "STATUS", "STARTED", "DURATION", *metric_keys]
    rows = [header]
    for r in page.items:
        rows.append(
            [
                r.id[:12],
                r.experiment,
                r.name or "-",
                r.status,
                _when(r.start_time),
                _duration(r),
                *[_fmt_number(r.metrics[k]) if k in r.metrics else "-" for k in metric_keys],
            ]
        )
    _table(rows)
    if page.next_page_token:
        typer.echo(f"more runs: --page-token {page.next_page_token}")


def _table(rows: list[list[str]]) -> None:
    """Print rows (the first the header) in left-aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _shown_metrics(items: list[RunInfo], order_by: list[str]) -> list[str]:
    """The metric columns: those ordered by first, then the most common, at most 4."""
    keys: list[str] = []
    for item in order_by:
        head = item.split()[0] if item.split() else ""
        if head.startswith(("metrics.", "metric.")):
            keys.append(head.split(".", 1)[1].strip('`"'))
    counts: dict[str, int] = {}
    for r in items:
        for k in r.metrics:
            counts[k] = counts.get(k, 0) + 1
    for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if k not in keys:
            keys.append(k)
    return keys[:4]


@app.command("trials")
def trials(
    study: Annotated[str, typer.Argument(help="the study's name, or its run's id or a prefix")],
    max_results: Annotated[int, typer.Option("--max", "-n", help="trials per page")] = 20,
    page: Annotated[int, typer.Option("--page", help="the page to show, from 1")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show a sweep's trials, best first: number, state, swept params and the objective."""
    from modelyard.errors import InvalidInputError
    from modelyard.sweep.trials import find_study_run, trials_page
    from modelyard.workspace import Workspace

    if page < 1:
        raise InvalidInputError(f"--page must be 1 or more, got {page}", page=page)
    ws = Workspace.open(state.settings())
    found = trials_page(
        ws, find_study_run(ws, study), offset=(page - 1) * max_results, limit=max_results
    )
    if as_json:
        emit_json(found.to_dict())
        return
    typer.echo(
        f"study {found.name!r} (run {found.study.id}, {found.study.status}): {found.total} "
        f"trials, {found.metric} ({found.direction}), best first"
    )
    header = ["", "TRIAL", "STATE", *found.param_names, found.metric.upper(), "RUN"]
    rows = [header]
    for t in found.trials:
        rows.append(
            [
                "*" if t.run_id == found.best_run_id else "",
                str(t.number),
                t.state,
                *[t.params.get(k, "-") for k in found.param_names],
                "-" if t.value is None else _fmt_number(t.value),
                t.run_id[:12],
            ]
        )
    _table(rows)
    shown = found.offset + len(found.trials)
    if shown < found.total:
        typer.echo(f"trials {found.offset + 1}-{shown} of {found.total}: --page {page + 1}")


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="a run id or a unique prefix of one")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show one run: params, metrics, tags, datasets, artifacts and lineage."""
    client = _client()
    info = client.get_run(client.resolve_run_id(run_id))
    if as_json:
        emit_json(info.to_dict())
        return
    _print_run(info)


def _print_run(info: RunInfo) -> None:
    out = typer.echo
    out(f"run         {info.id}")
    out(f"experiment  {info.experiment}")
    if info.name:
        out(f"name        {info.name}")
    out(f"kind        {info.kind}")
    out(f"status      {info.status}")
    out(f"started     {_when(info.start_time)}")
    out(f"ended       {_when(info.end_time)}  ({_duration(info)})")
    if info.parent_run_id:
        out(f"parent      {info.parent_run_id}")
    if info.user:
        out(f"user        {info.user}")
    if info.source:
        out(f"source      {info.source}")
    _section("params", dict(info.params))
    _section("metrics (latest)", {k: _fmt_number(v) for k, v in info.metrics.items()})
    _section("tags", dict(info.tags))
    if info.datasets:
        out("datasets")
        for d in info.datasets:
            ctx = f" [{d['context']}]" if d.get("context") else ""
            rows = d.get("rows")
            ncols = len(d.get("schema") or {})
            out(f"  {d['name']}{ctx}  sha256:{d['digest'][:16]}  {rows} rows x {ncols} columns")
            if d.get("source"):
                out(f"    source: {d['source']}")
    if info.artifacts:
        out("artifacts")
        for path, a in info.artifacts.items():
            out(f"  {path}  sha256:{a['sha256'][:16]}  {a['size_bytes']} bytes")
    lin = info.lineage
    out("lineage")
    if lin.get("git_commit"):
        dirty = " (dirty, diff sha256:" + str(lin.get("git_diff_sha256") or "")[:16] + ")"
        out(
            f"  git         {lin['git_commit']}"
            + (f" on {lin['git_branch']}" if lin.get("git_branch") else "")
            + (dirty if lin.get("git_dirty") else " (clean)")
        )
    else:
        out("  git         - (not a git work tree, or not captured)")
    env: dict[str, Any] = lin.get("environment") or {}
    if env:
        out(f"  python      {env.get('python')} ({env.get('implementation')})")
        out(f"  platform    {env.get('platform')}")
        out(f"  cpu         {env.get('cpu')} x {env.get('cpu_count')}")
        gpus = env.get("gpu") or []
        out("  gpu         " + (", ".join(str(g.get("name")) for g in gpus) or "-"))
        out(f"  packages    {len(env.get('packages') or {})} installed (--json lists them)")


def _section(title: str, values: dict[str, str]) -> None:
    if not values:
        return
    typer.echo(title)
    width = max(len(k) for k in values)
    for k, v in values.items():
        typer.echo(f"  {k:<{width}}  {v}")
