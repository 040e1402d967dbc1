"""The SQL metadata store: SQLite (WAL) by default, PostgreSQL by URL, versioned by Alembic.

Opening is cheap: engines are cached per URL within a process and the schema revision is checked
once per URL. A new, empty database is migrated to the head revision on open; a database whose
revision is behind raises :class:`~modelyard.errors.SchemaOutdatedError` naming ``modelyard db
upgrade``, and one written by a newer modelyard says so.

SQLite transactions: the driver's implicit transactions are turned off and SQLAlchemy's
``begin`` emits ``BEGIN`` itself. Write transactions (:meth:`MetadataStore.begin`) use ``BEGIN
IMMEDIATE``, so concurrent writers queue on the busy timeout instead of failing with "database is
locked" when a read lock cannot be upgraded; reads (:meth:`MetadataStore.read`) use a deferred
``BEGIN`` and never block writers under WAL.

The hot path does not import SQLAlchemy. A SQLite file store that is already at the head revision
is opened, checked and written with the standard library's ``sqlite3`` alone: the engine (and
SQLAlchemy with it) is built on first use of :attr:`MetadataStore.engine`, :meth:`~MetadataStore.
begin`, :meth:`~MetadataStore.read` and the other Core-level methods. The statements of the hot
path (starting and ending runs, flushing their records, the step cache) are plain SQL with
``:name`` parameters, valid on SQLite and PostgreSQL alike, run through :meth:`MetadataStore.write`
and :meth:`MetadataStore.query`: on a SQLite file over a raw ``sqlite3`` connection (one per
thread, configured as the engine's), otherwise over the engine.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import (
    ConfigError,
    InvalidInputError,
    NotFoundError,
    SchemaOutdatedError,
    ServiceUnavailable,
)

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.sql.elements import ClauseElement

    from modelyard.config import Settings

__all__ = ["HEAD_REVISION", "MIGRATIONS_DIR", "REVISIONS", "MetadataStore", "SqlTx"]

#: Revisions in order; the last is what this code writes and expects.
REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005", "0006", "0007")
HEAD_REVISION = REVISIONS[-1]
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: The head schema as SQLite DDL: a new SQLite store is created from it without Alembic.
SQLITE_HEAD_SQL = Path(__file__).resolve().parent / "sqlite_head.sql"

SQLITE_BUSY_TIMEOUT_S = 30.0
_BEGIN_OPTION = "modelyard_begin"  # execution option: "DEFERRED" | "IMMEDIATE" | "" (autocommit)
_PG_MIGRATION_LOCK = 0x6D6F64656C  # pg_advisory_xact_lock key serialising first-open migrations

_MAX_CACHED_ENGINES = 32
_lock = threading.Lock()
_engines: OrderedDict[str, Engine] = OrderedDict()  # least recently opened first
_checked: set[str] = set()  # URLs found at the head revision in this process
_raw = threading.local()  # per thread: .conns, an OrderedDict of SQLite path -> sqlite3 handle
_MAX_RAW_PER_THREAD = 8
# Every open raw handle with the thread that owns it. Strong references on purpose: in a forked
# child, CPython drops the other threads' thread-local data before any Python hook runs, which
# would close (through garbage collection) the handles of the parent's background threads.
_owned: dict[int, tuple[weakref.ref[threading.Thread], Any]] = {}  # id(conn) -> (owner, conn)
_owned_lock = threading.Lock()
_inherited: list[Any] = []  # a forked child's inherited handles: never used, never closed


def _after_fork_in_child() -> None:
    # A forked child must not share the parent's pooled connections (SQLite handles and PostgreSQL
    # sockets); dispose(close=False) gives each engine a fresh pool without closing the parent's.
    for engine in _engines.values():
        engine.dispose(close=False)
    # The parent's raw sqlite3 handles must not be used here, nor closed (SQLite forbids both
    # across fork): keep them referenced so garbage collection never closes them in the child.
    global _raw, _owned_lock
    _inherited.extend(conn for _, conn in _owned.values())
    _owned.clear()
    _owned_lock = threading.Lock()  # another thread may have held it at the fork
    _raw = threading.local()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _sqlite_file(url: str) -> str | None:
    """The file (absolute) of a plain ``sqlite:///path`` URL, or None (memory, options, other DBs).

    Only URLs whose meaning is plain are taken (no ``?`` options, no ``%`` escapes); anything
    else goes through SQLAlchemy's URL parsing and the engine.
    """
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(prefix):
            path = url[len(prefix) :]
            if not path or path == ":memory:" or path.startswith("file:") or "?" in path:
                return None
            if "%" in path:
                return None
            # absolute now, as the engine makes it: threads connecting later (the flusher) must
            # open this file even if the cwd has changed since
            return os.path.abspath(path)
    return None


def _configure_sqlite(dbapi_conn: Any) -> None:
    """What every SQLite connection gets, raw or pooled: autocommit driver, WAL, busy timeout."""
    # Take transaction control away from the sqlite3 module: we emit BEGIN ourselves.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        # WAL + NORMAL: a crash of the process never loses a commit; only power loss may drop
        # the last transactions, never corrupting the file.
        cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()


def _raw_connection(path: str) -> Any:
    """This thread's sqlite3 connection to ``path`` (opened and configured on first use)."""
    conns: OrderedDict[str, Any] | None = getattr(_raw, "conns", None)
    if conns is None:
        conns = _raw.conns = OrderedDict()
    conn = conns.get(path)
    if conn is not None:
        conns.move_to_end(path)
        return conn
    import sqlite3

    conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False)
    _configure_sqlite(conn)
    conns[path] = conn
    _own(conn)
    while len(conns) > _MAX_RAW_PER_THREAD:
        _close_raw(conns.popitem(last=False)[1])
    return conn


