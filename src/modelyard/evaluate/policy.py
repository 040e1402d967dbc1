"""Gate policies: what a candidate model must show before it is registered under an alias.

Declared in Python::

    GatePolicy(
        thresholds={"roc_auc": (">=", 0.75), "log_loss": ("<=", 0.6)},
        margin={"metric": "roc_auc", "min_delta": 0.0, "significance": 0.05, "test": "bootstrap"},
        slices=[Slice("north", column="region", equals="north")],
        slice_tolerance=0.02,
        latency_budget_ms=50, batch_size=64,
        output_schema={"kind": "probability", "n_columns": 2},
    )

or in TOML, as the top level of a ``gate.toml`` or the ``[tool.modelyard.gate]`` table of a
``pyproject.toml`` (read with :meth:`GatePolicy.from_file`)::

    slice_tolerance = 0.02
    [thresholds]
    roc_auc = [">=", 0.75]          # or ">= 0.75"
    [margin]
    metric = "roc_auc"
    test = "bootstrap"
    [[slices]]
    name = "north"
    column = "region"
    equals = "north"
"""

from __future__ import annotations

import math
import operator
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelyard.errors import ConfigError, InvalidInputError
from modelyard.evaluate.metrics import METRICS, Task, metric_spec
from modelyard.evaluate.slices import Slice, parse_slices

if TYPE_CHECKING:
    from modelyard.config import GateSettings

__all__ = ["COMPARATORS", "GatePolicy", "Margin", "OutputSchema"]

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Margin:
    """The candidate must beat the ``production`` version on the same test set.

    Attributes:
        metric: the metric compared.
        min_delta: the improvement to exceed, in metric units, positive = better (a negative
            value asks for non-inferiority: "not worse by more than ``-min_delta``").
        significance: the test's alpha: the improvement must be significant at this level.
        test: ``"bootstrap"`` (paired bootstrap, any metric), ``"mcnemar"`` (accuracy only) or
            ``"none"`` (compare the point estimates only).
        n_resamples: bootstrap resamples.
        seed: bootstrap seed (recorded in the verdict).
    """

    metric: str
    min_delta: float = 0.0
    significance: float = 0.05
    test: Literal["bootstrap", "mcnemar", "none"] = "bootstrap"
    n_resamples: int = 1000
    seed: int | None = 0

    def __post_init__(self) -> None:
        metric_spec(self.metric)
        if self.test not in ("bootstrap", "mcnemar", "none"):
            raise InvalidInputError(
                f"margin test must be 'bootstrap', 'mcnemar' or 'none', got {self.test!r}",
                field="margin.test",
            )
        if self.test == "mcnemar" and self.metric != "accuracy":
            raise InvalidInputError(
                f"McNemar's test compares accuracies; the margin metric is {self.metric!r}",
                hint="use test='bootstrap' for this metric, or metric='accuracy'",
                field="margin.test",
            )
        if self.test == "mcnemar" and self.min_delta < 0:
            # McNemar's p-value tests "no difference"; it cannot show non-inferiority, so a
            # candidate as good as production would be refused every time
            raise InvalidInputError(
                f"McNemar's test cannot check non-inferiority (min_delta = {self.min_delta:g})",
                hint="use test='bootstrap' with a negative min_delta, or min_delta >= 0",
                field="margin.min_delta",
            )
        if not 0 < self.significance < 0.5:
            raise InvalidInputError(
                f"margin significance must be in (0, 0.5), got {self.significance}",
                field="margin.significance",
            )
        if self.n_resamples < 10:
            raise InvalidInputError(
                f"margin n_resamples must be at least 10, got {self.n_resamples}",
                field="margin.n_resamples",
            )


@dataclass(frozen=True)
class OutputSchema:
    """What the model's raw output must look like.

    Attributes:
        kind: ``"probability"`` (values in [0, 1]; rows of a matrix sum to 1), ``"label"`` or
            ``"value"`` (finite numbers).
        n_columns: the expected number of output columns (None: not checked; 1 = a flat vector).
        dtype: ``"float"``, ``"int"``, ``"numeric"`` or ``"any"``.
    """

    kind: Literal["probability", "label", "value"] = "probability"
    n_columns: int | None = None
    dtype: Literal["float", "int", "numeric", "any"] = "any"

    def __post_init__(self) -> None:
        if self.kind not in ("probability", "label", "value"):
            raise InvalidInputError(
                f"output_schema kind must be probability, label or value, got {self.kind!r}",
                field="output_schema.kind",
            )
        if self.dtype not in ("float", "int", "numeric", "any"):
            raise InvalidInputError(
                f"output_schema dtype must be float, int, numeric or any, got {self.dtype!r}",
                field="output_schema.dtype",
            )


