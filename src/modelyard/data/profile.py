"""Reference profiles: the training data reduced once to per-feature bins and counts.

A profile is built from the training data at training time and stored with the model version.
Monitoring later bins live traffic into the *same* bins (:meth:`Profile.bin_counts`) and
compares the two count vectors (:mod:`modelyard.data.drift`) without reading the training data
again.

* Numeric features (int, float; datetimes only when named): quantile bin edges from the
  reference (``bins`` quantile bins, 20 by default) plus a bin below the reference minimum and
  one above its maximum, so the outer bins run to -inf and +inf and hold 0 reference rows. Bins
  are left-closed: ``[e_i, e_i+1)``; float data is compared in float32 when that keeps the
  edges apart (integers with integer thresholds), both for the reference and for live data.
  Quantiles come from an evenly strided sample of at most 32,768 values (edges need not be
  exact quantiles); the counts are exact.
* Categorical features (string, bool): counts of the ``categorical_max`` most frequent values
  and an ``other`` bucket for the rest (and for values first seen in live data).
* Every feature also counts its missing values; the count vectors (:meth:`FeatureProfile.vector`)
  end with that null bucket, so a rise in missing values is drift too.

Serialised with orjson into compact bytes (:meth:`Profile.to_bytes`).

Example:
    >>> profile = build_profile(train_df, bins=20)
    >>> blob = profile.to_bytes()                      # store with the model version
    >>> report = Profile.from_bytes(blob).score(live_df)
    >>> report.drifted                                  # names of the drifted features
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from modelyard.data._frames import ColumnView
from modelyard.data._views import view
from modelyard.data.drift import (
    DEFAULT_ALPHA,
    DEFAULT_PSI_THRESHOLD,
    DriftResult,
    compare_counts,
)
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["DriftReport", "FeatureProfile", "Profile", "build_profile"]

_T = TypeVar("_T")
_R = TypeVar("_R")

FORMAT_VERSION = 1
_SAMPLE_MAX = 32_768
_NUMERIC = ("int", "float")
_CATEGORICAL = ("string", "bool")


@dataclass(frozen=True)
class FeatureProfile:
    """The binned reference distribution of one feature.

    Attributes:
        name: the column name.
        kind: ``numeric`` or ``categorical``.
        dtype: the logical dtype of the reference column (``int``, ``float``, ``string``...).
        edges: numeric: the sorted edges; bin 0 is (-inf, edges[0]), bin i is
            [edges[i-1], edges[i]), the last is [edges[-1], +inf). Empty for categorical.
        categories: categorical: the values counted one by one; the last bin is ``other``.
        counts: reference rows per bin (len(edges) + 1, or len(categories) + 1).
        nulls: reference rows with a missing value.
        precision: ``float32`` when float data is compared to the edges in single precision
            (the edges are then exact float32 values): half the memory traffic per edge, and
            chosen only when the edges are at least 2**-16 of their magnitude apart, so
            rounding cannot merge bins. Reference and live data are binned the same way.
    """

    name: str
    kind: str
    dtype: str
    edges: tuple[float, ...] = ()
    categories: tuple[Any, ...] = ()
    counts: tuple[int, ...] = ()
    nulls: int = 0
    precision: str = "float64"

    @property
    def n(self) -> int:
        """Reference rows, missing values included."""
        return sum(self.counts) + self.nulls

    def vector(self) -> npt.NDArray[np.int64]:
        """The reference count vector: one entry per bin, then the null bucket."""
        import numpy as np

        return np.asarray([*self.counts, self.nulls], dtype=np.int64)

    def labels(self) -> list[str]:
        """A readable label per entry of :meth:`vector`."""
        if self.kind == "categorical":
            return [str(c) for c in self.categories] + ["other", "null"]
        e = self.edges
        labels = [f"< {e[0]:g}"] if e else ["all"]
        labels += [f"[{a:g}, {b:g})" for a, b in itertools.pairwise(e)]
        if e:
            labels.append(f">= {e[-1]:g}")
        return [*labels, "null"]

    def count(self, col: ColumnView) -> npt.NDArray[np.int64]:
        """Bin one column of new data into this feature's bins (same layout as :meth:`vector`)."""
        import numpy as np

        nulls = col.null_count()
        if self.kind == "categorical":
            values, counts = col.value_counts()
            index = {v: i for i, v in enumerate(self.categories)}
            out = np.zeros(len(self.categories) + 2, dtype=np.int64)
            for v, c in zip(values, counts.tolist(), strict=True):
                out[index.get(v, len(self.categories))] += c
            out[-1] = nulls
            return out
        arr, mask = col.numbers()
        if mask is not None and arr.dtype.kind != "f":
            arr = arr[~mask]
        valid = arr.size - (nulls if arr.dtype.kind == "f" else 0)
        # one vectorised compare per edge into a reused buffer: ~0.3 ms per edge per 1M rows,
        # several times faster than np.searchsorted's per-value binary search
        edges: Any = self.edges
        if arr.dtype.kind == "f" and self.precision == "float32":
            arr = arr.astype(np.float32)  # NaN stays NaN
            edges = np.asarray(self.edges, dtype=np.float32)
        elif arr.dtype.kind in "iu" and self.edges:
            # for integers x < e <=> x < ceil(e): compare int to int, no float cast per pass
            info = np.iinfo(arr.dtype)
            ceil = np.ceil(np.asarray(self.edges))
            if info.min <= ceil[0] and ceil[-1] <= info.max:
                edges = ceil.astype(arr.dtype)
        buf = np.empty(arr.shape, dtype=bool)
        below = np.empty(len(self.edges), dtype=np.int64)
        for i, e in enumerate(edges):
            np.less(arr, e, out=buf)
            below[i] = np.count_nonzero(buf)
        # NaN compares False everywhere, so it never lands below an edge: `valid` excludes it
        bounds = np.concatenate([[0], below, [valid]])
        return np.concatenate([np.diff(bounds), [nulls]]).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "dtype": self.dtype}
        if self.kind == "numeric":
            out["edges"] = list(self.edges)
            if self.precision != "float64":
                out["precision"] = self.precision
        else:
            out["categories"] = list(self.categories)
        out["counts"] = list(self.counts)
        out["nulls"] = self.nulls
        return out