def _own(conn: Any) -> None:
    """Record ``conn`` as this thread's; close the handles of threads that have ended."""
    main = threading.main_thread()  # "not alive" from interpreter shutdown on, yet runs atexit
    with _owned_lock:
        for key, (owner, other) in list(_owned.items()):
            thread = owner()
            if thread is None or (thread is not main and not thread.is_alive()):
                del _owned[key]  # its thread has returned: nobody can use the handle any more
                other.close()
        _owned[id(conn)] = (weakref.ref(threading.current_thread()), conn)


def _close_raw(conn: Any) -> None:
    with _owned_lock:
        _owned.pop(id(conn), None)
    conn.close()


def _drop_raw_connection(path: str) -> None:
    conns: OrderedDict[str, Any] | None = getattr(_raw, "conns", None)
    if conns is not None and path in conns:
        _close_raw(conns.pop(path))


def _raw_revision(path: str) -> str | None:
    """The revision of an existing SQLite file read with sqlite3 alone; None when unknown."""
    import sqlite3

    if not os.path.isfile(path):
        return None
    try:
        rows = _raw_connection(path).execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:  # no table yet, not a database, locked past the timeout: the slow path
        _drop_raw_connection(path)
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


def sqlite_head_statements() -> list[str] | None:
    """The DDL statements of :data:`SQLITE_HEAD_SQL`, or None when it is not for the head."""
    try:
        text = SQLITE_HEAD_SQL.read_text(encoding="utf-8")
    except OSError:
        return None
    if text.partition("\n")[0].strip() != f"-- revision {HEAD_REVISION}":
        return None
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return [stmt.strip() for stmt in body.split(";\n") if stmt.strip()]


