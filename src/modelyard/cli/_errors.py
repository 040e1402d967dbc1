"""How a failed command reports itself on stderr: one message, a hint and an exit code.

Shared by the Typer app and the Typer-free ``modelyard run`` front, so both print the same
bytes and exit with the same code.
"""

from __future__ import annotations

import sys
import traceback

from modelyard.errors import ModelyardError

__all__ = ["report_error"]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def report_error(exc: Exception | KeyboardInterrupt, *, debug: bool = False) -> int:
    """Print ``exc`` for the user on stderr and return the process exit code.

    A :class:`~modelyard.errors.ModelyardError` prints ``error: <message>`` and
    ``hint: <hint>`` and returns its ``exit_code`` (``debug`` prints the traceback first).
    Ctrl-C returns 130 quietly. Anything else is a bug in modelyard: one line and a hint to re-run
    with ``--debug``, exit code 1; with ``debug`` the exception is re-raised so that Python
    prints the whole traceback.
    """
    if isinstance(exc, ModelyardError):
        if debug:
            traceback.print_exception(exc)
        _say(f"error: {exc.message}")
        if exc.hint:
            _say(f"hint: {exc.hint}")
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if debug:
        raise exc
    _say(f"error: unexpected {type(exc).__name__}: {exc}")
    _say("hint: re-run with --debug for the traceback and report it")
    return 1
