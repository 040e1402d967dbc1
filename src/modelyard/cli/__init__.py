"""The ``modelyard`` command line: a thin Typer adapter over the Python API.

``modelyard run ...`` (CI runs it on every push, and a cached run takes well under a second) goes
through a lean argparse front that imports neither Typer nor Click; everything else, and any
``run`` invocation that front leaves to Typer, goes through the Typer app.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``modelyard`` script; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["run"]:
        from modelyard.cli._run import run_without_typer

        code = run_without_typer(args[1:])
        if code is not None:
            return code
    from modelyard.cli.app import run

    return run(argv)
