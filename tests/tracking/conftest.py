"""Fixtures for the tracking tests: a TrackingClient on a fresh store, fluent state reset."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelyard.tracking import fluent
from modelyard.tracking.client import TrackingClient


@pytest.fixture
def client(settings) -> Iterator[TrackingClient]:  # type: ignore[no-untyped-def]
    """A client on the parametrised store (SQLite, then PostgreSQL)."""
    tc = TrackingClient.from_settings(settings)
    try:
        yield tc
    finally:
        for run in list(tc._runs.values()):
            run.end("KILLED")
        tc.metadata_store.dispose()


@pytest.fixture
def sqlite_client(sqlite_settings) -> Iterator[TrackingClient]:  # type: ignore[no-untyped-def]
    """A client on SQLite only, for tests whose behaviour does not depend on the database."""
    tc = TrackingClient.from_settings(sqlite_settings)
    try:
        yield tc
    finally:
        for run in list(tc._runs.values()):
            run.end("KILLED")
        tc.metadata_store.dispose()


@pytest.fixture
def fluent_client(client: TrackingClient) -> Iterator[TrackingClient]:
    """The fluent API pointed at ``client``; active runs ended and state reset afterwards."""
    fluent.set_client(client)
    try:
        yield client
    finally:
        while fluent.active_run() is not None:
            fluent.end_run("KILLED")
        fluent.set_client(None)
