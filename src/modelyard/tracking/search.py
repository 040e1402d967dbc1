"""Run search: a small filter grammar compiled to one SQL query, and opaque page tokens.

Grammar (keywords are case-insensitive)::

    filter     := condition ("and" condition)*
    condition  := ident op value
    ident      := prefix "." key | attribute
    prefix     := metrics | params | tags | attributes     (singular forms accepted too)
    key        := name made of letters, digits and _ - . / : | `any key` | "any key"
    op         := = | == | != | <> | < | <= | > | >=  | like | ilike | not like | not ilike
    value      := number | 'string' | "string"

- ``metrics.<key>`` compares the run's latest value of that metric with a number.
- ``params.<key>`` and ``tags.<key>`` compare the stored string: ``=``, ``!=``, ``like``, ``ilike``
  with a quoted value. A run that lacks the key never matches (``!=`` included).
- attributes: ``status``, ``name``, ``kind``, ``user``, ``source``, ``experiment``, ``run_id``,
  ``parent_run_id``, ``git_commit``, ``git_branch`` (strings) and ``start_time``, ``end_time``
  (UNIX seconds); the ``attributes.`` prefix is optional.

``order_by`` items are ``ident [ASC|DESC]`` (default ASC); runs missing an ordering key come last;
ties are broken by ``start_time DESC`` then the run id. A search compiles to ONE query over
``runs`` (``EXISTS`` on ``latest_metrics``/``params``/``run_tags`` per condition, outer joins for
ordering keys); the page's params, tags and latest metrics are then read in three batched queries.

Page tokens encode the offset with a hash of the query, so a token cannot be replayed against a
different filter or ordering.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from sqlalchemy import Select
    from sqlalchemy.engine import Connection

__all__ = [
    "Condition",
    "OrderKey",
    "SearchQuery",
    "decode_page_token",
    "encode_page_token",
    "parse_filter",
    "parse_order_by",
]

Kind = Literal["metric", "param", "tag", "attribute"]

_PREFIXES: dict[str, Kind] = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "parameters": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
    "attr": "attribute",
    "run": "attribute",
}
# attribute name -> (column name on runs / experiments, numeric?)
_ATTRIBUTES: dict[str, tuple[str, bool]] = {
    "run_id": ("id", False),
    "id": ("id", False),
    "name": ("name", False),
    "run_name": ("name", False),
    "status": ("status", False),
    "kind": ("kind", False),
    "user": ("user", False),
    "source": ("source", False),
    "experiment": ("experiment", False),
    "parent_run_id": ("parent_run_id", False),
    "git_commit": ("git_commit", False),
    "git_branch": ("git_branch", False),
    "start_time": ("start_time", True),
    "end_time": ("end_time", True),
}
_COMPARE = ("=", "!=", "<", "<=", ">", ">=")
_STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE")
MAX_RESULTS_LIMIT = 50_000


@dataclass(frozen=True)
class Condition:
    """One ``ident op value`` of a filter; ``position`` is where it starts in the text."""

    kind: Kind
    key: str
    op: str
    value: float | str
    position: int


@dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` item."""

    kind: Kind
    key: str
    descending: bool


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<op>==|!=|<>|<=|>=|=|<|>)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<dot>\.)
  | (?P<backquoted>`[^`]*`)
  | (?P<bad>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_KEY_CHARS = re.compile(r"[A-Za-z0-9_\-./:]+")


@dataclass
class _Tok:
    type: str
    text: str
    pos: int


def _error(text: str, pos: int, what: str, hint: str | None = None) -> InvalidInputError:
    pointer = f"\n  {text}\n  {' ' * pos}^"
    return InvalidInputError(
        f"invalid filter at character {pos}: {what}{pointer}",
        hint=hint
        or "write conditions like: metrics.auc > 0.8 and params.lr = '0.1' "
        "and tags.team != 'x' and attributes.status = 'FINISHED'",
        filter=text,
        position=pos,
        problem=what,
    )


class _Lexer:
    """Tokens with their positions; keys after ``prefix.`` are read with their own rule."""

    def __init__(self, text: str, what: str = "filter") -> None:
        self.text = text
        self.pos = 0
        self.what = what

    def _skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> _Tok | None:
        saved = self.pos
        tok = self.next()
        self.pos = saved
        return tok

    def next(self) -> _Tok | None:
        self._skip_ws()
        if self.pos >= len(self.text):
            return None
        m = _TOKEN.match(self.text, self.pos)
        assert m is not None  # the 'bad' alternative matches any character
        kind = m.lastgroup or "bad"
        if kind == "bad" and m.group() in "'\"":
            raise _error(self.text, self.pos, f"the string opened with {m.group()} is not closed")
        tok = _Tok(kind, m.group(), self.pos)
        self.pos = m.end()
        return tok

    def read_key(self) -> tuple[str, int]:
        """The key after ``prefix.``: bare characters, or back/double-quoted."""
        start = self.pos
        if start < len(self.text) and self.text[start] in "`\"'":
            quote = self.text[start]
            end = self.text.find(quote, start + 1)
            if end < 0:
                raise _error(self.text, start, f"the key quoted with {quote} is not closed")
            self.pos = end + 1
            return self.text[start + 1 : end], start
        m = _KEY_CHARS.match(self.text, start)
        if m is None:
            raise _error(self.text, start, "expected a key name after the '.'")
        self.pos = m.end()
        return m.group(), start


