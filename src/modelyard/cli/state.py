"""Global CLI state set by the root callback, and the one place commands get Settings from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.config import Settings


@dataclass
class _State:
    debug: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    def reset(self) -> None:
        """Forget the previous invocation's options and settings (``main()`` called again in
        one process, from another folder, must not reuse the first project's stores)."""
        self.debug = False
        self.overrides = {}
        self._settings = None

    def settings(self, **extra: Any) -> Settings:
        """Settings for this invocation (global options > env > project file > defaults)."""
        from modelyard.config import load_settings

        if self._settings is None or extra:
            s = load_settings(**{**self.overrides, **extra})
            configure_cli_logging(s)
            if extra:
                return s
            self._settings = s
        return self._settings


state = _State()


def configure_cli_logging(settings: Settings) -> None:
    """Logging for a command: short text lines in a terminal, JSON lines elsewhere.

    ``log_format = "auto"`` (the default) writes text when stderr is a terminal and JSON lines
    when it is not (CI, a pipe, a log collector). In a terminal, and unless a log level was set
    (``--log-level``, ``MODELYARD_LOG_LEVEL``, ``log_level`` in the project file), only warnings
    and errors are written: the command's own output says what happened.
    """
    import sys

    from modelyard.logs import configure_logging

    log_format = settings.log_format
    terminal = sys.stderr.isatty()
    if log_format == "auto":
        log_format = "text" if terminal else "json"
    level: str = settings.log_level
    if log_format == "text" and terminal and settings.source_of("log_level") == "default":
        level = "WARNING"
    configure_logging(level, log_format=log_format)


def emit_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (for ``--json``); plain ``print``, so no Typer import."""
    import orjson

    print(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode(), flush=True)


def emit_summary(result: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    """Print a run's (or a study's) ``summary()`` as JSON, or ``text(result)`` for people; the
    commands that end with a result call it on success and on the failure that carries one."""
    if as_json:
        emit_json(result.summary())
    else:
        print(text(result), flush=True)
