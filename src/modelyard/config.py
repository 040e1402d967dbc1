"""Settings: read once, at the edge, with an explicit precedence.

Precedence, highest first: arguments passed to :func:`load_settings` > ``MODELYARD_*`` environment
variables > ``[tool.modelyard]`` in the project's ``pyproject.toml`` (or a ``modelyard.toml``) >
defaults. Nested tables use ``__`` in environment names: ``MODELYARD_SERVING__PORT=9000``.

A ``pyproject.toml`` counts only when it has a ``[tool.modelyard]`` table; the project root is the
nearest folder upwards holding such a file, else the git work tree, else the current folder.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from modelyard.errors import ConfigError

__all__ = [
    "PipelineSettings",
    "ServingSettings",
    "Settings",
    "find_project_root",
    "load_settings",
    "os_user",
]


class ServingSettings(BaseModel):
    """``[tool.modelyard.serving]``: defaults for ``modelyard serve``."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int | None = Field(None, ge=1, description="model worker processes; default: per core")
    max_batch_size: int = Field(64, ge=1)
    max_wait_ms: float = Field(2.0, ge=0)
    queue_size: int = Field(1024, ge=1)
    timeout_s: float = Field(30.0, gt=0)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1)
    grace_s: float = Field(30.0, ge=0, description="how long SIGTERM waits for accepted requests")
    request_log_sample_rate: float = Field(1.0, ge=0, le=1)
    request_log_flush_s: float = Field(10.0, gt=0)
    admin_token: SecretStr | None = Field(None, description="bearer token for management endpoints")


class PipelineSettings(BaseModel):
    """``[tool.modelyard.pipeline]``: which pipeline ``modelyard run`` runs, and its parameters."""

    model_config = ConfigDict(extra="forbid")

    entrypoint: str | None = Field(None, description="'module:function' building the pipeline")
    executor: str = "local"
    max_parallel: int | None = Field(None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    data_sources: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    """Every setting modelyard reads. Build with :func:`load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix="MODELYARD_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    project_root: Path = Field(default_factory=Path.cwd)
    home: Path | None = Field(None, description="holds the SQLite file and the artifact folder")
    db_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite in home")
    artifact_url: str | None = Field(None, description="fsspec URL; default a folder in home")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec options for artifact_url (endpoint_url, ...)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    user: str | None = Field(None, description="who moves aliases; default the OS user")
    git_tags: bool = Field(False, description="mirror registered versions as git tags")
    experiment: str = "default"
    serving: ServingSettings = Field(default_factory=ServingSettings)  # type: ignore[arg-type]
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)  # type: ignore[arg-type]

    @property
    def resolved_home(self) -> Path:
        home = self.home if self.home is not None else Path(".modelyard")
        if not home.is_absolute():
            home = self.project_root / home
        return home

    @property
    def resolved_db_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.resolved_home / 'modelyard.db'}"

    @property
    def resolved_artifact_url(self) -> str:
        if self.artifact_url:
            return self.artifact_url
        return str(self.resolved_home / "artifacts")

    @property
    def resolved_user(self) -> str:
        return self.user or os_user()

    # Filled by load_settings: field name -> where its value came from.
    _sources: dict[str, str] = {}

    def sources(self) -> dict[str, str]:
        """Where each value came from: argument, env NAME, a file, or default.

        Keys are field names, and ``table.field`` for nested tables (``serving.port``).
        """
        return dict(self._sources)

    def source_of(self, key: str) -> str:
        """Where ``key`` (``log_level`` or ``serving.port``) came from."""
        if key in self._sources:
            return self._sources[key]
        return self._sources.get(key.split(".", 1)[0], "default")


def _read_project_table(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}", hint=f"fix the syntax in {path}", file=str(path)
        ) from exc
    if path.name == "modelyard.toml":
        table = data.get("tool", {}).get("modelyard", data)
        return dict(table)
    table = data.get("tool", {}).get("modelyard")
    return dict(table) if isinstance(table, dict) else None


def os_user() -> str:
    """The operating-system user name, or ``unknown`` when none can be found."""
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # getpass raises several types when no user is known
        return "unknown"


_NESTED = frozenset({"serving", "pipeline"})


def find_project_root(start: Path | None = None) -> tuple[Path, Path | None]:
    """Return (project root, config file or None), searching upwards from ``start``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for name in ("modelyard.toml", "pyproject.toml"):
            candidate = folder / name
            if candidate.is_file() and _read_project_table(candidate) is not None:
                return folder, candidate
        if (folder / ".git").exists():
            return folder, None
    return here, None


def load_settings(start: Path | None = None, **overrides: Any) -> Settings:
    """Resolve settings from arguments, environment, project file and defaults.

    Args:
        start: folder to search upwards from for the project (default: cwd).
        **overrides: explicit values; highest precedence. ``None`` values are ignored.

    Raises:
        ConfigError: a value is of the wrong type or an unknown key is set; the message names the
            key and where it came from.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    root, cfg_file = find_project_root(start)
    file_values: dict[str, Any] = {}
    if cfg_file is not None:
        file_values = _read_project_table(cfg_file) or {}
    env_source = EnvSettingsSource(Settings)
    env_values = env_source()

    merged: dict[str, Any] = {"project_root": root}
    sources: dict[str, str] = {"project_root": str(cfg_file) if cfg_file else "discovered"}
    for layer, label in (
        (file_values, f"{cfg_file} [tool.modelyard]" if cfg_file else ""),
        (env_values, "env"),
        (overrides, "argument"),
    ):
        for key, value in layer.items():
            if isinstance(value, dict) and key in _NESTED:
                merged[key] = {**merged.get(key, {}), **value}
                for sub in value:
                    sources[f"{key}.{sub}"] = (
                        f"env MODELYARD_{key.upper()}__{sub.upper()}" if label == "env" else label
                    )
                continue
            merged[key] = value
            sources[key] = f"env MODELYARD_{key.upper()}" if label == "env" else label
    # relative paths in the project file are relative to the project root
    for key in ("home",):
        if key in file_values and not Path(str(file_values[key])).is_absolute():
            merged[key] = root / str(file_values[key])
    try:
        settings = _SettingsNoEnv(**merged)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            origin = sources.get(loc) or sources.get(str(err["loc"][0]) if loc else "", "default")
            problems.append(f"{loc} ({origin}): {err['msg']}")
        raise ConfigError(
            "invalid settings: " + "; ".join(problems),
            hint="run `modelyard config show` to see every value and where it came from",
        ) from exc
    for name in Settings.model_fields:
        sources.setdefault(name, "default")
    settings._sources = sources
    return settings


class _SettingsNoEnv(Settings):
    """Settings built from an already-merged dict: pydantic-settings must not re-read env."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, *args, **kwargs):  # type: ignore[no-untyped-def]
        return (init_settings,)
