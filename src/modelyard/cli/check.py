"""`modelyard check` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="check commands", no_args_is_help=True)
