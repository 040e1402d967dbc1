"""`modelyard demo`: the continuous-training story on the credit example (see modelyard.demo)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("demo")(demo)


def demo(
    home: Annotated[
        str | None,
        typer.Option("--home", help="use this modelyard home (default: a throw-away folder)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="include the serving chapter")
    ] = True,
    rows: Annotated[int, typer.Option("--rows", min=500, help="applications per batch")] = 6000,
) -> None:
    """Train, cache, retrain on drift, gate a worse model, then serve: in about a minute."""
    from modelyard.cli.state import emit_json, state
    from modelyard.demo import run_demo
    from modelyard.logs import configure_logging

    # the story is the output; a gate failure is expected, so its warning log line is noise
    configure_logging(state.overrides.get("log_level", "ERROR"))
    chosen = home if home is not None else state.overrides.get("home")

    def quiet(_: str) -> None:
        return None

    report = run_demo(chosen, echo=quiet if as_json else typer.echo, serve=serve, rows=rows)
    if as_json:
        emit_json(report.to_dict())
    if not report.ok:
        raise typer.Exit(1)
