"""The registry's reading half and the helpers every part of :class:`Registry` shares.

:class:`RegistryBase` holds the stores, the clock and the actor, opens the model-locked write
transaction, and answers the queries: models, one version by number, alias or ref, a model's
versions, a version's files on disk. Each lookup is one indexed SQL statement
(:mod:`modelyard.registry._sql`). Version creation is in :mod:`modelyard.registry._register`,
alias moves in :mod:`modelyard.registry._aliasing`; :class:`~modelyard.registry.registry.Registry`
puts them together.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from modelyard.errors import NotFoundError
from modelyard.registry._sql import (
    LOCK_MODEL,
    Statements,
    insert_row_ignore,
    statements,
    version_from_row,
)
from modelyard.registry.entities import ModelVersion, RegisteredModel
from modelyard.registry.names import check_version_number, parse_ref, validate_model_name
from modelyard.store import schema as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from modelyard.store.artifacts import ArtifactStore
    from modelyard.store.db import MetadataStore
    from modelyard.types import Clock


class RegistryBase:
    """The stores, clock and actor of a registry, its write transaction and its queries.

    See :class:`~modelyard.registry.registry.Registry` for the arguments.
    """

    def __init__(
        self,
        metadata_store: MetadataStore,
        artifact_store: ArtifactStore,
        *,
        user: str | None = None,
        git_tags: bool = False,
        project_root: str | os.PathLike[str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.metadata_store = metadata_store
        self.artifact_store = artifact_store
        self.user = user
        self.git_tags = git_tags
        self.project_root = project_root
        self.clock = clock
        self._registry_id: str | None = None

    @property
    def registry_id(self) -> str:
        """This registry's id: made once per metadata store (``store_info``), written in the git
        tags that mirror it, so two registries of one project never take each other's tags."""
        if self._registry_id is None:
            import uuid

            info = t.store_info
            with self.metadata_store.begin() as conn:
                insert_row_ignore(conn, info, {"key": "registry_id", "value": uuid.uuid4().hex})
                value = conn.execute(
                    sa.select(info.c.value).where(info.c.key == "registry_id")
                ).scalar_one()
            self._registry_id = str(value)
        return self._registry_id

    # ------------------------------------------------------------------ helpers
    def _now(self) -> float:
        return self.clock.time() if self.clock is not None else time.time()

    def _actor(self) -> str:
        from modelyard.config import os_user

        return self.user or os_user()

    @property
    def _stmts(self) -> Statements:
        return statements(self.metadata_store.dialect)

    def _fetch_versions(self, stmt: sa.Select[Any], params: dict[str, Any]) -> list[ModelVersion]:
        rows = self.metadata_store.fetch(stmt, params)
        json_text = self.metadata_store.dialect == "sqlite"
        store = self.artifact_store
        return [version_from_row(r, json_text=json_text, store=store) for r in rows]

    @contextmanager
    def _locked_model(self, name: str) -> Iterator[tuple[Connection, int]]:
        """A write transaction holding the model's row lock; yields (connection, model id)."""
        validate_model_name(name)
        with self.metadata_store.begin() as conn:
            model_id = conn.execute(LOCK_MODEL, {"name": name}).scalar()
            if model_id is None:
                raise no_model(name)
            yield conn, int(model_id)

    # ------------------------------------------------------------------ models
    def get_model(self, name: str) -> RegisteredModel:
        """The model ``name`` with its latest version number, aliases and tags.

        Raises:
            NotFoundError: no such model.
        """
        validate_model_name(name)
        models = self._load_models(name)
        if not models:
            raise no_model(name)
        return models[0]

    def list_models(self) -> list[RegisteredModel]:
        """Every model, sorted by name."""
        return self._load_models(None)

    def _load_models(self, name: str | None) -> list[RegisteredModel]:
        m, al, mt = t.models, t.aliases, t.model_tags
        q = sa.select(
            m.c.id, m.c.name, m.c.description, m.c.last_version, m.c.created_at, m.c.updated_at
        ).order_by(m.c.name)
        qa = sa.select(al.c.model_id, al.c.alias, al.c.version).order_by(al.c.alias)
        qt = sa.select(mt.c.model_id, mt.c.key, mt.c.value).order_by(mt.c.key)
        if name is not None:
            q = q.where(m.c.name == name)
            sub = sa.select(m.c.id).where(m.c.name == name).scalar_subquery()
            qa = qa.where(al.c.model_id == sub)
            qt = qt.where(mt.c.model_id == sub)
        with self.metadata_store.read() as conn:
            rows = conn.execute(q).all()
            alias_rows = conn.execute(qa).all()
            tag_rows = conn.execute(qt).all()
        aliases: dict[int, dict[str, int]] = {}
        for mid, alias, version in alias_rows:
            aliases.setdefault(mid, {})[alias] = version
        tags: dict[int, dict[str, str]] = {}
        for mid, key, value in tag_rows:
            tags.setdefault(mid, {})[key] = value
        return [
            RegisteredModel(
                name=r.name,
                description=r.description,
                latest_version=r.last_version,
                aliases=aliases.get(r.id, {}),
                tags=tags.get(r.id, {}),
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ versions
    def get_version(self, name: str, version: int | str) -> ModelVersion:
        """Version ``version`` of model ``name``.

        Raises:
            NotFoundError: no such model or version; the message says which.
        """
        validate_model_name(name)
        number = check_version_number(version)
        found = self._fetch_versions(self._stmts.by_version, {"name": name, "version": number})
        if not found:
            raise self._missing(name, f"version {number}")
        return found[0]

    def resolve(self, ref: str) -> ModelVersion:
        """The version that ``ref`` names: ``name@alias``, ``name:3``, ``name`` (latest).

        Raises:
            InvalidNameError: an illegal name or alias.
            NotFoundError: the model, version or alias does not exist.
        """
        name, number, alias = parse_ref(ref)
        stmts = self._stmts
        if alias is not None:
            found = self._fetch_versions(stmts.by_alias, {"name": name, "alias": alias})
        elif number is not None:
            found = self._fetch_versions(stmts.by_version, {"name": name, "version": number})
        else:
            found = self._fetch_versions(stmts.latest, {"name": name})
        if not found:
            what = f"alias {alias!r}" if alias else (f"version {number}" if number else "versions")
            raise self._missing(name, what)
        return found[0]

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first.

        Raises:
            NotFoundError: no such model.
        """
        validate_model_name(name)
        versions = self._fetch_versions(self._stmts.all_of_model, {"name": name})
        if not versions:
            self.get_model(name)  # raises NotFoundError for an unknown model
        return versions

    def all_versions(self) -> list[ModelVersion]:
        """Every version of every model, by name then version (for tag sync and exports)."""
        return self._fetch_versions(self._stmts.everything, {})

    def download(self, version: ModelVersion | str, dest: str | os.PathLike[str]) -> Path:
        """Write the package files of ``version`` (a ModelVersion or a ref) under ``dest``.

        Every file is verified against its sha256 while it is written.
        """
        mv = self.resolve(version) if isinstance(version, str) else version
        return self.artifact_store.get_dir(mv.files, dest)

    def _missing(self, name: str, what: str) -> NotFoundError:
        with self.metadata_store.connect_autocommit() as conn:
            exists = conn.execute(sa.select(t.models.c.id).where(t.models.c.name == name)).first()
        if exists is None:
            return no_model(name)
        return NotFoundError(
            f"model {name!r} has no {what}",
            hint=f"`modelyard models show {name}` lists its versions and aliases",
            model=name,
        )


def no_model(name: str) -> NotFoundError:
    """The error for a model ``name`` that does not exist."""
    return NotFoundError(
        f"no model named {name!r}",
        hint="`modelyard models list` shows the registered models",
        model=name,
    )
