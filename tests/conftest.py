"""Shared fixtures: real stores on SQLite and PostgreSQL, isolated settings per test.

The PostgreSQL half of the store-parametrised tests runs when ``MODELYARD_TEST_POSTGRES_URL`` is
set (``.ci/run`` sets it); each test gets a fresh database that is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("MODELYARD_TEST_POSTGRES_URL")


def _postgres_database() -> Iterator[str]:
    """Create a throw-away database on the test server and yield its SQLAlchemy URL."""
    import sqlalchemy as sa

    assert POSTGRES_URL is not None
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"modelyard_t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(autouse=True)
def _restore_modelyard_logging() -> Iterator[None]:
    """Undo what a test's ``configure_logging`` did, so ``caplog`` sees records in later tests."""
    import logging

    from modelyard import logs

    logger = logging.getLogger("modelyard")
    saved = (list(logger.handlers), logger.level, logger.propagate, logs._configured)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
    logs._configured = saved[3]


# the params of a fixture over each database kind (PostgreSQL when its URL is set)
DATABASES = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                POSTGRES_URL is None, reason="MODELYARD_TEST_POSTGRES_URL is not set"
            ),
        ],
    ),
]


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of an empty metadata store: SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'meta.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty modelyard home folder."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def settings(tmp_path: Path, home: Path, db_url: str):  # type: ignore[no-untyped-def]
    """Settings for an isolated project in ``tmp_path`` backed by ``db_url``."""
    from modelyard.config import load_settings

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.modelyard]\n")
    return load_settings(
        start=project, home=str(home), db_url=db_url, artifact_url=str(home / "artifacts")
    )


@pytest.fixture
def sqlite_settings(tmp_path: Path, home: Path):  # type: ignore[no-untyped-def]
    """Settings on SQLite only, for tests that do not depend on the database kind."""
    from modelyard.config import load_settings

    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "pyproject.toml").write_text("[tool.modelyard]\n")
    return load_settings(start=project, home=str(home))


@pytest.fixture(scope="module")
def ray_session() -> Iterator[object]:
    """A real local Ray (2 CPUs) for a test module's Ray tests (pipeline, monitoring, batch)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
