"""`modelyard serve`: serve a registered model, a model package folder or a user's class."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

_HELP = """Serve a model over HTTP (Open Inference Protocol v2 and {"instances": [...]}).

MODEL is NAME@alias, NAME:version or a model package folder; or pass --model module:Class.
Flags override MODELYARD_SERVING__* environment variables and [tool.modelyard.serving].
"""


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("serve", help=_HELP)(serve)


def serve(  # noqa: PLR0917  (a Typer command: one parameter per flag)
    model: Annotated[
        str | None, typer.Argument(help="NAME@alias, NAME:version or a model package folder")
    ] = None,
    model_class: Annotated[
        str | None, typer.Option("--model", help="a class 'module:Class' with load() and predict()")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="model name in URLs")] = None,
    host: Annotated[str | None, typer.Option("--host")] = None,
    port: Annotated[int | None, typer.Option("--port", help="0 picks a free port")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="model worker processes (default: one per core)")
    ] = None,
    max_batch_size: Annotated[int | None, typer.Option("--max-batch-size")] = None,
    max_wait_ms: Annotated[float | None, typer.Option("--max-wait-ms")] = None,
    queue_size: Annotated[int | None, typer.Option("--queue-size")] = None,
    timeout_s: Annotated[float | None, typer.Option("--timeout-s")] = None,
    max_body_bytes: Annotated[int | None, typer.Option("--max-body-bytes")] = None,
    grace_s: Annotated[float | None, typer.Option("--grace-s")] = None,
    python_path: Annotated[
        list[str] | None,
        typer.Option("--python-path", help="folder to import --model from (repeatable)"),
    ] = None,
    request_log: Annotated[
        bool,
        typer.Option(
            "--request-log/--no-request-log",
            help="write sampled requests and feedback to the artifact store",
        ),
    ] = True,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="allow pickle-flavoured packages")
    ] = False,
    contract: Annotated[
        Path | None,
        typer.Option(
            "--contract",
            help="a data contract (TOML) requests are checked against (default: the "
            "registered version's)",
        ),
    ] = None,
    listen_fd: Annotated[int | None, typer.Option("--listen-fd", hidden=True)] = None,
) -> None:
    from modelyard.cli.state import state

    serving: dict[str, Any] = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "workers": workers,
            "max_batch_size": max_batch_size,
            "max_wait_ms": max_wait_ms,
            "queue_size": queue_size,
            "timeout_s": timeout_s,
            "max_body_bytes": max_body_bytes,
            "grace_s": grace_s,
        }.items()
        if v is not None
    }
    settings = state.settings(serving=serving) if serving else state.settings()
    from modelyard.delivery.serving import rollout_hooks
    from modelyard.serving._launch import serve_model

    sock = None
    if listen_fd is not None:
        import socket

        sock = socket.socket(fileno=listen_fd)
    code = serve_model(
        settings,
        model,
        model_class=model_class,
        python_path=python_path or (),
        name=name,
        contract=contract,
        request_log=request_log,
        trust_pickle=trust_pickle,
        sock=sock,
        resolve=_workspace_resolver(settings),
        on_ready=rollout_hooks(settings, model, model_class, trust_pickle),
    )
    if code:
        raise typer.Exit(code)


def _workspace_resolver(settings: Any) -> Any:
    """Resolve a reference once (all workers serve the same version) through the Workspace.

    The package comes from the Workspace's cache, every file checked against the sha256 the
    metadata store records for the version (a changed cached copy is downloaded again); the
    version's data contract comes with it.
    """

    def resolve(ref: str) -> tuple[Path, str, str, Any]:
        from modelyard.workspace import Workspace

        ws = Workspace.open(settings)
        mv = ws.resolve(ref)
        return ws.fetch(mv), mv.name, str(mv.version), mv.contract

    return resolve
