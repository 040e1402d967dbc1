"""Small SQL helpers shared by the tracking modules (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

__all__ = ["insert_ignore", "upsert"]

# Built statements, reused: building an ON CONFLICT construct costs more than running it.
_upserts: dict[tuple[Any, ...], Any] = {}


def _insert(conn: Connection, table: Table) -> Any:
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    raise NotImplementedError(f"upsert is not implemented for {name}")  # pragma: no cover


def upsert(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str],
    only_if_newer: bool = False,
) -> None:
    """INSERT ``rows``, updating ``update`` columns where the ``keys`` already exist.

    With ``only_if_newer`` (for ``latest_metrics``), an existing row is replaced only when the
    new one has a higher ``step``, or the same step and a timestamp not older.
    """
    if not rows:
        return
    cache_key = (conn.dialect.name, table.name, tuple(keys), tuple(update), only_if_newer)
    stmt = _upserts.get(cache_key)
    if stmt is None:
        stmt = _insert(conn, table)
        where = None
        if only_if_newer:
            ex = stmt.excluded
            cur = table.c
            where = (ex.step > cur.step) | ((ex.step == cur.step) & (ex.timestamp >= cur.timestamp))
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}, where=where
        )
        _upserts[cache_key] = stmt
    conn.execute(stmt, rows)


def insert_ignore(
    conn: Connection, table: Table, rows: list[dict[str, Any]], *, keys: Sequence[str]
) -> None:
    """INSERT ``rows``, skipping those whose ``keys`` already exist."""
    if not rows:
        return
    stmt = _insert(conn, table).on_conflict_do_nothing(index_elements=list(keys))
    conn.execute(stmt, rows)
