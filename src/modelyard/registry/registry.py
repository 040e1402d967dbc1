"""The model registry: named models, immutable numbered versions, movable aliases with history.

A version points at its run, its source commit and its package files (addressed by sha256 in
the artifact store). Registration uploads every file first and only then inserts the version
rows, in one transaction, so a process killed at any moment never leaves a version pointing at
missing bytes. Version numbers come from ``models.last_version``, bumped by an ``UPDATE``
that holds the model's row lock (SQLite: ``BEGIN IMMEDIATE``), so they stay gap-free and unique
when many processes register at once.

Aliases (``production``, ``candidate``, ...) move with a recorded event (when, who, why);
:meth:`Registry.rollback` walks the alias back through its history, one move per call.

Lookups are one indexed SQL statement each (SQLAlchemy Core, compiled once and cached).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from modelyard.errors import (
    ConflictError,
    InvalidInputError,
    InvalidNameError,
    NotFoundError,
)
from modelyard.logs import get_logger
from modelyard.store import schema as t

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

#: The package manifest; its URI and sha256 identify a version's package.
MANIFEST_NAME = "modelyard.json"
NAME_RULE = "1-255 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit, no '..'"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
RESERVED_ALIASES = frozenset({"latest"})
_MAX_VALUE = t.VALUE


# --------------------------------------------------------------------------- value objects
class BytesReader(Protocol):
    """What a version reads its contract and profile with: an artifact store."""

    def get_bytes(self, sha256: str) -> bytes:
        """The verified bytes of object ``sha256``."""
        ...


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One immutable registered version of a model.

    Attributes:
        name: the model's name.
        version: 1, 2, 3, ... per model, gap-free.
        run_id: the tracking run that produced it, if any.
        source_commit: the git commit of the code that produced it, if known.
        flavor: how to load it (``sklearn``, ``onnx``, ``torch``, ...), if given.
        artifact_uri: artifact store URI of the package manifest (or its only/first file).
        manifest_sha256: sha256 of that file.
        files: package path -> sha256 of every file of the package.
        signature: the input/output signature or data contract, if given.
        extra: free structured data fixed at registration (gate verdict, metrics, refs).
        aliases: the aliases pointing at this version now, sorted.
        tags: mutable key/value labels of this version.
        created_at: UNIX seconds.
        created_by: who registered it.
        description: free text.
        contract_sha256: sha256 of the version's data contract in the artifact store, if any.
        profile_sha256: sha256 of the version's reference profile in the artifact store, if any.
    """

    name: str
    version: int
    run_id: str | None
    source_commit: str | None
    flavor: str | None
    artifact_uri: str
    manifest_sha256: str
    files: dict[str, str]
    signature: Any
    extra: dict[str, Any] | None
    aliases: tuple[str, ...]
    tags: dict[str, str]
    created_at: float
    created_by: str | None
    description: str | None = None
    contract_sha256: str | None = None
    profile_sha256: str | None = None
    # reads the contract and profile back (the registry's artifact store); not part of the value
    store: BytesReader | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        """``name:version``, accepted by :meth:`Registry.resolve`."""
        return f"{self.name}:{self.version}"

    @property
    def contract(self) -> Contract | None:
        """The data contract registered with this version (read and hash-checked), or None.

        Raises:
            IntegrityError: the stored bytes do not match ``contract_sha256``.
        """
        if self.contract_sha256 is None:
            return None
        from modelyard.data.contract import Contract

        raw = self._read(self.contract_sha256, "contract")
        return Contract.from_dict(_json(raw, {}), source=f"{self.ref} contract")

    @property
    def reference_profile(self) -> Profile | None:
        """The reference profile registered with this version (read and hash-checked), or None.

        Raises:
            IntegrityError: the stored bytes do not match ``profile_sha256``.
        """
        if self.profile_sha256 is None:
            return None
        from modelyard.data.profile import Profile

        return Profile.from_bytes(self._read(self.profile_sha256, "reference profile"))

    def _read(self, sha256: str, what: str) -> bytes:
        if self.store is None:
            raise NotFoundError(
                f"model {self.name!r} version {self.version}: its {what} cannot be read "
                "without the registry's artifact store",
                hint="get the version from Registry.resolve() or Registry.get_version()",
                model=self.name,
            )
        return self.store.get_bytes(sha256)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for ``--json`` and HTTP answers)."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "store"}
        body["aliases"] = list(self.aliases)
        body["files"] = dict(self.files)
        body["tags"] = dict(self.tags)
        return body


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One move of an alias: ``from_version`` None means it was created, ``to_version`` None
    that it was deleted. ``action`` is ``set``, ``delete`` or ``rollback``."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: float
    actor: str | None
    reason: str | None
    action: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A named model: its description, tags, latest version number and current aliases."""

    name: str
    description: str | None
    latest_version: int
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)


# --------------------------------------------------------------------------- names
def _check_name(value: object, what: str, rule: str = NAME_RULE) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value) or ".." in value:
        raise InvalidNameError(
            f"{what} {value!r} is not a valid name: it must be {rule}",
            hint=f"choose a {what} such as 'churn-model' or 'v2.candidate'",
            value=str(value),
            rule=_NAME_RE.pattern,
        )
    return value


def validate_model_name(name: object) -> str:
    """Return ``name`` if it is a legal model name, else raise :class:`InvalidNameError`."""
    return _check_name(name, "model name")


def validate_alias(alias: object) -> str:
    """Return ``alias`` if legal: a name that is not purely numeric and not ``latest``."""
    alias = _check_name(alias, "alias")
    if alias.isdigit():
        raise InvalidNameError(
            f"alias {alias!r} is purely numeric and would read as a version number",
            hint="use a word such as 'production', 'candidate' or 'shadow'",
            value=alias,
        )
    if alias in RESERVED_ALIASES:
        raise InvalidNameError(
            f"alias {alias!r} is reserved: it always means the newest version",
            hint="use another alias name, e.g. 'candidate'",
            value=alias,
        )
    return alias


def validate_tag_key(key: object) -> str:
    """Return ``key`` if it is a legal tag key."""
    return _check_name(key, "tag key")


def _check_tag_value(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(
            f"tag {key!r} has a {type(value).__name__} value; tag values are strings",
            hint=f"pass str(value) for tag {key!r}",
            key=key,
        )
    if len(value) > _MAX_VALUE:
        raise InvalidInputError(
            f"tag {key!r} value is {len(value)} characters; the limit is {_MAX_VALUE}",
            hint="store long values as an artifact and tag its sha256",
            key=key,
        )
    return value


def _check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    if not tags:
        return {}
    return {validate_tag_key(k): _check_tag_value(k, v) for k, v in tags.items()}


def _check_version_number(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int | str):
        raise InvalidInputError(
            f"version {version!r} is not a version number", hint="versions are 1, 2, 3, ..."
        )
    text = str(version).strip()
    if text.startswith(("v", "V")):
        text = text[1:]
    if not text.isdigit() or int(text) < 1:
        raise InvalidInputError(
            f"version {version!r} is not a version number (1, 2, 3, ...)",
            hint="pass a positive integer, or an alias via 'name@alias'",
            value=str(version),
        )
    return int(text)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _jsonable(value: Any, what: str) -> Any:
    """``value`` as plain JSON data (numpy scalars, paths converted); NaN and infinity refused,
    since PostgreSQL's JSON type rejects them and SQLite would store non-standard JSON."""
    if value is None:
        return None
    import json

    try:
        return json.loads(json.dumps(value, allow_nan=False, default=_json_default))
    except ValueError as exc:
        raise InvalidInputError(
            f"{what} holds NaN or infinity, which JSON cannot store",
            hint=f"replace non-finite numbers in {what} with None or a string",
            field=what,
        ) from exc
    except TypeError as exc:
        raise InvalidInputError(
            f"{what} is not JSON data: {exc}",
            hint=f"pass {what} as dicts, lists, strings, numbers and booleans",
            field=what,
        ) from exc


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """Split ``name``, ``name:3``, ``name@alias`` or ``name@latest`` into (name, version, alias).

    ``(name, None, None)`` means the latest version.
    """
    if not isinstance(ref, str) or not ref:
        raise InvalidInputError(
            f"model reference {ref!r} is empty",
            hint="use NAME, NAME:VERSION or NAME@ALIAS, e.g. churn@production",
        )
    if "@" in ref:
        name, _, alias = ref.partition("@")
        validate_model_name(name)
        if alias == "latest":
            return name, None, None
        return name, None, validate_alias(alias)
    if ":" in ref:
        name, _, version = ref.rpartition(":")
        validate_model_name(name)
        if version == "latest":
            return name, None, None
        return name, _check_version_number(version), None
    return validate_model_name(ref), None, None


