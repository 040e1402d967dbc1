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
    listen_fd: Annotated[int | None, typer.Option("--listen-fd", hidden=True)] = None,
) -> None:
    from modelyard.cli.state import state
    from modelyard.errors import InvalidInputError

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
    if (model is None) == (model_class is None):
        raise InvalidInputError(
            "give either MODEL (NAME@alias, NAME:version or a folder) or --model module:Class",
            hint="modelyard serve churn@production   or   modelyard serve --model app:Model",
        )
    from modelyard.serving._model import ModelSpec

    version: str | None = None
    if model_class is not None:
        folders = tuple(str(Path(p).resolve()) for p in (python_path or []))
        cwd = str(Path.cwd())
        spec = ModelSpec.for_class(model_class, (*folders, cwd))
    elif model is not None and Path(model).is_dir():
        spec = ModelSpec.for_package(model, trust_pickle=trust_pickle)
    else:
        assert model is not None
        spec, reg_name, version = _from_registry(settings, model, trust_pickle)
        name = name or reg_name
    log_store = None
    if request_log:
        from modelyard.store.artifacts import ArtifactStore

        log_store = ArtifactStore.from_settings(settings)
    sock = None
    if listen_fd is not None:
        import socket

        sock = socket.socket(fileno=listen_fd)
    from modelyard.errors import require_extra

    require_extra("httptools", "serve")  # a clear 'pip install modelyard[serve]' if missing
    from modelyard.serving._server import Server

    on_ready = []
    if model_class is None and model is not None and not Path(model).is_dir():
        from modelyard.delivery.serving import delivery_hook  # rollouts of registered models
        from modelyard.workspace import Workspace

        hook = delivery_hook(
            Workspace.open(settings), port=lambda: server.port, trust_pickle=trust_pickle
        )
        on_ready.append(hook)
    server = Server(
        spec,
        settings.serving,
        name=name,
        version=version,
        log_store=log_store,
        log_level=settings.log_level,
        on_ready=on_ready,
    )
    code = server.run(sock)
    if code:
        raise typer.Exit(code)


def _from_registry(settings: Any, ref: str, trust_pickle: bool) -> tuple[Any, str, str]:
    """Resolve ``ref`` once (all workers serve the same version) and fetch its package.

    The package comes from the Workspace's cache, every file checked against the sha256 the
    metadata store records for the version (a changed cached copy is downloaded again).
    """
    from modelyard.serving._model import ModelSpec
    from modelyard.workspace import Workspace

    ws = Workspace.open(settings)
    mv = ws.resolve(ref)
    folder = ws.fetch(mv)
    spec = ModelSpec.for_package(folder, trust_pickle=trust_pickle).with_version(str(mv.version))
    return spec, mv.name, str(mv.version)
