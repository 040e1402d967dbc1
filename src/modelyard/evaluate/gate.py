"""The gate: judge a candidate model against a :class:`~modelyard.evaluate.policy.GatePolicy`.

:class:`Gate` evaluates a candidate (and the current ``production`` model, when there is one) on
one test frame and returns a :class:`GateVerdict`: every rule with its status (pass, fail or
skip), a one-line reason and the evidence (metrics, confidence intervals, p-values, slice
numbers, latencies). The verdict is JSON-serialisable (:meth:`GateVerdict.to_dict`), prints as
text or as a rich table, and is stored with the version it admitted.

:func:`evaluate_and_register` is what a pipeline's register step calls: it resolves the
``production`` version, runs the gate and then either registers the candidate with the verdict in
``extra["gate"]`` under the policy's alias, or raises :class:`~modelyard.errors.GateFailed` and
moves no alias.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelyard.errors import GateFailed, InvalidInputError, ModelyardError, NotFoundError
from modelyard.evaluate.metrics import Predictions, compute_metrics, metric_spec, predict
from modelyard.evaluate.policy import COMPARATORS, GatePolicy
from modelyard.logs import get_logger
from modelyard.types import Clock, SystemClock

if TYPE_CHECKING:
    from modelyard.registry.registry import ModelVersion, Registry

__all__ = [
    "Gate",
    "GateOutcome",
    "GateVerdict",
    "RuleResult",
    "evaluate_and_register",
    "production_model",
    "refusals",
]

log = get_logger("evaluate.gate")

Status = Literal["pass", "fail", "skip"]


def _clean(value: Any) -> Any:
    """Make ``value`` JSON-able: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return _clean(value.item())
        except (TypeError, ValueError):
            return str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule of the policy.

    Attributes:
        rule: ``threshold``, ``margin``, ``slice``, ``output_schema``, ``latency`` or
            ``throughput``.
        name: what was checked, e.g. ``roc_auc >= 0.75`` or ``slice region=north``.
        status: ``pass``, ``fail`` or ``skip`` (not applicable, with the reason in ``message``).
        message: one readable line: the numbers and why it passed, failed or was skipped.
        evidence: the numbers behind the message (JSON-able).
    """

    rule: str
    name: str
    status: Status
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "rule": self.rule,
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "evidence": _clean(self.evidence),
        }


@dataclass(frozen=True)
class GateVerdict:
    """The gate's decision and its evidence.

    Attributes:
        passed: True when no rule failed.
        rules: every rule's result, in policy order.
        metrics: the candidate's metrics on the whole test set.
        production_version: the version the candidate was compared with, if any.
        production_metrics: that version's metrics on the same test set.
        slices: per slice: name, condition, rows, candidate and production metric.
        n_rows: rows in the test set.
        policy: the policy, as a dict.
        model: the model name, when known.
        evaluated_at: UNIX time of the evaluation.
    """

    passed: bool
    rules: tuple[RuleResult, ...]
    metrics: dict[str, float]
    production_version: int | None
    production_metrics: dict[str, float] | None
    slices: tuple[dict[str, Any], ...]
    n_rows: int
    policy: dict[str, Any]
    model: str | None = None
    evaluated_at: float = 0.0

    @property
    def failures(self) -> list[RuleResult]:
        """The rules that failed."""
        return [r for r in self.rules if r.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, as stored in a version's ``extra["gate"]``."""
        return {
            "passed": self.passed,
            "model": self.model,
            "evaluated_at": self.evaluated_at,
            "n_rows": self.n_rows,
            "metrics": _clean(self.metrics),
            "production_version": self.production_version,
            "production_metrics": _clean(self.production_metrics),
            "slices": [_clean(s) for s in self.slices],
            "rules": [r.to_dict() for r in self.rules],
            "failures": [r.name for r in self.failures],
            "policy": _clean(self.policy),
        }

    def to_json(self) -> str:
        """The verdict as a JSON document."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateVerdict:
        """Rebuild a verdict from :meth:`to_dict` output (NaN metrics come back as None)."""
        return cls(
            passed=bool(data["passed"]),
            rules=tuple(
                RuleResult(r["rule"], r["name"], r["status"], r["message"], r.get("evidence", {}))
                for r in data.get("rules", [])
            ),
            metrics=dict(data.get("metrics") or {}),
            production_version=data.get("production_version"),
            production_metrics=data.get("production_metrics"),
            slices=tuple(data.get("slices") or ()),
            n_rows=int(data.get("n_rows", 0)),
            policy=dict(data.get("policy") or {}),
            model=data.get("model"),
            evaluated_at=float(data.get("evaluated_at", 0.0)),
        )

    def summary(self) -> str:
        """One line: PASSED, or FAILED and which rules."""
        if self.passed:
            judged = sum(1 for r in self.rules if r.status == "pass")
            return f"gate PASSED ({judged} rules passed, {len(self.rules) - judged} skipped)"
        return "gate FAILED: " + "; ".join(r.message for r in self.failures)

    def render_text(self) -> str:
        """Readable multi-line text: the summary, then one line per rule."""
        mark = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}
        lines = [self.summary()]
        if self.production_version is not None:
            lines.append(f"  compared with production v{self.production_version}")
        lines.extend(f"  [{mark[r.status]}] {r.name}: {r.message}" for r in self.rules)
        return "\n".join(lines)

    def print(self, console: Any = None) -> None:
        """Print the verdict: a rich table on a terminal, else the plain text."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        if not console.is_terminal:
            console.print(self.render_text(), markup=False, highlight=False)
            return
        table = Table(title=self.summary(), title_justify="left")
        table.add_column("rule")
        table.add_column("check")
        table.add_column("status")
        table.add_column("why")
        style = {"pass": "green", "fail": "bold red", "skip": "dim"}
        for r in self.rules:
            table.add_row(r.rule, r.name, f"[{style[r.status]}]{r.status}[/]", r.message)
        console.print(table)


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, float):
        return f"{x:.4f}"
    return str(x)


