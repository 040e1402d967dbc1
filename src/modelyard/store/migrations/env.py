"""Alembic environment: migrate the connection that :mod:`modelyard.store.db` hands over."""

from __future__ import annotations

from alembic import context

from modelyard.store.schema import metadata

_connection = context.config.attributes.get("connection")

if _connection is None:
    # Offline mode (``--sql``): render the DDL for a URL without connecting.
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    context.configure(
        connection=_connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=_connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