# --------------------------------------------------------------------------- SQL
@dataclass(frozen=True)
class _Statements:
    by_version: sa.Select[Any]
    by_alias: sa.Select[Any]
    latest: sa.Select[Any]
    all_of_model: sa.Select[Any]
    everything: sa.Select[Any]


_STATEMENTS: dict[str, _Statements] = {}


def _statements(dialect: str) -> _Statements:
    """One SELECT per lookup kind; each returns a version with its files, tags and aliases."""
    cached = _STATEMENTS.get(dialect)
    if cached is not None:
        return cached
    m, mv, mvf, mvt, al = (
        t.models,
        t.model_versions,
        t.model_version_files,
        t.model_version_tags,
        t.aliases,
    )
    if dialect == "postgresql":
        obj, arr = sa.func.json_object_agg, sa.func.json_agg
    else:
        obj, arr = sa.func.json_group_object, sa.func.json_group_array
    files = sa.select(obj(mvf.c.path, mvf.c.sha256)).where(mvf.c.version_id == mv.c.id)
    tags = sa.select(obj(mvt.c.key, mvt.c.value)).where(mvt.c.version_id == mv.c.id)
    # a separate name for the subquery: the by-alias lookup joins `aliases` in the outer query
    al_sub = al.alias("version_aliases")
    aliases = sa.select(arr(al_sub.c.alias)).where(
        al_sub.c.model_id == mv.c.model_id, al_sub.c.version == mv.c.version
    )
    cols = (
        m.c.name,
        mv.c.version,
        mv.c.run_id,
        mv.c.source_commit,
        mv.c.flavor,
        mv.c.artifact_uri,
        mv.c.manifest_sha256,
        files.scalar_subquery().label("files"),
        mv.c.signature,
        mv.c.extra,
        aliases.scalar_subquery().label("aliases"),
        tags.scalar_subquery().label("tags"),
        mv.c.created_at,
        mv.c.created_by,
        mv.c.description,
        mv.c.contract_sha256,
        mv.c.profile_sha256,
    )
    by_model = m.join(mv, mv.c.model_id == m.c.id)
    name_is = m.c.name == sa.bindparam("name")
    stmts = _Statements(
        by_version=sa.select(*cols)
        .select_from(by_model)
        .where(name_is, mv.c.version == sa.bindparam("version")),
        by_alias=sa.select(*cols)
        .select_from(
            m.join(al, al.c.model_id == m.c.id).join(
                mv, sa.and_(mv.c.model_id == m.c.id, mv.c.version == al.c.version)
            )
        )
        .where(name_is, al.c.alias == sa.bindparam("alias")),
        latest=sa.select(*cols)
        .select_from(m.join(mv, sa.and_(mv.c.model_id == m.c.id, mv.c.version == m.c.last_version)))
        .where(name_is),
        all_of_model=sa.select(*cols).select_from(by_model).where(name_is).order_by(mv.c.version),
        everything=sa.select(*cols).select_from(by_model).order_by(m.c.name, mv.c.version),
    )
    _STATEMENTS[dialect] = stmts
    return stmts


