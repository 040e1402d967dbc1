"""Aliases and their history: movable pointers at versions, every move recorded.

The registry calls these inside its transaction holding the model's row lock. A rollback pops
the alias history: repeated rollbacks walk back in time (v3 -> v2 -> v1), one move per call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from modelyard.logs import get_logger
from modelyard.store import schema as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["alias_target", "move_alias", "rollback_target"]

_log = get_logger("registry")


def alias_target(conn: Connection, model_id: int, alias: str) -> int | None:
    """The version ``alias`` of model ``model_id`` points at, or None."""
    value = conn.execute(
        sa.select(t.aliases.c.version).where(
            t.aliases.c.model_id == model_id, t.aliases.c.alias == alias
        )
    ).scalar()
    return None if value is None else int(value)


def move_alias(
    conn: Connection,
    *,
    model_id: int,
    name: str,
    alias: str,
    to_version: int | None,
    reason: str | None,
    action: str,
    now: float,
    actor: str,
) -> None:
    """Move (or delete) an alias and record the event; the caller holds the model lock."""
    current = alias_target(conn, model_id, alias)
    if current == to_version:
        return
    al = t.aliases
    where = sa.and_(al.c.model_id == model_id, al.c.alias == alias)
    if to_version is None:
        conn.execute(sa.delete(al).where(where))
    elif current is None:
        conn.execute(
            sa.insert(al).values(
                model_id=model_id,
                alias=alias,
                version=to_version,
                updated_at=now,
                updated_by=actor,
            )
        )
    else:
        conn.execute(
            sa.update(al).where(where).values(version=to_version, updated_at=now, updated_by=actor)
        )
    conn.execute(
        sa.insert(t.alias_events).values(
            model_id=model_id,
            alias=alias,
            from_version=current,
            to_version=to_version,
            at=now,
            actor=actor,
            reason=reason,
            action=action,
        )
    )
    _log.info(
        "alias moved",
        extra={"model": name, "alias": alias, "from_version": current, "version": to_version},
    )


def rollback_target(conn: Connection, model_id: int, alias: str) -> int | None:
    """The version a rollback of ``alias`` returns to: the move before the last one still in
    effect (rollbacks undo moves), or None when there is none."""
    ev = t.alias_events
    events = conn.execute(
        sa.select(ev.c.to_version, ev.c.action)
        .where(ev.c.model_id == model_id, ev.c.alias == alias)
        .order_by(ev.c.id)
    ).all()
    stack: list[int | None] = []
    for to_version, action in events:
        if action == "rollback":
            if stack:
                stack.pop()
        else:
            stack.append(to_version)
    return stack[-2] if len(stack) >= 2 else None
