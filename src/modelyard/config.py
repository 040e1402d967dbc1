"""Settings: read once, at the edge, with an explicit precedence.

Precedence, highest first: arguments passed to :func:`load_settings` > ``MODELYARD_*`` environment
variables > ``[tool.modelyard]`` in the project's ``pyproject.toml`` (or a ``modelyard.toml``) >
defaults. Nested tables use ``__`` in environment names: ``MODELYARD_SERVING__PORT=9000``; names
are case-insensitive, and values for tables, lists and dicts are JSON
(``MODELYARD_STORAGE_OPTIONS='{"anon": true}'``). ``MODELYARD_*`` names that match no setting are
ignored; an unknown key anywhere else is an error.

A ``pyproject.toml`` counts only when it has a ``[tool.modelyard]`` table; the project root is the
nearest folder upwards holding such a file, else the git work tree, else the current folder.

The settings are msgspec Structs validated by :func:`msgspec.convert`: every CLI command imports
this module, and pydantic-settings cost about 150 ms of that start-up where msgspec costs about 15.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from modelyard.errors import ConfigError

__all__ = [
    "DeliverySettings",
    "GateSettings",
    "MonitorSettings",
    "PackagingSettings",
    "PipelineSettings",
    "SecretStr",
    "ServingSettings",
    "Settings",
    "UISettings",
    "find_project_root",
    "load_settings",
    "os_user",
]

_ENV_PREFIX = "MODELYARD_"
_HINT = "run `modelyard config show` to see every value and where it came from"


class SecretStr:
    """A string that ``repr``, ``str`` and ``modelyard config show`` print as ``**********``.

    Args:
        value: the secret; read it back with :meth:`get_secret_value`.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The secret itself."""
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class ServingSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tool.modelyard.serving]``: defaults for ``modelyard serve``."""

    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    workers: Annotated[int, msgspec.Meta(ge=1)] | None = (
        None  # model worker processes; None: per core
    )
    max_batch_size: Annotated[int, msgspec.Meta(ge=1)] = 64
    max_wait_ms: Annotated[float, msgspec.Meta(ge=0)] = 2.0
    queue_size: Annotated[int, msgspec.Meta(ge=1)] = 1024
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1)] = 8 * 1024 * 1024
    grace_s: Annotated[float, msgspec.Meta(ge=0)] = 30.0  # how long SIGTERM waits for requests
    # after SIGTERM: not ready at once, but answering normally this long (set it below the
    # orchestrator's termination grace period, above its endpoint propagation delay)
    drain_delay_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    request_log_sample_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    request_log_flush_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    # records buffered per worker beyond which new ones are dropped (and counted)
    request_log_max_records: Annotated[int, msgspec.Meta(ge=1)] = 100_000
    admin_token: SecretStr | None = None  # bearer token for management endpoints
    # bearer token POST /v1/feedback needs (default: the admin token, when one is set)
    feedback_token: SecretStr | None = None


class PipelineSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tool.modelyard.pipeline]``: which pipeline ``modelyard run`` runs, and its parameters."""

    entrypoint: str | None = None  # 'module:function' building the pipeline
    executor: str = "local"
    max_parallel: Annotated[int, msgspec.Meta(ge=1)] | None = None
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    data_sources: list[str] = msgspec.field(default_factory=list)


class DeliverySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tool.modelyard.delivery]``: defaults for ``modelyard deploy``, ``rollout``, ``analyze``.

    ``steps`` are the candidate's traffic weights in percent, rising, ending at 100; each step
    lasts at least ``interval_s`` and one analysis decides whether it goes on. The SLOs hold for
    the pre-production load test and for every analysis; ``on_insufficient`` says what a rollout
    does when ``deadline_s`` passes before ``min_samples`` requests reached each arm.
    ``modelyard.delivery`` checks the step list and ``ab_key`` when a rollout starts, naming
    where a bad value came from.
    """

    strategy: Literal["canary", "blue-green", "ab", "shadow"] = "canary"
    steps: list[Annotated[float, msgspec.Meta(gt=0, le=100)]] = msgspec.field(
        default_factory=lambda: [5.0, 25.0, 50.0, 100.0]
    )
    interval_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    manual: bool = False  # every step waits for `modelyard rollout promote`
    max_error_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.01  # extra errors, slow share
    max_p99_ms: Annotated[float, msgspec.Meta(gt=0)] | None = None  # absolute ceiling
    max_latency_ratio: Annotated[float, msgspec.Meta(gt=0)] = 1.5  # candidate p99 / stable p99
    max_quality_drop: Annotated[float, msgspec.Meta(ge=0)] = 0.02  # tolerated quality loss
    alpha: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.05  # sequential tests' error bound
    min_samples: Annotated[int, msgspec.Meta(ge=1)] = 100  # per arm, per analysis
    deadline_s: Annotated[float, msgspec.Meta(gt=0)] = 600.0
    on_insufficient: Literal["hold", "rollback"] = "rollback"
    headroom: Annotated[float, msgspec.Meta(ge=1)] = 2.0  # load test at production rate x this
    load_test_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0  # 0 skips the load test
    load_test_rps: Annotated[float, msgspec.Meta(gt=0)] = 50.0  # when there is no recent traffic
    shadow_share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 1.0
    # a shadow gets copies only while at least this share of the server's CPU is idle (0: always)
    shadow_min_idle_cpu: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.4
    ab_key: str = "header:x-modelyard-key"  # or cookie:NAME or field:NAME
    scale_down_delay_s: Annotated[float, msgspec.Meta(ge=0)] = 30.0  # blue-green's old pool


class PackagingSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tool.modelyard.packaging]``: images, Kubernetes manifests and CI workflows
    (``modelyard build``, ``modelyard k8s``, ``modelyard ci``)."""

    image: str | None = None  # image repository, e.g. ghcr.io/acme/churn; default: project name
    base_image: str = "python:3.11-slim-bookworm"
    gpu_base_image: str = "nvidia/cuda:12.4.1-runtime-ubuntu22.04"
    gpu: bool = False  # one nvidia.com/gpu per pod, CUDA base image
    namespace: str | None = None
    replicas: Annotated[int, msgspec.Meta(ge=1)] = 2
    max_replicas: Annotated[int, msgspec.Meta(ge=1)] = 10
    target_cpu_percent: Annotated[int, msgspec.Meta(ge=1, le=100)] = 70
    cpu: str = "1"  # requests (and the memory limit); Kubernetes quantities
    memory: str = "2Gi"
    route: Literal["ingress", "gateway"] = "ingress"
    host: str | None = None  # the Ingress / HTTPRoute host name
    gateway: str = "gateway"  # the Gateway an HTTPRoute attaches to
    ingress_class: str = "nginx"
    secret: str = "modelyard"  # a Secret whose keys (MODELYARD_DB_URL, ...) the pods get as env
    prometheus_url: str = "http://prometheus.monitoring.svc:9090"
    model: str | None = None  # the model CI deploys and monitors; default: the project's name
    branch: str = "main"  # the branch CI trains on
    data_contract: str = "contract.toml"  # the contract CI checks the data sources against
    python: str = "3.11"  # CI runners' Python
    ct_schedule: str = "0 3 * * *"  # cron of continuous training in CI
    monitor_schedule: str = "0 * * * *"  # cron of `modelyard monitor --act` in CI


class MonitorSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tool.modelyard.monitor]``: the monitoring policy of ``modelyard monitor``.

    ``signals`` name what counts when deciding whether a window crossed the policy:
    ``data_drift`` (the importance-weighted share of drifted features reaches ``drift_share``),
    ``prediction_drift``, ``data_quality`` (a column's contract-violation rate above
    ``max_violation_rate``) and ``live_quality`` (a metric below ``quality_min`` or above
    ``quality_max``, e.g. ``{accuracy = 0.8}``, ``{rmse = 3.0}``). A window with fewer than
    ``min_samples`` rows gives no verdict. ``--act``/``--watch`` start the training pipeline
    when ``consecutive`` windows in a row crossed, at most once per ``cooldown_s``; with
    ``deploy_strategy`` the version it registers is then rolled out on the running server.
    """

    window: str = "1h"  # window length: 30m, 1h, 1d
    signals: list[Literal["data_drift", "prediction_drift", "data_quality", "live_quality"]] = (
        msgspec.field(default_factory=lambda: ["data_drift", "prediction_drift", "data_quality"])
    )
    min_samples: Annotated[int, msgspec.Meta(ge=1)] = 500
    alpha: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.05  # false discovery rate (BH)
    psi: Annotated[float, msgspec.Meta(gt=0)] = 0.1
    jensen_shannon: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.1
    wasserstein: Annotated[float, msgspec.Meta(gt=0)] = 0.1  # / reference standard deviation
    drift_share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.1
    max_violation_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.01
    quality_min: dict[str, float] = msgspec.field(default_factory=dict)
    quality_max: dict[str, float] = msgspec.field(default_factory=dict)
    task: Literal["auto", "classification", "regression"] = "auto"
    consecutive: Annotated[int, msgspec.Meta(ge=1)] = 1
    cooldown_s: Annotated[float, msgspec.Meta(ge=0)] = 6 * 3600.0
    interval_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0  # how often --watch looks
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = None  # --watch gauges
    feature_importance: dict[str, float] = msgspec.field(default_factory=dict)
    # a retrained version that passed the gate goes out with this strategy of
    # [tool.modelyard.delivery] on the server at deploy_url (default: serving host:port)
    deploy_strategy: Literal["canary", "blue-green", "ab", "shadow"] | None = None
    deploy_url: str | None = None


class GateSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tool.modelyard.gate]``: the gate policy (see :class:`modelyard.evaluate.GatePolicy`,
    built from this table with ``GatePolicy.from_settings``; values are checked there)."""

    thresholds: dict[str, list[Any] | str] = msgspec.field(default_factory=dict)
    margin: dict[str, Any] | None = None  # {metric, min_delta, significance, test, ...}
    slices: list[dict[str, Any]] = msgspec.field(default_factory=list)
    slice_tolerance: float = 0.02
    slice_metric: str | None = None
    min_slice_rows: int = 30
    latency_budget_ms: float | None = None
    min_throughput_rows_s: float | None = None
    batch_size: int = 64
    latency_calls: int = 5
    output_schema: dict[str, Any] | None = None  # {kind, n_columns, dtype}
    task: Literal["classification", "regression"] = "classification"
    positive_label: int | str | bool = 1
    allow_first_production: bool = True
    alias: str = "candidate"
    explain_rows: int = 0  # > 0: a passing candidate's feature attributions on this many rows


class UISettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tool.modelyard.ui]``: ``modelyard ui``, the web pages over the project's stores.

    The pages are read-only unless ``admin_token`` is set; actions (promote, roll back, tag)
    then need it, and record who and why as the CLI does.
    """

    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8780
    admin_token: SecretStr | None = None  # actions need it; unset: the UI is read-only
    page_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    refresh_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0  # pages that change reload this often
    chart_points: Annotated[int, msgspec.Meta(ge=10, le=100_000)] = 1000  # per metric series


_NO_SOURCES: Mapping[str, str] = types.MappingProxyType({})


# dict=True: load_settings stores where each value came from in an instance attribute, which is
# not a field, so it is neither read from a file nor printed.
class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, dict=True):
    """Every setting modelyard reads. Build with :func:`load_settings`, not directly."""

    project_root: Path = msgspec.field(default_factory=Path.cwd)
    home: Path | None = None  # holds the SQLite file and the artifact folder
    db_url: str | None = None  # SQLAlchemy URL; default sqlite in home
    artifact_url: str | None = None  # fsspec URL; default a folder in home
    storage_options: dict[str, Any] = msgspec.field(default_factory=dict)  # fsspec options
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # auto: short text lines (warnings and errors) on a terminal, JSON lines elsewhere
    log_format: Literal["auto", "json", "text"] = "auto"
    user: str | None = None  # who moves aliases; default the OS user
    git_tags: bool = False  # mirror registered versions as git tags
    experiment: str = "default"
    serving: ServingSettings = msgspec.field(default_factory=ServingSettings)
    pipeline: PipelineSettings = msgspec.field(default_factory=PipelineSettings)
    delivery: DeliverySettings = msgspec.field(default_factory=DeliverySettings)
    packaging: PackagingSettings = msgspec.field(default_factory=PackagingSettings)
    monitor: MonitorSettings = msgspec.field(default_factory=MonitorSettings)
    gate: GateSettings = msgspec.field(default_factory=GateSettings)

    ui: UISettings = msgspec.field(default_factory=UISettings)
    # [tool.modelyard.sweep.<pipeline>]: a sweep's options and search space (modelyard.sweep)
    sweep: dict[str, Any] = msgspec.field(default_factory=dict)

    # field name, or ``table.field``, -> where its value came from; set by load_settings
    _sources = _NO_SOURCES

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

    def sources(self) -> dict[str, str]:
        """Where each value came from: argument, env NAME, a file, or default.

        Keys are field names, and ``table.field`` for nested tables (``serving.port``).
        """
        return dict(self._sources)

    def source_of(self, key: str) -> str:
        """Where ``key`` (``log_level``, ``serving.port``, ``pipeline.params.C``) came from."""
        parts = key.split(".")
        for depth in range(len(parts), 0, -1):  # a key inside a dict setting: the dict's source
            found = self._sources.get(".".join(parts[:depth]))
            if found is not None:
                return found
        return "default"


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