def _read_ident(lex: _Lexer, tok: _Tok) -> tuple[Kind, str]:
    text = lex.text
    word = tok.text.lower()
    if lex.pos < len(text) and text[lex.pos] == "." and word in _PREFIXES:
        lex.pos += 1
        key, key_pos = lex.read_key()
        kind = _PREFIXES[word]
        if kind == "attribute":
            name = key.lower()
            if name not in _ATTRIBUTES:
                raise _error(
                    text,
                    key_pos,
                    f"unknown attribute {key!r}",
                    hint="attributes are: " + ", ".join(sorted(_ATTRIBUTES)),
                )
            return kind, name
        if not key:
            raise _error(text, key_pos, "the key name is empty")
        return kind, key
    if word in _ATTRIBUTES and not (lex.pos < len(text) and text[lex.pos] == "."):
        return "attribute", word
    raise _error(
        text,
        tok.pos,
        f"unknown name {tok.text!r}",
        hint="start a condition with metrics.<key>, params.<key>, tags.<key> or an attribute ("
        + ", ".join(sorted(_ATTRIBUTES))
        + ")",
    )


def _unquote(literal: str) -> str:
    quote = literal[0]
    body = literal[1:-1]
    body = body.replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", body)


def parse_filter(text: str | None) -> list[Condition]:
    """Parse a filter string into conditions (all must hold).

    Raises:
        InvalidInputError: the filter is malformed; the message points at the offending character.
    """
    if text is None or not text.strip():
        return []
    lex = _Lexer(text)
    conditions: list[Condition] = []
    while True:
        tok = lex.next()
        if tok is None:
            raise _error(text, len(text), "expected a condition after 'and'")
        if tok.type != "ident":
            raise _error(text, tok.pos, f"expected a name such as metrics.auc, got {tok.text!r}")
        kind, key = _read_ident(lex, tok)
        op_tok = lex.next()
        if op_tok is None:
            raise _error(text, len(text), f"expected an operator after {key!r}")
        op = _read_op(lex, op_tok)
        val_tok = lex.next()
        if val_tok is None:
            raise _error(text, len(text), f"expected a value after {op!r}")
        conditions.append(_make_condition(text, kind, key, op=op, tok=val_tok, start=tok.pos))
        nxt = lex.next()
        if nxt is None:
            return conditions
        if nxt.type == "ident" and nxt.text.lower() == "and":
            continue
        if nxt.type == "ident" and nxt.text.lower() == "or":
            raise _error(
                text,
                nxt.pos,
                "'or' is not supported",
                hint="combine conditions with 'and', or run one search per alternative",
            )
        raise _error(text, nxt.pos, f"expected 'and' or the end, got {nxt.text!r}")


def _read_op(lex: _Lexer, tok: _Tok) -> str:
    if tok.type == "op":
        return {"==": "=", "<>": "!="}.get(tok.text, tok.text)
    if tok.type == "ident":
        word = tok.text.upper()
        if word in ("LIKE", "ILIKE"):
            return word
        if word == "NOT":
            nxt = lex.next()
            if nxt is not None and nxt.type == "ident" and nxt.text.upper() in ("LIKE", "ILIKE"):
                return f"NOT {nxt.text.upper()}"
            pos = nxt.pos if nxt is not None else len(lex.text)
            raise _error(lex.text, pos, "expected LIKE or ILIKE after NOT")
    raise _error(
        lex.text,
        tok.pos,
        f"expected an operator (= != < <= > >= LIKE ILIKE), got {tok.text!r}",
    )


