"""Alembic migrations of the metadata store, run through :mod:`modelyard.store.db` (no alembic.ini).

New revision: change :mod:`modelyard.store.schema`, add ``versions/NNNN_<what>.py`` with the
``op`` calls that take the previous revision to the new one, and bump
``modelyard.store.db.HEAD_REVISION``; ``tests/store/test_migrations.py`` checks that the migrated
database equals the schema module on SQLite and PostgreSQL.
"""