def _split(frame: Any, target: str | None, y: Any) -> tuple[Any, Any]:
    """Features and labels from ``frame`` (pandas or polars)."""
    import numpy as np

    if target is None:
        if y is None:
            raise InvalidInputError(
                "the gate needs the true labels: pass target='column' or y=...",
                hint="e.g. gate.evaluate(model, test_frame, target='default')",
            )
        return frame, np.asarray(y)
    if target not in list(frame.columns):
        raise InvalidInputError(
            f"target column {target!r} is not in the test frame",
            hint=f"columns are: {', '.join(map(str, frame.columns))}",
            column=target,
        )
    col = frame[target]
    labels = np.asarray(col.to_numpy() if hasattr(col, "to_numpy") else col)
    try:
        features = frame.drop(columns=[target])  # pandas
    except TypeError:
        features = frame.drop(target)  # polars
    return features, labels


def _head(frame: Any, n: int) -> Any:
    if hasattr(frame, "iloc"):
        return frame.iloc[:n]
    if hasattr(frame, "head"):
        return frame.head(n)
    return frame[:n]


class Gate:
    """Evaluates candidates against one policy.

    Args:
        policy: the rules.
        clock: time source for the latency rule (the real clock by default; tests pass a fake).
    """

    def __init__(self, policy: GatePolicy, *, clock: Clock | None = None) -> None:
        self.policy = policy
        self.clock: Clock = clock or SystemClock()

    def evaluate(
        self,
        candidate: Any,
        test_frame: Any,
        *,
        target: str | None = None,
        y: Any = None,
        production: Any = None,
        production_version: int | None = None,
        model_name: str | None = None,
    ) -> GateVerdict:
        """Judge ``candidate`` on ``test_frame``.

        Args:
            candidate: a fitted model (``predict_proba`` / ``predict``) or a loaded package.
            test_frame: the test rows (pandas or polars), with ``target`` unless ``y`` is given.
            target: the label column of ``test_frame``.
            y: the labels, when ``test_frame`` holds features only.
            production: the current production model, scored on the same rows; None if none.
            production_version: its version number, for the record.
            model_name: the model's name, for the record.

        Returns:
            The :class:`GateVerdict` (this never raises for a failed rule; see
            :func:`evaluate_and_register` for that).

        Raises:
            InvalidInputError: missing target, a model that cannot predict, unknown metric.
        """
        p = self.policy
        features, labels = _split(test_frame, target, y)
        if len(labels) == 0:
            raise InvalidInputError("the test frame is empty", hint="evaluate on some rows")
        names = p.metric_names()
        cand = predict(candidate, features, task=p.task, positive_label=p.positive_label)
        metrics = compute_metrics(labels, cand, task=p.task, positive_label=p.positive_label)
        metrics.update(
            compute_metrics(
                labels,
                cand,
                task=p.task,
                names=[n for n in names if n not in metrics],
                positive_label=p.positive_label,
            )
        )
        prod: Predictions | None = None
        prod_metrics: dict[str, float] | None = None
        if production is not None:
            prod = predict(production, features, task=p.task, positive_label=p.positive_label)
            prod_metrics = compute_metrics(
                labels, prod, task=p.task, positive_label=p.positive_label
            )
            missing = [n for n in names if n not in prod_metrics]
            prod_metrics.update(
                compute_metrics(
                    labels, prod, task=p.task, names=missing, positive_label=p.positive_label
                )
            )
        rules: list[RuleResult] = []
        if p.output_schema is not None:
            rules.append(self._output_schema(cand, len(labels)))
        rules.extend(self._thresholds(metrics))
        if p.margin is not None:
            rules.append(self._margin(labels, cand, prod, production_version))
        slice_rows, slice_rules = self._slices(test_frame, labels, cand, prod)
        rules.extend(slice_rules)
        if p.latency_budget_ms is not None or p.min_throughput_rows_s is not None:
            rules.extend(self._speed(candidate, features))
        verdict = GateVerdict(
            passed=all(r.status != "fail" for r in rules),
            rules=tuple(rules),
            metrics=metrics,
            production_version=production_version if production is not None else None,
            production_metrics=prod_metrics,
            slices=tuple(slice_rows),
            n_rows=len(labels),
            policy=p.to_dict(),
            model=model_name,
            evaluated_at=self.clock.time(),
        )
        log.info(
            "gate evaluated",
            extra={
                "model": model_name,
                "passed": verdict.passed,
                "failures": [r.name for r in verdict.failures],
            },
        )
        return verdict

    # ------------------------------------------------------------------ rules
    def _thresholds(self, metrics: Mapping[str, float]) -> list[RuleResult]:
        out = []
        for name, (op, bound) in self.policy.thresholds.items():
            value = metrics.get(name, math.nan)
            check = f"{name} {op} {bound:g}"
            evidence = {"metric": name, "op": op, "threshold": bound, "value": value}
            if not math.isfinite(value):
                out.append(
                    RuleResult(
                        "threshold",
                        check,
                        "fail",
                        f"{name} is undefined on this test set",
                        evidence,
                    )
                )
                continue
            ok = COMPARATORS[op](value, bound)
            msg = f"{name} = {value:.4f} {'meets' if ok else 'misses'} {op} {bound:g}"
            out.append(RuleResult("threshold", check, "pass" if ok else "fail", msg, evidence))
        return out

    def _margin(
        self,
        labels: Any,
        cand: Predictions,
        prod: Predictions | None,
        production_version: int | None,
    ) -> RuleResult:
        from modelyard.evaluate.stats import mcnemar, paired_bootstrap

        m = self.policy.margin
        assert m is not None  # the caller checks
        check = f"margin {m.metric} over production"
        if prod is None:
            return RuleResult(
                "margin", check, "skip", "no production version yet: nothing to compare with"
            )
        cand_value = self._metric_on(m.metric, labels, cand)
        if not math.isfinite(cand_value):
            return RuleResult(
                "margin",
                check,
                "fail",
                f"{m.metric} of the candidate is undefined on this test set",
            )
        versus = f"v{production_version}" if production_version is not None else "production"
        delta_txt = f"{m.min_delta:+g}"
        if m.test == "mcnemar":
            r = mcnemar(
                labels, cand.y_pred, prod.y_pred, alpha=m.significance, min_delta=m.min_delta
            )
            evidence = {"test": "mcnemar", **r.to_dict()}
            numbers = (
                f"accuracy {r.candidate_accuracy:.4f} vs {versus} {r.baseline_accuracy:.4f} "
                f"({r.improvement:+.4f}; discordant pairs {r.candidate_only} vs "
                f"{r.baseline_only}, p = {r.p_value:.3g})"
            )
            ok = r.significant
        elif m.test == "bootstrap":
            b = paired_bootstrap(
                m.metric,
                labels,
                cand,
                prod,
                n_resamples=m.n_resamples,
                alpha=m.significance,
                min_delta=m.min_delta,
                seed=m.seed,
                positive_label=self.policy.positive_label,
            )
            evidence = {"test": "bootstrap", **b.to_dict()}
            conf = round(100 * (1 - 2 * m.significance))
            numbers = (
                f"{m.metric} {b.candidate:.4f} vs {versus} {b.baseline:.4f} "
                f"(improvement {b.improvement:+.4f}, {conf}% CI [{_fmt(b.ci_low)}, "
                f"{_fmt(b.ci_high)}], p = {b.p_value:.3g})"
            )
            ok = b.significant
        else:
            spec = metric_spec(m.metric)
            sign = 1.0 if spec.higher_is_better else -1.0
            c = spec.fn(labels, cand, self.policy.positive_label)
            z = spec.fn(labels, prod, self.policy.positive_label)
            improvement = sign * (c - z)
            evidence = {"test": "none", "candidate": c, "baseline": z, "improvement": improvement}
            numbers = f"{m.metric} {c:.4f} vs {versus} {z:.4f} (improvement {improvement:+.4f})"
            ok = math.isfinite(improvement) and improvement > m.min_delta
        evidence["min_delta"] = m.min_delta
        if ok:
            why = "significantly above" if m.test != "none" else "above"
            return RuleResult("margin", check, "pass", f"{numbers}: {why} {delta_txt}", evidence)
        why = (
            f"not significantly above {delta_txt} at alpha {m.significance:g}"
            if m.test != "none"
            else f"not above {delta_txt}"
        )
        return RuleResult("margin", check, "fail", f"{numbers}: {why}", evidence)

    def _slices(
        self, frame: Any, labels: Any, cand: Predictions, prod: Predictions | None
    ) -> tuple[list[dict[str, Any]], list[RuleResult]]:
        import numpy as np

        p = self.policy
        metric = p.resolved_slice_metric
        spec = metric_spec(metric)
        rows: list[dict[str, Any]] = []
        rules: list[RuleResult] = []
        for s in p.slices:
            mask = s.mask(frame)
            n = int(np.count_nonzero(mask))
            check = f"slice {s.name}"
            c_val = self._metric_on(metric, labels[mask], cand.take(mask))
            z_val = (
                self._metric_on(metric, labels[mask], prod.take(mask))
                if prod is not None
                else math.nan
            )
            rows.append(
                {
                    "name": s.name,
                    "condition": s.describe(),
                    "rows": n,
                    "metric": metric,
                    "candidate": c_val,
                    "production": z_val if prod is not None else None,
                }
            )
            evidence = {
                "metric": metric,
                "rows": n,
                "candidate": c_val,
                "production": z_val,
                "tolerance": p.slice_tolerance,
            }
            if n < p.min_slice_rows:
                rules.append(
                    RuleResult(
                        "slice",
                        check,
                        "skip",
                        f"{n} rows, fewer than min_slice_rows={p.min_slice_rows}",
                        evidence,
                    )
                )
                continue
            if prod is None:
                rules.append(
                    RuleResult(
                        "slice",
                        check,
                        "skip",
                        f"{metric} = {_fmt(c_val)} on {n} rows; no production version to "
                        "compare with",
                        evidence,
                    )
                )
                continue
            if not (math.isfinite(c_val) and math.isfinite(z_val)):
                rules.append(
                    RuleResult(
                        "slice",
                        check,
                        "skip",
                        f"{metric} is undefined on this slice ({n} rows)",
                        evidence,
                    )
                )
                continue
            worse = (z_val - c_val) if spec.higher_is_better else (c_val - z_val)
            evidence["regression"] = worse
            numbers = f"{metric} {c_val:.4f} vs production {z_val:.4f} on {n} rows"
            if worse > p.slice_tolerance:
                rules.append(
                    RuleResult(
                        "slice",
                        check,
                        "fail",
                        f"{numbers}: worse by {worse:.4f} > tolerance {p.slice_tolerance:g}",
                        evidence,
                    )
                )
            else:
                rules.append(
                    RuleResult(
                        "slice",
                        check,
                        "pass",
                        f"{numbers}: within tolerance {p.slice_tolerance:g}",
                        evidence,
                    )
                )
        return rows, rules

    def _metric_on(self, metric: str, labels: Any, preds: Predictions) -> float:
        if len(labels) == 0:
            return math.nan
        values = compute_metrics(
            labels,
            preds,
            task=self.policy.task,
            names=[metric],
            positive_label=self.policy.positive_label,
        )
        return values[metric]

    def _output_schema(self, cand: Predictions, n: int) -> RuleResult:
        import numpy as np

        schema = self.policy.output_schema
        assert schema is not None  # the caller checks
        check = f"output schema ({schema.kind})"
        raw = cand.raw
        problems: list[str] = []
        try:
            out = np.asarray(raw)
        except (TypeError, ValueError) as exc:
            return RuleResult("output_schema", check, "fail", f"output is not an array: {exc}")
        evidence: dict[str, Any] = {"shape": list(out.shape), "dtype": str(out.dtype)}
        if out.ndim == 0 or out.shape[0] != n:
            problems.append(f"{out.shape[0] if out.ndim else 0} rows for {n} inputs")
        cols = 1 if out.ndim == 1 else (out.shape[1] if out.ndim == 2 else -1)
        if out.ndim > 2:
            problems.append(f"{out.ndim}-D output, expected 1-D or 2-D")
        if schema.n_columns is not None and cols != schema.n_columns:
            problems.append(f"{cols} output columns, expected {schema.n_columns}")
        kind = out.dtype.kind
        want = {"float": "f", "int": "iu", "numeric": "fiub", "any": None}[schema.dtype]
        if want is not None and kind not in want:
            problems.append(f"dtype {out.dtype}, expected {schema.dtype}")
        if schema.kind in ("probability", "value"):
            if kind not in "fiub":
                problems.append(f"dtype {out.dtype} is not numeric")
            else:
                vals = out.astype(float)
                bad = int(np.count_nonzero(~np.isfinite(vals)))
                if bad:
                    problems.append(f"{bad} NaN/inf values")
                elif schema.kind == "probability" and vals.size:
                    lo, hi = float(vals.min()), float(vals.max())
                    evidence.update(min=lo, max=hi)
                    if lo < 0 or hi > 1:
                        problems.append(f"probabilities outside [0, 1]: min {lo:g}, max {hi:g}")
                    if vals.ndim == 2 and vals.shape[1] > 1:
                        dev = float(np.max(np.abs(vals.sum(axis=1) - 1)))
                        evidence["max_row_sum_error"] = dev
                        if dev > 1e-4:
                            problems.append(f"probability rows do not sum to 1 (off by {dev:.2g})")
        if problems:
            return RuleResult("output_schema", check, "fail", "; ".join(problems), evidence)
        return RuleResult(
            "output_schema",
            check,
            "pass",
            f"shape {tuple(out.shape)}, dtype {out.dtype} as expected",
            evidence,
        )

    def _timed(self, candidate: Any, features: Any) -> tuple[int, list[float]]:
        """Rows of the batch and the duration (ms) of each timed predict call on it."""
        batch = _head(features, self.policy.batch_size)
        call = candidate.predict_proba if hasattr(candidate, "predict_proba") else None
        call = call or candidate.predict
        call(batch)  # warm-up: first-call costs (lazy init, caches) are not the steady state
        times = []
        for _ in range(self.policy.latency_calls):
            t0 = self.clock.monotonic()
            call(batch)
            times.append((self.clock.monotonic() - t0) * 1000.0)
        return len(batch), times

    def _speed(self, candidate: Any, features: Any) -> list[RuleResult]:
        p = self.policy
        rows, times = self._timed(candidate, features)
        median = statistics.median(times)
        per_s = rows / (median / 1000.0) if median > 0 else math.inf
        evidence = {
            "median_ms": median,
            "times_ms": times,
            "batch_rows": rows,
            "rows_per_s": per_s,
            "budget_ms": p.latency_budget_ms,
            "min_rows_per_s": p.min_throughput_rows_s,
        }
        out = []
        if p.latency_budget_ms is not None:
            budget = p.latency_budget_ms
            ok = median <= budget
            msg = f"median {median:.2f} ms over {len(times)} calls "
            msg += f"{'within' if ok else 'over'} budget {budget:g} ms"
            check = f"latency p50 of predict on {rows} rows <= {budget:g} ms"
            out.append(RuleResult("latency", check, "pass" if ok else "fail", msg, evidence))
        if p.min_throughput_rows_s is not None:
            floor = p.min_throughput_rows_s
            ok = per_s >= floor
            msg = f"{per_s:,.0f} rows/s at batch {rows} (median of {len(times)} calls) "
            msg += f"{'meets' if ok else 'below'} {floor:,.0f} rows/s"
            check = f"throughput on batches of {rows} rows >= {floor:g} rows/s"
            out.append(RuleResult("throughput", check, "pass" if ok else "fail", msg, evidence))
        return out


