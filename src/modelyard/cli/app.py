"""The root Typer app: global options, error rendering and the command groups.

Command modules import nothing heavy at module level; the work happens inside the commands.
Errors derived from :class:`~modelyard.errors.ModelyardError` print one message and a hint on
stderr and exit with the error's code; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard.cli import analyze as analyze_cmd
from modelyard.cli import build as build_cmd
from modelyard.cli import check as check_cmd
from modelyard.cli import ci as ci_cmd
from modelyard.cli import config as config_cmd
from modelyard.cli import db as db_cmd
from modelyard.cli import demo as demo_cmd
from modelyard.cli import deploy as deploy_cmd
from modelyard.cli import init as init_cmd
from modelyard.cli import k8s as k8s_cmd
from modelyard.cli import models as models_cmd
from modelyard.cli import monitor as monitor_cmd
from modelyard.cli import pipeline as pipeline_cmd
from modelyard.cli import rollout as rollout_cmd
from modelyard.cli import runs as runs_cmd
from modelyard.cli import score as score_cmd
from modelyard.cli import serve as serve_cmd
from modelyard.cli import sweep as sweep_cmd
from modelyard.cli import ui as ui_cmd
from modelyard.cli.state import state

if TYPE_CHECKING:
    from typer._click.exceptions import ClickException

app = typer.Typer(
    name="modelyard",
    help="CI/CD/CT for machine-learning models: data and model tests, cached pipelines, "
    "tracking, a model registry, gated releases, fast serving and monitoring.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks on errors")] = False,
    home: Annotated[
        str | None, typer.Option("--home", help="modelyard home (env MODELYARD_HOME)")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option("--log-format", help="json, text or auto (text in a terminal, else json)"),
    ] = None,
) -> None:
    state.debug = debug
    if home is not None:
        state.overrides["home"] = home
    if log_level is not None:
        state.overrides["log_level"] = log_level.upper()
    if log_format is not None:
        state.overrides["log_format"] = log_format.lower()


@app.command("version")
def _version() -> None:
    """Print the modelyard version."""
    from modelyard import __version__

    typer.echo(__version__)


app.add_typer(config_cmd.app, name="config")
app.add_typer(db_cmd.app, name="db")
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(models_cmd.app, name="models")
app.add_typer(check_cmd.app, name="check")
pipeline_cmd.register(app)
serve_cmd.register(app)
score_cmd.register(app)
sweep_cmd.register(app)
demo_cmd.register(app)
init_cmd.register(app)
k8s_cmd.register(app)
build_cmd.register(app)
ci_cmd.register(app)
deploy_cmd.register(app)
analyze_cmd.register(app)
app.add_typer(rollout_cmd.app, name="rollout")
ui_cmd.register(app)
monitor_cmd.register(app)


def _usage_error_type() -> type[ClickException]:
    """The base class of the usage errors Typer raises: its vendored Click, or Click itself."""
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # a Typer release from before it vendored Click
        from click.exceptions import ClickException  # type: ignore[assignment]
    return ClickException


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and turn modelyard errors into one message, a hint and an exit code."""
    from modelyard.cli._errors import report_error

    try:
        result: Any = app(args=argv, prog_name="modelyard", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except _usage_error_type() as exc:  # bad options or arguments: Typer's usage message
        exc.show()
        return exc.exit_code
    except (Exception, KeyboardInterrupt) as exc:
        return report_error(exc, debug=state.debug)
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