def _make_condition(
    text: str, kind: Kind, key: str, *, op: str, tok: _Tok, start: int
) -> Condition:
    numeric = kind == "metric" or (kind == "attribute" and _ATTRIBUTES[key][1])
    if numeric:
        if op not in _COMPARE:
            raise _error(text, tok.pos, f"{op} cannot compare numbers; use = != < <= > >=")
        if tok.type != "number":
            raise _error(
                text,
                tok.pos,
                f"{_label(kind, key)} is a number, got {tok.text!r}",
                hint=f"compare it with a number: {_label(kind, key)} > 0.5",
            )
        return Condition(kind, key, op, float(tok.text), start)
    if op not in _STRING_OPS:
        raise _error(
            text,
            tok.pos - 1 if tok.pos else 0,
            f"{op} does not apply to {_label(kind, key)} (a string)",
            hint="strings support = != LIKE ILIKE NOT LIKE NOT ILIKE",
        )
    if tok.type != "string":
        raise _error(
            text,
            tok.pos,
            f"{_label(kind, key)} is a string; quote the value, got {tok.text!r}",
            hint=f"{_label(kind, key)} = '{tok.text}'",
        )
    return Condition(kind, key, op, _unquote(tok.text), start)


def _label(kind: Kind, key: str) -> str:
    prefix = {"metric": "metrics", "param": "params", "tag": "tags", "attribute": "attributes"}
    return f"{prefix[kind]}.{key}"


def parse_order_by(items: Sequence[str] | str | None) -> list[OrderKey]:
    """Parse ``["metrics.auc DESC", "start_time"]`` into order keys.

    Raises:
        InvalidInputError: an item is malformed, naming it.
    """
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    out: list[OrderKey] = []
    for item in items:
        lex = _Lexer(item, "order_by")
        tok = lex.next()
        if tok is None or tok.type != "ident":
            raise _order_error(item, tok.pos if tok else 0, "expected a name such as metrics.auc")
        try:
            kind, key = _read_ident(lex, tok)
        except InvalidInputError as exc:
            raise _order_error(
                item, int(exc.details.get("position", 0)), str(exc.details.get("problem"))
            ) from exc
        descending = False
        nxt = lex.next()
        if nxt is not None:
            word = nxt.text.upper()
            if nxt.type != "ident" or word not in ("ASC", "DESC"):
                raise _order_error(item, nxt.pos, f"expected ASC or DESC, got {nxt.text!r}")
            descending = word == "DESC"
            extra = lex.next()
            if extra is not None:
                raise _order_error(item, extra.pos, f"unexpected {extra.text!r}")
        out.append(OrderKey(kind, key, descending))
    return out


def _order_error(item: str, pos: int, what: str) -> InvalidInputError:
    return InvalidInputError(
        f"invalid order_by item {item!r} at character {pos}: {what}",
        hint="write items like 'metrics.auc DESC', 'params.lr', 'start_time ASC'",
        order_by=item,
        position=pos,
    )


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
        """The one SQL statement: matching runs (with their experiment name), page-limited.

        Args:
            dialect: the database's dialect name; on SQLite, LIKE is made case-sensitive as it
                is on PostgreSQL (ILIKE stays case-insensitive on both).
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
        from_ = runs.join(experiments, experiments.c.id == runs.c.experiment_id)
        where: list[Any] = []
        if self.experiments is not None:
            where.append(experiments.c.name.in_(self.experiments))

        def attr_col(name: str) -> Any:
            col = _ATTRIBUTES[name][0]
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

        order_cols: list[Any] = []
        for i, key in enumerate(self.order):
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
        return stmt.order_by(*order_cols).limit(self.max_results + 1).offset(self.offset)

    def execute(self, conn: Connection) -> tuple[list[dict[str, Any]], str | None]:
        """Run the query: the page's run rows and the token of the next page (or None)."""
        result = conn.execute(self.select(conn.dialect.name))
        keys = list(result.keys())
        rows = [dict(zip(keys, r, strict=True)) for r in result.all()]
        next_token = None
        if len(rows) > self.max_results:
            rows = rows[: self.max_results]
            next_token = encode_page_token(self.offset + self.max_results, self.query_hash)
        return rows, next_token


def like_to_glob(pattern: str) -> str:
    """Translate a SQL LIKE pattern (``%``, ``_``) into an SQLite GLOB pattern (case-sensitive)."""
    out = []
    for ch in pattern:
        if ch == "%":
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
        return column.like(value)
    if op == "NOT LIKE":
        return column.not_like(value)
    if op == "ILIKE":
        return column.ilike(value)
    if op == "NOT ILIKE":
        return column.not_ilike(value)
    raise InvalidInputError(f"unknown operator {op!r}")  # pragma: no cover - parser guards
