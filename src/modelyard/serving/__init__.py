"""modelyard.serving: a batching model server (``modelyard serve``).

Public API::

    from modelyard.serving import launch, serve, ModelSpec, Server, ServerHandle
    handle = launch(model_class="mypkg.model:MyModel", workers=2)   # a child process
    handle.url ; handle.stop()
    serve(settings, "churn@production")     # blocking, in this process (as `modelyard serve`)

Processes: one front process (asyncio on uvloop, a lean HTTP/1.1 server on httptools, orjson)
parses HTTP and batches requests (v2 requests decoded into raw tensor bytes, v1 bodies of a
numeric model undecoded); model worker processes (one per core by default) each load the model
once, decode the v1 bodies of a batch and run ``predict`` on whole batches. See ``_batcher`` for the
batch policy, ``_codec`` for validation, ``_server`` for the lifecycle (signals, drain, reaper),
``_front`` for the versions served and the plumbing, ``_handlers`` and ``_inference`` for the
routes, ``routing`` for the router seam, ``http`` for the HTTP layer, ``_worker`` and
``_reqlog`` for the request/feedback logs (the workers write them).

Several versions of one model can be served by one front (``Server(router=...)``,
``server.front.add_version(...)``), each with its own workers and batcher; every answer says
which in ``x-model-version``.

Routes: ``/v2/health/live|ready`` (``/healthz``, ``/readyz``), ``/v2``, ``/v2/models/{name}``
[``/versions/{v}``] [``/ready`` | ``/infer``], ``/v1/models/{name}:predict``, ``/v1/feedback``,
``/v1/admin/flush`` (bearer token when ``serving.admin_token`` is set; ``/v1/feedback`` takes
``serving.feedback_token`` too), ``/metrics``,
``/openapi.json``. The v2 infer routes accept and answer the binary tensor extension
(``Inference-Header-Content-Length``) that tritonclient uses by default.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Front",
    "ModelSpec",
    "Route",
    "Router",
    "Server",
    "ServerHandle",
    "StableRouter",
    "VersionPool",
    "launch",
    "serve",
]

_LAZY = {
    "Front": "modelyard.serving._front",
    "ModelSpec": "modelyard.serving._model",
    "Route": "modelyard.serving.routing",
    "Router": "modelyard.serving.routing",
    "Server": "modelyard.serving._server",
    "ServerHandle": "modelyard.serving._launch",
    "StableRouter": "modelyard.serving.routing",
    "VersionPool": "modelyard.serving._pool",
    "launch": "modelyard.serving._launch",
}


def serve(settings: Settings, model: Any = None, **kwargs: Any) -> int:
    """Run a server in this process until SIGTERM/SIGINT; return the exit code.

    The same as ``modelyard serve``, without a command line: see
    :func:`modelyard.serving._launch.serve_model` for the arguments.

    Args:
        settings: the project's settings.
        model: a :class:`ModelSpec`, a package folder or a registry reference.
        **kwargs: ``model_class``, ``name``, ``version``, ``contract``, ``request_log``,
            ``sock``, ``resolve`` (how a reference is resolved; the Workspace passes its own).
    """
    from modelyard.serving._launch import serve_model

    return serve_model(settings, model, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'modelyard.serving' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from modelyard.config import Settings
    from modelyard.serving._front import Front as Front
    from modelyard.serving._launch import ServerHandle as ServerHandle
    from modelyard.serving._launch import launch as launch
    from modelyard.serving._model import ModelSpec as ModelSpec
    from modelyard.serving._pool import VersionPool as VersionPool
    from modelyard.serving._server import Server as Server
    from modelyard.serving.routing import Route as Route
    from modelyard.serving.routing import Router as Router
    from modelyard.serving.routing import StableRouter as StableRouter
