"""A small TOML writer for the values contracts hold, and line look-ups for error messages.

Only what contracts need: strings, booleans, integers, floats (with ``inf``/``nan``), dates,
datetimes and flat arrays of those. The output is read back by :mod:`tomllib`.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["find_line", "key", "value"]

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_ESCAPES["\r"] = "\\r"


def string(text: str) -> str:
    """A TOML basic string (double quotes, escapes for quotes, backslashes and controls)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def key(name: str) -> str:
    """A bare key when TOML allows it, else a quoted one."""
    return name if _BARE.match(name) else string(name)


def value(obj: Any, *, wrap_after: int = 4) -> str:
    """One TOML value; arrays longer than ``wrap_after`` get one item per line."""
    if isinstance(obj, bool):
        return "true" if obj else "false"
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return repr(obj)
    if isinstance(obj, str):
        return string(obj)
    if isinstance(obj, _dt.datetime):
        text = obj.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(obj, _dt.date):
        return obj.isoformat()
    if isinstance(obj, Sequence):
        items = [value(v) for v in obj]
        if len(items) <= wrap_after:
            return "[" + ", ".join(items) + "]"
        return "[\n" + "".join(f"  {item},\n" for item in items) + "]"
    raise TypeError(f"cannot write {type(obj).__name__} to TOML")


_HEADER = re.compile(r"^\s*\[\s*(.+?)\s*\]\s*(#.*)?$")
_KEYLINE = re.compile(r'^\s*("(?:[^"\\]|\\.)*"|[A-Za-z0-9_-]+)\s*=')


def _split_dotted(header: str) -> list[str]:
    parts: list[str] = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"|([A-Za-z0-9_-]+)', header):
        parts.append(m.group(1) if m.group(1) is not None else m.group(2))
    return parts


def find_line(text: str, table: Sequence[str], name: str | None = None) -> int | None:
    """The 1-based line of ``name`` inside ``[table]`` (or of the header when name is None)."""
    current: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header and not line.lstrip().startswith("[["):
            current = _split_dotted(header.group(1))
            if name is None and current == list(table):
                return number
            continue
        if name is not None and current == list(table):
            m = _KEYLINE.match(line)
            if m:
                found = m.group(1)
                if found.startswith('"'):
                    found = found[1:-1]
                if found == name:
                    return number
    return None
