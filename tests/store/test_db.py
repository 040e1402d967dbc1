"""MetadataStore: creation at head, SQLite settings, revision checks, write-lock behaviour."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelyard.errors import (
    ConfigError,
    InvalidInputError,
    ModelyardError,
    NotFoundError,
    SchemaOutdatedError,
)
from modelyard.store import schema
from modelyard.store.db import HEAD_REVISION, REVISIONS, MetadataStore

# the db_url fixture's PostgreSQL half only: SQLite has no connection to drop
POSTGRES_ONLY = pytest.mark.parametrize(
    "db_url",
    [
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(
                    "MODELYARD_TEST_POSTGRES_URL" not in os.environ,
                    reason="MODELYARD_TEST_POSTGRES_URL is not set",
                ),
            ],
        )
    ],
    indirect=True,
)


def _table_names(store: MetadataStore) -> set[str]:
    return set(sa.inspect(store.engine).get_table_names())


def test_open_creates_an_empty_store_at_head(db_url: str) -> None:
    store = MetadataStore.open(db_url)
    assert store.current_revision() == HEAD_REVISION
    assert set(schema.metadata.tables) | {"alembic_version"} == _table_names(store)
    store.check()  # does not raise


def test_reopen_reuses_the_cached_engine(db_url: str) -> None:
    first = MetadataStore.open(db_url)
    second = MetadataStore.open(db_url)
    assert first.engine is second.engine


def test_sqlite_runs_in_wal_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    store = MetadataStore.open(f"sqlite:///{tmp_path / 'sub' / 'meta.db'}")
    with store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    # foreign keys are enforced: a run in a missing experiment is refused
    with pytest.raises(sa.exc.IntegrityError), store.begin() as conn:
        conn.execute(
            sa.insert(schema.runs).values(
                id="r" * 32, experiment_id=12345, status="RUNNING", start_time=0.0
            )
        )


def test_begin_commits_and_rolls_back(db_url: str) -> None:
    store = MetadataStore.open(db_url)
    with store.begin() as conn:
        conn.execute(sa.insert(schema.experiments).values(name="kept", created_at=1.0))

    def failing_transaction() -> None:
        with store.begin() as conn:
            conn.execute(sa.insert(schema.experiments).values(name="dropped", created_at=1.0))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_transaction()
    with store.read() as conn:
        names = conn.execute(sa.select(schema.experiments.c.name)).scalars().all()
    assert names == ["kept"]


def test_fetch_runs_a_compiled_statement_on_the_driver(db_url: str) -> None:
    store = MetadataStore.open(db_url)
    with store.begin() as conn:
        conn.execute(sa.insert(schema.experiments).values(name="e1", created_at=2.5))
    stmt = sa.select(schema.experiments.c.name, schema.experiments.c.created_at).where(
        schema.experiments.c.name == sa.bindparam("n")
    )
    assert store.fetch(stmt, {"n": "e1"}) == [("e1", 2.5)]
    assert store.fetch(stmt, {"n": "nope"}) == []


def test_store_at_an_older_revision_names_the_upgrade_command(db_url: str) -> None:
    store = MetadataStore.open(db_url)
    store.downgrade(REVISIONS[0])
    with pytest.raises(SchemaOutdatedError) as info:
        MetadataStore.open(db_url)
    text = str(info.value)
    assert f"revision {REVISIONS[0]}" in text
    assert f"expects revision {HEAD_REVISION}" in text
    assert "modelyard db upgrade" in text
    assert info.value.exit_code == 7
    store.upgrade()
    assert MetadataStore.open(db_url).current_revision() == HEAD_REVISION


def test_store_downgraded_to_base_is_outdated_not_recreated(db_url: str) -> None:
    store = MetadataStore.open(db_url)
    store.downgrade("base")
    assert _table_names(store) == {"alembic_version"}
    with pytest.raises(SchemaOutdatedError, match="base") as info:
        MetadataStore.open(db_url)
    assert "modelyard db upgrade" in str(info.value)


def test_store_newer_than_the_code_says_so(db_url: str) -> None:
    store = MetadataStore.open(db_url)
    with store.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    store.dispose()
    with pytest.raises(SchemaOutdatedError, match="newer") as info:
        MetadataStore.open(db_url)
    assert "9999" in str(info.value)
    assert "pip install -U modelyard" in str(info.value)
    with pytest.raises(SchemaOutdatedError, match="newer"):
        MetadataStore.open_unchecked(db_url).upgrade()


def test_open_without_create_refuses_an_empty_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(NotFoundError, match="modelyard db upgrade"):
        MetadataStore.open(url, create=False)


def test_unknown_revision_is_refused(db_url: str) -> None:
    store = MetadataStore.open(db_url)
    with pytest.raises(InvalidInputError, match="nope"):
        store.upgrade("nope")


def test_concurrent_read_then_write_transactions_queue_instead_of_failing(
    tmp_path: Path,
) -> None:
    """Each transaction reads, then writes: with a deferred BEGIN, concurrent ones would fail
    with 'database is locked' when upgrading their read lock; BEGIN IMMEDIATE makes them wait."""
    store = MetadataStore.open(f"sqlite:///{tmp_path / 'busy.db'}")
    errors: list[BaseException] = []
    per_thread, threads = 40, 4

    def work(tid: int) -> None:
        try:
            for i in range(per_thread):
                with store.begin() as conn:
                    n = conn.execute(sa.select(sa.func.count()).select_from(schema.experiments))
                    conn.execute(
                        sa.insert(schema.experiments).values(
                            name=f"t{tid}-{i}-{n.scalar()}", created_at=float(i)
                        )
                    )
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join(timeout=120)
    assert errors == []
    with store.read() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(schema.experiments))
        assert count.scalar() == per_thread * threads


_OPEN_CHILD = textwrap.dedent(
    """
    import sys
    from modelyard.store.db import MetadataStore
    print(MetadataStore.open(sys.argv[1]).current_revision())
    """
)


def test_processes_opening_a_fresh_store_at_once_migrate_it_once(db_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_CHILD, db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == HEAD_REVISION


def test_engine_cache_is_bounded_and_evicted_stores_keep_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelyard.store import db

    monkeypatch.setattr(db, "_MAX_CACHED_ENGINES", 2)
    # a SQLite store at head builds its engine on first use: .engine builds it
    first = MetadataStore.open(f"sqlite:///{tmp_path / 'first.db'}")
    assert first.engine is db._engines[first.url]
    for i in range(3):
        assert MetadataStore.open(f"sqlite:///{tmp_path / f's{i}.db'}").engine is not None
    assert len(db._engines) <= db._MAX_CACHED_ENGINES
    assert first.url not in db._engines
    with first.begin() as conn:
        conn.execute(sa.insert(schema.experiments).values(name="still works", created_at=0.0))
    assert MetadataStore.open(first.url).current_revision() == HEAD_REVISION


def test_unreachable_or_unopenable_stores_are_reported(tmp_path: Path) -> None:
    from modelyard.errors import ConfigError, ServiceUnavailable

    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    with pytest.raises(ServiceUnavailable, match="cannot use the metadata store"):
        MetadataStore.open(f"sqlite:///{blocked / 'meta.db'}", create=False)
    with pytest.raises(ConfigError, match="cannot create the folder"):
        MetadataStore.open(f"sqlite:///{blocked / 'sub' / 'meta.db'}")
    with pytest.raises(ConfigError, match="not a valid SQLAlchemy URL"):
        MetadataStore.open("not a url")
    with pytest.raises(ServiceUnavailable, match=r"127\.0\.0\.1"):
        MetadataStore.open("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=5")


def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    from modelyard.errors import ServiceUnavailable

    path = tmp_path / "meta.db"
    path.write_bytes(b"not a sqlite file, " * 500)
    with pytest.raises(ServiceUnavailable, match="file is not a database") as info:
        MetadataStore.open(f"sqlite:///{path}")
    assert info.value.hint is not None
    assert info.value.exit_code == 12


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg:/u:s3cretpw@host/db", "postgresql+psycopg://u:s3cretpw@host:port/db"],
)
def test_a_malformed_url_is_a_config_error_that_hides_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        MetadataStore.open(url)
    assert "s3cretpw" not in str(info.value)
    assert "s3cretpw" not in str(info.value.details)
    assert "postgresql+psycopg" in info.value.message


def test_open_with_create_after_a_failed_open_without_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'sub' / 'meta.db'}"
    with pytest.raises(ModelyardError):
        MetadataStore.open(url, create=False)
    store = MetadataStore.open(url, create=True)
    assert store.current_revision() == HEAD_REVISION


# ---------------------------------------------------------------- plain SQL, raw sqlite3 path
def test_write_and_query_run_plain_sql_on_both_databases(db_url: str) -> None:
    store = MetadataStore.open(db_url)
    with store.write() as tx:
        tx.execute(
            "INSERT INTO experiments (name, created_at) VALUES (:n, :t)", {"n": "plain", "t": 1.0}
        )
        tx.executemany(
            "INSERT INTO experiments (name, created_at) VALUES (:n, :t) "
            "ON CONFLICT (name) DO NOTHING",
            [{"n": "plain", "t": 2.0}, {"n": "other", "t": 3.0}],
        )

    def failing_write() -> None:
        with store.write() as tx:
            tx.execute("INSERT INTO experiments (name, created_at) VALUES ('gone', 4.0)")
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        failing_write()
    with store.query() as q:
        rows = q.execute("SELECT name, created_at FROM experiments ORDER BY name")
    assert rows == [("other", 3.0), ("plain", 1.0)]
    # what plain SQL wrote, Core reads
    with store.read() as conn:
        names = set(conn.execute(sa.select(schema.experiments.c.name)).scalars())
    assert names == {"other", "plain"}


def _modules_after(code: str, tmp_path: Path) -> set[str]:
    script = textwrap.dedent(code) + "\nimport sys\nprint(' '.join(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(out.stdout.split())


def test_a_sqlite_store_at_head_is_used_without_importing_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    MetadataStore.open(url)  # created here: the process below opens a store already at head
    loaded = _modules_after(
        f"""
        from modelyard.store.artifacts import ArtifactStore
        from modelyard.store.db import MetadataStore
        from modelyard.tracking.client import TrackingClient
        from modelyard.pipelines.cache import StepCache

        ms = MetadataStore.open({url!r})
        tc = TrackingClient(ms, ArtifactStore.open({str(tmp_path / "a")!r}), project_root=".")
        with tc.start_run(experiment="e", tags={{"t": 1}}) as run:
            run.log_params({{"p": 1}})
            run.log_metric("m", 0.5, step=3)
        ref = tc.artifact_store.put_bytes(b"x")
        cache = StepCache(ms, tc.artifact_store)
        record = {{"kind": "single", "ref": {{"sha256": ref.sha256, "codec": "json"}}}}
        cache.put("k" * 64, pipeline="p", step="s", outputs=record, run_id=run.id)
        assert cache.get("k" * 64) == (record, run.id)
        print(run.id)
        """,
        tmp_path,
    )
    assert not any(m == "sqlalchemy" or m.startswith("sqlalchemy.") for m in loaded)
    assert "alembic" not in loaded


def test_records_written_raw_read_back_through_core(tmp_path: Path) -> None:
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.tracking.client import TrackingClient

    url = f"sqlite:///{tmp_path / 'm.db'}"
    MetadataStore.open(url).dispose()
    ms = MetadataStore.open(url)
    assert ms._engine is None  # the raw path: no engine built yet
    tc = TrackingClient(ms, ArtifactStore.open(str(tmp_path / "a")), project_root=tmp_path)
    with tc.start_run(experiment="e", tags={"t": "1"}) as run:
        run.log_metric("m", 1.0, step=1)
        run.log_metric("m", 2.0, step=0)  # an older step does not replace the latest value
        run.set_tag("t", "2")
    info = tc.get_run(run.id)  # Core reads
    assert info.status == "FINISHED"
    assert info.tags["t"] == "2"
    assert info.metrics == {"m": 1.0}
    assert isinstance(info.lineage["environment"], dict)
    assert info.lineage["environment"]["python"]
    assert isinstance(info.lineage["git_dirty"], bool | None)


def test_forked_child_gets_its_own_raw_connection(tmp_path: Path) -> None:
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = MetadataStore.open(url)
    insert = "INSERT INTO experiments (name, created_at) VALUES (:n, 0)"
    with store.write() as tx:
        tx.execute(insert, {"n": "parent-before"})

    def child() -> None:
        with MetadataStore.open(url).write() as tx:
            tx.execute(insert, {"n": "child"})

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    with store.write() as tx:
        tx.execute(insert, {"n": "parent-after"})
    with store.query() as q:
        names = {r[0] for r in q.execute("SELECT name FROM experiments")}
    assert names == {"parent-before", "child", "parent-after"}


def test_processes_writing_runs_at_once_on_the_raw_path_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    MetadataStore.open(url)
    script = textwrap.dedent(
        f"""
        from modelyard.store.artifacts import ArtifactStore
        from modelyard.store.db import MetadataStore
        from modelyard.tracking.client import TrackingClient

        ms = MetadataStore.open({url!r})
        tc = TrackingClient(ms, ArtifactStore.open({str(tmp_path / "a")!r}), project_root=".")
        for i in range(25):
            run = tc.start_run(experiment="race", capture_lineage=False)
            run.log_metric("i", i)
            run.end()
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with MetadataStore.open(url).query() as q:
        counts = q.execute(
            "SELECT count(*), sum(CASE WHEN status = 'FINISHED' THEN 1 ELSE 0 END) FROM runs"
        )
        latest = q.execute("SELECT count(*) FROM latest_metrics")
    assert counts == [(100, 100)]
    assert latest == [(100,)]


