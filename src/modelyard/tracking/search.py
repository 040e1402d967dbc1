"""Run search: a filter (see :mod:`modelyard.tracking.grammar`) compiled to ONE SQL query.

A search compiles to one query over ``runs`` (``EXISTS`` on ``latest_metrics``/``params``/
``run_tags`` per condition, outer joins for ordering keys); the page's params, tags and latest
metrics are then read by the client in three batched queries. Runs missing an ordering key come
last; ties are broken by ``start_time DESC`` then the run id.

Page tokens encode the offset with a hash of the query, so a token cannot be replayed against a
different filter or ordering.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from modelyard.errors import InvalidInputError
from modelyard.tracking.grammar import (
    ATTRIBUTES,
    Condition,
    OrderKey,
    parse_filter,
    parse_order_by,
)

if TYPE_CHECKING:
    from sqlalchemy import Select
    from sqlalchemy.engine import Connection

__all__ = [
    "MAX_RESULTS_LIMIT",
    "Condition",
    "OrderKey",
    "SearchQuery",
    "decode_page_token",
    "encode_page_token",
    "like_to_glob",
    "parse_filter",
    "parse_order_by",
]

MAX_RESULTS_LIMIT = 50_000


# ------------------------------------------------------------------ page tokens
def _fingerprint(parts: Sequence[Any]) -> str:
    return hashlib.sha256(orjson.dumps(list(parts), default=str)).hexdigest()[:16]


def encode_page_token(offset: int, query_hash: str) -> str:
    """An opaque token for the page starting at ``offset`` of the query ``query_hash``."""
    raw = orjson.dumps({"o": offset, "q": query_hash})
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_page_token(token: str, query_hash: str) -> int:
    """The offset in ``token``; it must come from the same query.

    Raises:
        InvalidInputError: the token is malformed or belongs to another search.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        offset = int(data["o"])
        origin = str(data["q"])
    except Exception as exc:  # any decoding failure means the same thing to the user
        raise InvalidInputError(
            f"invalid page token {token!r}",
            hint="pass the next_page_token of the previous page unchanged",
            page_token=token,
        ) from exc
    if origin != query_hash or offset < 0:
        raise InvalidInputError(
            f"page token {token!r} belongs to a different search",
            hint="use a token with the same experiment, filter and order_by it came from",
            page_token=token,
        )
    return offset


