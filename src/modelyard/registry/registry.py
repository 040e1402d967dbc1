"""The model registry: named models, immutable numbered versions, movable aliases with history.

A version points at its run, its source commit and its package files (addressed by sha256 in
the artifact store). Registration uploads every file first and only then inserts the version
rows, in one transaction, so a process killed at any moment never leaves a version pointing at
missing bytes. Version numbers come from ``models.last_version``, bumped by an ``UPDATE``
that holds the model's row lock (SQLite: ``BEGIN IMMEDIATE``), so they stay gap-free and unique
when many processes register at once.

Aliases (``production``, ``candidate``, ...) move with a recorded event (when, who, why);
:meth:`Registry.rollback` walks the alias back through its history, one move per call.

The class is put together from parts, each one thing: :mod:`._base` (the stores, the
model-locked transaction and the queries, one indexed SQL statement each, from
:mod:`modelyard.registry._sql`), :mod:`._register` (version creation and its git-tag mirror),
:mod:`._aliasing` (alias moves and their history); this module adds models, tags and the git-tag
sync. The values it hands out live in :mod:`modelyard.registry.entities`, the name rules in
:mod:`modelyard.registry.names`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from modelyard.errors import NotFoundError
from modelyard.registry._aliasing import AliasOps
from modelyard.registry._register import VersionWriter
from modelyard.registry._sql import LOCK_MODEL, insert_row_ignore, upsert_row
from modelyard.registry.entities import MANIFEST_NAME, AliasEvent, ModelVersion, RegisteredModel
from modelyard.registry.names import (
    check_tags,
    check_version_number,
    parse_ref,
    validate_alias,
    validate_model_name,
    validate_tag_key,
)
from modelyard.store import schema as t
from modelyard.store.keys import check_value

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from modelyard.config import Settings
    from modelyard.registry.gittags import SyncReport

__all__ = [
    "MANIFEST_NAME",
    "AliasEvent",
    "ModelVersion",
    "RegisteredModel",
    "Registry",
    "parse_ref",
    "validate_alias",
    "validate_model_name",
    "validate_tag_key",
]


class Registry(VersionWriter, AliasOps):
    """Models, versions, aliases and tags over a metadata store and an artifact store.

    Args:
        metadata_store: where the rows live.
        artifact_store: where the package files live (content-addressed).
        user: recorded as ``created_by`` and as the actor of alias moves; default the OS user.
        git_tags: also create an annotated git tag ``model/<name>/v<N>`` per version.
        project_root: the git work tree for ``git_tags`` (default: the current folder).
        clock: the source of timestamps (a fake one in tests).
    """

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """A registry on the settings' metadata store, artifact store, user and git-tag choice."""
        from modelyard.store.artifacts import ArtifactStore
        from modelyard.store.db import MetadataStore

        return cls(
            MetadataStore.from_settings(settings),
            ArtifactStore.from_settings(settings),
            user=settings.resolved_user,
            git_tags=settings.git_tags,
            project_root=settings.project_root,
        )

    # ------------------------------------------------------------------ models
    def create_model(
        self, name: str, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        """Create the model ``name`` if it does not exist (idempotent) and return it.

        A ``description`` or ``tags`` given for an existing model are set on it.

        Raises:
            InvalidNameError: ``name`` or a tag key is illegal.
        """
        validate_model_name(name)
        checked = check_tags(tags)
        now = self._now()
        with self.metadata_store.begin() as conn:
            insert_row_ignore(
                conn,
                t.models,
                {
                    "name": name,
                    "description": description,
                    "created_at": now,
                    "updated_at": now,
                    "last_version": 0,
                },
            )
            model_id = conn.execute(LOCK_MODEL, {"name": name}).scalar_one()
            if description is not None:
                conn.execute(
                    sa.update(t.models)
                    .where(t.models.c.id == model_id)
                    .values(description=description, updated_at=now)
                )
            for key, value in checked.items():
                upsert_row(
                    conn,
                    t.model_tags,
                    {"model_id": model_id, "key": key, "value": value},
                    ("model_id", "key"),
                )
        return self.get_model(name)

    # ------------------------------------------------------------------ tags
    def set_model_tag(self, name: str, key: str, value: str) -> None:
        """Set tag ``key`` of model ``name`` to ``value``."""
        value = check_value(value, validate_tag_key(key), "tag")
        with self._locked_model(name) as (conn, model_id):
            upsert_row(
                conn,
                t.model_tags,
                {"model_id": model_id, "key": key, "value": value},
                ("model_id", "key"),
            )

    def delete_model_tag(self, name: str, key: str) -> bool:
        """Remove tag ``key`` of model ``name``; return whether it existed."""
        validate_tag_key(key)
        with self._locked_model(name) as (conn, model_id):
            mt = t.model_tags
            result = conn.execute(sa.delete(mt).where(mt.c.model_id == model_id, mt.c.key == key))
            return bool(result.rowcount)

    def set_version_tag(self, name: str, version: int | str, key: str, value: str) -> None:
        """Set tag ``key`` of version ``version`` of ``name`` to ``value``.

        Tags are labels beside the version; the version itself stays immutable.
        """
        value = check_value(value, validate_tag_key(key), "tag")
        number = check_version_number(version)
        with self._locked_model(name) as (conn, model_id):
            version_id = self._version_id(conn, model_id, name, number)
            upsert_row(
                conn,
                t.model_version_tags,
                {"version_id": version_id, "key": key, "value": value},
                ("version_id", "key"),
            )

    def delete_version_tag(self, name: str, version: int | str, key: str) -> bool:
        """Remove tag ``key`` of a version; return whether it existed."""
        validate_tag_key(key)
        number = check_version_number(version)
        with self._locked_model(name) as (conn, model_id):
            version_id = self._version_id(conn, model_id, name, number)
            vt = t.model_version_tags
            result = conn.execute(
                sa.delete(vt).where(vt.c.version_id == version_id, vt.c.key == key)
            )
            return bool(result.rowcount)

    @staticmethod
    def _version_id(conn: Connection, model_id: int, name: str, number: int) -> int:
        mv = t.model_versions
        vid = conn.execute(
            sa.select(mv.c.id).where(mv.c.model_id == model_id, mv.c.version == number)
        ).scalar()
        if vid is None:
            raise NotFoundError(
                f"model {name!r} has no version {number}",
                hint=f"`modelyard models show {name}` lists its versions",
                model=name,
                version=number,
            )
        return int(vid)

    def set_model_description(self, name: str, description: str | None) -> None:
        """Replace the description of model ``name``."""
        with self._locked_model(name) as (conn, model_id):
            conn.execute(
                sa.update(t.models)
                .where(t.models.c.id == model_id)
                .values(description=description, updated_at=self._now())
            )

    # ------------------------------------------------------------------ git tags
    def sync_tags(
        self, project_root: str | os.PathLike[str] | None = None, *, delete_foreign: bool = False
    ) -> SyncReport:
        """Reconcile git tags ``model/<name>/v<N>`` with this registry.

        Creates missing tags, reports tags with no version and tags whose commit or manifest
        sha256 differ from the registry. Tags mirroring another registry (another
        :attr:`registry_id`) are reported as ``foreign`` and left alone, or deleted from this
        clone with ``delete_foreign``. Reads the tags with one ``git for-each-ref``.
        """
        from modelyard.registry.gittags import GitTagMirror

        root = project_root or self.project_root or Path.cwd()
        mirror = GitTagMirror(Path(root), registry_id=self.registry_id)
        return mirror.sync(self.all_versions(), delete_foreign=delete_foreign)