def test_a_relative_sqlite_url_names_one_file_whatever_the_cwd_of_later_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The background flusher opens its own connection, possibly after a step changed the cwd;
    # it must write the file the URL named when the store was opened, as the engine does.
    (tmp_path / "proj").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    store = MetadataStore.open("sqlite:///meta.db")
    monkeypatch.chdir(tmp_path / "elsewhere")
    errors: list[BaseException] = []

    def write_from_another_thread() -> None:
        try:
            with store.write() as tx:
                tx.execute("INSERT INTO experiments (name, created_at) VALUES ('t', 0)")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=write_from_another_thread)
    thread.start()
    thread.join(60)
    assert errors == []
    assert list((tmp_path / "elsewhere").iterdir()) == []
    with store.query() as q:
        assert q.execute("SELECT name FROM experiments") == [("t",)]


def test_raw_handles_of_ended_threads_are_closed(tmp_path: Path) -> None:
    import sqlite3

    from modelyard.store import db as dbmod

    url = f"sqlite:///{tmp_path / 'm.db'}"
    MetadataStore.open(url)
    seen: list[sqlite3.Connection] = []

    def worker() -> None:
        with MetadataStore.open(url).query() as q:
            q.execute("SELECT 1")
        seen.append(dbmod._raw_connection(str(tmp_path / "m.db")))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    seen[0].execute("SELECT 1")  # still open: its thread ended, nobody has pruned yet
    other = tmp_path / "other.db"
    MetadataStore.open(f"sqlite:///{other}")  # a new handle prunes the ended thread's
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        seen[0].execute("SELECT 1")


