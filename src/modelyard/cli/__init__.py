"""The ``modelyard`` command line: a thin Typer adapter over the Python API.

``modelyard run ...`` (CI runs it on every push, and a cached run takes well under a second) goes
through a lean argparse front that imports neither Typer nor Click; everything else, and any
``run`` invocation that front leaves to Typer, goes through the Typer app.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``modelyard`` script; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    from modelyard.cli.state import state

    state.reset()
    split = _leading_globals(args)
    if split is not None:
        from modelyard.cli._run import run_without_typer

        debug, overrides, run_args = split
        before = (state.debug, dict(state.overrides))
        state.debug = debug
        state.overrides.update(overrides)
        code = run_without_typer(run_args)
        if code is not None:
            return code
        state.debug, state.overrides = before  # Typer's root callback sets them again
    from modelyard.cli.app import run

    return run(argv)


# global options taking a value: option -> (settings override, how Typer's callback converts it)
_GLOBAL_VALUES: dict[str, tuple[str, Callable[[str], str]]] = {
    "--home": ("home", str),
    "--log-level": ("log_level", str.upper),
    "--log-format": ("log_format", str.lower),
}


def _leading_globals(args: list[str]) -> tuple[bool, dict[str, str], list[str]] | None:
    """For ``[--debug] [--home H] [--log-level L] [--log-format F] run ...``: the global options
    and run's args.

    None for anything else (another command, ``--home=H``, an unknown option): Typer parses it.
    What this takes is what the Typer root callback in ``cli.app`` does with the same options.
    """
    debug = False
    overrides: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i] != "run":
        token = args[i]
        if token == "--debug":
            debug = True
            i += 1
        elif token in _GLOBAL_VALUES and i + 1 < len(args):
            value = args[i + 1]
            if value.startswith("-") or not value:
                return None
            name, convert = _GLOBAL_VALUES[token]
            overrides[name] = convert(value)
            i += 2
        else:
            return None
    if i == len(args):
        return None
    return debug, overrides, args[i + 1 :]
