"""The gate: judge a candidate model against a :class:`~modelyard.evaluate.policy.GatePolicy`.

:class:`Gate` evaluates a candidate (and the current ``production`` model, when there is one) on
one test frame and returns a :class:`~modelyard.evaluate.verdict.GateVerdict`: every rule with
its status (pass, fail or skip), a one-line reason and the evidence (metrics, confidence
intervals, p-values, slice numbers, latencies). Registering what passes is
:mod:`modelyard.evaluate.register`'s job.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

from modelyard.errors import InvalidInputError
from modelyard.evaluate.metrics import Predictions, compute_metrics, metric_spec, predict
from modelyard.evaluate.policy import COMPARATORS, GatePolicy
from modelyard.evaluate.verdict import GateVerdict, RuleResult
from modelyard.logs import get_logger
from modelyard.types import Clock, SystemClock

__all__ = ["Gate"]

log = get_logger("evaluate.gate")


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
