"""The one rule for keys and values of params, tags and metrics, and their length limits.

Runs (``tracking``) and models and versions (``registry``) store tags in the same kind of
``(key, value)`` rows, so both check them here; the limits are the widths of those columns
(:data:`modelyard.store.schema.NAME`, :data:`modelyard.store.schema.VALUE`, which take them from
here: this module is on the path of every run and must not import SQLAlchemy).
"""

from __future__ import annotations

import re
from typing import Any

from modelyard.errors import InvalidInputError, InvalidNameError

__all__ = ["MAX_KEY", "MAX_VALUE", "check_key", "check_value"]

#: The longest key (metric, param, tag) and the longest param or tag value, in characters.
MAX_KEY = 255
MAX_VALUE = 8000

_KEY_RE = re.compile(r"^[A-Za-z0-9_\-. /:]{1,255}$")
_valid_keys: set[str] = set()  # keys already checked: the hot path skips the regex


def check_key(key: str, what: str) -> str:
    """Return ``key`` if it is a legal ``what`` key (``metric``, ``param``, ``tag``).

    Keys are 1-255 letters, digits, ``_ - . / :`` or inner spaces, not starting with ``/``.

    Raises:
        InvalidNameError: naming the key and the rule.
    """
    if type(key) is str and key in _valid_keys:  # the hot path: one set lookup
        return key
    if not isinstance(key, str):
        raise InvalidNameError(
            f"{what} key must be a string, got {type(key).__name__} {key!r}", key=repr(key)
        )
    if not _KEY_RE.match(key) or key.startswith("/") or key.strip() != key:
        raise InvalidNameError(
            f"invalid {what} key {key!r}",
            hint="use 1-255 letters, digits, '_', '-', '.', '/', ':' or inner spaces, "
            "e.g. 'val/loss'",
            key=key,
        )
    if len(_valid_keys) < 100_000:
        _valid_keys.add(key)
    return key


def check_value(value: Any, key: str, what: str) -> str:
    """A param or tag value as the string stored (``str()`` of a non-string), at most
    :data:`MAX_VALUE` characters.

    Raises:
        InvalidInputError: the value is too long or holds a NUL character, naming the key.
    """
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        raise InvalidInputError(
            f"{what} {key!r} contains a NUL character, which databases do not store",
            hint="remove the \\x00 characters, or store the data as an artifact",
            key=key,
        )
    if len(text) > MAX_VALUE:
        raise InvalidInputError(
            f"{what} {key!r} is {len(text)} characters long; the limit is {MAX_VALUE}",
            hint="store long text as an artifact (run.log_artifact) and put its sha256 in "
            "the value",
            key=key,
        )
    return text