@dataclass(frozen=True)
class GateOutcome:
    """What :func:`evaluate_and_register` did.

    Attributes:
        verdict: the gate's verdict (passed).
        version: the registered version.
        alias: the alias it got (``production`` or the policy's alias).
    """

    verdict: GateVerdict
    version: ModelVersion
    alias: str


def production_model(registry: Registry, name: str) -> tuple[Any, int] | None:
    """Load the ``production`` version of ``name``: (model, version number), or None if none.

    The package is loaded with ``modelyard.models.load``; when the loaded object wraps a
    scikit-learn-style estimator, that estimator is returned so that probabilities are compared.
    """
    try:
        version = registry.resolve(f"{name}@production")
    except NotFoundError:
        return None
    import importlib
    import tempfile

    models: Any = importlib.import_module("modelyard.models")
    with tempfile.TemporaryDirectory(prefix="modelyard-gate-") as tmp:
        dest = registry.download(version, Path(tmp) / "package")
        loaded = models.load(dest)
    return _unwrap(loaded), int(version.version)


def _has_production(registry: Registry, name: str) -> bool:
    try:
        registry.resolve(f"{name}@production")
    except NotFoundError:
        return False
    return True


REFUSALS_PREFIX = "gate-refusals"
"""Named files of the artifact store holding the verdicts of refused candidates."""


