"""The model registry: named models, immutable numbered versions, movable aliases with history.

A version points at its run, its source commit and its package files (addressed by sha256 in
the artifact store). Registration uploads every file first and only then inserts the version
rows, in one transaction, so a process killed at any moment never leaves a version pointing at
missing bytes. Version numbers come from ``models.last_version``, bumped by an ``UPDATE``
that holds the model's row lock (SQLite: ``BEGIN IMMEDIATE``), so they stay gap-free and unique
when many processes register at once.

Aliases (``production``, ``candidate``, ...) move with a recorded event (when, who, why);
:meth:`Registry.rollback` walks the alias back through its history, one move per call.

Lookups are one indexed SQL statement each (:mod:`modelyard.registry._sql`). The values it
hands out live in :mod:`modelyard.registry.entities`, the name rules in
:mod:`modelyard.registry.names`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from modelyard.errors import ConflictError, InvalidInputError, NotFoundError
from modelyard.logs import get_logger
from modelyard.registry._sql import (
    BUMP,
    INSERT_VERSION,
    LOCK_MODEL,
    Statements,
    insert_row_ignore,
    jsonable,
    statements,
    upsert_row,
    version_from_row,
)
from modelyard.registry.aliases import alias_target, move_alias, rollback_target
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
    from modelyard.data.contract import Contract
    from modelyard.data.profile import Profile
    from modelyard.registry.gittags import SyncReport
    from modelyard.store.artifacts import ArtifactRef, ArtifactStore
    from modelyard.store.db import MetadataStore
    from modelyard.types import Clock

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

_log = get_logger("registry")


class Registry:
    """Models, versions, aliases and tags over a metadata store and an artifact store.

    Args:
        metadata_store: where the rows live.
        artifact_store: where the package files live (content-addressed).
        user: recorded as ``created_by`` and as the actor of alias moves; default the OS user.
        git_tags: also create an annotated git tag ``model/<name>/v<N>`` per version.
        project_root: the git work tree for ``git_tags`` (default: the current folder).
        clock: the source of timestamps (a fake one in tests).
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
                raise _no_model(name)
            yield conn, int(model_id)

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

    def get_model(self, name: str) -> RegisteredModel:
        """The model ``name`` with its latest version number, aliases and tags.

        Raises:
            NotFoundError: no such model.
        """
        validate_model_name(name)
        models = self._load_models(name)
        if not models:
            raise _no_model(name)
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
    def register_version(
        self,
        name: str,
        package_dir_or_files: str | os.PathLike[str] | Mapping[str, ArtifactRef],
        *,
        run_id: str | None = None,
        source_commit: str | None = None,
        flavor: str | None = None,
        signature: Any = None,
        extra: Mapping[str, Any] | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        aliases: Iterable[str] = (),
        alias_reason: str | None = None,
        contract: Contract | None = None,
        profile: Profile | None = None,
    ) -> ModelVersion:
        """Register a new immutable version of ``name`` (created if it does not exist).

        All files are stored in the artifact store first; then the version, its files, tags and
        aliases are inserted in one transaction. Nothing can overwrite an existing version.

        Args:
            name: the model's name.
            package_dir_or_files: a package folder (every file under it is uploaded), a single
                file, or ``{relative path: ArtifactRef}`` of files already in the artifact store.
            run_id: the producing tracking run; its git commit is used when ``source_commit``
                is not given.
            source_commit: git commit of the code that produced the model.
            flavor: how to load it (``sklearn``, ``onnx``, ...).
            signature: input/output signature or data contract (JSON-able).
            extra: JSON-able data fixed with the version (gate verdict, metrics, refs).
            description: free text.
            tags: initial version tags.
            aliases: aliases to point at the new version (recorded in the alias history).
            alias_reason: why the aliases move, recorded with each alias history event.
            contract: the data contract of the model's input; stored content-addressed with
                the version (``ModelVersion.contract``), checked on every serving request.
            profile: the reference profile of the training data
                (``ModelVersion.reference_profile``), what monitoring measures drift against.

        Raises:
            InvalidNameError: an illegal model name, alias or tag key.
            InvalidInputError: an empty package or a bad file path.
            NotFoundError: the package folder, a referenced artifact or ``run_id`` is missing.
        """
        validate_model_name(name)
        checked_tags = check_tags(tags)
        alias_list = list(dict.fromkeys(validate_alias(a) for a in aliases))
        extra_dict = jsonable(dict(extra), "extra") if extra is not None else None
        signature = jsonable(signature, "signature")
        files = self._upload(package_dir_or_files)
        contract_sha = self._put_contract(contract)
        profile_sha = self._put_profile(profile)
        manifest = MANIFEST_NAME if MANIFEST_NAME in files else next(iter(files))
        manifest_ref = files[manifest]
        # this store's URI, even when the caller's refs were made by another handle on it
        artifact_uri = self.artifact_store.uri(manifest_ref.sha256)
        actor = self._actor()
        now = self._now()
        with self.metadata_store.begin() as conn:
            bumped = conn.execute(BUMP, {"m_name": name, "now": now}).first()
            if bumped is None:
                insert_row_ignore(
                    conn,
                    t.models,
                    {"name": name, "created_at": now, "updated_at": now, "last_version": 0},
                )
                bumped = conn.execute(BUMP, {"m_name": name, "now": now}).one()
            model_id, number = int(bumped[0]), int(bumped[1])
            if run_id is not None:
                commit = conn.execute(
                    sa.select(t.runs.c.git_commit).where(t.runs.c.id == run_id)
                ).first()
                if commit is None:
                    raise NotFoundError(
                        f"run {run_id!r} does not exist, so version {number} of {name!r} "
                        "cannot point at it",
                        hint="pass the id of an existing run (`modelyard runs list`) or no run_id",
                        run_id=run_id,
                    )
                if source_commit is None:
                    source_commit = commit[0]
            version_id = conn.execute(
                INSERT_VERSION,
                {
                    "model_id": model_id,
                    "version": number,
                    "run_id": run_id,
                    "source_commit": source_commit,
                    "flavor": flavor,
                    "artifact_uri": artifact_uri,
                    "manifest_sha256": manifest_ref.sha256,
                    "signature": signature,
                    "extra": extra_dict,
                    "description": description,
                    "created_at": now,
                    "created_by": actor,
                    "contract_sha256": contract_sha,
                    "profile_sha256": profile_sha,
                },
            ).scalar_one()
            conn.execute(
                sa.insert(t.model_version_files),
                [
                    {
                        "version_id": version_id,
                        "path": p,
                        "sha256": r.sha256,
                        "size_bytes": r.size_bytes,
                    }
                    for p, r in files.items()
                ],
            )
            if checked_tags:
                conn.execute(
                    sa.insert(t.model_version_tags),
                    [
                        {"version_id": version_id, "key": k, "value": v}
                        for k, v in checked_tags.items()
                    ],
                )
            for alias in alias_list:
                move_alias(
                    conn,
                    model_id=model_id,
                    name=name,
                    alias=alias,
                    to_version=number,
                    reason=alias_reason,
                    action="set",
                    now=now,
                    actor=actor,
                )
        _log.info("model version registered", extra={"model": name, "version": number})
        version = ModelVersion(
            name=name,
            version=number,
            run_id=run_id,
            source_commit=source_commit,
            flavor=flavor,
            artifact_uri=artifact_uri,
            manifest_sha256=manifest_ref.sha256,
            files={p: r.sha256 for p, r in files.items()},
            signature=signature,
            extra=extra_dict,
            aliases=tuple(sorted(alias_list)),
            tags=dict(sorted(checked_tags.items())),
            created_at=now,
            created_by=actor,
            description=description,
            contract_sha256=contract_sha,
            profile_sha256=profile_sha,
            store=self.artifact_store,
        )
        if self.git_tags:
            self._mirror_tag(version)
        return version

    def _put_contract(self, contract: Contract | None) -> str | None:
        if contract is None:
            return None
        from modelyard.data.contract import Contract

        if not isinstance(contract, Contract):
            raise InvalidInputError(
                f"contract= is a {type(contract).__name__}, not a modelyard.data.Contract",
                hint="pass Contract.from_file('contract.toml') or infer_contract(frame)",
                field="contract",
            )
        import orjson

        body = orjson.dumps(contract.to_dict(), option=orjson.OPT_SORT_KEYS)
        return self.artifact_store.put_bytes(body).sha256

    def _put_profile(self, profile: Profile | None) -> str | None:
        if profile is None:
            return None
        from modelyard.data.profile import Profile

        if not isinstance(profile, Profile):
            raise InvalidInputError(
                f"profile= is a {type(profile).__name__}, not a modelyard.data.Profile",
                hint="pass build_profile(training_frame)",
                field="profile",
            )
        return self.artifact_store.put_bytes(profile.to_bytes()).sha256

    def _upload(
        self, package: str | os.PathLike[str] | Mapping[str, ArtifactRef]
    ) -> dict[str, ArtifactRef]:
        from modelyard.store.artifacts import ArtifactRef, validate_relative_name

        if isinstance(package, Mapping):
            files: dict[str, ArtifactRef] = {}
            for rel, ref in package.items():
                path = validate_relative_name(rel, what="package file path")
                if not isinstance(ref, ArtifactRef):
                    raise InvalidInputError(
                        f"package file {rel!r} maps to a {type(ref).__name__}, not an ArtifactRef",
                        hint="upload it with artifact_store.put_file() and pass the returned ref",
                        path=rel,
                    )
                if not self.artifact_store.exists(ref.sha256):
                    raise NotFoundError(
                        f"package file {rel!r} (sha256 {ref.sha256}) is not in the artifact store",
                        hint="upload it with artifact_store.put_file() before registering",
                        path=rel,
                        sha256=ref.sha256,
                    )
                files[path] = ref
        else:
            source = Path(package)
            if source.is_file():
                files = {source.name: self.artifact_store.put_file(source)}
            elif source.is_dir():
                files = dict(self.artifact_store.put_dir(source))
            else:
                raise NotFoundError(
                    f"model package {str(source)!r} does not exist",
                    hint="pass a folder holding the model files, or a single file",
                    path=str(source),
                )
        if not files:
            raise InvalidInputError(
                f"model package {package!r} holds no files",
                hint="save the model into the folder first (modelyard.models.save)",
            )
        return dict(sorted(files.items()))

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
            return _no_model(name)
        return NotFoundError(
            f"model {name!r} has no {what}",
            hint=f"`modelyard models show {name}` lists its versions and aliases",
            model=name,
        )

    # ------------------------------------------------------------------ aliases
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
                    raise _no_model(name)
        return [
            AliasEvent(name, r[0], r[1], r[2], r[3], r[4], r[5], r[6])
            for r in rows
            if r[0] is not None
        ]

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
    def _mirror_tag(self, version: ModelVersion) -> None:
        from modelyard.errors import ModelyardError
        from modelyard.registry.gittags import GitTagMirror

        root = Path(self.project_root) if self.project_root else Path.cwd()
        try:
            mirror = GitTagMirror(root, registry_id=self.registry_id)
            _, skipped = mirror.create_tags([version])
            problems = [why for _, why in skipped]
        except ModelyardError as exc:
            problems = [exc.message]
        for why in problems:
            # The version is committed; the mirror is best effort and `sync-tags` repairs it.
            _log.warning(
                "git tag not created",
                extra={"model": version.name, "version": version.version, "error": why},
            )

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


def _no_model(name: str) -> NotFoundError:
    return NotFoundError(
        f"no model named {name!r}",
        hint="`modelyard models list` shows the registered models",
        model=name,
    )
