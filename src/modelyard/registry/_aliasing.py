"""Moving aliases, through the model's row lock, every move recorded with who, when and why.

The SQL of a move and of a rollback's target is in :mod:`modelyard.registry.aliases`; this is
the :class:`~modelyard.registry.registry.Registry` API over it: set, delete, roll back, history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from modelyard.errors import ConflictError, NotFoundError
from modelyard.logs import get_logger
from modelyard.registry._base import RegistryBase, no_model
from modelyard.registry.aliases import alias_target, move_alias, rollback_target
from modelyard.registry.entities import AliasEvent, ModelVersion
from modelyard.registry.names import check_version_number, validate_alias, validate_model_name
from modelyard.store import schema as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_log = get_logger("registry")


class AliasOps(RegistryBase):
    """Aliases of a registry's models: :meth:`set_alias`, :meth:`delete_alias`,
    :meth:`rollback`, :meth:`alias_history`."""

    def set_alias(
        self, name: str, alias: str, version: int | str, reason: str | None = None
    ) -> ModelVersion:
        """Point ``alias`` of ``name`` at ``version``, recording who moved it, when and why.

        Setting an alias to the version it already names records nothing.

        Raises:
            InvalidNameError: an illegal alias.
            NotFoundError: no such model or version.
        """
        validate_alias(alias)
        number = check_version_number(version)
        now, actor = self._now(), self._actor()
        with self._locked_model(name) as (conn, model_id):
            exists = conn.execute(
                sa.select(t.model_versions.c.id).where(
                    t.model_versions.c.model_id == model_id, t.model_versions.c.version == number
                )
            ).first()
            if exists is None:
                raise NotFoundError(
                    f"model {name!r} has no version {number}, so alias {alias!r} "
                    "cannot point at it",
                    hint=f"`modelyard models show {name}` lists its versions",
                    model=name,
                    version=number,
                )
            move_alias(
                conn,
                model_id=model_id,
                name=name,
                alias=alias,
                to_version=number,
                reason=reason,
                action="set",
                now=now,
                actor=actor,
            )
        return self.get_version(name, number)

    def delete_alias(self, name: str, alias: str, reason: str | None = None) -> None:
        """Remove ``alias`` from ``name`` (recorded in the history).

        Raises:
            NotFoundError: no such model or alias.
        """
        validate_alias(alias)
        now, actor = self._now(), self._actor()
        with self._locked_model(name) as (conn, model_id):
            self._require_alias(conn, model_id, name, alias)
            move_alias(
                conn,
                model_id=model_id,
                name=name,
                alias=alias,
                to_version=None,
                reason=reason,
                action="delete",
                now=now,
                actor=actor,
            )

    def _require_alias(
        self, conn: Connection, model_id: int, name: str, alias: str, purpose: str = ""
    ) -> int:
        """The version ``alias`` points at, or NotFoundError naming the model and alias."""
        current = alias_target(conn, model_id, alias)
        if current is None:
            raise NotFoundError(
                f"model {name!r} has no alias {alias!r}{purpose}",
                hint=f"`modelyard models show {name}` lists its aliases",
                model=name,
                alias=alias,
            )
        return current

    def rollback(
        self, name: str, alias: str = "production", reason: str | None = None
    ) -> ModelVersion:
        """Point ``alias`` back at its previous target and return that version.

        Repeated rollbacks keep walking back (v3 -> v2 -> v1): a rollback undoes one move.

        Raises:
            NotFoundError: no such model or alias.
            ConflictError: the alias has no earlier target to return to.
        """
        validate_alias(alias)
        now, actor = self._now(), self._actor()
        with self._locked_model(name) as (conn, model_id):
            current = self._require_alias(conn, model_id, name, alias, " to roll back")
            target = rollback_target(conn, model_id, alias)
            if target is None:
                raise ConflictError(
                    f"alias {alias!r} of model {name!r} has no earlier version to roll back to "
                    f"(it points at version {current})",
                    hint=f"point it elsewhere with `modelyard models promote {name} VERSION "
                    f"--alias {alias}`",
                    model=name,
                    alias=alias,
                )
            move_alias(
                conn,
                model_id=model_id,
                name=name,
                alias=alias,
                to_version=target,
                reason=reason,
                action="rollback",
                now=now,
                actor=actor,
            )
        _log.info(
            "alias rolled back",
            extra={"model": name, "alias": alias, "from_version": current, "version": target},
        )
        return self.get_version(name, target)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every move of ``alias`` (or of all aliases) of ``name``, oldest first.

        Raises:
            NotFoundError: no such model.
        """
        validate_model_name(name)
        if alias is not None:
            validate_alias(alias)
        ev, m = t.alias_events, t.models
        q = (
            sa.select(
                ev.c.alias,
                ev.c.from_version,
                ev.c.to_version,
                ev.c.at,
                ev.c.actor,
                ev.c.reason,
                ev.c.action,
                m.c.id,
            )
            .select_from(m.outerjoin(ev, ev.c.model_id == m.c.id))
            .where(m.c.name == name)
            .order_by(ev.c.id)
        )
        if alias is not None:
            q = q.where(ev.c.alias == alias)
        with self.metadata_store.read() as conn:
            rows = conn.execute(q).all()
            if not rows:  # with an alias filter the outer join yields nothing: check the model
                found = conn.execute(sa.select(m.c.id).where(m.c.name == name)).first()
                if found is None:
                    raise no_model(name)
        return [
            AliasEvent(name, r[0], r[1], r[2], r[3], r[4], r[5], r[6])
            for r in rows
            if r[0] is not None
        ]
