"""Names in the registry: model names, aliases, tag keys, version numbers and references.

``NAME``, ``NAME:3``, ``NAME@alias`` (``parse_ref``); names cannot hold ``..`` or ``/``, so
they never escape a folder they are used in (request logs, caches, git tags).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from modelyard.errors import InvalidInputError, InvalidNameError
from modelyard.store.keys import check_key, check_value

__all__ = [
    "NAME_RULE",
    "RESERVED_ALIASES",
    "check_tags",
    "check_version_number",
    "parse_ref",
    "validate_alias",
    "validate_model_name",
    "validate_tag_key",
]

NAME_RULE = "1-255 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit, no '..'"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
RESERVED_ALIASES = frozenset({"latest"})


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
    """Return ``key`` if it is a legal tag key (the rule of every tag: run, model, version)."""
    return check_key(key, "tag")  # type: ignore[arg-type]


def check_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """``tags`` with checked keys and values (``str()`` of non-strings)."""
    if not tags:
        return {}
    return {validate_tag_key(k): check_value(v, k, "tag") for k, v in tags.items()}


def check_version_number(version: object) -> int:
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
        return name, check_version_number(version), None
    return validate_model_name(ref), None, None
