"""Mergeable window summaries: what a window of the request log is reduced to, batch by batch.

A window is never held in memory: each Arrow batch read from the request log is binned into the
reference profile's bins (:meth:`~modelyard.data.profile.Profile.bin_counts`), its numeric
ranges and contract violations are counted, and the batch is dropped. Two summaries of
disjoint parts of a window add up (:meth:`WindowCounts.merge`), so a large window can be split
over threads, processes or a Ray cluster and the parts summed; :meth:`WindowCounts.to_dict`
makes a summary JSON-able for the trip back.

Request-log columns are named ``in__<feature>`` and ``out__<output>``; the summary keys drop
those prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError, require_extra

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from modelyard.data.contract import Contract
    from modelyard.data.profile import Profile

__all__ = ["Binner", "WindowCounts"]

IN = "in__"
OUT = "out__"
PROBA = "out__proba__"
SCORE_BINS = 1000  # probability bins of the expected ROC curve (AUC error well below 0.001)
# rules that cannot be summed over batches (uniqueness needs every row; row counts the frame)
_WINDOW_RULES_SKIPPED = frozenset({"unique", "row_count", "unexpected_column"})


@dataclass
class WindowCounts:
    """Counts of one window (or part of one), in the bins of the reference profiles.

    Attributes:
        rows: rows seen.
        features: feature -> count vector (profile bins, then nulls).
        predictions: output name -> count vector in the prediction profile's bins.
        ranges: numeric feature or output -> [min, max] of its finite values.
        violations: ``column/rule`` -> rows breaking the contract's rule.
        outputs: the output columns (``out__...``) the log has.
        scores: sums over the predicted probabilities, for quality estimated without labels
            (:func:`~modelyard.monitoring.estimated_from_counts`): ``n``, ``confidence``
            (sum of the top probability), ``confidence_var`` (sum of c (1 - c)) and, for binary
            classifiers, ``brier`` (sum of p (1 - p)) and ``p_sum`` / ``p_count`` per
            probability bin of the positive class.
    """

    rows: int = 0
    features: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    predictions: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    ranges: dict[str, list[float]] = field(default_factory=dict)
    violations: dict[str, int] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    scores: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)

    def merge(self, other: WindowCounts) -> WindowCounts:
        """Add ``other`` (a disjoint part of the same window) into this one; returns self."""
        self.rows += other.rows
        for mine, theirs in (
            (self.features, other.features),
            (self.predictions, other.predictions),
        ):
            for key, vec in theirs.items():
                mine[key] = mine[key] + vec if key in mine else vec.copy()
        for key, (lo, hi) in other.ranges.items():
            if key in self.ranges:
                a, b = self.ranges[key]
                self.ranges[key] = [min(a, lo), max(b, hi)]
            else:
                self.ranges[key] = [lo, hi]
        for key, n in other.violations.items():
            self.violations[key] = self.violations.get(key, 0) + n
        self.outputs = list(dict.fromkeys([*self.outputs, *other.outputs]))
        for key, arr in other.scores.items():
            self.scores[key] = self.scores[key] + arr if key in self.scores else arr.copy()
        return self

    def range_of(self, name: str) -> tuple[float | None, float | None]:
        """(min, max) of a numeric column's finite values, or (None, None)."""
        lo_hi = self.ranges.get(name)
        return (lo_hi[0], lo_hi[1]) if lo_hi else (None, None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (no rows, only counts)."""
        return {
            "rows": self.rows,
            "features": {k: v.tolist() for k, v in self.features.items()},
            "predictions": {k: v.tolist() for k, v in self.predictions.items()},
            "ranges": self.ranges,
            "violations": self.violations,
            "outputs": self.outputs,
            "scores": {k: v.tolist() for k, v in self.scores.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowCounts:
        """The inverse of :meth:`to_dict`."""
        import numpy as np

        return cls(
            rows=int(data["rows"]),
            features={k: np.asarray(v, dtype=np.int64) for k, v in data["features"].items()},
            predictions={k: np.asarray(v, dtype=np.int64) for k, v in data["predictions"].items()},
            ranges={k: [float(a), float(b)] for k, (a, b) in data["ranges"].items()},
            violations={k: int(v) for k, v in data["violations"].items()},
            outputs=[str(o) for o in data.get("outputs", ())],
            scores={k: np.asarray(v, dtype=np.float64) for k, v in data.get("scores", {}).items()},
        )


@dataclass(frozen=True)
class Binner:
    """Reduces Arrow batches of a request log to :class:`WindowCounts`.

    Attributes:
        profile: the reference profile of the inputs (features without the ``in__`` prefix).
        predictions: the reference profile of the outputs (names without ``out__``), if any.
        contract: the inputs' data contract, if any (violations are counted per column/rule).
    """

    profile: Profile
    predictions: Profile | None = None
    contract: Contract | None = None

    def check_columns(self, names: Iterable[str]) -> None:
        """Raise when a log's columns cannot hold the profiled features.

        Raises:
            InvalidInputError: naming the missing ``in__`` columns and the ones present.
        """
        present = set(names)
        missing = [f for f in self.profile.features if IN + f not in present]
        if missing:
            have = sorted(n for n in present if n.startswith(IN))
            raise InvalidInputError(
                f"the request log has no column for the features {missing}",
                hint=f"the log's input columns are {have}; is this the version whose "
                "reference profile you monitor against?",
                missing=missing,
            )

    def check_types(self, schema: Any) -> None:
        """Raise when a log column's Arrow type cannot hold its profiled feature's values.

        A numeric feature needs an integer or floating column (a datetime one a timestamp), a
        categorical one a string, boolean or dictionary column; a column of nulls fits any.

        Raises:
            InvalidInputError: naming each column, its type and what the profile expects.
        """
        bad = [
            f"{IN}{name} is {_logical(schema.field(IN + name).type)}, the profile's {name!r} is "
            f"{fp.dtype}"
            for name, fp in self.profile.features.items()
            if not _fits(fp, schema.field(IN + name).type)
        ]
        if bad:
            raise InvalidInputError(
                f"the request log's columns do not match the reference profile: {'; '.join(bad)}",
                hint="is this the version whose reference profile you monitor against? a "
                "server logs the types of the version's contract",
                columns=bad,
            )

    def count(self, batch: Any) -> WindowCounts:
        """Summarise one ``pyarrow.RecordBatch`` or ``pyarrow.Table`` of the request log.

        Raises:
            InvalidInputError: the batch lacks a profiled feature's column, or one of its
                columns has a type the feature's values cannot have.
            MissingExtraError: polars (``modelyard[monitor]``) is not installed and there
                is a contract to check.
        """
        import pyarrow as pa

        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        self.check_columns(table.column_names)
        self.check_types(table.schema)
        out = WindowCounts(
            rows=table.num_rows, outputs=[c for c in table.column_names if c.startswith(OUT)]
        )
        if table.num_rows == 0:
            return out
        out.features = _bin_counts(self.profile, table, IN)
        out.ranges.update(_ranges(table, self.profile, IN))
        if self.predictions is not None:
            # an output logged in another shape (a probability vector as one list column) is
            # left out of prediction drift rather than failing the window
            names = [
                o
                for o, fp in self.predictions.features.items()
                if OUT + o in table.column_names and _fits(fp, table.schema.field(OUT + o).type)
            ]
            if names:
                sub = self.predictions.__class__(
                    features={o: self.predictions.features[o] for o in names}
                )
                out.predictions = _bin_counts(sub, table, OUT)
                out.ranges.update(_ranges(table, sub, OUT))
        if self.contract is not None:
            # polars wraps Arrow columns without copying them (pandas would copy every batch)
            pl = require_extra("polars", "monitor")
            inputs = pl.DataFrame(
                table.select([IN + f for f in self.profile.features]).rename_columns(
                    list(self.profile.features)
                )
            )
            out.violations = _violations(self.contract, inputs)
        out.scores = _scores(table)
        return out

    def count_all(self, batches: Iterable[Any]) -> WindowCounts:
        """Summarise every batch of an iterator, one batch in memory at a time."""
        total = WindowCounts()
        for batch in batches:
            total.merge(self.count(batch))
        return total


def _bin_counts(profile: Profile, table: Any, prefix: str) -> dict[str, npt.NDArray[np.int64]]:
    """:meth:`Profile.bin_counts` on the Arrow columns ``prefix + feature``, read in place.

    Each feature's own :meth:`FeatureProfile.count` bins it, through :class:`_ArrowColumn`:
    the same bins as a polars or pandas frame gives, without converting the batch (nor
    importing polars for it: a third of a cold 1M-row window's time). Columns are counted on a
    few threads, as ``bin_counts`` does: numpy's and Arrow's kernels release the GIL.
    """
    jobs = [
        (fp, _ArrowColumn(table.column(prefix + name))) for name, fp in profile.features.items()
    ]
    pool = _pool()
    if pool is None or len(jobs) <= 1:
        counts = [fp.count(col) for fp, col in jobs]  # type: ignore[arg-type]
    else:
        counts = list(pool.map(lambda job: job[0].count(job[1]), jobs))
    return dict(zip(profile.features, counts, strict=True))


_POOL: list[ThreadPoolExecutor | None] = []


def _pool() -> ThreadPoolExecutor | None:
    """One pool of counting threads per process (starting threads per batch cost 5 % of a
    window), or None on one core."""
    if not _POOL:
        import os

        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpus = os.cpu_count() or 1
        workers = min(cpus, 8)
        _POOL.append(
            ThreadPoolExecutor(workers, thread_name_prefix="modelyard-monitor")
            if workers > 1
            else None
        )
    return _POOL[0]


class _ArrowColumn:
    """One Arrow column as :meth:`FeatureProfile.count` reads it (the part of
    ``modelyard.data``'s column views a count needs): ``null_count`` (NaN counts as missing
    in a float column), ``numbers`` (int64/float64, nulls as NaN or masked) and
    ``value_counts`` (non-missing values and their counts)."""

    def __init__(self, column: Any) -> None:
        import pyarrow as pa
        import pyarrow.types as pt

        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if pt.is_timestamp(array.type) or pt.is_date(array.type):
            # profiles hold datetimes as epoch microseconds (UTC)
            tz = getattr(array.type, "tz", None)
            array = array.cast(pa.timestamp("us", tz=tz)).cast(pa.int64())
        self.array = array
        self.float = pt.is_floating(array.type)

    def null_count(self) -> int:
        import pyarrow.compute as pc

        nulls = int(self.array.null_count)
        if self.float:
            nulls += int(pc.sum(pc.is_nan(self.array)).as_py() or 0)
        return nulls

    def numbers(self) -> tuple[Any, Any]:
        import numpy as np
        import pyarrow.compute as pc

        array = self.array
        if self.float:
            # nulls become NaN, which compares False with every edge
            arr = array.to_numpy(zero_copy_only=False)
            return (arr if arr.dtype == np.float64 else arr.astype(np.float64)), None
        if array.null_count:
            mask = array.is_null().to_numpy(zero_copy_only=False)
            return pc.fill_null(array, 0).to_numpy(zero_copy_only=False).astype(np.int64), mask
        return array.to_numpy(zero_copy_only=False).astype(np.int64, copy=False), None

    def value_counts(self) -> tuple[list[Any], Any]:
        import numpy as np
        import pyarrow.compute as pc
        import pyarrow.types as pt

        array = self.array.drop_null()
        if pt.is_dictionary(array.type):
            # counted by index: the strings are never materialised per row
            counts = np.bincount(
                array.indices.to_numpy(zero_copy_only=False), minlength=len(array.dictionary)
            )
            seen = np.flatnonzero(counts)
            return array.dictionary.take(seen).to_pylist(), counts[seen].astype(np.int64)
        if self.float:
            array = array.filter(pc.invert(pc.is_nan(array)))
        counted = pc.value_counts(array)
        values = counted.field("values").to_pylist()
        return values, counted.field("counts").to_numpy().astype(np.int64)


def _scores(table: Any) -> dict[str, npt.NDArray[np.float64]]:
    import numpy as np

    cols = sorted(c for c in table.column_names if c.startswith(PROBA))
    if not cols:
        return {}
    # column by column (no n x k copy): a few passes over each probability column
    probs = [
        table.column(c).to_numpy(zero_copy_only=False).astype(np.float64, copy=False) for c in cols
    ]
    finite = np.logical_and.reduce([np.isfinite(p) for p in probs])
    if not finite.all():
        probs = [p[finite] for p in probs]
    top = np.maximum.reduce(probs)
    out = {
        "n": np.asarray([float(top.shape[0])]),
        "confidence": np.asarray([float(top.sum())]),
        "confidence_var": np.asarray([float(np.sum(top * (1 - top)))]),
    }
    if len(cols) == 2:
        p = np.clip(probs[1], 0.0, 1.0)
        bins = np.minimum((p * SCORE_BINS).astype(np.int64), SCORE_BINS - 1)
        out["brier"] = np.asarray([float(np.sum(p * (1 - p)))])
        out["p_sum"] = np.bincount(bins, weights=p, minlength=SCORE_BINS).astype(np.float64)
        out["p_count"] = np.bincount(bins, minlength=SCORE_BINS).astype(np.float64)
    return out


def _ranges(table: Any, profile: Profile, prefix: str) -> dict[str, list[float]]:
    import math

    import pyarrow.compute as pc

    out: dict[str, list[float]] = {}
    for name, fp in profile.features.items():
        if fp.kind != "numeric":
            continue
        col = table.column(prefix + name)
        if not _is_number(col.type):
            continue
        mm = pc.min_max(col).as_py()
        lo, hi = mm.get("min"), mm.get("max")
        if lo is None or hi is None:
            continue
        lo, hi = float(lo), float(hi)
        if math.isfinite(lo) and math.isfinite(hi):
            out[name] = [lo, hi]
    return out


def _fits(fp: Any, arrow_type: Any) -> bool:
    """Whether a log column of ``arrow_type`` can hold the values of profiled feature ``fp``."""
    import pyarrow.types as pt

    if pt.is_null(arrow_type):
        return True
    if fp.kind == "categorical":
        return bool(
            pt.is_string(arrow_type)
            or pt.is_large_string(arrow_type)
            or pt.is_boolean(arrow_type)
            or pt.is_dictionary(arrow_type)
        )
    if fp.dtype in ("datetime", "date"):
        return bool(pt.is_timestamp(arrow_type) or pt.is_date(arrow_type))
    return _is_number(arrow_type)


def _logical(arrow_type: Any) -> str:
    """A log column's Arrow type in the words of contracts and profiles."""
    import pyarrow.types as pt

    if pt.is_string(arrow_type) or pt.is_large_string(arrow_type):
        return "string"
    if pt.is_integer(arrow_type):
        return "int"
    if pt.is_floating(arrow_type):
        return "float"
    if pt.is_boolean(arrow_type):
        return "bool"
    if pt.is_timestamp(arrow_type):
        return "datetime"
    return str(arrow_type)


def _is_number(arrow_type: Any) -> bool:
    import pyarrow.types as pt

    return bool(pt.is_integer(arrow_type) or pt.is_floating(arrow_type))


def _violations(contract: Contract, frame: Any) -> dict[str, int]:
    report = contract.validate(frame, allow_extra_columns=True, max_examples=0)
    out: dict[str, int] = {}
    for v in report.violations:
        if v.rule in _WINDOW_RULES_SKIPPED:
            continue
        key = f"{v.column or '*'}/{v.rule}"
        out[key] = out.get(key, 0) + v.count
    return out
