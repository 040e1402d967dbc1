"""A new SQLite store made from ``sqlite_head.sql`` is the store Alembic's migrations make."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelyard.store import db
from modelyard.store.db import HEAD_REVISION, MetadataStore, sqlite_head_statements


def _schema(path: Path) -> list[tuple[str, str, str, str | None]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert revision == [(HEAD_REVISION,)]
    return rows


def _render(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        statements = [
            row[0]
            for row in conn.execute(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid"
            )
        ]
    head = db.SQLITE_HEAD_SQL.read_text(encoding="utf-8").splitlines()
    comment = [line for line in head[1:] if line.startswith("--")]
    lines = [f"-- revision {HEAD_REVISION}", *comment, ""]
    return "\n".join(lines) + "\n" + ";\n\n".join(statements) + ";\n"


def test_the_head_ddl_matches_what_the_migrations_build(tmp_path: Path) -> None:
    by_alembic = tmp_path / "alembic.db"
    MetadataStore.open_unchecked(f"sqlite:///{by_alembic}").upgrade("head")
    if os.environ.get("MODELYARD_UPDATE_SQLITE_HEAD") == "1":
        db.SQLITE_HEAD_SQL.write_text(_render(by_alembic), encoding="utf-8")
    by_ddl = tmp_path / "ddl.db"
    store = MetadataStore.open(f"sqlite:///{by_ddl}")
    assert store._engine is None, "the store was not made from sqlite_head.sql"
    assert _schema(by_ddl) == _schema(by_alembic), (
        "sqlite_head.sql is out of date: re-run this test with MODELYARD_UPDATE_SQLITE_HEAD=1"
    )


def test_alembic_takes_over_a_store_made_from_the_ddl(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = MetadataStore.open(url)
    assert store.current_revision() == HEAD_REVISION
    store.check()
    first = db.REVISIONS[0]
    store.downgrade(first)
    assert store.current_revision() == first
    store.upgrade()
    assert store.current_revision() == HEAD_REVISION


def test_a_new_store_is_made_without_importing_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'm.db'}"
    script = textwrap.dedent(
        f"""
        import sys
        from modelyard.store.db import MetadataStore
        store = MetadataStore.open({url!r})
        with store.query() as q:
            print(q.execute("SELECT version_num FROM alembic_version")[0][0])
        print(" ".join(sorted(sys.modules)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    ).stdout.splitlines()
    assert out[0] == HEAD_REVISION
    loaded = set(out[1].split())
    assert not any(m.split(".")[0] in ("sqlalchemy", "alembic") for m in loaded)


def test_a_ddl_file_for_another_revision_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "stale.sql"
    stale.write_text("-- revision 0000\nCREATE TABLE nothing (x INTEGER);\n", encoding="utf-8")
    monkeypatch.setattr(db, "SQLITE_HEAD_SQL", stale)
    assert sqlite_head_statements() is None
    path = tmp_path / "m.db"
    store = MetadataStore.open(f"sqlite:///{path}")  # made by Alembic instead
    assert store.current_revision() == HEAD_REVISION
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "nothing" not in tables
    assert "runs" in tables


def test_an_unwritable_folder_is_a_config_error(tmp_path: Path) -> None:
    from modelyard.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot create the folder"):
        MetadataStore.open(f"sqlite:///{blocker / 'sub' / 'm.db'}")