def _threshold(metric: str, rule: Any) -> tuple[str, float]:
    if isinstance(rule, str):
        parts = rule.split()
        if len(parts) == 2:
            rule = (parts[0], parts[1])
    if not (isinstance(rule, list | tuple) and len(rule) == 2 and rule[0] in COMPARATORS):
        raise InvalidInputError(
            f"threshold for {metric!r} must be (op, value) with op one of >=, >, <=, <; "
            f"got {rule!r}",
            hint=f'e.g. {{"{metric}": (">=", 0.75)}} or {metric} = ">= 0.75" in TOML',
            field=f"thresholds.{metric}",
        )
    try:
        value = float(rule[1])
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"threshold for {metric!r}: {rule[1]!r} is not a number",
            field=f"thresholds.{metric}",
        ) from None
    return str(rule[0]), value


@dataclass(frozen=True)
class GatePolicy:
    """A gate: thresholds, a significant margin over production, slices, schema and latency.

    Attributes:
        thresholds: ``metric -> (op, value)``: absolute requirements on the whole test set.
        margin: a :class:`Margin` (or a mapping of its fields) over the ``production`` version;
            skipped when there is no production version yet.
        slices: named slices (see :func:`~modelyard.evaluate.slices.parse_slices`).
        slice_tolerance: the most a slice's metric may get worse than production's on that slice.
        slice_metric: the metric compared on slices (default: the margin's, else the first
            threshold's, else accuracy / rmse).
        min_slice_rows: slices with fewer rows are reported and not judged.
        latency_budget_ms: median ``predict`` time on one batch must be within this.
        min_throughput_rows_s: rows per second that one ``predict`` call on a batch must reach
            (batch rows / median call time).
        batch_size: rows in the latency batch.
        latency_calls: timed calls (after one warm-up call); the median is judged.
        output_schema: an :class:`OutputSchema` (or mapping) for the raw model output.
        task: ``"classification"`` or ``"regression"``.
        positive_label: the positive class of a binary classifier.
        allow_first_production: with no production version yet, a passing candidate becomes
            ``production`` directly.
        alias: the alias a passing candidate gets (when production exists).
        explain_rows: when positive, a passing candidate's feature attributions are computed
            on at most this many test rows and stored with the version (see
            :func:`~modelyard.evaluate.register.evaluate_and_register`); 0 turns them off.
    """

    thresholds: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    margin: Margin | None = None
    slices: tuple[Slice, ...] = ()
    slice_tolerance: float = 0.02
    slice_metric: str | None = None
    min_slice_rows: int = 30
    latency_budget_ms: float | None = None
    min_throughput_rows_s: float | None = None
    batch_size: int = 64
    latency_calls: int = 5
    output_schema: OutputSchema | None = None
    task: Task = "classification"
    positive_label: Any = 1
    allow_first_production: bool = True
    alias: str = "candidate"
    explain_rows: int = 0

    def __post_init__(self) -> None:
        # accept the loose forms (mappings, lists) and store the normalised ones
        thresholds = {str(k): _threshold(str(k), v) for k, v in dict(self.thresholds).items()}
        for name in thresholds:
            metric_spec(name)
        object.__setattr__(self, "thresholds", thresholds)
        if isinstance(self.margin, Mapping):
            object.__setattr__(self, "margin", _build(Margin, self.margin, "margin"))
        if isinstance(self.output_schema, Mapping):
            object.__setattr__(
                self, "output_schema", _build(OutputSchema, self.output_schema, "output_schema")
            )
        object.__setattr__(self, "slices", parse_slices(self.slices))
        if self.task not in ("classification", "regression"):
            raise InvalidInputError(
                f"task must be 'classification' or 'regression', got {self.task!r}",
                field="task",
            )
        if self.slice_metric is not None:
            metric_spec(self.slice_metric)
        read: list[str | None] = [*thresholds, self.slice_metric]
        read.append(self.margin.metric if self.margin else None)
        for metric in read:
            if metric and METRICS[metric].task != self.task:
                raise InvalidInputError(
                    f"metric {metric!r} is a {METRICS[metric].task} metric but the task is "
                    f"{self.task!r}",
                    hint="set task= to match, or pick a metric of that task",
                    metric=metric,
                )
        if self.slice_tolerance < 0 or not math.isfinite(self.slice_tolerance):
            raise InvalidInputError(
                f"slice_tolerance must be >= 0, got {self.slice_tolerance}",
                field="slice_tolerance",
            )
        if self.latency_budget_ms is not None and self.latency_budget_ms <= 0:
            raise InvalidInputError(
                f"latency_budget_ms must be > 0, got {self.latency_budget_ms}",
                field="latency_budget_ms",
            )
        if self.min_throughput_rows_s is not None and self.min_throughput_rows_s <= 0:
            raise InvalidInputError(
                f"min_throughput_rows_s must be > 0, got {self.min_throughput_rows_s}",
                field="min_throughput_rows_s",
            )
        if self.batch_size < 1 or self.latency_calls < 1 or self.min_slice_rows < 1:
            raise InvalidInputError(
                "batch_size, latency_calls and min_slice_rows must be >= 1, got "
                f"{self.batch_size}, {self.latency_calls}, {self.min_slice_rows}",
                field="batch_size",
            )
        if isinstance(self.explain_rows, bool) or not isinstance(self.explain_rows, int):
            raise InvalidInputError(
                f"explain_rows must be a whole number of rows, got {self.explain_rows!r}",
                hint="e.g. explain_rows = 200 (0 turns explanations off)",
                field="explain_rows",
            )
        if self.explain_rows < 0:
            raise InvalidInputError(
                f"explain_rows must be >= 0, got {self.explain_rows}",
                hint="e.g. explain_rows = 200 (0 turns explanations off)",
                field="explain_rows",
            )

    @property
    def resolved_slice_metric(self) -> str:
        """The metric judged on slices."""
        if self.slice_metric:
            return self.slice_metric
        if self.margin is not None:
            return self.margin.metric
        if self.thresholds:
            return next(iter(self.thresholds))
        return "accuracy" if self.task == "classification" else "rmse"

    def metric_names(self) -> list[str]:
        """Every metric the policy reads."""
        names = list(self.thresholds)
        for extra in (self.margin.metric if self.margin else None, self.resolved_slice_metric):
            if extra and extra not in names:
                names.append(extra)
        return names

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, as stored in a verdict."""
        return {
            "task": self.task,
            "thresholds": {k: [op, v] for k, (op, v) in self.thresholds.items()},
            "margin": None if self.margin is None else _fields(self.margin),
            "slices": [s.to_dict() for s in self.slices],
            "slice_tolerance": self.slice_tolerance,
            "slice_metric": self.resolved_slice_metric,
            "min_slice_rows": self.min_slice_rows,
            "latency_budget_ms": self.latency_budget_ms,
            "min_throughput_rows_s": self.min_throughput_rows_s,
            "batch_size": self.batch_size,
            "latency_calls": self.latency_calls,
            "output_schema": None if self.output_schema is None else _fields(self.output_schema),
            "positive_label": self.positive_label,
            "allow_first_production": self.allow_first_production,
            "alias": self.alias,
            "explain_rows": self.explain_rows,
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "policy") -> GatePolicy:
        """Build a policy from a TOML-like mapping.

        Raises:
            ConfigError: unknown keys or bad values; the message names ``source`` and the key.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{source}: unknown gate keys {unknown}",
                hint=f"known keys: {', '.join(sorted(known))}",
                source=source,
            )
        try:
            return cls(**dict(data))
        except InvalidInputError as exc:
            raise ConfigError(f"{source}: {exc.message}", hint=exc.hint, source=source) from exc
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}", source=source) from exc

    @classmethod
    def from_settings(cls, gate: GateSettings) -> GatePolicy:
        """Build the policy of ``[tool.modelyard.gate]`` (``Settings.gate``).

        Raises:
            ConfigError: bad values, naming ``[tool.modelyard.gate]`` and the key.
        """
        import msgspec

        data = {k: v for k, v in msgspec.structs.asdict(gate).items() if v is not None}
        return cls.from_mapping(data, source="[tool.modelyard.gate]")

    @classmethod
    def from_file(cls, path: str | Path) -> GatePolicy:
        """Read a policy from a ``gate.toml`` (top level, or a ``[gate]`` table) or from the
        ``[tool.modelyard.gate]`` table of a ``pyproject.toml``.

        Raises:
            ConfigError: missing file, bad TOML, no gate table, or bad values (naming the file).
        """
        p = Path(path)
        try:
            with p.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(
                f"gate policy file {p} does not exist", hint="check the path", file=str(p)
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p} is not valid TOML: {exc}", file=str(p)) from exc
        if p.name == "pyproject.toml":
            table = data.get("tool", {}).get("modelyard", {}).get("gate")
            if not isinstance(table, dict):
                raise ConfigError(
                    f"{p} has no [tool.modelyard.gate] table",
                    hint="add one, or keep the policy in a gate.toml",
                    file=str(p),
                )
            data = table
        elif isinstance(data.get("gate"), dict) and len(data) == 1:
            data = data["gate"]
        return cls.from_mapping(data, source=str(p))


def _build(kind: Any, data: Mapping[str, Any], where: str) -> Any:
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInputError(
            f"{where}: unknown keys {unknown}",
            hint=f"known keys: {', '.join(sorted(known))}",
            field=where,
        )
    return kind(**dict(data))


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}
