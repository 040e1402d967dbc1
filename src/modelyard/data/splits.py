"""Checks on a train/test split: no shared ids, balanced labels, time order.

Each check adds violations to one :class:`~modelyard.data.report.ValidationReport`, so a CI job
sees every problem of a split at once:

* ``id_overlap``: ids present in both splits (leakage); names how many test rows and distinct
  ids overlap, with example rows.
* ``label_balance``: the label's class proportions differ between the splits by more than
  ``tolerance`` (absolute difference of proportions, per class), or, with ``method="chi2"``, a
  Pearson chi-square test on the 2 x k table of class counts rejects equal proportions at
  ``alpha``.
* ``time_order``: for temporal splits, every training time must be strictly before every test
  time (max train time < min test time). ISO-8601 text columns are parsed.

Example:
    >>> report = check_splits(train, test, id_column="user_id", label_column="churned",
    ...                       time_column="ts")
    >>> report.raise_for_errors()
"""

from __future__ import annotations

from typing import Any

from modelyard.data._frames import ColumnView, FrameView, from_epoch_us
from modelyard.data._views import view
from modelyard.data.drift import chi2_sf
from modelyard.data.report import ValidationReport, Violation
from modelyard.errors import InvalidInputError

__all__ = ["check_splits"]


def _column(fv: FrameView, name: str, split: str, report: ValidationReport) -> ColumnView | None:
    if name in fv.columns:
        return fv.column(name)
    report.violations.append(
        Violation(
            name,
            "missing_column",
            fv.n_rows,
            f"column {name!r} is missing from the {split} split",
            expected=name,
            actual=None,
        )
    )
    return None


def _check_ids(train: ColumnView, test: ColumnView, report: ValidationReport, k: int) -> None:
    import numpy as np

    if train.kind == test.kind or "object" in (train.kind, test.kind):
        found = test.isin(train.unique_values())
    elif {train.kind, test.kind} <= {"int", "float"}:
        # 7 and 7.0 are the same id (pandas turns an int column with missing values into
        # floats); polars refuses to compare them, so compare the numbers here
        tv, tmask = train.numbers()
        sv, _ = test.numbers()
        known = tv if tmask is None else tv[~tmask]
        found = np.isin(sv.astype(np.float64), known.astype(np.float64))
    else:
        # 7 and "7" never compare equal: saying "no overlap" would pass a leaking split
        report.violations.append(
            Violation(
                test.name,
                "dtype",
                test.n,
                f"id column {test.name!r} is {train.kind} ({train.native}) in the train split "
                f"but {test.kind} ({test.native}) in the test split, so ids cannot be compared; "
                "cast both to one type",
                expected=train.kind,
                actual=test.kind,
            )
        )
        return
    overlap = np.logical_and(found, ~test.null_mask())
    rows = int(np.count_nonzero(overlap))
    if not rows:
        return
    idx = np.flatnonzero(overlap)
    values = test.values_at(idx[: max(k, 1000)].tolist())
    distinct = len({repr(v) for v in values}) if rows <= 1000 else None
    examples = tuple(
        {"row": int(r), "value": v} for r, v in zip(idx[:k].tolist(), values[:k], strict=True)
    )
    ids_text = f"{distinct} distinct id(s), " if distinct is not None else ""
    shown = list(dict.fromkeys(repr(v) for v in values))[:5]
    report.violations.append(
        Violation(
            test.name,
            "id_overlap",
            rows,
            f"id column {test.name!r}: {rows} test row(s) ({ids_text}e.g. "
            f"{', '.join(shown)}) share an id with the train split",
            examples,
            expected="no id in both splits",
            actual={"rows": rows, "distinct_ids": distinct},
        )
    )


def _check_labels(
    train: ColumnView,
    test: ColumnView,
    report: ValidationReport,
    *,
    tolerance: float,
    method: str,
    alpha: float,
) -> None:
    import numpy as np

    tv, tc = train.value_counts()
    sv, sc = test.value_counts()
    n_train, n_test = int(tc.sum()), int(sc.sum())
    if n_train == 0 or n_test == 0:
        return
    classes = sorted({*tv, *sv}, key=str)
    a = dict(zip(tv, tc.tolist(), strict=True))
    b = dict(zip(sv, sc.tolist(), strict=True))
    counts_train = np.array([a.get(c, 0) for c in classes], dtype=np.float64)
    counts_test = np.array([b.get(c, 0) for c in classes], dtype=np.float64)
    p_train = counts_train / n_train
    p_test = counts_test / n_test
    diffs = np.abs(p_train - p_test)
    per_class = {
        str(c): {"train": round(float(x), 4), "test": round(float(y), 4)}
        for c, x, y in zip(classes, p_train, p_test, strict=True)
    }
    if method == "chi2":
        table = np.vstack([counts_train, counts_test])
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
        stat = float(np.sum((table - expected) ** 2 / expected))
        dof = len(classes) - 1
        p = chi2_sf(stat, dof)
        if p < alpha:
            report.violations.append(
                Violation(
                    train.name,
                    "label_balance",
                    len(classes),
                    f"label {train.name!r}: class proportions differ between train and test "
                    f"(chi-square {stat:.1f}, dof {dof}, p = {p:.3g} < {alpha})",
                    expected=f"p >= {alpha}",
                    actual=per_class,
                )
            )
        return
    off = [c for c, d in zip(classes, diffs, strict=True) if d > tolerance]
    if off:
        worst = ", ".join(
            f"{c!r}: train {per_class[str(c)]['train']:.3f} vs test {per_class[str(c)]['test']:.3f}"
            for c in off[:5]
        )
        report.violations.append(
            Violation(
                train.name,
                "label_balance",
                len(off),
                f"label {train.name!r}: {len(off)} class(es) differ in proportion by more than "
                f"{tolerance} between train and test ({worst})",
                expected=f"|train - test| <= {tolerance} per class",
                actual=per_class,
            )
        )