def _create_sqlite_at_head(url: str, path: str) -> bool:
    """Create a new SQLite store at the head revision with sqlite3 alone; False: not done.

    Only for a file that does not exist yet (or is empty). Runs in one ``BEGIN IMMEDIATE``
    transaction that first checks that no table exists, so processes creating the same store
    at once create it once. Anything unexpected leaves the work to Alembic (the caller's
    fallback), which reports errors properly.
    """
    import sqlite3

    if os.path.exists(path) and os.path.getsize(path) > 0:
        return False
    statements = sqlite_head_statements()
    if statements is None:
        return False
    _make_sqlite_folder(url, path)
    try:
        conn = _raw_connection(path)
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                conn.execute("ROLLBACK")
                return _raw_revision(path) == HEAD_REVISION  # another process made it
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (HEAD_REVISION,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error:
        _drop_raw_connection(path)
        return False
    return True


class SqlTx:
    """Plain SQL with ``:name`` parameters on one connection, inside a transaction or not.

    Handed out by :meth:`MetadataStore.write` and :meth:`MetadataStore.query`. The SQL must be
    valid on SQLite and PostgreSQL (``INSERT ... ON CONFLICT (...) DO UPDATE SET c =
    excluded.c`` is); quote ``"user"``. Values are plain Python: JSON columns take text (SQLite)
    and come back as text on SQLite and parsed on PostgreSQL, see :func:`json_value`.
    """

    __slots__ = ("_conn", "_cursor", "dialect")

    def __init__(self, *, cursor: Any = None, conn: Connection | None = None) -> None:
        self._cursor = cursor
        self._conn = conn
        self.dialect = "sqlite" if cursor is not None else str(conn.dialect.name)  # type: ignore[union-attr]

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement; returns its rows (empty for statements without rows)."""
        if self._cursor is not None:
            self._cursor.execute(sql, params or {})
            return list(self._cursor.fetchall())
        result = self._conn.execute(_text(sql), dict(params or {}))  # type: ignore[union-attr]
        return [tuple(r) for r in result.all()] if result.returns_rows else []

    def executemany(self, sql: str, rows: list[dict[str, Any]]) -> None:
        """Run one statement once per row (one driver ``executemany``)."""
        if not rows:
            return
        if self._cursor is not None:
            self._cursor.executemany(sql, rows)
        else:
            self._conn.execute(_text(sql), rows)  # type: ignore[union-attr]


_texts: dict[str, Any] = {}


def _text(sql: str) -> Any:
    stmt = _texts.get(sql)
    if stmt is None:
        import sqlalchemy as sa

        stmt = _texts[sql] = sa.text(sql)
    return stmt


def json_value(value: Any) -> Any:
    """A JSON column's value as read through :class:`SqlTx`: text on SQLite, parsed elsewhere."""
    if isinstance(value, str | bytes):
        import orjson

        return orjson.loads(value)
    return value


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparseable: mask anything between "://user:" (or ":/user:") and "@"
        import re

        return re.sub(r"(:/{1,2}[^:/@]*:)[^@]*@", r"\1***@", url)


def _make_sqlite_folder(url: str, database: str) -> None:
    folder = Path(database).expanduser().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the folder {str(folder)!r} for the SQLite store: {exc}",
            hint="point db_url or home at a writable folder",
            db_url=url,
        ) from exc


def _create_engine(url: str, *, create: bool) -> Engine:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise ConfigError(
            f"db_url {_safe_url(url)!r} is not a valid SQLAlchemy URL: {exc}",
            hint="use sqlite:////abs/path/modelyard.db or postgresql+psycopg://user@host/db",
            db_url=_safe_url(url),
        ) from exc
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        database = parsed.database or ""
        memory = database in ("", ":memory:") or database.startswith("file::memory:")
        if memory:
            from sqlalchemy.pool import StaticPool

            kwargs["poolclass"] = StaticPool
        elif create:
            _make_sqlite_folder(url, database)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
    elif backend == "postgresql":
        # pre-ping: a pooled connection the server dropped (a failover, pg_terminate_backend,
        # an idle timeout) is replaced at checkout instead of failing the next statement
        kwargs.update(pool_size=5, max_overflow=10, pool_recycle=3600, pool_pre_ping=True)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise ConfigError(
            f"no database driver for {_safe_url(url)!r}: {exc}",
            hint="for PostgreSQL: pip install 'modelyard[postgres]' and use postgresql+psycopg://",
            db_url=_safe_url(url),
        ) from exc
    if backend == "sqlite":
        _install_sqlite_hooks(engine)
    return engine


def _install_sqlite_hooks(engine: Engine) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        _configure_sqlite(dbapi_conn)  # SQLAlchemy emits BEGIN below

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        if mode:
            conn.exec_driver_sql(f"BEGIN {mode}")


def _get_engine(url: str, *, create: bool) -> Engine:
    engine = _engines.get(url)
    if engine is not None:
        if create and engine.dialect.name == "sqlite" and engine.url.database:
            # cached by an open(create=False): the folder may still be missing
            database = engine.url.database
            if database != ":memory:" and not database.startswith("file:"):
                _make_sqlite_folder(url, database)
        return engine
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create_engine(url, create=create)
            _engines[url] = engine
            # Bound the cache (test suites open hundreds of stores): an evicted engine still
            # works for stores holding it; its idle pooled connections are closed now.
            while len(_engines) > _MAX_CACHED_ENGINES:
                old_url, old = _engines.popitem(last=False)
                _checked.discard(old_url)
                old.dispose()
    return engine