def _keep_refusal(registry: Registry, name: str, verdict: GateVerdict) -> str | None:
    """Keep a refused candidate's verdict as ``gate-refusals/<model>/<time>.json``; there is no
    version to store it with. A store that cannot take it does not hide the refusal."""
    import hashlib

    body = verdict.to_json().encode()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(verdict.evaluated_at))
    record = f"{REFUSALS_PREFIX}/{name}/{stamp}-{hashlib.sha256(body).hexdigest()[:8]}.json"
    try:
        registry.artifact_store.write_named(record, body)
    except (ModelyardError, OSError) as exc:
        log.warning("refused verdict not kept", extra={"model": name, "error": str(exc)})
        return None
    return record


def refusals(registry: Registry, name: str) -> list[GateVerdict]:
    """The verdicts of the refused candidates of ``name``, oldest first."""
    store = registry.artifact_store
    names = store.list_named(f"{REFUSALS_PREFIX}/{name}/")
    return [GateVerdict.from_dict(json.loads(store.read_named(n))) for n in names]


def _unwrap(loaded: Any) -> Any:
    if hasattr(loaded, "predict_proba"):
        return loaded
    for attr in ("model", "estimator", "raw", "native"):
        inner = getattr(loaded, attr, None)
        if inner is not None and hasattr(inner, "predict_proba"):
            return inner
    return loaded