def test_a_forked_child_never_closes_the_parents_thread_handles(tmp_path: Path) -> None:
    import multiprocessing

    from modelyard.store import db as dbmod

    url = f"sqlite:///{tmp_path / 'm.db'}"
    MetadataStore.open(url)
    opened = threading.Event()
    release = threading.Event()
    handle: list[int] = []

    def background() -> None:  # like the metrics flusher: a live thread holding a handle
        with MetadataStore.open(url).write() as tx:
            tx.execute("INSERT INTO experiments (name, created_at) VALUES ('bg', 0)")
        handle.append(id(dbmod._raw_connection(str(tmp_path / "m.db"))))
        opened.set()
        release.wait(60)

    thread = threading.Thread(target=background, daemon=True)
    thread.start()
    assert opened.wait(60)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.SimpleQueue()

    def child() -> None:
        queue.put(any(id(conn) == handle[0] for conn in dbmod._inherited))

    proc = ctx.Process(target=child)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert queue.get() is True  # kept, not garbage-collected (which would close it)
    release.set()
    thread.join(60)
    with MetadataStore.open(url).query() as q:  # the parent's store is intact
        assert q.execute("SELECT name FROM experiments") == [("bg",)]


def test_a_write_lock_held_past_the_busy_timeout_is_service_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from modelyard.errors import ServiceUnavailable
    from modelyard.store import db as dbmod
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.tracking.client import TrackingClient

    monkeypatch.setattr(dbmod, "SQLITE_BUSY_TIMEOUT_S", 0.2)  # new handles wait 0.2 s, not 30
    path = tmp_path / "m.db"
    url = f"sqlite:///{path}"
    store = MetadataStore.open(url)
    tc = TrackingClient(store, ArtifactStore.open(str(tmp_path / "a")), project_root=tmp_path)
    run = tc.start_run(experiment="e", capture_lineage=False)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    try:
        with pytest.raises(ServiceUnavailable, match="database is locked") as info:
            tc.start_run(experiment="e", capture_lineage=False)
        assert str(path) in info.value.message
        assert "busy timeout" in (info.value.hint or "")
        run.log_metric("m", 1.0)
        with pytest.raises(ServiceUnavailable):
            run.end()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    run.end()  # the buffered records and the final status are written once the lock is free
    assert tc.get_run(run.id).metrics == {"m": 1.0}
    assert tc.get_run(run.id).status == "FINISHED"


