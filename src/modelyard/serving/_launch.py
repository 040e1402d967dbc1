"""Serve a model from Python: in this process (:func:`serve_model`) or in a child process
(:func:`launch`, for demos, tests, notebooks), without going through the CLI.

The parent binds the listening socket (port 0 picks a free one) and hands it to the child, so the
URL is known before the child starts and no port can be taken in between. The child runs
``python -m modelyard.serving._launch OPTIONS`` (this module's :func:`main`): it reads its
settings at its own edge (``MODELYARD_*`` variables of its environment carry the serving
overrides, so no token appears on a command line) and calls :func:`serve_model`.

What a layer above serving adds to the child's server comes in through ``hooks``: module-level
functions (or their ``module:function`` names) the child imports and calls with ``(settings,
model, model_class, trust_pickle)``; each returns ``on_ready`` hooks. Serving names none itself:
delivery offers :func:`modelyard.delivery.serving.rollout_hooks` (a registered model's
rollouts), and ``modelyard serve`` passes it in-process.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError, ServiceUnavailable, TimeoutExceeded

if TYPE_CHECKING:
    from modelyard.config import Settings
    from modelyard.data.contract import Contract
    from modelyard.serving._front import Front
    from modelyard.serving._model import ModelSpec

__all__ = ["LaunchHook", "OnReady", "Resolved", "ServerHandle", "launch", "serve_model"]

# a coroutine the server runs with its Front once the model is ready
OnReady = Callable[["Front"], Awaitable[None]]
# a launch hook: called in the server's process with (settings, model, model_class,
# trust_pickle); returns the server's on_ready hooks
LaunchHook = Callable[["Settings", "str | None", "str | None", bool], Sequence[OnReady]]

# what a registry reference resolves to: the package folder, the model name, the version label
# and the version's data contract
Resolved = tuple[Path, str, str, "Contract | None"]


def serve_model(
    settings: Settings,
    model: str | os.PathLike[str] | ModelSpec | None = None,
    *,
    model_class: str | None = None,
    python_path: Sequence[str | os.PathLike[str]] = (),
    name: str | None = None,
    version: str | None = None,
    contract: Contract | str | os.PathLike[str] | None = None,
    request_log: bool = True,
    trust_pickle: bool = False,
    sock: socket.socket | None = None,
    resolve: Callable[[str], Resolved] | None = None,
    on_ready: Sequence[OnReady] = (),
) -> int:
    """Serve a model in this process until SIGTERM/SIGINT; return the exit code.

    Args:
        settings: the project's settings (``settings.serving`` configures the server).
        model: a :class:`ModelSpec`, a model package folder, or a registry reference
            (``NAME``, ``NAME@alias``, ``NAME:version``).
        model_class: ``module:Class`` instead of ``model``.
        python_path: folders ``model_class`` is imported from (the working folder is added).
        name: the model name in URLs (default: the registry's or the model's own name).
        version: the version label (default: the registry version, else the model's own).
        contract: a data contract (or a contract file) requests are checked against
            (default: the registry version's contract).
        request_log: write the request and feedback logs to the artifact store.
        trust_pickle: allow pickle-flavoured packages.
        sock: a bound, listening socket to serve on (default: ``serving.host:port``).
        resolve: resolves a registry reference. ``modelyard serve`` passes the Workspace's
            (``ws.resolve`` and ``ws.fetch``); without it the settings' registry and package
            cache are opened with their own ``from_settings`` and the package fetched through
            the one hash-checked path, :meth:`PackageCache.fetch`.
        on_ready: coroutines run with the :class:`Front` once the model is ready (the CLI
            installs the delivery hook of a registered model this way).

    Raises:
        InvalidInputError: not exactly one of ``model`` and ``model_class``; an illegal name.
        NotFoundError: the reference names no version.
        ConfigError: the model cannot be loaded.
    """
    from modelyard.errors import require_extra
    from modelyard.serving._model import ModelSpec
    from modelyard.serving._server import Server

    if (model is None) == (model_class is None):
        raise InvalidInputError(
            "give either MODEL (NAME@alias, NAME:version or a folder) or --model module:Class",
            hint="modelyard serve churn@production   or   modelyard serve --model app:Model",
        )
    if isinstance(contract, str | os.PathLike):
        from modelyard.data.contract import Contract

        contract = Contract.from_file(Path(contract))
    if model_class is not None:
        folders = tuple(str(Path(p).resolve()) for p in python_path)
        spec = ModelSpec.for_class(model_class, (*folders, str(Path.cwd())))
    elif isinstance(model, ModelSpec):
        spec = model
    elif Path(model).is_dir():  # type: ignore[arg-type]
        spec = ModelSpec.for_package(model, trust_pickle=trust_pickle)  # type: ignore[arg-type]
    else:
        folder, reg_name, reg_version, reg_contract = (resolve or _registry_resolver(settings))(
            str(model)
        )
        spec = ModelSpec.for_package(folder, trust_pickle=trust_pickle)
        name = name or reg_name
        version = version or reg_version
        contract = contract if contract is not None else reg_contract
    if version is not None:
        spec = spec.with_version(version)
    log_store = None
    if request_log:
        from modelyard.store.artifacts import ArtifactStore

        log_store = ArtifactStore.from_settings(settings)
    require_extra("httptools", "serve")  # a clear 'pip install modelyard[serve]' if missing
    server = Server(
        spec,
        settings.serving,
        name=name,
        version=version,
        log_store=log_store,
        log_level=settings.log_level,
        contract=contract,
        on_ready=list(on_ready),
    )
    return server.run(sock)


def _registry_resolver(settings: Settings) -> Callable[[str], Resolved]:
    """Resolve a reference in the settings' registry, the package fetched into the settings'
    package cache (every file checked against the sha256 the metadata store records).

    The fallback for callers below the Workspace (serving cannot import it); the parts are the
    ones the Workspace itself is made of, built by their own ``from_settings``.
    """

    def resolve(ref: str) -> Resolved:
        from modelyard.registry.cache import PackageCache
        from modelyard.registry.registry import Registry

        registry = Registry.from_settings(settings)
        mv = registry.resolve(ref)
        folder = PackageCache.from_settings(settings).fetch(registry, mv)
        return folder, mv.name, str(mv.version), mv.contract

    return resolve


def _hook_name(hook: LaunchHook | str) -> str:
    """The ``module:function`` the child process imports ``hook`` by."""
    if isinstance(hook, str):
        module, _, attr = hook.partition(":")
        if module and attr:
            return hook
        name = repr(hook)
    else:
        module = getattr(hook, "__module__", None) or ""
        attr = getattr(hook, "__qualname__", "")
        if module not in {"", "__main__"} and attr and "<" not in attr:
            return f"{module}:{attr}"
        name = f"{module}:{attr}" if attr else repr(hook)
    raise InvalidInputError(
        f"launch hook {name} cannot be imported by the server process",
        hint="pass a module-level function of an importable module, or its 'module:function'",
        hook=name,
    )


def _load_hook(name: str) -> LaunchHook:
    module, _, attr = name.partition(":")
    target: Any = importlib.import_module(module)
    for part in attr.split("."):
        target = getattr(target, part)
    hook: LaunchHook = target
    return hook


class ServerHandle:
    """A running ``modelyard serve`` child process.

    Attributes:
        url: ``http://host:port`` of the server.
        port: the port it listens on.
        process: the ``subprocess.Popen`` of the front process.
    """

    def __init__(self, process: subprocess.Popen[bytes], host: str, port: int) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout_s: float = 60.0) -> ServerHandle:
        """Poll ``/v2/health/ready`` until 200; raise if the child exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        delay = 0.01
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServiceUnavailable(
                    f"the server process exited with code {code} before it was ready",
                    hint="see its log lines on stderr",
                    exit_code=code,
                )
            try:
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=2.0) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop(grace_s=5.0)
                raise TimeoutExceeded(
                    f"the server at {self.url} was not ready within {timeout_s} s",
                    hint="a large model may need a longer ready_timeout_s",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def stop(self, grace_s: float = 30.0) -> int:
        """SIGTERM the server, wait up to ``grace_s`` (then SIGKILL); return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def launch(
    model: str | os.PathLike[str] | None = None,
    *,
    model_class: str | None = None,
    name: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    workers: int | None = None,
    serving: Mapping[str, Any] | None = None,
    python_path: Sequence[str | os.PathLike[str]] = (),
    home: str | os.PathLike[str] | None = None,
    request_log: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    wait: bool = True,
    ready_timeout_s: float = 120.0,
    new_session: bool = False,
    version: str | None = None,
    contract: str | os.PathLike[str] | None = None,
    trust_pickle: bool = False,
    hooks: Sequence[LaunchHook | str] = (),
) -> ServerHandle:
    """Start a server in a child process; return its handle once ready (``wait=True``).

    Args:
        model: ``NAME@alias``, ``NAME:version`` or a model package folder.
        model_class: ``module:Class`` instead of ``model``.
        name: the model name in URLs.
        host, port: where to listen (port 0: a free port).
        workers: model worker processes (default: one per core).
        serving: other ``[tool.modelyard.serving]`` values (``max_batch_size``, ``grace_s``...),
            passed as ``MODELYARD_SERVING__*`` environment variables.
        python_path: folders the workers import ``model_class`` from.
        home: modelyard home (registry, artifact store for the request log).
        request_log: write the request and feedback logs to the artifact store.
        env: extra environment for the child.
        cwd: the child's working folder (its project root).
        stdout, stderr: where the child's output goes (default: inherited).
        wait: wait until ``/v2/health/ready`` answers 200.
        ready_timeout_s: how long to wait for readiness.
        new_session: start the server in its own session and process group (its pid is the
            group id), so that a signal to the group reaches the front and its workers.
        version: the version label (default: the registry version, else the model's own).
        contract: a data contract file requests are checked against (default: the registry
            version's contract).
        trust_pickle: allow pickle-flavoured packages.
        hooks: module-level functions (or ``module:function`` names) the child imports and
            calls with ``(settings, model, model_class, trust_pickle)``; each returns
            ``on_ready`` hooks for the server. None by default; for the server ``modelyard
            serve`` starts (a registered model's rollouts), pass
            ``[modelyard.delivery.serving.rollout_hooks]``.

    Returns:
        A :class:`ServerHandle` with ``.url`` and ``.stop()``.
    """
    hook_names = [_hook_name(h) for h in hooks]
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    bound_port = sock.getsockname()[1]
    options = {
        "model": None if model is None else str(model),
        "model_class": model_class,
        "python_path": [str(Path(p).resolve()) for p in python_path],
        "name": name,
        "version": version,
        "contract": None if contract is None else str(Path(contract).resolve()),
        "home": None if home is None else str(home),
        "request_log": request_log,
        "trust_pickle": trust_pickle,
        "listen_fd": sock.fileno(),
        "hooks": hook_names,
    }
    argv = [sys.executable, "-m", "modelyard.serving._launch", json.dumps(options)]
    child_env = dict(os.environ)
    if env:
        child_env.update(env)
    overrides = dict(serving or {})
    if workers is not None:
        overrides["workers"] = workers
    overrides["host"] = host
    for key, value in overrides.items():
        child_env[f"MODELYARD_SERVING__{key.upper()}"] = str(value)
    try:
        proc = subprocess.Popen(
            argv,
            pass_fds=[sock.fileno()],
            env=child_env,
            cwd=cwd,
            stdout=stdout,
            stderr=stderr,
            start_new_session=new_session,
        )
    finally:
        sock.close()
    handle = ServerHandle(proc, host, bound_port)
    if wait:
        handle.wait_ready(ready_timeout_s)
    return handle


def main(argv: list[str] | None = None) -> int:
    """The child process of :func:`launch`: settings at this edge, then :func:`serve_model`."""
    from modelyard.config import load_settings
    from modelyard.errors import ModelyardError
    from modelyard.logs import configure_logging

    opts = json.loads((argv if argv is not None else sys.argv[1:])[0])
    try:
        settings = load_settings(home=opts["home"])
        configure_logging(settings.log_level)
        on_ready: list[OnReady] = []
        for name in opts["hooks"]:
            hook = _load_hook(name)
            on_ready += hook(settings, opts["model"], opts["model_class"], opts["trust_pickle"])
        return serve_model(
            settings,
            opts["model"],
            model_class=opts["model_class"],
            python_path=opts["python_path"],
            name=opts["name"],
            version=opts["version"],
            contract=opts["contract"],
            request_log=opts["request_log"],
            trust_pickle=opts["trust_pickle"],
            sock=socket.socket(fileno=opts["listen_fd"]),
            on_ready=on_ready,
        )
    except ModelyardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
