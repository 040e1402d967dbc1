"""JSON-lines logging on stderr for every command and process.

Each record is one line: ``ts``, ``level``, ``logger``, ``msg``, then any fields passed through
``extra=`` (``run_id``, ``model``, ``version``, ``request_id``, ...). Messages are constant; the
variable data goes in fields. Values of fields whose names look secret are masked.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

__all__ = ["JsonFormatter", "configure_logging", "get_logger"]

_RESERVED = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)
_SECRET_HINTS = ("password", "secret", "token", "authorization", "api_key", "credential")
_configured = False


def _mask(key: str, value: Any) -> Any:
    lowered = key.lower()
    if any(h in lowered for h in _SECRET_HINTS):
        return "***"
    return value


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
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                body[key] = _mask(key, value)
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


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
) -> None:
    """Send the ``modelyard`` loggers to ``stream`` (stderr) as JSON lines. Idempotent."""
    global _configured
    if _configured and not force:
        logging.getLogger("modelyard").setLevel(level)
        return
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _CurrentStderrHandler()
    )
    handler.setFormatter(JsonFormatter(static))
    root = logging.getLogger("modelyard")
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
