"""A real S3 endpoint for tests: moto's standalone server as a subprocess on 127.0.0.1.

The server binds an ephemeral port (``-p 0``) and the port it got is read from its startup line,
so there is no race for a "free" port; readiness is polled with a timeout, never slept for::

    from modelyard.testing.s3 import moto_s3_server

    with moto_s3_server() as s3:
        s3.create_bucket("artifacts")
        store = ArtifactStore.open("s3://artifacts/root", s3.storage_options)

As a pytest fixture::

    @pytest.fixture(scope="module")
    def s3():
        with moto_s3_server() as server:
            yield server

Needs ``moto[server]`` (a test dependency) and ``s3fs``/``boto3`` (``modelyard[s3]``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.errors import MissingExtraError, TimeoutExceeded

__all__ = ["S3Server", "moto_s3_server"]

_RUNNING = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


@dataclass
class S3Server:
    """A running moto S3 server.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``.
        process: the server process.
        log_path: the file receiving the server's stdout and stderr.
        storage_options: fsspec/s3fs options that reach this server.
    """

    endpoint_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    storage_options: dict[str, Any] = field(default_factory=dict)

    def client(self) -> Any:
        """A boto3 S3 client for this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def create_bucket(self, name: str) -> str:
        """Create the bucket ``name`` and return ``s3://<name>``."""
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def reset(self) -> None:
        """Drop every bucket and object (moto's reset endpoint)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


def _log_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


@contextlib.contextmanager
def moto_s3_server(
    *, start_timeout_s: float = 60.0, stop_timeout_s: float = 10.0
) -> Iterator[S3Server]:
    """Start ``python -m moto.server`` on 127.0.0.1 with an ephemeral port; stop it on exit.

    Args:
        start_timeout_s: how long to wait for the server to answer.
        stop_timeout_s: how long to wait after SIGTERM before SIGKILL.

    Yields:
        The running server, with ``endpoint_url`` and ``storage_options``.

    Raises:
        MissingExtraError: moto is not installed.
        TimeoutExceeded: the server did not answer within ``start_timeout_s``.
    """
    try:
        import moto  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            "moto is not installed but the S3 test server needs it",
            hint="pip install 'moto[server]'",
        ) from exc
    with tempfile.TemporaryDirectory(prefix="modelyard-moto-") as tmp:
        log_path = Path(tmp) / "moto.log"
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "PYTHONUNBUFFERED": "1",
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        try:
            endpoint = _wait_ready(process, log_path, start_timeout_s)
            yield S3Server(
                endpoint_url=endpoint,
                process=process,
                log_path=log_path,
                storage_options={
                    "key": ACCESS_KEY,
                    "secret": SECRET_KEY,
                    "endpoint_url": endpoint,
                    "client_kwargs": {"region_name": REGION},
                },
            )
        finally:
            _stop(process, stop_timeout_s)


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    endpoint: str | None = None
    delay = 0.01
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TimeoutExceeded(
                f"the moto S3 server exited with code {process.returncode} before answering",
                hint=f"its output:\n{_log_tail(log_path)}",
            )
        if endpoint is None:
            match = _RUNNING.search(_log_tail(log_path))
            if match:
                endpoint = f"http://127.0.0.1:{match.group(1)}"
        if endpoint is not None:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                    return endpoint
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(delay)  # polling interval, bounded by the deadline
        delay = min(delay * 2, 0.2)
    _stop(process, 5.0)
    raise TimeoutExceeded(
        f"the moto S3 server did not answer within {timeout_s} s",
        hint=f"its output:\n{_log_tail(log_path)}",
    )


def _stop(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)
