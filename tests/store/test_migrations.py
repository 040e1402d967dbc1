"""The Alembic migrations produce exactly the schema module, and upgrade old data."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from modelyard.store import schema
from modelyard.store.db import HEAD_REVISION, MIGRATIONS_DIR, REVISIONS, MetadataStore


def _diff(store: MetadataStore) -> list[object]:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, schema.metadata))


def test_migrated_database_equals_the_schema_module(db_url: str) -> None:
    store = MetadataStore.open(db_url)
    assert _diff(store) == []


def test_schema_module_differs_from_an_older_revision(db_url: str) -> None:
    """The comparison can fail: at revision 0001 the alias_events.action column is missing."""
    store = MetadataStore.open(db_url)
    store.downgrade("0001")
    diffs = _diff(store)
    assert any("action" in repr(d) for d in diffs), diffs


def test_revision_list_matches_the_migration_scripts() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(cfg)
    assert script.get_current_head() == HEAD_REVISION
    walked = [rev.revision for rev in script.walk_revisions("base", "heads")]
    assert tuple(reversed(walked)) == REVISIONS


def test_upgrade_from_0001_keeps_alias_history_and_classifies_deletes(db_url: str) -> None:
    store = MetadataStore.open(db_url)
    store.downgrade("0001")
    with store.begin() as conn:
        model_id = conn.execute(
            sa.text(
                "INSERT INTO models (name, created_at, updated_at, last_version) "
                "VALUES ('m', 1, 1, 0) RETURNING id"
            )
        ).scalar_one()
        for frm, to in ((None, 1), (1, None)):
            conn.execute(
                sa.text(
                    "INSERT INTO alias_events (model_id, alias, from_version, to_version, at) "
                    "VALUES (:m, 'production', :f, :t, 1)"
                ),
                {"m": model_id, "f": frm, "t": to},
            )
    store.upgrade()
    with store.read() as conn:
        actions = (
            conn.execute(sa.text("SELECT action FROM alias_events ORDER BY id")).scalars().all()
        )
    assert actions == ["set", "delete"]
    assert _diff(store) == []


def test_downgrade_to_base_then_upgrade_round_trips(db_url: str) -> None:
    store = MetadataStore.open(db_url)
    store.downgrade("base")
    assert store.current_revision() is None
    store.upgrade()
    assert store.current_revision() == HEAD_REVISION
    assert _diff(store) == []
