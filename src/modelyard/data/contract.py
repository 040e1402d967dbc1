"""Data contracts: inferred from reference data, reviewed as TOML, checked on every batch.

A contract lists the columns a frame must have and, per column, its logical ``dtype``
(``int``, ``float``, ``bool``, ``string``, ``datetime``, ``date``, ``duration``, ``object``),
whether it may hold missing values, an inclusive ``min``/``max``, the allowed ``categories`` and
whether values must be ``unique``. The file looks like this::

    name = "churn"
    version = 1
    allow_extra_columns = false

    [columns.age]
    dtype = "int"
    nullable = false
    min = 18
    max = 99
    unique = false

    [columns.plan]
    dtype = "string"
    nullable = true
    categories = ["basic", "pro"]
    unique = false

Validation works column-wise on numpy arrays and reports EVERY violation with its count and
example rows; examples are computed only for the rules that fail. Three type rules worth
knowing: an ``int`` column may arrive as floats holding whole numbers (pandas turns an int column
with missing values into float64), ``int`` data satisfies a ``float`` column, and a ``date``
column may arrive as datetimes at midnight (naive, or UTC), as dates read from CSV do.

Example:
    >>> c = infer_contract(reference_df, name="churn")
    >>> c.to_file("contracts/churn.toml")           # review and commit
    >>> Contract.from_file("contracts/churn.toml").validate(batch).raise_for_errors()
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.data import _toml
from modelyard.data._frames import KINDS, RANGED, ColumnView, from_epoch_us
from modelyard.data._views import view
from modelyard.data.report import ValidationReport
from modelyard.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    pass

__all__ = ["ColumnSpec", "Contract", "infer_contract", "validate"]

_DTYPE_ALIASES = {
    "integer": "int",
    "int8": "int",
    "int16": "int",
    "int32": "int",
    "int64": "int",
    "uint8": "int",
    "uint16": "int",
    "uint32": "int",
    "uint64": "int",
    "double": "float",
    "float32": "float",
    "float64": "float",
    "number": "float",
    "boolean": "bool",
    "str": "string",
    "text": "string",
    "timestamp": "datetime",
    "timedelta": "duration",
}
_COLUMN_KEYS = ("dtype", "nullable", "min", "max", "categories", "unique", "description")
_TOP_KEYS = (
    "name",
    "version",
    "description",
    "allow_extra_columns",
    "min_rows",
    "max_rows",
    "columns",
)
_MAX_INT64 = 2**63 - 1


@dataclass(frozen=True)
class ColumnSpec:
    """What one column must look like.

    Attributes:
        name: the column name.
        dtype: one of ``int``, ``float``, ``bool``, ``string``, ``datetime``, ``date``,
            ``duration``, ``object``.
        nullable: whether missing values (None, null, NaT, NaN) are allowed.
        min: inclusive lower bound (numbers, datetimes, dates), or None.
        max: inclusive upper bound, or None.
        categories: the allowed values, or None for any.
        unique: whether non-missing values must all differ.
        description: free text for reviewers.
    """

    name: str
    dtype: str
    nullable: bool = True
    min: Any = None
    max: Any = None
    categories: tuple[Any, ...] | None = None
    unique: bool = False
    description: str | None = None


@dataclass(frozen=True)
class Contract:
    """A data contract: the columns and the frame-level rules a frame must meet.

    Attributes:
        columns: column name -> :class:`ColumnSpec`, in the order of the file.
        name: a name for messages and files.
        version: bumped by the user when the contract changes meaningfully.
        allow_extra_columns: whether columns not in the contract are accepted.
        min_rows: fewest rows accepted, or None.
        max_rows: most rows accepted, or None.
        description: free text for reviewers.
    """

    columns: dict[str, ColumnSpec] = field(default_factory=dict)
    name: str | None = None
    version: int = 1
    allow_extra_columns: bool = False
    min_rows: int | None = None
    max_rows: int | None = None
    description: str | None = None

    # ---------------------------------------------------------------------------- validation

    def validate(
        self,
        frame: Any,
        *,
        allow_extra_columns: bool | None = None,
        max_examples: int = 5,
        source: str | None = None,
    ) -> ValidationReport:
        """Check ``frame`` (pandas or polars) against this contract, collecting every violation.

        Args:
            frame: a pandas or polars DataFrame (or a dict of columns).
            allow_extra_columns: overrides the contract's ``allow_extra_columns``.
            max_examples: example rows kept per violation.
            source: what the frame is (a file name) for the report; defaults to the name.

        Returns:
            A :class:`~modelyard.data.report.ValidationReport`; call ``raise_for_errors()`` to
            turn failure into :class:`~modelyard.errors.ValidationFailed`.
        """
        from modelyard.data._checks import check_frame

        return check_frame(
            self,
            frame,
            allow_extra=self.allow_extra_columns
            if allow_extra_columns is None
            else allow_extra_columns,
            max_examples=max_examples,
            source=source or self.name,
        )

    # ---------------------------------------------------------------------------- files

    def to_toml(self) -> str:
        """The reviewable TOML text (stable order: file header, then columns in order)."""
        lines = [
            "# modelyard data contract: review it, edit it, commit it.",
            "# Per column: dtype (int, float, bool, string, datetime, date, duration, object),",
            "# nullable, min and max (inclusive), categories (allowed values), unique.",
            "# Check data with: modelyard check data FILE --contract THIS_FILE",
        ]
        if self.description:
            lines.append(f"description = {_toml.value(self.description)}")
        if self.name is not None:
            lines.append(f"name = {_toml.value(self.name)}")
        lines.append(f"version = {self.version}")
        lines.append("# accept columns that are not listed below")
        lines.append(f"allow_extra_columns = {_toml.value(self.allow_extra_columns)}")
        if self.min_rows is not None:
            lines.append(f"min_rows = {self.min_rows}")
        else:
            lines.append("# min_rows = 1")
        if self.max_rows is not None:
            lines.append(f"max_rows = {self.max_rows}")
        for spec in self.columns.values():
            lines.append("")
            lines.append(f"[columns.{_toml.key(spec.name)}]")
            if spec.description:
                lines.append(f"description = {_toml.value(spec.description)}")
            lines.append(f"dtype = {_toml.value(spec.dtype)}")
            lines.append(f"nullable = {_toml.value(spec.nullable)}")
            if spec.min is not None:
                lines.append(f"min = {_toml.value(spec.min)}")
            if spec.max is not None:
                lines.append(f"max = {_toml.value(spec.max)}")
            if spec.categories is not None:
                lines.append(f"categories = {_toml.value(list(spec.categories))}")
            lines.append(f"unique = {_toml.value(spec.unique)}")
        return "\n".join(lines) + "\n"

    def to_file(self, path: str | Path) -> Path:
        """Write :meth:`to_toml` to ``path`` (parents created) and return the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(self.to_toml(), encoding="utf-8")
        tmp.replace(p)
        return p

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<contract>") -> Contract:
        """Parse contract TOML text.

        Raises:
            ConfigError: on invalid TOML, an unknown key or a value of the wrong type, naming
                ``source``, the line and the key.
        """
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{source}: invalid TOML: {exc}",
                hint="fix the syntax at that line (see https://toml.io), or regenerate it with "
                "`modelyard check data FILE --contract CONTRACT --infer`",
                file=source,
            ) from exc
        return _parse(data, source=source, text=text)

    @classmethod
    def from_file(cls, path: str | Path) -> Contract:
        """Read a contract file.

        Raises:
            ConfigError: when the file is missing or malformed (naming file, line and key).
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError(
                f"contract file {str(p)!r} does not exist",
                hint=f"create one with `modelyard check data DATA_FILE --contract {p} --infer`",
                file=str(p),
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read contract file {str(p)!r}: {exc}", file=str(p)) from exc
        return cls.from_toml(text, source=str(p))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (datetimes as ISO strings), e.g. to store with a model version."""

        def plain(v: Any) -> Any:
            if isinstance(v, (_dt.date, _dt.datetime)):
                return v.isoformat()
            if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
                return str(v)
            return v

        columns: dict[str, Any] = {}
        for spec in self.columns.values():
            entry: dict[str, Any] = {"dtype": spec.dtype, "nullable": spec.nullable}
            if spec.min is not None:
                entry["min"] = plain(spec.min)
            if spec.max is not None:
                entry["max"] = plain(spec.max)
            if spec.categories is not None:
                entry["categories"] = list(spec.categories)
            entry["unique"] = spec.unique
            if spec.description:
                entry["description"] = spec.description
            columns[spec.name] = entry
        out: dict[str, Any] = {"version": self.version}
        if self.name is not None:
            out["name"] = self.name
        if self.description:
            out["description"] = self.description
        out["allow_extra_columns"] = self.allow_extra_columns
        if self.min_rows is not None:
            out["min_rows"] = self.min_rows
        if self.max_rows is not None:
            out["max_rows"] = self.max_rows
        out["columns"] = columns
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> Contract:
        """The inverse of :meth:`to_dict` (checked like a file; ConfigError when malformed)."""
        return _parse(dict(data), source=source, text=None)

    def with_columns(self, *columns: ColumnSpec) -> Contract:
        """A copy with ``columns`` added or replaced."""
        merged = dict(self.columns)
        for c in columns:
            merged[c.name] = c
        return replace(self, columns=merged)