# ------------------------------------------------------------------ SQL
@dataclass
class SearchQuery:
    """A parsed search, ready to compile."""

    experiments: list[str] | None
    conditions: list[Condition]
    order: list[OrderKey]
    max_results: int
    offset: int
    query_hash: str

    @classmethod
    def build(
        cls,
        experiment: str | Sequence[str] | None,
        filter: str | None,
        order_by: Sequence[str] | str | None,
        max_results: int,
        page_token: str | None,
    ) -> SearchQuery:
        """Parse and check every argument of a search.

        Raises:
            InvalidInputError: a bad filter, order_by, max_results or page token.
        """
        if isinstance(max_results, bool) or not isinstance(max_results, int):
            raise InvalidInputError(
                f"max_results must be an integer, got {max_results!r}", max_results=max_results
            )
        if not 1 <= max_results <= MAX_RESULTS_LIMIT:
            raise InvalidInputError(
                f"max_results must be between 1 and {MAX_RESULTS_LIMIT}, got {max_results}",
                hint="page through larger result sets with page_token",
                max_results=max_results,
            )
        experiments = (
            [experiment]
            if isinstance(experiment, str)
            else (list(experiment) if experiment is not None else None)
        )
        conditions = parse_filter(filter)
        order = parse_order_by(order_by)
        qhash = _fingerprint([experiments, filter or "", [str(o) for o in order]])
        offset = decode_page_token(page_token, qhash) if page_token else 0
        return cls(experiments, conditions, order, max_results, offset, qhash)

    def select(self, dialect: str = "postgresql") -> Select[Any]:
        """The SQL statement of the whole result in order, page-limited (one statement).

        :meth:`execute` runs the faster two-part form when the first order key is a metric;
        this form reads every run and sorts, which is what ordering by a param or tag costs.

        Args:
            dialect: the database's dialect name; on SQLite, LIKE is made case-sensitive as it
                is on PostgreSQL (ILIKE stays case-insensitive on both).
        """
        stmt = self._statement(dialect, lead=None)
        return stmt.limit(self.max_results + 1).offset(self.offset)

    def _statement(self, dialect: str, *, lead: bool | None) -> Select[Any]:
        """The ordered statement over ``runs`` (no limit).

        ``lead=None``: all runs, the first order key outer-joined (runs lacking it come last).
        ``lead=True``: only runs that have the first order key (a metric), driven by the
        ``latest_metrics (key, value)`` index so the first page needs no sort of all runs.
        ``lead=False``: only runs lacking it, in the order of the remaining keys.
        """
        import sqlalchemy as sa

        from modelyard.store.schema import (
            experiments,
            latest_metrics,
            params,
            run_tags,
            runs,
        )

        exp_name = experiments.c.name.label("experiment")
        cols = [
            runs.c.id,
            runs.c.name,
            runs.c.kind,
            runs.c.status,
            runs.c.parent_run_id,
            runs.c.start_time,
            runs.c.end_time,
            runs.c.user,
            runs.c.source,
            runs.c.git_commit,
            runs.c.git_branch,
            runs.c.git_dirty,
            runs.c.git_diff_sha256,
            exp_name,
        ]
        order = list(self.order)
        where: list[Any] = []
        order_cols: list[Any] = []
        # "+ 0" keeps SQLite from driving the join through ix_runs_experiment_start when the
        # order comes from another index (it would then sort every run of the experiment);
        # PostgreSQL plans well without it, and its row estimates suffer from it
        run_experiment = (
            runs.c.experiment_id + 0 if lead and dialect == "sqlite" else runs.c.experiment_id
        )
        if lead:
            first = order.pop(0)
            o0 = latest_metrics.alias("o0")
            from_ = o0.join(runs, runs.c.id == o0.c.run_id).join(
                experiments, experiments.c.id == run_experiment
            )
            where.append(o0.c.key == first.key)
            # no NULLS LAST: values are never NULL, and the clause would stop the index use
            order_cols.append(o0.c.value.desc() if first.descending else o0.c.value.asc())
        else:
            from_ = runs.join(experiments, experiments.c.id == run_experiment)
            if lead is False:
                first = order.pop(0)
                has = sa.select(sa.literal(1)).where(
                    latest_metrics.c.run_id == runs.c.id, latest_metrics.c.key == first.key
                )
                where.append(~sa.exists(has))
        if self.experiments is not None:
            if len(self.experiments) == 1:
                # equality on one id lets ix_runs_experiment_start hand runs out in order
                exp_id = (
                    sa.select(experiments.c.id)
                    .where(experiments.c.name == self.experiments[0])
                    .scalar_subquery()
                )
                where.append(run_experiment == exp_id)
            else:
                where.append(experiments.c.name.in_(self.experiments))

        def attr_col(name: str) -> Any:
            col = ATTRIBUTES[name][0]
            return experiments.c.name if col == "experiment" else runs.c[col]

        for cond in self.conditions:
            if cond.kind == "attribute":
                where.append(_apply(attr_col(cond.key), cond.op, cond.value, dialect))
                continue
            table = {"metric": latest_metrics, "param": params, "tag": run_tags}[cond.kind]
            sub = (
                sa.select(sa.literal(1))
                .select_from(table)
                .where(
                    table.c.run_id == runs.c.id,
                    table.c.key == cond.key,
                    _apply(table.c.value, cond.op, cond.value, dialect),
                )
            )
            where.append(sa.exists(sub))

        for i, key in enumerate(order, start=1):
            if key.kind == "attribute":
                expr = attr_col(key.key)
            else:
                table = {"metric": latest_metrics, "param": params, "tag": run_tags}[key.kind]
                alias = table.alias(f"o{i}")
                from_ = from_.outerjoin(
                    alias, sa.and_(alias.c.run_id == runs.c.id, alias.c.key == key.key)
                )
                expr = alias.c.value
            order_cols.append(sa.nulls_last(expr.desc() if key.descending else expr.asc()))
        order_cols += [runs.c.start_time.desc(), runs.c.id.asc()]

        stmt = sa.select(*cols).select_from(from_)
        if where:
            stmt = stmt.where(*where)
        return stmt.order_by(*order_cols)

    def execute(self, conn: Connection) -> tuple[list[dict[str, Any]], str | None]:
        """Run the query: the page's run rows and the token of the next page (or None).

        Ordered by a metric first, the runs that have the metric are read through the
        ``(key, value)`` index, then (past their end) those that lack it: two short indexed
        reads instead of one sort of every run, so a page costs the same at any run count.
        """
        import sqlalchemy as sa

        want = self.max_results + 1
        if not self.order or self.order[0].kind != "metric":
            rows = self._rows(conn, self.select(conn.dialect.name))
        else:
            dialect = conn.dialect.name
            having = self._statement(dialect, lead=True)
            rows = self._rows(conn, having.limit(want).offset(self.offset))
            if len(rows) < want:
                if rows:
                    n_having = self.offset + len(rows)
                else:
                    count = sa.select(sa.func.count()).select_from(having.order_by(None).subquery())
                    n_having = int(conn.execute(count).scalar_one())
                lacking = self._statement(dialect, lead=False)
                rows += self._rows(
                    conn,
                    lacking.limit(want - len(rows)).offset(max(0, self.offset - n_having)),
                )
        next_token = None
        if len(rows) > self.max_results:
            rows = rows[: self.max_results]
            next_token = encode_page_token(self.offset + self.max_results, self.query_hash)
        return rows, next_token

    @staticmethod
    def _rows(conn: Connection, stmt: Select[Any]) -> list[dict[str, Any]]:
        result = conn.execute(stmt)
        keys = list(result.keys())
        return [dict(zip(keys, r, strict=True)) for r in result.all()]


def like_to_glob(pattern: str) -> str:
    """Translate a SQL LIKE pattern into an SQLite GLOB pattern (case-sensitive).

    ``%`` and ``_`` are wildcards and ``\\`` escapes the next character, as in PostgreSQL.
    """
    out = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(f"[{ch}]" if ch in "*?[]" else ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[]":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    return "".join(out)


def _apply(column: Any, op: str, value: float | str, dialect: str = "postgresql") -> Any:
    if op in ("LIKE", "NOT LIKE") and dialect == "sqlite":
        # SQLite's LIKE ignores ASCII case; GLOB matches case as PostgreSQL's LIKE does
        glob = column.op("GLOB", is_comparison=True)(like_to_glob(str(value)))
        return glob if op == "LIKE" else ~glob
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    if op == "LIKE":
        return column.like(value, escape="\\")
    if op == "NOT LIKE":
        return column.not_like(value, escape="\\")
    if op == "ILIKE":
        return column.ilike(value, escape="\\")
    if op == "NOT ILIKE":
        return column.not_ilike(value, escape="\\")
    raise InvalidInputError(f"unknown operator {op!r}")  # pragma: no cover - parser guards
