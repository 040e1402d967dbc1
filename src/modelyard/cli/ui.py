"""`modelyard ui`: the web pages over the project's stores (see modelyard.ui)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("ui")(ui)


def ui(
    host: Annotated[
        str | None, typer.Option("--host", help="address to listen on (default 127.0.0.1)")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=0, max=65535, help="port (default 8780)")
    ] = None,
) -> None:
    """Serve the web UI: runs, compare, pipelines, models and their alias history.

    Read-only unless an admin token is set (MODELYARD_UI__ADMIN_TOKEN or [tool.modelyard.ui]
    admin_token); actions then need it and record who and why.
    """
    from modelyard.cli.state import state
    from modelyard.errors import require_extra
    from modelyard.logs import get_logger
    from modelyard.ui import create_app
    from modelyard.workspace import Workspace

    uvicorn = require_extra("uvicorn", "ui")
    settings = state.settings()
    app = create_app(Workspace.open(settings))
    import socket

    bind_host = host or settings.ui.host
    bind_port = settings.ui.port if port is None else port
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind_host, bind_port))  # bound here so --port 0 can say which port it got
    url = f"http://{bind_host}:{sock.getsockname()[1]}"
    get_logger("ui").info(
        "ui listening", extra={"url": url, "read_only": settings.ui.admin_token is None}
    )
    typer.echo(f"modelyard ui on {url}", err=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
