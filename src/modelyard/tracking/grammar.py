"""The run-search filter grammar: a hand-written lexer and parser with pointed errors.

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

``order_by`` items are ``ident [ASC|DESC]`` (default ASC).

Errors are :class:`~modelyard.errors.InvalidInputError` whose message names the character
position, shows the filter with a caret under the offending token, and carries ``position`` and
``problem`` in its details.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from modelyard.errors import InvalidInputError

__all__ = ["ATTRIBUTES", "Condition", "Kind", "OrderKey", "parse_filter", "parse_order_by"]

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
ATTRIBUTES: dict[str, tuple[str, bool]] = {
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
            if name not in ATTRIBUTES:
                raise _error(
                    text,
                    key_pos,
                    f"unknown attribute {key!r}",
                    hint="attributes are: " + ", ".join(sorted(ATTRIBUTES)),
                )
            return kind, name
        if not key:
            raise _error(text, key_pos, "the key name is empty")
        return kind, key
    if word in ATTRIBUTES and not (lex.pos < len(text) and text[lex.pos] == "."):
        return "attribute", word
    raise _error(
        text,
        tok.pos,
        f"unknown name {tok.text!r}",
        hint="start a condition with metrics.<key>, params.<key>, tags.<key> or an attribute ("
        + ", ".join(sorted(ATTRIBUTES))
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
    numeric = kind == "metric" or (kind == "attribute" and ATTRIBUTES[key][1])
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
