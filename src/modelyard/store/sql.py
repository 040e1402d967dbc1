"""Plain SQL that SQLite and PostgreSQL both run: the one upsert helper.

Both the tracking hot path (``MetadataStore.write()``) and the registry (SQLAlchemy Core
connections, through ``sqlalchemy.text``) write with these statements; parameters are
``:name`` placeholders named after the columns.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["insert_ignore", "upsert"]


def _q(name: str) -> str:
    return f'"{name}"'  # quoted: column names such as "key" and "user" are reserved somewhere


def upsert(
    table: str, keys: Sequence[str], columns: Sequence[str], *, where: str | None = None
) -> str:
    """``INSERT`` a row, or ``UPDATE`` its non-key ``columns`` when the ``keys`` exist.

    Args:
        table: the table.
        keys: the columns of its primary key or unique constraint.
        columns: the other columns written.
        where: an optional condition for the update (``excluded.<col>`` is the new row).
    """
    names = [*keys, *columns]
    values = ", ".join(f":{c}" for c in names)
    sets = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in columns)
    sql = (
        f"INSERT INTO {table} ({', '.join(_q(c) for c in names)}) VALUES ({values}) "
        f"ON CONFLICT ({', '.join(_q(k) for k in keys)}) DO UPDATE SET {sets}"
    )
    return f"{sql} WHERE {where}" if where else sql


def insert_ignore(table: str, columns: Sequence[str]) -> str:
    """``INSERT`` a row unless it conflicts with one that exists (get-or-create)."""
    values = ", ".join(f":{c}" for c in columns)
    return (
        f"INSERT INTO {table} ({', '.join(_q(c) for c in columns)}) VALUES ({values}) "
        "ON CONFLICT DO NOTHING"
    )