def _json(value: Any, empty: Any) -> Any:
    if value is None:
        return empty
    if isinstance(value, str | bytes):
        import orjson

        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:  # NaN written by an older version: stdlib reads it
            import json

            return json.loads(value)
    return value


def _version_from_row(row: Any, *, json_text: bool, store: BytesReader | None) -> ModelVersion:
    """Build a version from a raw driver row (JSON columns arrive as text on SQLite)."""
    signature, extra = row[8], row[9]
    if json_text:
        signature, extra = _json(signature, None), _json(extra, None)
    return ModelVersion(
        name=row[0],
        version=row[1],
        run_id=row[2],
        source_commit=row[3],
        flavor=row[4],
        artifact_uri=row[5],
        manifest_sha256=row[6],
        files=dict(sorted(_json(row[7], {}).items())),
        signature=signature,
        extra=extra,
        aliases=tuple(sorted(_json(row[10], []))),
        tags=dict(sorted(_json(row[11], {}).items())),
        created_at=row[12],
        created_by=row[13],
        description=row[14],
        contract_sha256=row[15],
        profile_sha256=row[16],
        store=store,
    )


def _upsert(conn: Connection, table: sa.Table, values: dict[str, Any], keys: Sequence[str]) -> None:
    """INSERT, or UPDATE the non-key columns when the key exists (SQLite and PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg_stmt = pg_insert(table).values(**values)
        conn.execute(
            pg_stmt.on_conflict_do_update(
                index_elements=list(keys),
                set_={k: pg_stmt.excluded[k] for k in values if k not in keys},
            )
        )
        return
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    lite_stmt = sqlite_insert(table).values(**values)
    conn.execute(
        lite_stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={k: lite_stmt.excluded[k] for k in values if k not in keys},
        )
    )


def _insert_ignore(conn: Connection, table: sa.Table, values: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: concurrent get-or-create without errors."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).values(**values).on_conflict_do_nothing())
        return
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    conn.execute(sqlite_insert(table).values(**values).on_conflict_do_nothing())


_BUMP = (
    sa.update(t.models)
    .where(t.models.c.name == sa.bindparam("m_name"))
    .values(last_version=t.models.c.last_version + 1, updated_at=sa.bindparam("now"))
    .returning(t.models.c.id, t.models.c.last_version)
)
_INSERT_VERSION = sa.insert(t.model_versions).returning(t.model_versions.c.id)
_LOCK_MODEL = (
    sa.select(t.models.c.id).where(t.models.c.name == sa.bindparam("name")).with_for_update()
)


# --------------------------------------------------------------------------- the registry
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

    # ------------------------------------------------------------------ helpers
    def _now(self) -> float:
        return self.clock.time() if self.clock is not None else time.time()

    def _actor(self) -> str:
        from modelyard.config import os_user

        return self.user or os_user()

    @property
    def _stmts(self) -> _Statements:
        return _statements(self.metadata_store.dialect)

    def _fetch_versions(self, stmt: sa.Select[Any], params: dict[str, Any]) -> list[ModelVersion]:
        rows = self.metadata_store.fetch(stmt, params)
        json_text = self.metadata_store.dialect == "sqlite"
        store = self.artifact_store
        return [_version_from_row(r, json_text=json_text, store=store) for r in rows]

    @contextmanager
    def _locked_model(self, name: str) -> Iterator[tuple[Connection, int]]:
        """A write transaction holding the model's row lock; yields (connection, model id)."""
        validate_model_name(name)
        with self.metadata_store.begin() as conn:
            model_id = conn.execute(_LOCK_MODEL, {"name": name}).scalar()
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
        checked = _check_tags(tags)
        now = self._now()
        with self.metadata_store.begin() as conn:
            _insert_ignore(
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
            model_id = conn.execute(_LOCK_MODEL, {"name": name}).scalar_one()
            if description is not None:
                conn.execute(
                    sa.update(t.models)
                    .where(t.models.c.id == model_id)
                    .values(description=description, updated_at=now)
                )
            for key, value in checked.items():
                _upsert(
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
        checked_tags = _check_tags(tags)
        alias_list = list(dict.fromkeys(validate_alias(a) for a in aliases))
        extra_dict = _jsonable(dict(extra), "extra") if extra is not None else None
        signature = _jsonable(signature, "signature")
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
            bumped = conn.execute(_BUMP, {"m_name": name, "now": now}).first()
            if bumped is None:
                _insert_ignore(
                    conn,
                    t.models,
                    {"name": name, "created_at": now, "updated_at": now, "last_version": 0},
                )
                bumped = conn.execute(_BUMP, {"m_name": name, "now": now}).one()
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
                _INSERT_VERSION,
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
                self._move_alias(
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
        number = _check_version_number(version)
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
        number = _check_version_number(version)
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
            self._move_alias(
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
            self._move_alias(
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
        current = self._alias_target(conn, model_id, alias)
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
            target = stack[-2] if len(stack) >= 2 else None
            if target is None:
                raise ConflictError(
                    f"alias {alias!r} of model {name!r} has no earlier version to roll back to "
                    f"(it points at version {current})",
                    hint=f"point it elsewhere with `modelyard models promote {name} VERSION "
                    f"--alias {alias}`",
                    model=name,
                    alias=alias,
                )
            self._move_alias(
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

    @staticmethod
    def _alias_target(conn: Connection, model_id: int, alias: str) -> int | None:
        value = conn.execute(
            sa.select(t.aliases.c.version).where(
                t.aliases.c.model_id == model_id, t.aliases.c.alias == alias
            )
        ).scalar()
        return None if value is None else int(value)

    def _move_alias(
        self,
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
        current = self._alias_target(conn, model_id, alias)
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
                sa.update(al)
                .where(where)
                .values(version=to_version, updated_at=now, updated_by=actor)
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

    # ------------------------------------------------------------------ tags
    def set_model_tag(self, name: str, key: str, value: str) -> None:
        """Set tag ``key`` of model ``name`` to ``value``."""
        validate_tag_key(key)
        _check_tag_value(key, value)
        with self._locked_model(name) as (conn, model_id):
            _upsert(
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
        validate_tag_key(key)
        _check_tag_value(key, value)
        number = _check_version_number(version)
        with self._locked_model(name) as (conn, model_id):
            version_id = self._version_id(conn, model_id, name, number)
            _upsert(
                conn,
                t.model_version_tags,
                {"version_id": version_id, "key": key, "value": value},
                ("version_id", "key"),
            )

    def delete_version_tag(self, name: str, version: int | str, key: str) -> bool:
        """Remove tag ``key`` of a version; return whether it existed."""
        validate_tag_key(key)
        number = _check_version_number(version)
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
            _, skipped = GitTagMirror(root).create_tags([version])
            problems = [why for _, why in skipped]
        except ModelyardError as exc:
            problems = [exc.message]
        for why in problems:
            # The version is committed; the mirror is best effort and `sync-tags` repairs it.
            _log.warning(
                "git tag not created",
                extra={"model": version.name, "version": version.version, "error": why},
            )

    def sync_tags(self, project_root: str | os.PathLike[str] | None = None) -> SyncReport:
        """Reconcile git tags ``model/<name>/v<N>`` with the registry.

        Creates missing tags, reports tags with no version and tags whose commit or manifest
        sha256 differ from the registry. Reads the tags with one ``git for-each-ref``.
        """
        from modelyard.registry.gittags import GitTagMirror

        root = project_root or self.project_root or Path.cwd()
        return GitTagMirror(Path(root)).sync(self.all_versions())


def _no_model(name: str) -> NotFoundError:
    return NotFoundError(
        f"no model named {name!r}",
        hint="`modelyard models list` shows the registered models",
        model=name,
    )
