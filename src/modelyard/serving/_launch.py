"""Start ``modelyard serve`` as a child process and stop it cleanly (for demos, tests, notebooks).

The parent binds the listening socket (port 0 picks a free one) and hands it to the child, so the
URL is known before the child starts and no port can be taken in between.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from modelyard.errors import ServiceUnavailable, TimeoutExceeded

__all__ = ["ServerHandle", "launch"]


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

    Returns:
        A :class:`ServerHandle` with ``.url`` and ``.stop()``.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    bound_port = sock.getsockname()[1]
    argv = [sys.executable, "-m", "modelyard.cli"]
    if home is not None:
        argv += ["--home", str(home)]
    argv += ["serve"]
    if model is not None:
        argv.append(str(model))
    if model_class is not None:
        argv += ["--model", model_class]
    if name is not None:
        argv += ["--name", name]
    if workers is not None:
        argv += ["--workers", str(workers)]
    for folder in python_path:
        argv += ["--python-path", str(Path(folder).resolve())]
    if not request_log:
        argv.append("--no-request-log")
    argv += ["--host", host, "--listen-fd", str(sock.fileno())]
    child_env = dict(os.environ)
    if env:
        child_env.update(env)
    for key, value in (serving or {}).items():
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
