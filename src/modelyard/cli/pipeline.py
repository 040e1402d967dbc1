"""`modelyard run`: run a pipeline (a thin Typer adapter over ``execute_run``).

``modelyard run`` usually skips Typer altogether (see :mod:`modelyard.cli._run`); this command
is what ``--help``, global options and usage errors go through. Options added here must be added
to ``build_run_parser`` too: ``tests/cli/test_run_front.py`` fails until they are.
"""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._run import execute_run


def run_command(
    entrypoint: Annotated[
        str | None,
        typer.Argument(
            help="module:function of the pipeline (default: [tool.modelyard.pipeline] entrypoint)"
        ),
    ] = None,
    *,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="a pipeline parameter, key=value (repeatable)"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="ignore cached step results")] = False,
    executor: Annotated[
        str | None, typer.Option("--executor", help="local (default) or ray")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="connect to this Ray cluster")
    ] = None,
    max_parallel: Annotated[
        int | None, typer.Option("--max-parallel", min=1, help="most steps at once")
    ] = None,
    if_changed: Annotated[
        bool,
        typer.Option(
            "--if-changed", help="run only if code or data changed since the last successful run"
        ),
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option("--resume", help="resume a failed pipeline run by its id (or id prefix)"),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", help="the project folder (default: found from the cwd)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option("--log-format", help="json, text or auto (text in a terminal, else json)"),
    ] = None,
) -> None:
    """Run a pipeline: cached steps are reused, every run is tracked."""
    execute_run(
        entrypoint,
        param=param,
        force=force,
        executor=executor,
        ray_address=ray_address,
        max_parallel=max_parallel,
        if_changed=if_changed,
        resume=resume,
        project=project,
        as_json=as_json,
        log_level=log_level,
        log_format=log_format,
    )


def register(app: typer.Typer) -> None:
    """Add ``modelyard run`` to the root app."""
    app.command("run")(run_command)
