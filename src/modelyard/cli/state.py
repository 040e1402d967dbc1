"""Global CLI state set by the root callback, and the one place commands get Settings from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.config import Settings


@dataclass
class _State:
    debug: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    def settings(self, **extra: Any) -> Settings:
        """Settings for this invocation (global options > env > project file > defaults)."""
        from modelyard.config import load_settings
        from modelyard.logs import configure_logging

        if self._settings is None or extra:
            s = load_settings(**{**self.overrides, **extra})
            configure_logging(s.log_level)
            if extra:
                return s
            self._settings = s
        return self._settings


state = _State()


def emit_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (for ``--json``); plain ``print``, so no Typer import."""
    import orjson

    print(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode(), flush=True)
