"""`modelyard run` without Typer: the one implementation, and a lean argparse front for it.

A cached ``modelyard run`` is done in a fraction of a second, and importing Typer (its vendored
Click, and pydantic through its adapters) would be a large share of that. So
:func:`modelyard.cli.main` hands ``modelyard run ...`` to :func:`run_without_typer`, which parses
with argparse and calls :func:`execute_run`, the same function the Typer command calls.

Typer stays the authority on the command line: whatever this parser does not accept exactly as
Typer would (``--help``, usage errors, spellings on which argparse and Click disagree) is left to
the Typer app, which prints its usual usage message. ``tests/cli/test_run_front.py`` checks that
the two parsers offer the same options and agree on every argument list this one accepts.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["RunParser", "build_run_parser", "execute_run", "parse_run_args", "run_without_typer"]


def _parse_params(pairs: Sequence[str]) -> dict[str, str]:
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


def execute_run(
    entrypoint: str | None = None,
    *,
    param: Sequence[str] | None = None,
    force: bool = False,
    executor: str | None = None,
    ray_address: str | None = None,
    max_parallel: int | None = None,
    if_changed: bool = False,
    resume: str | None = None,
    project: str | None = None,
    as_json: bool = False,
    log_level: str | None = None,
    log_format: str | None = None,
) -> None:
    """Run a pipeline and print its summary on stdout (JSON with ``as_json``).

    The arguments are those of ``modelyard run``, named as the Typer command names them.

    Raises:
        ModelyardError: the pipeline could not be loaded or run; a failed run prints its
            summary first.
    """
    from modelyard.cli.state import emit_summary, state
    from modelyard.errors import PipelineError
    from modelyard.pipelines.loader import load_pipeline
    from modelyard.pipelines.progress import LiveProgress, LogProgress, summary_text
    from modelyard.pipelines.runner import run_pipeline

    given = {
        "log_level": log_level and log_level.upper(),
        "log_format": log_format and log_format.lower(),
    }
    for name, value in given.items():
        if value is not None and state.overrides.get(name) != value:
            state.overrides[name] = value  # as the global option before `run` would
            state._settings = None
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
            emit_summary(failed, as_json, summary_text)
        raise
    emit_summary(result, as_json, summary_text)


class _Unparsed(Exception):
    """argparse cannot parse the arguments; Typer will, and will say what is wrong."""


class RunParser(argparse.ArgumentParser):
    """argparse for ``modelyard run``: raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise _Unparsed(message)

    def arguments(self) -> list[argparse.Action]:
        """The positional argument and the options, in the order they were added."""
        return list(self._actions)


def _positive_int(text: str) -> int:
    # ASCII digits only: Typer accepts more spellings ("3.0", " 3", "+3"), which then fall back
    # to it; int() alone would also take "٣", which Typer refuses.
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(text)
    return int(text)


def build_run_parser() -> RunParser:
    """The argparse twin of the Typer ``run`` command in :mod:`modelyard.cli.pipeline`."""
    parser = RunParser(prog="modelyard run", add_help=False, allow_abbrev=False)
    parser.add_argument("entrypoint", nargs="?")
    parser.add_argument("--param", "-p", action="append")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--executor")
    parser.add_argument("--ray-address", dest="ray_address")
    parser.add_argument("--max-parallel", dest="max_parallel", type=_positive_int)
    parser.add_argument("--if-changed", dest="if_changed", action="store_true")
    parser.add_argument("--resume")
    parser.add_argument("--project")
    parser.add_argument("--json", dest="as_json", action="store_true")
    parser.add_argument("--log-level", dest="log_level")
    parser.add_argument("--log-format", dest="log_format")
    return parser


def _is_plain(token: str, options: frozenset[str]) -> bool:
    """Whether argparse reads ``token`` as Click does (only options need a closer look)."""
    if not token.startswith("-"):
        return True
    if token.startswith("--"):  # "--name" or "--name=value"; a bare "--" is Typer's
        return token.partition("=")[0] in options
    # "-p VALUE" or "-pVALUE"; Click reads "-p=x" as "=x" where argparse reads "x", and "-1",
    # "-h" or "-" are Typer's to judge
    return token.startswith("-p") and not token.startswith("-p=")


def parse_run_args(args: Sequence[str]) -> dict[str, Any] | None:
    """Keyword arguments of :func:`execute_run` for ``modelyard run ARGS``.

    Returns None where Typer must parse ``args``: help, anything argparse rejects, and the
    spellings on which argparse and Click would disagree.
    """
    parser = build_run_parser()
    options = frozenset(s for action in parser.arguments() for s in action.option_strings)
    if not all(_is_plain(token, options) for token in args):
        return None
    try:
        return vars(parser.parse_args(args))
    except _Unparsed:
        return None


def run_without_typer(args: Sequence[str]) -> int | None:
    """Run ``modelyard run ARGS`` without importing Typer and return the exit code.

    Returns None, having run nothing, where Typer must parse ``args`` (see
    :func:`parse_run_args`). Errors are reported as the Typer app reports them.
    """
    from modelyard.cli._errors import report_error
    from modelyard.cli.state import state

    kwargs = parse_run_args(args)
    if kwargs is None:
        return None
    try:
        execute_run(**kwargs)
    except (Exception, KeyboardInterrupt) as exc:
        return report_error(exc, debug=state.debug)
    return 0