@dataclass(frozen=True)
class DriftReport:
    """Per-feature drift results of one comparison against a profile.

    Attributes:
        results: one :class:`~modelyard.data.drift.DriftResult` per feature, in profile order.
        alpha: the significance level used.
        psi_threshold: the PSI floor used.
    """

    results: list[DriftResult] = field(default_factory=list)
    alpha: float = DEFAULT_ALPHA
    psi_threshold: float = DEFAULT_PSI_THRESHOLD

    @property
    def drifted(self) -> list[str]:
        """Names of the features that drifted."""
        return [r.feature for r in self.results if r.drifted]

    @property
    def share_drifted(self) -> float:
        """Fraction of the features that drifted."""
        return len(self.drifted) / len(self.results) if self.results else 0.0

    def __getitem__(self, feature: str) -> DriftResult:
        for r in self.results:
            if r.feature == feature:
                return r
        raise KeyError(feature)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "alpha": self.alpha,
            "psi_threshold": self.psi_threshold,
            "drifted": self.drifted,
            "share_drifted": self.share_drifted,
            "features": [r.to_dict() for r in self.results],
        }


@dataclass(frozen=True)
class Profile:
    """Binned reference distributions of a frame's features.

    Attributes:
        features: feature name -> :class:`FeatureProfile`, in column order.
        rows: reference rows.
    """

    features: dict[str, FeatureProfile] = field(default_factory=dict)
    rows: int = 0

    def bin_counts(self, frame: Any) -> dict[str, npt.NDArray[np.int64]]:
        """Bin new data (pandas or polars) into the reference bins.

        Returns:
            feature name -> count vector in the layout of :meth:`FeatureProfile.vector`
            (bins, then nulls). Vectors from several batches can simply be added.

        Raises:
            InvalidInputError: when a profiled feature is missing from ``frame``.
        """
        fv = view(frame)
        missing = [name for name in self.features if name not in set(fv.columns)]
        if missing:
            raise InvalidInputError(
                f"features {missing} of the profile are missing from the data",
                hint=f"the data has columns {fv.columns}",
                missing=missing,
            )
        jobs = [(fp, fv.column(name)) for name, fp in self.features.items()]
        counts = _map_columns(lambda job: job[0].count(job[1]), jobs)
        return dict(zip(self.features, counts, strict=True))

    def score(
        self,
        data: Any,
        *,
        alpha: float = DEFAULT_ALPHA,
        psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    ) -> DriftReport:
        """Compare new data (a frame, or counts from :meth:`bin_counts`) with the reference.

        Args:
            data: a pandas/polars frame, or a mapping feature -> count vector.
            alpha: significance level of the two-sample chi-square test.
            psi_threshold: the smallest PSI that counts as drift.
        """
        if isinstance(data, Mapping):
            counts = {k: data[k] for k in self.features if k in data}
        else:
            counts = self.bin_counts(data)
        results = [
            compare_counts(
                fp.vector(),
                counts[name],
                feature=name,
                alpha=alpha,
                psi_threshold=psi_threshold,
            )
            for name, fp in self.features.items()
            if name in counts
        ]
        return DriftReport(results=results, alpha=alpha, psi_threshold=psi_threshold)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "format": FORMAT_VERSION,
            "rows": self.rows,
            "features": [fp.to_dict() for fp in self.features.values()],
        }

    def to_bytes(self) -> bytes:
        """Compact JSON bytes (orjson), stable for the same profile."""
        import orjson

        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """The inverse of :meth:`to_dict`.

        Raises:
            InvalidInputError: when the data is not a profile of a known format.
        """
        try:
            if data.get("format") != FORMAT_VERSION:
                raise InvalidInputError(
                    f"unknown profile format {data.get('format')!r}",
                    hint=f"this modelyard reads format {FORMAT_VERSION}; rebuild the profile",
                )
            features: dict[str, FeatureProfile] = {}
            for f in data["features"]:
                kind = f["kind"]
                if kind not in ("numeric", "categorical"):
                    raise ValueError(f"unknown feature kind {kind!r}")
                fp = FeatureProfile(
                    name=str(f["name"]),
                    kind=kind,
                    dtype=str(f["dtype"]),
                    edges=tuple(float(e) for e in f.get("edges", ())),
                    categories=tuple(f.get("categories", ())),
                    counts=tuple(int(c) for c in f["counts"]),
                    nulls=int(f["nulls"]),
                    precision=str(f.get("precision", "float64")),
                )
                if fp.precision not in ("float32", "float64"):
                    raise ValueError(f"unknown precision {fp.precision!r}")
                width = len(fp.edges) + 1 if kind == "numeric" else len(fp.categories) + 1
                if len(fp.counts) != width:
                    raise ValueError(f"feature {fp.name!r} has {len(fp.counts)} counts")
                features[fp.name] = fp
            return cls(features=features, rows=int(data["rows"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(
                f"not a valid modelyard profile: {exc}",
                hint="rebuild it with modelyard.data.profile.build_profile(frame)",
            ) from exc

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """The inverse of :meth:`to_bytes` (InvalidInputError on anything else)."""
        import orjson

        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidInputError(
                f"profile bytes are not JSON: {exc}",
                hint="pass the bytes written by Profile.to_bytes()",
            ) from exc
        if not isinstance(decoded, dict):
            raise InvalidInputError("profile bytes do not hold a JSON object")
        return cls.from_dict(decoded)


def _numeric_profile(col: ColumnView, bins: int) -> FeatureProfile:
    import numpy as np

    arr, mask = col.numbers()
    nulls = col.null_count()
    if mask is not None:
        arr = arr[~mask]
    elif arr.dtype.kind == "f" and nulls:
        arr = arr[~np.isnan(arr)]
    precision = "float64"
    if arr.dtype.kind == "f":
        # +-inf rows are counted (in the outer bins) but do not place edges: an infinite edge
        # cannot be stored as JSON, and quantiles interpolated towards inf are inf or NaN
        arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        edges: tuple[float, ...] = ()
    else:
        step = -(-arr.size // _SAMPLE_MAX)  # ceil: the sample never exceeds _SAMPLE_MAX
        # sorting the sample once is faster than np.quantile's partition on many quantiles
        sample = np.sort(arr[::step].astype(np.float64))
        pos = np.linspace(0.0, 1.0, bins + 1)[1:-1] * (sample.size - 1)
        low = np.floor(pos).astype(np.int64)
        high = np.minimum(low + 1, sample.size - 1)
        qs = sample[low] + (pos - low) * (sample[high] - sample[low])
        lo = float(np.fmin.reduce(arr)) if arr.dtype.kind == "f" else float(arr.min())
        hi = float(np.fmax.reduce(arr)) if arr.dtype.kind == "f" else float(arr.max())
        inner = [float(q) for q in qs if lo < q <= hi]
        # above max: any value > hi; np.nextafter keeps hi itself in the last inner bin
        edges = tuple(sorted({lo, *inner, float(np.nextafter(hi, np.inf))}))
        if arr.dtype.kind == "f" and _float32_resolves(edges):
            precision = "float32"
            f32 = np.float32
            top = np.nextafter(f32(hi), f32(np.inf))
            edges = tuple(sorted({float(f32(e)) for e in edges[:-1]} | {float(top)}))
    fp = FeatureProfile(
        name=col.name,
        kind="numeric",
        dtype=col.kind,
        edges=edges,
        nulls=nulls,
        precision=precision,
    )
    counts = fp.count(col)
    return FeatureProfile(
        name=fp.name,
        kind="numeric",
        dtype=col.kind,
        edges=edges,
        counts=tuple(int(c) for c in counts[:-1]),
        nulls=nulls,
        precision=precision,
    )


def _float32_resolves(edges: tuple[float, ...]) -> bool:
    """Whether float32 keeps these edges far apart (>= 2**-16 of their magnitude)."""
    import math

    if len(edges) < 2 or not all(math.isfinite(e) for e in edges):
        return False
    scale = max(abs(edges[0]), abs(edges[-1]))
    if scale > 1e30:
        return False
    gaps = [b - a for a, b in itertools.pairwise(edges)]
    return min(gaps) >= scale * 2.0**-16


def _categorical_profile(col: ColumnView, categorical_max: int) -> FeatureProfile:
    values, counts = col.value_counts()
    order = sorted(range(len(values)), key=lambda i: (-int(counts[i]), str(values[i])))
    kept = order[:categorical_max]
    categories = tuple(values[i] for i in kept)
    kept_counts = [int(counts[i]) for i in kept]
    other = int(counts.sum()) - sum(kept_counts)
    return FeatureProfile(
        name=col.name,
        kind="categorical",
        dtype=col.kind,
        categories=categories,
        counts=(*kept_counts, other),
        nulls=col.null_count(),
    )


def build_profile(
    frame: Any,
    columns: Iterable[str] | None = None,
    *,
    bins: int = 20,
    categorical_max: int = 50,
) -> Profile:
    """Reduce reference data to per-feature bins and counts.

    Args:
        frame: a pandas or polars DataFrame (the training data).
        columns: the features to profile; None profiles every int, float, string and bool
            column (datetimes and other types are skipped unless named).
        bins: quantile bins for numeric features (plus the two outside the reference range).
        categorical_max: categories counted one by one; the rest share the ``other`` bucket.

    Raises:
        InvalidInputError: for a named column that is missing or cannot be profiled.
    """
    if bins < 2:
        raise InvalidInputError(f"bins must be at least 2, got {bins}", hint="try bins=20")
    fv = view(frame)
    if columns is None:
        names = list(fv.columns)
        explicit = False
    else:
        names = list(columns)
        explicit = True
        missing = [c for c in names if c not in set(fv.columns)]
        if missing:
            raise InvalidInputError(
                f"columns {missing} are not in the frame",
                hint=f"the frame has columns {fv.columns}",
            )
    jobs: list[tuple[str, ColumnView]] = []
    for name in names:
        col = fv.column(name)
        if col.kind in _NUMERIC or (explicit and col.kind in ("datetime", "date")):
            jobs.append(("numeric", col))
        elif col.kind in _CATEGORICAL:
            jobs.append(("categorical", col))
        elif explicit:
            raise InvalidInputError(
                f"column {name!r} of dtype {col.kind} ({col.native}) cannot be profiled",
                hint="profile numeric, datetime, string or bool columns",
                column=name,
            )

    def one(job: tuple[str, ColumnView]) -> FeatureProfile:
        kind, col = job
        if kind == "numeric":
            return _numeric_profile(col, bins)
        return _categorical_profile(col, categorical_max)

    built = _map_columns(one, jobs)
    return Profile(features={fp.name: fp for fp in built}, rows=fv.n_rows)


def _map_columns(fn: Callable[[_T], _R], jobs: Sequence[_T]) -> list[_R]:
    """Run ``fn`` over columns on a few threads: numpy, pandas and pyarrow kernels release the
    GIL, and binning is bound by memory bandwidth, so a second core nearly halves the time."""
    workers = min(len(jobs), _cpu_count(), 8)
    if workers <= 1:
        return [fn(job) for job in jobs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelyard-profile") as pool:
        return list(pool.map(fn, jobs))


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