class MetadataStore:
    """Connections and schema management for one metadata database.

    Build with :meth:`open` or :meth:`from_settings`; the constructor only stores its arguments.

    Args:
        engine: a SQLAlchemy engine (from :meth:`open`, which configures SQLite correctly).
        url: the URL the engine was made from.
    """

    def __init__(self, engine: Engine | None, url: str, *, create: bool = True) -> None:
        self._engine = engine
        self._url = url
        self._create = create
        self._sqlite_path = _sqlite_file(url)

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(cls, url: str, *, create: bool = True) -> MetadataStore:
        """Open the store at ``url``, creating it at the head revision if it is empty.

        Args:
            url: SQLAlchemy URL (``sqlite:////path/modelyard.db``, ``postgresql+psycopg://...``).
            create: migrate an empty database to the head revision; when False an empty database
                raises :class:`NotFoundError`.

        Raises:
            SchemaOutdatedError: the database is at an older revision (run ``modelyard db
                upgrade``) or at a revision newer than this modelyard knows.
            ConfigError: the URL is malformed or its driver is not installed.
            ServiceUnavailable: the database cannot be reached or opened.
        """
        path = _sqlite_file(url)
        if path is not None and (
            url in _checked
            or _raw_revision(path) == HEAD_REVISION
            or (create and _create_sqlite_at_head(url, path))
        ):
            _checked.add(url)  # at head: no engine (nor SQLAlchemy) until Core is needed
            return cls(None, url, create=create)
        store = cls(_get_engine(url, create=create), url, create=create)
        if url not in _checked:
            from sqlalchemy.exc import DatabaseError

            try:
                store._check_or_create(create=create)
            except DatabaseError as exc:  # OperationalError, and "file is not a database"
                raise ServiceUnavailable(
                    f"cannot use the metadata store {store.safe_url}: {exc.orig or exc}",
                    hint="check db_url (`modelyard config show`) and that the database server "
                    "is running and the file's folder is writable",
                    db_url=store.safe_url,
                ) from exc
            _checked.add(url)
        return store

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = True) -> MetadataStore:
        """Open the store named by ``settings.resolved_db_url``."""
        return cls.open(settings.resolved_db_url, create=create)

    @classmethod
    def open_unchecked(cls, url: str) -> MetadataStore:
        """Open without checking the revision: for ``modelyard db current/upgrade`` only."""
        return cls(_get_engine(url, create=True), url)

    # ------------------------------------------------------------------ properties
    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (built on first use)."""
        if self._engine is None:
            self._engine = _get_engine(self._url, create=self._create)
        return self._engine

    @property
    def url(self) -> str:
        """The URL this store was opened with."""
        return self._url

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages."""
        return _safe_url(self._url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        if self._sqlite_path is not None:
            return "sqlite"
        return str(self.engine.dialect.name)

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction, committed on success and rolled back on error.

        A refusal by the database (unreachable, a connection dropped mid-transaction, locked
        past the busy timeout) raises :class:`ServiceUnavailable`.

        On SQLite it starts with ``BEGIN IMMEDIATE``: the write lock is taken up front, so
        concurrent writers wait (up to the busy timeout) instead of failing mid-transaction.
        Do not open a second write transaction while one is open in the same thread: on SQLite
        it would wait for the first one's lock until the busy timeout.
        """
        with self._refusals("write"), self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: one consistent snapshot; never blocks writers on SQLite/WAL."""
        with self._refusals("read"), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def connect_autocommit(self) -> Iterator[Connection]:
        """A connection whose statements each run on their own (no ``BEGIN`` on SQLite).

        The fastest path for a single ``SELECT``; use :meth:`read` when several statements must
        see the same snapshot.
        """
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(**{_BEGIN_OPTION: ""})
            yield conn

    @contextmanager
    def write(self) -> Iterator[SqlTx]:
        """A write transaction for plain SQL (:class:`SqlTx`), committed on success.

        On a SQLite file: this thread's raw ``sqlite3`` connection and ``BEGIN IMMEDIATE``, no
        SQLAlchemy. Elsewhere: :meth:`begin`. The same rule as :meth:`begin` holds: no second
        write transaction in the same thread while one is open.

        Raises:
            ServiceUnavailable: the database refused the work (locked past the busy timeout,
                read-only, full disk, unreachable), naming the store.
        """
        path = self._sqlite_path
        with self._refusals("write"):
            if path is None:
                with self.begin() as conn:
                    yield SqlTx(conn=conn)
                return
            conn = _raw_connection(path)
            cursor = conn.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    yield SqlTx(cursor=cursor)
                    cursor.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            finally:
                cursor.close()

    @contextmanager
    def query(self) -> Iterator[SqlTx]:
        """Plain SQL reads (:class:`SqlTx`), each statement on its own (no snapshot).

        On a SQLite file: this thread's raw ``sqlite3`` connection. Elsewhere:
        :meth:`connect_autocommit`.

        Raises:
            ServiceUnavailable: as :meth:`write`.
        """
        path = self._sqlite_path
        with self._refusals("read"):
            if path is None:
                with self.connect_autocommit() as conn:
                    yield SqlTx(conn=conn)
                return
            cursor = _raw_connection(path).cursor()
            try:
                yield SqlTx(cursor=cursor)
            finally:
                cursor.close()

    @contextmanager
    def _refusals(self, what: str) -> Iterator[None]:
        """Re-raise the database refusing a read or write as :class:`ServiceUnavailable`."""
        try:
            yield
        except Exception as exc:
            refused = self._refused(exc, what)
            if refused is None:
                raise
            raise refused from exc

    def _refused(self, exc: Exception, what: str) -> ServiceUnavailable | None:
        """A :class:`ServiceUnavailable` when the database refused the work, else None."""
        import sqlite3

        operational = isinstance(exc, sqlite3.OperationalError)
        if not operational and "sqlalchemy" in sys.modules:
            from sqlalchemy.exc import OperationalError

            operational = isinstance(exc, OperationalError)
        if not operational:
            return None  # ours (NotFoundError, ...), constraint violations, programming errors
        return ServiceUnavailable(
            f"the metadata store {self.safe_url} refused a {what}: "
            f"{getattr(exc, 'orig', None) or exc}",
            hint="check that the database (and for SQLite its file and folder) is reachable "
            "and writable with free disk space; 'database is locked' means another process "
            f"held the write lock longer than the {SQLITE_BUSY_TIMEOUT_S:.0f} s busy timeout",
            db_url=self.safe_url,
        )

    def fetch(self, statement: ClauseElement, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run one read-only statement on a raw driver connection and return its rows.

        The hot path for lookups (alias resolution): the statement is compiled once per
        dialect and cached (pass module-level statements, not ones built per call), and
        execution skips SQLAlchemy's result machinery, so values come back as the driver
        returns them (JSON columns are text on SQLite).
        """
        compiled = _compiled(statement, self.engine)
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                if compiled[1] is None:
                    cursor.execute(compiled[0], dict(params))
                else:
                    cursor.execute(compiled[0], tuple(params[k] for k in compiled[1]))
                return list(cursor.fetchall())
            finally:
                cursor.close()
        finally:
            raw.close()

    # ------------------------------------------------------------------ schema
    @staticmethod
    def head_revision() -> str:
        """The schema revision this modelyard writes."""
        return HEAD_REVISION

    def current_revision(self) -> str | None:
        """The database's Alembic revision, or None when it has none (empty or base)."""
        with self.connect_autocommit() as conn:
            return _read_revision(conn)

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the database to ``revision`` (default: the head) through Alembic.

        Raises:
            SchemaOutdatedError: the database is at a revision newer than this modelyard.
            InvalidInputError: ``revision`` is unknown.
        """
        self._alembic("upgrade", revision)

    def downgrade(self, revision: str) -> None:
        """Migrate the database down to ``revision`` (``"base"`` drops every table)."""
        self._alembic("downgrade", revision)

    def stamp(self, revision: str) -> None:
        """Record ``revision`` as current without running migrations (repair only)."""
        self._alembic("stamp", revision)

    def _alembic(self, verb: str, revision: str) -> None:
        from alembic import command
        from alembic.util import CommandError

        if revision not in (*REVISIONS, "head", "base"):
            raise InvalidInputError(
                f"unknown schema revision {revision!r}; known: {', '.join(REVISIONS)}",
                hint="use `head`, `base` or one of the known revisions",
                revision=revision,
            )
        with self._migration_transaction() as conn:
            current = _read_revision(conn)
            if current is not None and current not in REVISIONS:
                self._judge(current, has_tables=True)
            try:
                getattr(command, verb)(self._alembic_config(conn), revision)
            except CommandError as exc:
                raise InvalidInputError(
                    f"cannot {verb} {self.safe_url} to {revision!r}: {exc}",
                    hint="check `modelyard db current`",
                    revision=revision,
                ) from exc
        _checked.discard(self._url)

    def check(self) -> None:
        """Raise :class:`SchemaOutdatedError` unless the database is at the head revision."""
        with self.connect_autocommit() as conn:
            self._judge(_read_revision(conn), has_tables=_has_tables(conn))

    def dispose(self) -> None:
        """Close pooled connections and forget this URL (tests and long-lived tools)."""
        with _lock:
            _engines.pop(self._url, None)
            _checked.discard(self._url)
        if self._sqlite_path is not None:
            _drop_raw_connection(self._sqlite_path)
        if self._engine is not None:
            self._engine.dispose()

    # ------------------------------------------------------------------ internals
    def _alembic_config(self, conn: Connection) -> Config:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        cfg.set_main_option("sqlalchemy.url", self._url.replace("%", "%%"))
        cfg.attributes["connection"] = conn
        return cfg

    @contextmanager
    def _migration_transaction(self) -> Iterator[Connection]:
        """One transaction holding the write lock, so concurrent first opens migrate once."""
        with self.begin() as conn:
            if self.dialect == "postgresql":
                import sqlalchemy as sa

                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            yield conn

    def _check_or_create(self, *, create: bool) -> None:
        with self.connect_autocommit() as conn:  # the fast path: a store at head
            if _read_revision(conn) == HEAD_REVISION:
                return
        # Look again under the migration lock: two separate reads could straddle another
        # process's migration commit (no revision yet, then tables) and misjudge the store.
        with self._migration_transaction() as conn:
            revision = _read_revision(conn)
            has_tables = _has_tables(conn)
            if revision is None and not has_tables and create:
                from alembic import command

                command.upgrade(self._alembic_config(conn), "head")
                revision = _read_revision(conn)
                has_tables = True
        self._judge(revision, has_tables=has_tables)

    def _judge(self, revision: str | None, *, has_tables: bool) -> None:
        if revision == HEAD_REVISION:
            return
        where = self.safe_url
        if revision is None and not has_tables:
            raise NotFoundError(
                f"metadata store {where} is empty (no modelyard tables)",
                hint="run `modelyard db upgrade` to create it",
                db_url=where,
            )
        if revision is None or revision in REVISIONS:
            shown = revision or "base (no revision)"
            raise SchemaOutdatedError(
                f"metadata store {where} is at schema revision {shown} but this modelyard "
                f"expects revision {HEAD_REVISION}",
                hint="back up the database, then run `modelyard db upgrade`",
                current=revision,
                expected=HEAD_REVISION,
                db_url=where,
            )
        raise SchemaOutdatedError(
            f"metadata store {where} is at schema revision {revision}, newer than this "
            f"modelyard knows (up to {HEAD_REVISION}); it was written by a newer modelyard",
            hint="upgrade modelyard (pip install -U modelyard) on this machine",
            current=revision,
            expected=HEAD_REVISION,
            db_url=where,
        )


_compiled_cache: dict[tuple[int, str], tuple[str, tuple[str, ...] | None]] = {}


def _compiled(statement: ClauseElement, engine: Engine) -> tuple[str, tuple[str, ...] | None]:
    """(SQL text, positional parameter names or None for named style), cached per dialect."""
    key = (id(statement), engine.dialect.name)
    hit = _compiled_cache.get(key)
    if hit is None:
        compiled = statement.compile(dialect=engine.dialect)
        positional = getattr(compiled, "positiontup", None) if engine.dialect.positional else None
        hit = (compiled.string, tuple(positional) if positional is not None else None)
        _compiled_cache[key] = hit
        _compiled_keepalive.append(statement)  # keep id() unique while cached
    return hit


_compiled_keepalive: list[ClauseElement] = []


def _read_revision(conn: Connection) -> str | None:
    import sqlalchemy as sa

    if not _has_table(conn, "alembic_version"):
        return None
    rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    if not rows:
        return None
    if len(rows) > 1:  # branched history: never produced by our linear migrations
        return ",".join(sorted(str(r) for r in rows))
    return str(rows[0])


def _has_table(conn: Connection, name: str) -> bool:
    import sqlalchemy as sa

    if conn.dialect.name == "sqlite":
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :n"
    else:
        query = (
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = :n"
        )
    return conn.execute(sa.text(query), {"n": name}).first() is not None


def _has_tables(conn: Connection) -> bool:
    """Whether any modelyard or Alembic table exists.

    An empty database is created on open; one with only an empty ``alembic_version`` table was
    downgraded to base and is judged outdated instead of silently recreated.
    """
    import sqlalchemy as sa

    if conn.dialect.name == "sqlite":
        query = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({})"
    else:
        query = (
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name IN ({})"
        )
    from modelyard.store.schema import metadata

    names = sorted([*metadata.tables, "alembic_version"])
    marks = ", ".join(f":t{i}" for i in range(len(names)))
    params = {f"t{i}": n for i, n in enumerate(names)}
    return bool(conn.execute(sa.text(query.format(marks)), params).scalar())
