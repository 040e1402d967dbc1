"""Reading the request and feedback logs: a time window as Arrow, in batches, or joined.

Only the partitions of the window are listed (``model=`` / ``version=`` / ``hour=`` folders),
so a day's window over a year of logs opens a day's files. A file that is not valid Parquet (a
truncated upload, a stray file) is skipped, counted in :attr:`RequestLog.skipped_files` and
logged as a warning, never a crash.

Example:
    >>> log = RequestLog(store, "churn")                      # every version
    >>> window = log.joined(since=datetime(2026, 1, 1, tzinfo=UTC))
    >>> frame = window.to_pandas()
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

from modelyard.logs import get_logger
from modelyard.requestlog.schema import FEEDBACK, REQUESTS, partition_prefix

__all__ = ["RequestLog", "iter_file_batches"]

log = get_logger("modelyard.requestlog")

_HOUR = dt.timedelta(hours=1)
# a row group up to this size (uncompressed, every column) is fetched whole, in a few coalesced
# reads (what an object store needs); a larger one is read page by page, a buffer per column
PREBUFFER_MAX_BYTES = 64 << 20
_READ_BUFFER_BYTES = 1 << 20


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _hour_start(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


class RequestLog:
    """The request and feedback logs of one model (one version, or all).

    Args:
        store: an ``ArtifactStore``, or anything with ``fs`` (an fsspec file system) and
            ``root`` (the store's root path as ``fs`` names it); the logs live under
            ``<root>/named/``.
        model: the model name.
        version: one version, or ``None`` for every version.
    """

    def __init__(self, store: Any, model: str, version: str | None = None) -> None:
        self.store = store
        self.model = model
        self.version = version
        self.skipped_files = 0

    # ------------------------------------------------------------------ listing
    def _fs(self) -> Any:
        return self.store.fs

    def _base(self) -> str:
        return f"{str(self.store.root).rstrip('/')}/named"

    def files(
        self, kind: str, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> list[str]:
        """The Parquet files of ``kind`` (``requests`` / ``feedback``) whose hour meets the
        window ``[since, until)``, oldest hour first."""
        fs = self._fs()
        since, until = _utc(since), _utc(until)
        top = f"{self._base()}/{partition_prefix(kind, self.model)}".rstrip("/")
        if hasattr(fs, "invalidate_cache"):
            fs.invalidate_cache(top)  # the server adds files: never trust a cached listing
        if not fs.isdir(top):
            return []
        if self.version is not None:
            versions = [f"{top}/version={self.version}"]
        else:
            versions = [p for p in _dirs(fs, top) if p.rsplit("/", 1)[-1].startswith("version=")]
        found: list[tuple[str, str]] = []
        for vdir in versions:
            if not fs.isdir(vdir):
                continue
            for hdir in _dirs(fs, vdir):
                leaf = hdir.rsplit("/", 1)[-1]
                if not leaf.startswith("hour="):
                    continue
                start = _hour_start(leaf[len("hour=") :])
                if start is None:
                    continue
                if since is not None and start + _HOUR <= since:
                    continue
                if until is not None and start >= until:
                    continue
                found.extend(
                    (leaf, str(p)) for p in fs.ls(hdir, detail=False) if str(p).endswith(".parquet")
                )
        return [p for _, p in sorted(found)]

    # ------------------------------------------------------------------ reading
    def _read(self, path: str, columns: list[str] | None) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            with self._fs().open(path, "rb") as fh:
                pf = pq.ParquetFile(fh)
                return pf.read(columns=_present(pf, columns))
        except (pa.ArrowException, OSError, ValueError) as exc:
            self._skip(path, exc)
            return None

    def _skip(self, path: str, exc: BaseException) -> None:
        self.skipped_files += 1
        log.warning(
            "request log file skipped",
            extra={"path": path, "error": f"{type(exc).__name__}: {exc}"[:300]},
        )

    def _window(self, table: Any, since: Any, until: Any, columns: list[str] | None) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        if since is not None or until is not None:
            ts = table.column("ts")
            mask = None
            if since is not None:
                mask = pc.greater_equal(ts, pa.scalar(since, ts.type))
            if until is not None:
                upper = pc.less(ts, pa.scalar(until, ts.type))
                mask = upper if mask is None else pc.and_(mask, upper)
            table = table.filter(mask)
        if columns is not None:
            table = table.select([c for c in columns if c in table.column_names])
        return table

    def _table(
        self, kind: str, since: Any, until: Any, columns: list[str] | None, schema: Any
    ) -> Any:
        import pyarrow as pa

        since, until = _utc(since), _utc(until)
        tables = []
        for path in self.files(kind, since, until):
            t = self._read(path, columns)
            if t is not None:
                tables.append(self._window(t, since, until, columns))
        if not tables:
            empty = (
                schema if columns is None else pa.schema([f for f in schema if f.name in columns])
            )
            return empty.empty_table()
        return _concat(tables)

    def requests(
        self,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        *,
        columns: list[str] | None = None,
    ) -> Any:
        """The requests logged in ``[since, until)`` as one ``pyarrow.Table`` (one row per
        instance); ``columns`` selects some (``ts`` is read for the window either way)."""
        from modelyard.requestlog.schema import request_base_schema

        return self._table(REQUESTS, since, until, columns, request_base_schema())

    def iter_request_batches(
        self,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        *,
        columns: list[str] | None = None,
        batch_rows: int = 65_536,
    ) -> Iterator[Any]:
        """The same rows as :meth:`requests`, as ``pyarrow.RecordBatch`` es of at most
        ``batch_rows`` rows, one file at a time (memory bounded by a batch, not the window)."""
        import pyarrow as pa

        since, until = _utc(since), _utc(until)
        for path in self.files(REQUESTS, since, until):
            try:
                with self._fs().open(path, "rb") as fh:
                    for batch in iter_file_batches(fh, columns, batch_rows=batch_rows):
                        table = self._window(pa.Table.from_batches([batch]), since, until, columns)
                        if table.num_rows:
                            yield from table.to_batches()
            except (pa.ArrowException, OSError, ValueError) as exc:
                self._skip(path, exc)

    def feedback(self, since: dt.datetime | None = None, until: dt.datetime | None = None) -> Any:
        """The feedback logged in ``[since, until)`` as a ``pyarrow.Table``."""
        from modelyard.requestlog.schema import feedback_schema

        return self._table(FEEDBACK, since, until, None, feedback_schema())

    def joined(
        self,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        *,
        columns: list[str] | None = None,
        feedback_until: dt.datetime | None = None,
    ) -> Any:
        """Requests of ``[since, until)`` left-joined with the latest feedback per request id.

        Adds ``label``, ``outcome``, ``extra`` and ``feedback_ts`` (null where no feedback came
        yet). Feedback is read from ``since`` up to ``feedback_until`` (default: now), since
        labels arrive after the requests they judge.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        cols = None if columns is None else list(dict.fromkeys(["request_id", *columns]))
        req = self.requests(since, until, columns=cols)
        fb = self.feedback(since, feedback_until)
        if fb.num_rows:
            fb = fb.sort_by([("ts", "descending")])
            ids = fb.column("request_id")
            # index_in finds each id's first row: after the sort, its latest feedback
            first = pc.index_in(pc.unique(ids), value_set=ids)
            latest = fb.take(first).select(["request_id", "label", "outcome", "extra", "ts"])
            latest = latest.rename_columns(
                ["request_id", "label", "outcome", "extra", "feedback_ts"]
            )
        else:
            latest = pa.table(
                {
                    "request_id": pa.array([], pa.string()),
                    "label": pa.array([], fb.schema.field("label").type),
                    "outcome": pa.array([], pa.float64()),
                    "extra": pa.array([], pa.string()),
                    "feedback_ts": pa.array([], pa.timestamp("ms", tz="UTC")),
                }
            )
        # index_in + take instead of a hash join: Acero's join cannot carry list columns
        # (tensor inputs), and this keeps the requests' order
        where = pc.index_in(req.column("request_id"), value_set=latest.column("request_id"))
        picked = latest.take(where)
        for name in ("label", "outcome", "extra", "feedback_ts"):
            req = req.append_column(name, picked.column(name))
        return req


def iter_file_batches(
    fh: Any,
    columns: list[str] | None = None,
    *,
    batch_rows: int = 65_536,
    row_groups: Iterable[int] | None = None,
    dictionary: Iterable[str] = (),
    prebuffer_max_bytes: int = PREBUFFER_MAX_BYTES,
) -> Iterator[Any]:
    """The ``pyarrow.RecordBatch`` es of one open request-log Parquet file, one row group at a
    time, so that memory is bounded by a row group, not by the file.

    ``ParquetFile.iter_batches`` over a whole file fetches every row group it is given before
    its first batch (``pre_buffer``): a 1,000,000-row file of 30 columns held 174 MiB, and a
    window's memory grew with its files. Here each row group is fetched on its own, and one
    larger than ``prebuffer_max_bytes`` is read page by page instead.

    Args:
        fh: the file, open for reading (an fsspec or Python file).
        columns: the columns to read (with ``ts``), those the file lacks left out; None: all.
        batch_rows: rows per batch at most.
        row_groups: the row groups to read (default: all).
        dictionary: text columns to read as dictionaries (those the file has).
        prebuffer_max_bytes: the largest row group fetched whole.
    """
    import pyarrow.parquet as pq

    meta = pq.read_metadata(fh)
    groups = list(range(meta.num_row_groups) if row_groups is None else row_groups)
    largest = max((meta.row_group(g).total_byte_size for g in groups), default=0)
    whole = largest <= prebuffer_max_bytes
    names = set(meta.schema.to_arrow_schema().names)
    pf = pq.ParquetFile(
        fh,
        metadata=meta,
        read_dictionary=[c for c in dictionary if c in names] or None,
        pre_buffer=whole,
        buffer_size=0 if whole else _READ_BUFFER_BYTES,
    )
    cols = _present(pf, columns)
    for group in groups:
        yield from pf.iter_batches(batch_size=batch_rows, row_groups=[group], columns=cols)


def _dirs(fs: Any, path: str) -> list[str]:
    return [str(e["name"]) for e in fs.ls(path, detail=True) if e.get("type") == "directory"]


def _present(pf: Any, columns: list[str] | None) -> list[str] | None:
    """The asked columns (plus ``ts``, for the window) that this file has."""
    if columns is None:
        return None
    names = set(pf.schema_arrow.names)
    return [c for c in dict.fromkeys([*columns, "ts"]) if c in names]


def _concat(tables: list[Any]) -> Any:
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # a column typed differently in two files (a label numeric in one, text in another):
        # text is the common type
        names: dict[str, None] = {}
        for t in tables:
            names.update(dict.fromkeys(t.column_names))
        fixed = []
        for t in tables:
            cols = {}
            for name in t.column_names:
                types = {u.schema.field(name).type for u in tables if name in u.column_names}
                col = t.column(name)
                if len(types) > 1:
                    col = col.cast(pa.string())
                cols[name] = col
            fixed.append(pa.table(cols))
        return pa.concat_tables(fixed, promote_options="permissive")