# -------------------------------------------------------------------------------------------
# parsing


def _parse(data: dict[str, Any], *, source: str, text: str | None) -> Contract:
    def where(table: Sequence[str], key: str | None = None) -> str:
        if text is None:
            return ""
        line = _toml.find_line(text, table, key)
        return f" (line {line})" if line else ""

    def fail(msg: str, table: Sequence[str], key: str | None, hint: str | None = None) -> None:
        dotted = ".".join([*table, key] if key else table)
        raise ConfigError(
            f"{source}{where(table, key)}: {msg}",
            hint=hint or "see the comments at the top of an inferred contract for the keys",
            file=source,
            key=dotted,
        )

    for k in data:
        if k not in _TOP_KEYS:
            fail(
                f"unknown key {k!r}",
                [],
                k,
                hint=f"top-level keys are {', '.join(_TOP_KEYS)}; put column rules under "
                "[columns.NAME]",
            )
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        fail(f"'name' must be a string, not {type(name).__name__}", [], "name")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        fail("'description' must be a string", [], "description")
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        fail(f"'version' must be an integer, not {version!r}", [], "version")
    allow_extra = data.get("allow_extra_columns", False)
    if not isinstance(allow_extra, bool):
        fail(
            f"'allow_extra_columns' must be true or false, not {allow_extra!r}",
            [],
            "allow_extra_columns",
        )
    bounds: dict[str, int | None] = {}
    for k in ("min_rows", "max_rows"):
        v = data.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            fail(f"{k!r} must be a non-negative integer, not {v!r}", [], k)
        bounds[k] = v
    if (
        bounds["min_rows"] is not None
        and bounds["max_rows"] is not None
        and bounds["min_rows"] > bounds["max_rows"]
    ):
        # no frame could pass: a typo, not a rule
        fail(
            f"'min_rows' = {bounds['min_rows']} is above 'max_rows' = {bounds['max_rows']}; "
            "expected min_rows <= max_rows",
            [],
            "min_rows",
            hint="swap the two values, or remove the one that is wrong",
        )
    columns_raw = data.get("columns", {})
    if not isinstance(columns_raw, dict):
        fail("'columns' must be a table of [columns.NAME] tables", [], "columns")
    columns: dict[str, ColumnSpec] = {}
    for col_name, raw in columns_raw.items():
        table = ["columns", col_name]
        if not isinstance(raw, dict):
            fail(f"column {col_name!r} must be a table", ["columns"], col_name)
        for k in raw:
            if k not in _COLUMN_KEYS:
                fail(
                    f"unknown key {k!r} in column {col_name!r}",
                    table,
                    k,
                    hint=f"column keys are {', '.join(_COLUMN_KEYS)}",
                )
        if "dtype" not in raw:
            fail(f"column {col_name!r} has no 'dtype'", table, None)
        dtype = raw["dtype"]
        if not isinstance(dtype, str) or _DTYPE_ALIASES.get(dtype, dtype) not in KINDS:
            fail(
                f"column {col_name!r}: 'dtype' must be one of {', '.join(KINDS)}, not {dtype!r}",
                table,
                "dtype",
            )
        dtype = _DTYPE_ALIASES.get(dtype, dtype)
        flags: dict[str, bool] = {}
        for k, default in (("nullable", True), ("unique", False)):
            v = raw.get(k, default)
            if not isinstance(v, bool):
                fail(f"column {col_name!r}: {k!r} must be true or false, not {v!r}", table, k)
            flags[k] = v
        limits: dict[str, Any] = {}
        for k in ("min", "max"):
            if k not in raw:
                limits[k] = None
                continue
            v = raw[k]
            if isinstance(v, float) and math.isnan(v):
                # NaN compares false with every value: the rule would silently never fire
                fail(
                    f"column {col_name!r}: {k!r} = nan is not a number; expected a number, inf "
                    f"or -inf for dtype {dtype!r}",
                    table,
                    k,
                    hint=f"remove {k!r} for no bound, or write {'-inf' if k == 'min' else 'inf'} "
                    "for an open end",
                )
            coerced = _coerce_bound(dtype, v)
            if coerced is None:
                fail(
                    f"column {col_name!r}: {k!r} = {v!r} is not a valid bound for dtype {dtype!r}",
                    table,
                    k,
                    hint="numbers for int/float, datetimes (1970-01-01T00:00:00) for datetime, "
                    "dates for date; no bounds for other dtypes",
                )
            limits[k] = coerced
        if limits["min"] is not None and limits["max"] is not None:
            try:
                inverted = limits["min"] > limits["max"]
            except TypeError:
                inverted = False
            if inverted:
                fail(
                    f"column {col_name!r}: min {limits['min']!r} is above max {limits['max']!r}",
                    table,
                    "min",
                )
        cats = raw.get("categories")
        if cats is not None:
            if not isinstance(cats, list) or not all(
                isinstance(c, (str, int, float, bool)) for c in cats
            ):
                fail(
                    f"column {col_name!r}: 'categories' must be an array of strings or numbers",
                    table,
                    "categories",
                )
            cats = tuple(cats)
        desc = raw.get("description")
        if desc is not None and not isinstance(desc, str):
            fail(f"column {col_name!r}: 'description' must be a string", table, "description")
        columns[col_name] = ColumnSpec(
            name=col_name,
            dtype=dtype,
            nullable=flags["nullable"],
            min=limits["min"],
            max=limits["max"],
            categories=cats,
            unique=flags["unique"],
            description=desc,
        )
    return Contract(
        columns=columns,
        name=name,
        version=version,
        allow_extra_columns=allow_extra,
        min_rows=bounds["min_rows"],
        max_rows=bounds["max_rows"],
        description=description,
    )


