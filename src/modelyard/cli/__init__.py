"""The ``modelyard`` command line: a thin Typer adapter over the Python API."""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``modelyard`` script; returns the exit code."""
    from modelyard.cli.app import run

    return run(argv)