def evaluate_and_register(
    registry: Registry,
    name: str,
    candidate: Any,
    test_frame: Any,
    *,
    policy: GatePolicy,
    target: str | None = None,
    y: Any = None,
    package: str | Path | None = None,
    run_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
    signature: Any = None,
    flavor: str | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    production: tuple[Any, int] | Literal["auto"] | None = "auto",
    clock: Clock | None = None,
    reason: str | None = None,
    save: Callable[[Any, Path], Path] | None = None,
) -> GateOutcome:
    """Gate ``candidate`` and, when it passes, register it with the verdict.

    The ``production`` version of ``name`` (if any) is scored on the same ``test_frame``. On a
    pass the candidate is registered with ``extra["gate"] = verdict.to_dict()`` under the
    policy's alias (``candidate``), or under ``production`` when there is no production version
    yet and ``policy.allow_first_production`` is set; the version and its alias are written in
    one registry transaction. On a failure nothing is registered and no alias moves.

    Args:
        registry: the model registry.
        name: the model name.
        candidate: the fitted candidate model.
        test_frame: the shared test rows (with the ``target`` column unless ``y`` is given).
        policy: the gate policy.
        target: the label column.
        y: labels, when ``test_frame`` holds features only.
        package: a package folder already written for ``candidate``; default: written here with
            ``modelyard.models.save`` (or ``save(candidate, folder)``) into a temporary folder.
        run_id: the run that trained the candidate (lineage).
        extra: more JSON-able data to store with the version (contract, profile refs, ...).
        signature: the model's input/output signature.
        flavor: the package flavor, when writing the package here.
        description: version description.
        tags: version tags.
        production: ``"auto"`` loads the production version from the registry; or pass
            ``(model, version)``, or None to judge without a baseline (a passing candidate
            then still gets the policy's alias when a production version exists).
        clock: time source for the latency rule.
        reason: why the alias moves, recorded in the alias history
            (default ``"gate passed: <summary>"``).
        save: ``save(model, folder) -> folder`` writing the package; default
            ``modelyard.models.save``.

    Returns:
        A :class:`GateOutcome` with the verdict, the new version and its alias.

    Raises:
        GateFailed: a rule failed; ``details["verdict"]`` holds the verdict dict, the message
            names each failed rule and its numbers; the verdict is also kept in the artifact
            store (``details["verdict_file"]``, listed by :func:`refusals`).
        InvalidNameError: the registry refuses the policy's alias; nothing is registered.
    """
    import tempfile

    base = production_model(registry, name) if production == "auto" else production
    verdict = Gate(policy, clock=clock).evaluate(
        candidate,
        test_frame,
        target=target,
        y=y,
        production=None if base is None else base[0],
        production_version=None if base is None else base[1],
        model_name=name,
    )
    if not verdict.passed:
        reasons = "; ".join(f"{r.name}: {r.message}" for r in verdict.failures)
        record = _keep_refusal(registry, name, verdict)
        where = f"; the verdict is kept as the named file {record}" if record else ""
        raise GateFailed(
            f"model {name!r}: the candidate did not pass the gate: {reasons}",
            hint="no version was registered and no alias moved" + where + "; improve the "
            "model or data, or review the policy",
            model=name,
            verdict=verdict.to_dict(),
            verdict_file=record,
        )
    # judging without a baseline (production=None) must not make the candidate replace a
    # production version that exists: only a model with none yet gets it directly
    first = base is None and not _has_production(registry, name)
    alias = "production" if first and policy.allow_first_production else policy.alias
    body = dict(extra or {})
    body["gate"] = verdict.to_dict()
    alias_reason = reason or f"gate passed: {verdict.summary()}"
    with tempfile.TemporaryDirectory(prefix="modelyard-pkg-") as tmp:
        if package is None:
            folder = Path(tmp) / "package"
            if save is not None:
                package = save(candidate, folder)
            else:
                import importlib

                models: Any = importlib.import_module("modelyard.models")
                kwargs: dict[str, Any] = {"name": name, "signature": signature}
                if flavor is not None:
                    kwargs["flavor"] = flavor
                package = models.save(candidate, folder, **kwargs)
        if flavor is None or signature is None:
            # record what the package says about itself, so the version row is complete
            from modelyard.registry.packages import read_manifest

            manifest = read_manifest(package)
            flavor = flavor or manifest.get("flavor")
            signature = signature if signature is not None else manifest.get("signature")
        version = registry.register_version(
            name,
            package,
            run_id=run_id,
            flavor=flavor,
            signature=signature,
            extra=body,
            description=description,
            tags=dict(tags) if tags else None,
            # the version and its alias in one transaction: a refused alias or a failure
            # registers nothing, rather than a version without its alias
            aliases=(alias,),
            alias_reason=alias_reason,
        )
    log.info(
        "candidate registered",
        extra={"model": name, "version": version.version, "alias": alias},
    )
    return GateOutcome(verdict=verdict, version=version, alias=alias)
