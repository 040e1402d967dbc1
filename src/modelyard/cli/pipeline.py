"""`modelyard run`: run a pipeline (a thin adapter over ``Pipeline.run``)."""

from __future__ import annotations

from typing import Annotated

import typer


def _parse_params(pairs: list[str]) -> dict[str, str]:
    from modelyard.errors import InvalidInputError

    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(
                f"-p {pair!r} is not key=value",
                hint="for example: modelyard run -p n_estimators=200",
            )
        out[key.strip()] = value
    return out


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
) -> None:
    """Run a pipeline: cached steps are reused, every run is tracked."""
    import os
    import sys

    from modelyard.cli.state import emit_json, state
    from modelyard.errors import PipelineError
    from modelyard.pipeline.loader import load_pipeline
    from modelyard.pipeline.progress import LiveProgress, LogProgress, summary_text
    from modelyard.pipeline.runner import run_pipeline

    if project is not None:
        from pathlib import Path

        from modelyard.errors import NotFoundError

        if not Path(project).is_dir():
            raise NotFoundError(f"project folder {project!r} does not exist")
        settings = state.settings(start=Path(project))
    else:
        settings = state.settings()
    target = entrypoint or settings.pipeline.entrypoint
    p = load_pipeline(target, settings.project_root)
    interactive = sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")
    progress = LiveProgress() if interactive and not as_json else LogProgress()
    try:
        result = run_pipeline(
            p,
            _parse_params(param or []),
            settings=settings,
            executor=executor,
            force=force,
            max_parallel=max_parallel,
            ray_address=ray_address,
            entrypoint=target,
            resume=resume,
            progress=progress,
            params_are_strings=True,
            if_changed=if_changed,
        )
    except PipelineError as exc:
        failed = getattr(exc, "result", None)
        if failed is not None:
            if as_json:
                emit_json(failed.summary())
            else:
                typer.echo(summary_text(failed))
        raise
    if as_json:
        emit_json(result.summary())
    else:
        typer.echo(summary_text(result))


def register(app: typer.Typer) -> None:
    """Add ``modelyard run`` to the root app."""
    app.command("run")(run_command)