TERMINATE_FLOW = """
import os
import modelyard
import sqlalchemy as sa

@modelyard.step
def first() -> int:
    return 1

@modelyard.step
def failover(x: int) -> int:
    # what a PostgreSQL failover or an admin's pg_terminate_backend does to the run's pool
    admin = sa.create_engine(os.environ["ADMIN_URL"], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": os.environ["DB_NAME"]},
        ).scalar()
    admin.dispose()
    assert killed, "the run held no connection to terminate"
    return x + 1

@modelyard.pipeline
def flow():
    return failover(first())
"""


@POSTGRES_ONLY
def test_a_run_survives_postgres_dropping_its_connections(db_url: str, tmp_path: Path) -> None:
    """pg_terminate_backend mid-run: the next writes reconnect instead of failing."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(f'[tool.modelyard]\ndb_url = "{db_url}"\n')
    (project / "flows.py").write_text(TERMINATE_FLOW)
    url = sa.engine.make_url(db_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env |= {
        "CI": "true",
        "DB_NAME": str(url.database),
        "ADMIN_URL": url.set(database="postgres").render_as_string(hide_password=False),
    }
    done = subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "run", "flows:flow", "--max-parallel", "1"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "steps: 2 ran, 0 cached, 0 failed" in done.stdout


def _drop_the_connection_inside_a_transaction(store: MetadataStore, admin: sa.Engine) -> None:
    with store.begin() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        with admin.connect() as other:
            other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        conn.execute(sa.text("SELECT 1"))


@POSTGRES_ONLY
def test_a_connection_dropped_inside_a_transaction_is_service_unavailable(db_url: str) -> None:
    from modelyard.errors import ServiceUnavailable

    store = MetadataStore.open(db_url)
    admin = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    try:
        with pytest.raises(ServiceUnavailable, match="refused a write: terminating connection"):
            _drop_the_connection_inside_a_transaction(store, admin)
        with store.begin() as conn:  # and the next transaction gets a live connection
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        admin.dispose()