def _times(col: ColumnView, split: str, report: ValidationReport) -> Any:
    got = col.datetimes()
    if got is None and col.kind in ("int", "float"):
        got = col.numbers()
    if got is None:
        report.violations.append(
            Violation(
                col.name,
                "dtype",
                col.n,
                f"time column {col.name!r} in the {split} split is {col.kind} ({col.native}), "
                "not a datetime, a number or ISO-8601 text",
                expected="datetime",
                actual=col.kind,
            )
        )
        return None
    return got


def _check_time(train: ColumnView, test: ColumnView, report: ValidationReport, k: int) -> None:
    import numpy as np

    got_train = _times(train, "train", report)
    got_test = _times(test, "test", report)
    if got_train is None or got_test is None:
        return
    is_time = train.kind in ("datetime", "date", "string")
    if is_time != (test.kind in ("datetime", "date", "string")):
        # epoch microseconds against plain numbers is no order at all
        report.violations.append(
            Violation(
                test.name,
                "dtype",
                test.n,
                f"time column {test.name!r} is {train.kind} ({train.native}) in the train "
                f"split but {test.kind} ({test.native}) in the test split, so times cannot be "
                "compared; use one type in both",
                expected=train.kind,
                actual=test.kind,
            )
        )
        return
    (ta, tmask), (sa, smask) = got_train, got_test
    tvals = ta if tmask is None else ta[~tmask]
    svals = sa if smask is None else sa[~smask]
    if tvals.size == 0 or svals.size == 0:
        return
    max_train, min_test = tvals.max(), svals.min()
    if max_train < min_test:
        return
    late = ta >= min_test
    if tmask is not None:
        late &= ~tmask
    rows = int(np.count_nonzero(late))
    idx = np.flatnonzero(late)[:k].tolist()
    examples = tuple({"row": r, "value": v} for r, v in zip(idx, train.values_at(idx), strict=True))

    def show(v: Any) -> str:
        return from_epoch_us(int(v)).isoformat() if is_time else str(v.item())

    report.violations.append(
        Violation(
            train.name,
            "time_order",
            rows,
            f"time column {train.name!r}: max train time {show(max_train)} is not before min "
            f"test time {show(min_test)}; {rows} train row(s) are at or after the test start",
            examples,
            expected="max(train) < min(test)",
            actual={"max_train": show(max_train), "min_test": show(min_test)},
        )
    )


def check_splits(
    train: Any,
    test: Any,
    *,
    id_column: str | None = None,
    label_column: str | None = None,
    time_column: str | None = None,
    tolerance: float = 0.05,
    method: str = "difference",
    alpha: float = 0.01,
    max_examples: int = 5,
) -> ValidationReport:
    """Check a train/test split for id leakage, label imbalance and time order.

    Args:
        train: the training frame (pandas or polars).
        test: the test frame.
        id_column: the id column that must not appear in both splits.
        label_column: the label whose class proportions must match.
        time_column: the time column: every train time must precede every test time.
        tolerance: the largest accepted absolute difference of a class proportion.
        method: ``difference`` (per-class proportions vs ``tolerance``) or ``chi2``.
        alpha: significance level for ``method="chi2"``.
        max_examples: example rows kept per violation.

    Returns:
        A report with every violation found (``report.ok`` when none).

    Raises:
        InvalidInputError: when no check is asked for or ``method`` is unknown.
    """
    if id_column is None and label_column is None and time_column is None:
        raise InvalidInputError(
            "no split check asked for",
            hint="pass id_column=, label_column= and/or time_column= "
            "(CLI: --id COL --label COL --time COL)",
        )
    if method not in ("difference", "chi2"):
        raise InvalidInputError(
            f"unknown label balance method {method!r}", hint="use 'difference' or 'chi2'"
        )
    ftrain, ftest = view(train), view(test)
    checked = [c for c in (id_column, label_column, time_column) if c is not None]
    report = ValidationReport(
        rows=ftrain.n_rows + ftest.n_rows, columns=len(set(checked)), source="splits"
    )
    for name, check in ((id_column, "id"), (label_column, "label"), (time_column, "time")):
        if name is None:
            continue
        a = _column(ftrain, name, "train", report)
        b = _column(ftest, name, "test", report)
        if a is None or b is None:
            continue
        if check == "id":
            _check_ids(a, b, report, max_examples)
        elif check == "label":
            _check_labels(a, b, report, tolerance=tolerance, method=method, alpha=alpha)
        else:
            _check_time(a, b, report, max_examples)
    return report
