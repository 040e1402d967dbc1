"""The registry's SQL: one SELECT per lookup (compiled once per dialect) and row decoding."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from modelyard.errors import InvalidInputError
from modelyard.registry.entities import BytesReader, ModelVersion
from modelyard.store import schema as t
from modelyard.store.sql import insert_ignore, upsert

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "BUMP",
    "INSERT_VERSION",
    "LOCK_MODEL",
    "Statements",
    "insert_row_ignore",
    "json_column",
    "jsonable",
    "statements",
    "upsert_row",
    "version_from_row",
]


def json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def jsonable(value: Any, what: str) -> Any:
    """``value`` as plain JSON data (numpy scalars, paths converted); NaN and infinity refused,
    since PostgreSQL's JSON type rejects them and SQLite would store non-standard JSON."""
    if value is None:
        return None
    import json

    try:
        return json.loads(json.dumps(value, allow_nan=False, default=json_default))
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


@dataclass(frozen=True)
class Statements:
    by_version: sa.Select[Any]
    by_alias: sa.Select[Any]
    latest: sa.Select[Any]
    all_of_model: sa.Select[Any]
    everything: sa.Select[Any]


_CACHED: dict[str, Statements] = {}


def statements(dialect: str) -> Statements:
    """One SELECT per lookup kind; each returns a version with its files, tags and aliases."""
    cached = _CACHED.get(dialect)
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
    stmts = Statements(
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
    _CACHED[dialect] = stmts
    return stmts


def json_column(value: Any, empty: Any) -> Any:
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


def version_from_row(row: Any, *, json_text: bool, store: BytesReader | None) -> ModelVersion:
    """Build a version from a raw driver row (JSON columns arrive as text on SQLite)."""
    signature, extra = row[8], row[9]
    if json_text:
        signature, extra = json_column(signature, None), json_column(extra, None)
    return ModelVersion(
        name=row[0],
        version=row[1],
        run_id=row[2],
        source_commit=row[3],
        flavor=row[4],
        artifact_uri=row[5],
        manifest_sha256=row[6],
        files=dict(sorted(json_column(row[7], {}).items())),
        signature=signature,
        extra=extra,
        aliases=tuple(sorted(json_column(row[10], []))),
        tags=dict(sorted(json_column(row[11], {}).items())),
        created_at=row[12],
        created_by=row[13],
        description=row[14],
        contract_sha256=row[15],
        profile_sha256=row[16],
        store=store,
    )


def upsert_row(
    conn: Connection, table: sa.Table, values: dict[str, Any], keys: Sequence[str]
) -> None:
    """INSERT, or UPDATE the non-key columns when the key exists (SQLite and PostgreSQL)."""
    others = [c for c in values if c not in keys]
    conn.execute(sa.text(upsert(table.name, keys, others)), values)


def insert_row_ignore(conn: Connection, table: sa.Table, values: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: concurrent get-or-create without errors."""
    conn.execute(sa.text(insert_ignore(table.name, list(values))), values)


BUMP = (
    sa.update(t.models)
    .where(t.models.c.name == sa.bindparam("m_name"))
    .values(last_version=t.models.c.last_version + 1, updated_at=sa.bindparam("now"))
    .returning(t.models.c.id, t.models.c.last_version)
)
INSERT_VERSION = sa.insert(t.model_versions).returning(t.model_versions.c.id)
LOCK_MODEL = (
    sa.select(t.models.c.id).where(t.models.c.name == sa.bindparam("name")).with_for_update()
)
