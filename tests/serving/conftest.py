"""Fixtures: real servers (front + worker processes) on 127.0.0.1 with ephemeral ports."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import httpx
import pytest

from modelyard.serving import ServerHandle, launch

HERE = Path(__file__).resolve().parent


def start(
    model_class: str, tmp_path: Path | None = None, *, workers: int = 1, **kwargs: Any
) -> ServerHandle:
    """Launch a server for a class in tests/serving/models.py; stderr goes to a file."""
    kwargs.setdefault("request_log", False)
    kwargs.setdefault("ready_timeout_s", 120)
    if tmp_path is None:
        return launch(
            model_class=f"models:{model_class}", python_path=[HERE], workers=workers, **kwargs
        )
    kwargs.setdefault("cwd", tmp_path)
    with (tmp_path / "server.log").open("ab") as err:  # the child keeps its own copy of the fd
        return launch(
            model_class=f"models:{model_class}",
            python_path=[HERE],
            workers=workers,
            stderr=err,
            **kwargs,
        )


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerHandle]]:
    """Start servers for a test; all are stopped (and must exit 0) at teardown."""
    handles: list[ServerHandle] = []

    def make(model_class: str, **kwargs: Any) -> ServerHandle:
        handle = start(model_class, tmp_path, **kwargs)
        handles.append(handle)
        return handle

    yield make
    for h in handles:
        h.stop(grace_s=30)


@pytest.fixture(scope="module")
def linear(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One Linear server with two workers shared by a module's tests."""
    tmp = tmp_path_factory.mktemp("linear")
    handle = start("Linear", tmp, workers=2)
    yield handle
    assert handle.stop() == 0


@pytest.fixture
def client(linear: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=linear.url, timeout=30) as c:
        yield c


def log_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines a server wrote on stderr (non-JSON lines fail the test)."""
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def metric(text: str, sample: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition (parsed, not grepped)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"no sample {sample} {labels} in the exposition")


class ClientThreads:
    """Client threads running ``self._run(i)`` until the ``with`` block ends."""

    def __init__(self, url: str, threads: int) -> None:
        self.url = url
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, i: int) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)
