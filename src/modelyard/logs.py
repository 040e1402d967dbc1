"""Logging on stderr for every command and process: JSON lines, or short text in a terminal.

Each JSON record is one line: ``ts``, ``level``, ``logger``, ``msg``, then any fields passed
through ``extra=`` (``run_id``, ``model``, ``version``, ``request_id``, ...). Messages are
constant; the variable data goes in fields. Values of fields whose names look secret are masked,
at any depth (a ``storage_options`` mapping keeps its endpoint and loses its keys). The CLI writes
short text lines, warnings and errors only, when stderr is a terminal (``--log-format json`` or a
``--log-level`` brings the rest back).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal, TextIO

__all__ = [
    "HumanFormatter",
    "JsonFormatter",
    "configure_logging",
    "get_logger",
    "is_secret_name",
    "mask_secrets",
]

_RESERVED = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)
_SECRET_HINTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "credential",
    "private",
)
MASK = "***"
_configured = False


def is_secret_name(name: str, *, keys_too: bool = False) -> bool:
    """Whether a field or option named ``name`` holds a secret.

    Args:
        name: the field's name (``admin_token``, ``aws_secret_access_key``).
        keys_too: count names made of ``key`` (``key``, ``access_key``, ``account_key``) as
            secrets too: what they mean in a mapping of storage options, not in a log field
            such as ``cache_key``.
    """
    lowered = name.lower()
    if any(h in lowered for h in _SECRET_HINTS):
        return True
    return keys_too and (lowered == "key" or "key_id" in lowered or lowered.endswith("_key"))


def mask_secrets(value: Any, *, keys_too: bool = True) -> Any:
    """``value`` with the values of secret-named entries replaced by ``***``, at any depth.

    With ``keys_too`` (storage options), names made of ``key`` count as secrets (see
    :func:`is_secret_name`): ``{"key": "AKIA...", "secret": "...", "endpoint_url":
    "http://minio:9000"}`` keeps only its endpoint.
    """
    if isinstance(value, Mapping):
        return {
            k: MASK
            if is_secret_name(str(k), keys_too=keys_too)
            else mask_secrets(v, keys_too=keys_too)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(v, keys_too=keys_too) for v in value]
    return value


def _mask(key: str, value: Any) -> Any:
    """A log field's value: masked when its name looks secret; a mapping (storage options, a
    request's headers) loses its secret entries, keys included."""
    return MASK if is_secret_name(key) else mask_secrets(value)


def _default(obj: Any) -> Any:
    return str(obj)


class JsonFormatter(logging.Formatter):
    """Format records as one JSON object per line.

    Args:
        static: fields added to every record (``process``: "worker-3", ...).
    """

    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        import orjson

        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        body: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        body.update(self.static)
        body.update(_fields(record))
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields passed with ``extra=``, secrets masked."""
    return {
        key: _mask(key, value)
        for key, value in record.__dict__.items()
        if key not in _RESERVED and not key.startswith("_")
    }


class HumanFormatter(logging.Formatter):
    """One short line per record for a person at a terminal: ``warning: msg (key=value ...)``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items() if v is not None)
        line = f"{record.levelname.lower()}: {record.getMessage()}"
        if fields:
            line += f" ({fields})"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted.

    A handler bound to the ``sys.stderr`` of its creation breaks when that stream is later
    replaced (test runners, embedding applications) and closed.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(
    level: str | int = "INFO",
    *,
    stream: TextIO | None = None,
    static: dict[str, Any] | None = None,
    force: bool = False,
    log_format: Literal["json", "text"] = "json",
) -> None:
    """Send the ``modelyard`` loggers to ``stream`` (stderr). Idempotent.

    Args:
        level: the lowest level written.
        stream: where to (default: whatever ``sys.stderr`` is at each record).
        static: fields added to every JSON record.
        force: replace the handler even when logging was configured already.
        log_format: ``json`` lines (for machines; the default) or ``text`` (one short line
            per record, for a person at a terminal).
    """
    global _configured
    root = logging.getLogger("modelyard")
    if _configured and not force:
        root.setLevel(level)
        for old in root.handlers:
            if log_format == "text" and isinstance(old.formatter, JsonFormatter):
                old.setFormatter(HumanFormatter())
            elif log_format == "json" and isinstance(old.formatter, HumanFormatter):
                old.setFormatter(JsonFormatter(static))
        return
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _CurrentStderrHandler()
    )
    handler.setFormatter(HumanFormatter() if log_format == "text" else JsonFormatter(static))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    _configured = True


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``modelyard`` tree (``modelyard.<name>``)."""
    if not name.startswith("modelyard"):
        name = f"modelyard.{name}"
    return logging.getLogger(name)