def find_project_root(start: str | os.PathLike[str] | None = None) -> tuple[Path, Path | None]:
    """Return (project root, config file or None), searching upwards from ``start``."""
    here = (Path(start) if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for name in ("modelyard.toml", "pyproject.toml"):
            candidate = folder / name
            if candidate.is_file() and _read_project_table(candidate) is not None:
                return folder, candidate
        if (folder / ".git").exists():
            return folder, None
    return here, None


def load_settings(start: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Resolve settings from arguments, environment, project file and defaults.

    Args:
        start: folder to search upwards from for the project (default: cwd).
        **overrides: explicit values; highest precedence. ``None`` values are ignored. A table
            (``serving={"port": 0}``) is merged into the lower layers' table, key by key.

    Raises:
        ConfigError: a value is of the wrong type or out of bounds, an unknown key is set, or the
            project file is not valid TOML; the message names the key, where it came from and
            what was expected.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    root, cfg_file = find_project_root(start)
    merged: dict[str, Any] = {"project_root": root}
    sources: dict[str, str] = {"project_root": str(cfg_file) if cfg_file else "discovered"}
    if cfg_file is not None:
        file_values = _read_project_table(cfg_file) or {}
        home = file_values.get("home")
        if isinstance(home, str) and not Path(home).is_absolute():
            # relative paths in the project file are relative to the project root
            file_values["home"] = root / home
        _merge(merged, file_values, Settings)
        _record(sources, (), file_values, f"{cfg_file} [tool.modelyard]")
    _merge(merged, _env_layer(os.environ, sources), Settings)
    _merge(merged, overrides, Settings)
    _record(sources, (), overrides, "argument")
    _loosen_flags(merged, Settings)
    try:
        settings = msgspec.convert(merged, Settings, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise _config_error(exc, merged, sources) from exc
    for name in _fields(Settings):
        sources.setdefault(name, "default")
    settings._sources = sources
    return settings


# -- layers ------------------------------------------------------------------------------------


def _env_layer(environ: Mapping[str, str], sources: dict[str, str]) -> dict[str, Any]:
    """The ``MODELYARD_*`` variables as nested values; records each one's name in ``sources``."""
    found: list[tuple[tuple[str, ...], str]] = []
    for name, raw in environ.items():
        if name.upper().startswith(_ENV_PREFIX):
            path = tuple(name[len(_ENV_PREFIX) :].lower().split("__"))
            # unknown top-level names are ignored: the prefix is too generic to own every name
            if path[0] in _fields(Settings):
                found.append((path, raw))
    values: dict[str, Any] = {}
    # shallow names first, so MODELYARD_SERVING__PORT lands on top of MODELYARD_SERVING='{...}'
    for path, raw in sorted(found, key=lambda item: (len(item[0]), item[0])):
        env_name = _ENV_PREFIX + "__".join(path).upper()
        value: Any = raw
        tp = _type_at(path)
        if _is_container(tp):
            try:
                value = msgspec.json.decode(raw)
            except msgspec.DecodeError as exc:
                key = ".".join(path)
                example = '["value"]' if typing.get_origin(tp) is list else '{"key": "value"}'
                raise ConfigError(
                    f"invalid setting {key} (from env {env_name}): expected JSON, got {raw!r}",
                    hint=f"set it as JSON, e.g. {env_name}='{example}'",
                    key=key,
                    source=f"env {env_name}",
                ) from exc
        target = values
        for part in path[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[path[-1]] = value
        depth = _field_depth(path)
        if depth < len(path):  # a key inside a dict setting: the setting came from this name
            field = path[:depth]
            sources[".".join(field)] = f"env {_ENV_PREFIX}{'__'.join(field).upper()}"
        else:
            _record(sources, path, value, f"env {env_name}")
    return values


def _merge(base: dict[str, Any], top: Mapping[str, Any], cls: type[msgspec.Struct]) -> None:
    """Lay ``top`` over ``base``: tables merge key by key, any other value replaces."""
    fields = _fields(cls)
    for key, value in top.items():
        table = _struct_type(fields.get(key))
        if table is not None and isinstance(value, Mapping):
            if not isinstance(base.get(key), dict):
                base[key] = {}
            _merge(base[key], value, table)
        else:
            base[key] = value


def _record(sources: dict[str, str], path: tuple[str, ...], value: Any, label: str) -> None:
    """Note ``label`` as the source of ``value`` at ``path`` and of every key in its tables."""
    if _struct_type(_type_at(path)) is not None and isinstance(value, Mapping):
        for key, sub in value.items():
            _record(sources, (*path, str(key)), sub, label)
    elif path:
        sources[".".join(path)] = label


_TRUE = frozenset({"y", "yes", "on", "t"})
_FALSE = frozenset({"n", "no", "off", "f"})


def _loosen_flags(values: dict[str, Any], cls: type[msgspec.Struct]) -> None:
    """Accept ``yes``/``no``/``on``/``off`` for flags, as well as msgspec's ``true``/``1``, and
    numbers written with surrounding whitespace (``"9000\\n"`` from a file or a secret)."""
    for name, tp in _fields(cls).items():
        value = values.get(name)
        table = _struct_type(tp)
        if table is not None and isinstance(value, dict):
            _loosen_flags(value, table)
        elif tp is bool and isinstance(value, str):
            word = value.strip().lower()
            if word in _TRUE or word in _FALSE:
                values[name] = word in _TRUE
        elif isinstance(value, str) and _core(tp) in (int, float):
            values[name] = value.strip()  # msgspec parses "9000" but not " 9000"; pydantic did


def _dec_hook(tp: Any, value: Any) -> Any:
    if tp is Path:
        if isinstance(value, str | os.PathLike):
            return Path(value)
        raise TypeError(f"Expected a path string, got `{type(value).__name__}`")
    if tp is SecretStr:
        if isinstance(value, SecretStr):
            return value
        if isinstance(value, str):
            return SecretStr(value)
        raise TypeError(f"Expected `str`, got `{type(value).__name__}`")
    raise NotImplementedError(f"no decoder for {tp!r}")


def _config_error(
    exc: msgspec.ValidationError, merged: Mapping[str, Any], sources: Mapping[str, str]
) -> ConfigError:
    """Name the key, the value, where it came from and what was expected."""
    # msgspec says e.g. "Expected `int`, got `str` - at `$.serving.port`" (no "at" for the root)
    problem, _, at = str(exc).partition(" - at `")
    key = at.rstrip("`").removeprefix("$").removeprefix(".")  # "pipeline.data_sources[1]"
    names = tuple(name for name in re.split(r"\[[^\]]*\]|\.", key) if name)
    unknown = re.fullmatch(r"Object contains unknown field `(.+)`", problem)
    if unknown:
        table = _struct_type(_type_at(names)) or Settings
        names = (*names, unknown.group(1))
        key = ".".join(names)
        problem = f"unknown key; known keys here: {', '.join(_fields(table))}"
        shown = ""
    else:
        tp = _type_at(names)
        if typing.get_origin(tp) is Literal:
            problem += f"; expected one of {', '.join(map(repr, typing.get_args(tp)))}"
        value: Any = merged
        for name in names:
            value = value.get(name) if isinstance(value, Mapping) else None
        shown = " = " + ("'**********'" if tp is SecretStr else repr(value))
    # the deepest key with a known source: serving.port, else serving
    prefixes = (".".join(names[:n]) for n in range(len(names), 0, -1))
    origin = next((sources[p] for p in prefixes if p in sources), "default")
    return ConfigError(
        f"invalid setting {key}{shown} (from {origin}): {problem}",
        hint=_HINT,
        key=key,
        source=origin,
    )


# -- the declared types, for the env parser and error messages -----------------------------------


@functools.cache
def _fields(cls: type[msgspec.Struct]) -> dict[str, Any]:
    return {f.name: f.type for f in msgspec.structs.fields(cls)}


def _core(tp: Any) -> Any:
    """``Annotated[int, Meta(...)] | None`` -> ``int``."""
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    # ``Annotated[int, Meta(...)] | None`` is a typing.Union, ``str | None`` a types.UnionType
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return _core(members[0])
    return tp


def _struct_type(tp: Any) -> type[msgspec.Struct] | None:
    tp = _core(tp)
    return tp if isinstance(tp, type) and issubclass(tp, msgspec.Struct) else None


def _is_container(tp: Any) -> bool:
    """Whether an environment value for this type is JSON (a table, dict or list)."""
    tp = _core(tp)
    return _struct_type(tp) is not None or (typing.get_origin(tp) or tp) in (dict, list)


def _type_at(path: tuple[str, ...]) -> Any:
    """The declared type at ``path`` through nested tables; ``None`` where no field is declared."""
    tp: Any = Settings
    for name in path:
        table = _struct_type(tp)
        if table is None:
            return None
        tp = _fields(table).get(name)
    return _core(tp)


def _field_depth(path: tuple[str, ...]) -> int:
    """How many names of ``path`` lead to a setting: 2 for ``serving, port``, 1 for
    ``storage_options, key``."""
    for depth in range(1, len(path) + 1):
        if _struct_type(_type_at(path[:depth])) is None:
            return depth
    return len(path)