def _coerce_bound(dtype: str, v: Any) -> Any:
    """The bound in the contract's terms, or None when it does not fit the dtype."""
    if dtype in ("int", "float"):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            if isinstance(v, str) and v in ("inf", "-inf"):
                return float(v)
            return None
        return v
    if dtype == "datetime":
        if isinstance(v, str):
            try:
                return _dt.datetime.fromisoformat(v)
            except ValueError:
                return None
        if isinstance(v, _dt.datetime):
            return v
        if isinstance(v, _dt.date):
            return _dt.datetime(v.year, v.month, v.day)
        return None
    if dtype == "date":
        if isinstance(v, str):
            try:
                return _dt.date.fromisoformat(v)
            except ValueError:
                return None
        if isinstance(v, _dt.datetime):
            return v.date()
        if isinstance(v, _dt.date):
            return v
        return None
    return None


# -------------------------------------------------------------------------------------------
# inference


def infer_contract(
    frame: Any,
    name: str | None = None,
    categorical_max: int = 50,
    unique: bool | Iterable[str] | None = None,
    allow_extra_columns: bool = False,
) -> Contract:
    """Infer a contract from reference data: dtypes, nullability, ranges, categories, uniqueness.

    Args:
        frame: a pandas or polars DataFrame.
        name: the contract's name.
        categorical_max: a string column with at most this many distinct values gets its
            values as ``categories``.
        unique: None infers ``unique`` for int and string columns whose values all differ
            (not floats or datetimes, which differ by chance); True for every all-distinct
            column; False for none; or the names of the columns that must be unique.
        allow_extra_columns: written to the contract as is.

    Returns:
        The contract; review it in its TOML form (:meth:`Contract.to_file`) before relying on it.
    """
    import numpy as np

    fv = view(frame)
    wanted_unique: set[str] | None = None
    if unique is not None and not isinstance(unique, bool):
        wanted_unique = set(unique)
        missing = sorted(wanted_unique - set(fv.columns))
        if missing:
            raise InvalidInputError(
                f"unique columns {missing} are not in the frame",
                hint=f"the frame has {fv.columns}",
            )
    specs: dict[str, ColumnSpec] = {}
    for col_name in fv.columns:
        col = fv.column(col_name)
        nulls = col.null_count()
        non_null = col.n - nulls
        lo: Any = None
        hi: Any = None
        cats: tuple[Any, ...] | None = None
        if col.kind in RANGED and non_null:
            values, mask = col.numbers()
            if mask is not None:
                values = values[~mask]
            if col.kind == "float":
                lo, hi = float(np.fmin.reduce(values)), float(np.fmax.reduce(values))
            else:
                lo_i, hi_i = int(values.min()), int(values.max())
                if col.kind == "int":
                    lo, hi = lo_i, hi_i
                    if hi > _MAX_INT64:  # TOML integers are 64-bit signed
                        hi = float(hi)
                elif col.kind == "datetime":
                    lo, hi = from_epoch_us(lo_i), from_epoch_us(hi_i)
                    if col.aware:  # written with a Z suffix, so the file says it is UTC
                        lo, hi = lo.replace(tzinfo=_dt.UTC), hi.replace(tzinfo=_dt.UTC)
                else:
                    lo, hi = from_epoch_us(lo_i).date(), from_epoch_us(hi_i).date()
        all_distinct: bool | None = None

        def distinct_all(c: ColumnView = col, nn: int = non_null) -> bool:
            return nn > 1 and not c.has_duplicates()

        if col.kind == "string" and non_null:
            found = col.distinct(categorical_max)
            if found is not None:
                all_distinct = len(found) == non_null and non_null > 1
                if not all_distinct:
                    cats = tuple(found)
        if wanted_unique is not None:
            is_unique = col_name in wanted_unique
        elif unique is False:
            is_unique = False
        elif unique is True or col.kind in ("int", "string"):
            is_unique = all_distinct if all_distinct is not None else distinct_all()
        else:
            is_unique = False
        specs[col_name] = ColumnSpec(
            name=col_name,
            dtype=col.kind,
            nullable=nulls > 0,
            min=lo,
            max=hi,
            categories=cats,
            unique=bool(is_unique),
        )
    return Contract(columns=specs, name=name, allow_extra_columns=allow_extra_columns)


# -------------------------------------------------------------------------------------------
# validation


def validate(frame: Any, contract: Contract | str | Path, **kwargs: Any) -> ValidationReport:
    """Validate ``frame`` against ``contract`` (a :class:`Contract` or a contract file path).

    Keyword arguments are those of :meth:`Contract.validate`.
    """
    if not isinstance(contract, Contract):
        contract = Contract.from_file(contract)
    return contract.validate(frame, **kwargs)
