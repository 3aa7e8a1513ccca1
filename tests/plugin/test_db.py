"""Database plumbing: concurrent migrations, SQLite writers in several processes, UTC times."""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from sharewise.plugin.db import current_revision, make_engine, upgrade

HEAD = "0012_online_typed"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _migrate(url: str, barrier) -> None:
    barrier.wait()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()


def _run_concurrently(target, args_list) -> list[int]:
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    return [p.exitcode for p in procs]


@pytest.fixture
def empty_database_url(backend, tmp_path, request):
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    request.getfixturevalue("services_required")
    name = f"sharewise_migrate_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_processes_starting_at_once_migrate_once(empty_database_url):
    barrier = mp.get_context("fork").Barrier(4)
    codes = _run_concurrently(_migrate, [(empty_database_url, barrier)] * 4)
    assert codes == [0, 0, 0, 0]
    engine = make_engine(empty_database_url)
    assert current_revision(engine) == HEAD
    engine.dispose()


def _connect(url: str, barrier) -> None:
    engine = make_engine(url)
    barrier.wait()
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
    engine.dispose()


def test_first_connections_to_a_new_sqlite_file_all_open(tmp_path):
    """Eight processes opening a new file at once race to switch it to WAL; SQLite answers the
    losers at once with "database is locked" (no busy wait), so before the retry about one
    round in five failed here. Twenty rounds: every connection opens, the file is in WAL."""
    for round_ in range(20):
        url = f"sqlite:///{tmp_path / f'new{round_}.db'}"
        barrier = mp.get_context("fork").Barrier(8)
        assert _run_concurrently(_connect, [(url, barrier)] * 8) == [0] * 8, f"round {round_}"
        with sqlite3.connect(tmp_path / f"new{round_}.db") as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _insert_many(url: str, barrier, n: int) -> None:
    from sharewise.plugin.db import session_scope  # noqa: F401  (same module the app uses)

    engine = make_engine(url)
    barrier.wait()
    for i in range(n):
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO webhook_events (tenant, webhook_id, event_type, received_at, "
                "response_status, response_body) VALUES ('t', ?, 'x', '2026-01-01', 200, '{}')",
                (f"{os.getpid()}-{i}",),
            )
    engine.dispose()


def test_sqlite_writers_in_several_processes(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    engine = make_engine(url)
    upgrade(engine)
    barrier = mp.get_context("fork").Barrier(4)
    assert _run_concurrently(_insert_many, [(url, barrier, 100)] * 4) == [0, 0, 0, 0]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM webhook_events").scalar() == 400
    engine.dispose()


def test_datetimes_come_back_aware_utc(app, db_session):
    from sharewise.plugin.records.models import WebhookEvent

    local = datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    db_session.add(WebhookEvent(tenant="t", webhook_id="w", event_type="x", received_at=local,
                                response_status=200, response_body={}))
    db_session.commit()
    db_session.expire_all()
    got = db_session.scalar(sa.select(WebhookEvent.received_at))
    assert got == local and got.tzinfo is not None and got.utcoffset() == timedelta(0)
    assert got == datetime(2026, 6, 1, 11, 0, tzinfo=UTC)
    with pytest.raises(sa.exc.StatementError):
        db_session.add(WebhookEvent(tenant="t", webhook_id="naive", event_type="x",
                                    received_at=datetime(2026, 6, 1), response_status=200,
                                    response_body={}))
        db_session.commit()


def test_sqlite_connections_are_configured_as_documented(tmp_path):
    """WAL, a busy timeout, foreign keys and synchronous=FULL on every connection, SQLite's
    own WAL checkpoints left on, and every write transaction begun IMMEDIATE (it holds the
    write lock from its first statement)."""
    import sqlite3

    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}", busy_timeout=2.5)
    with engine.connect() as conn:
        pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                  for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous",
                               "wal_autocheckpoint")}
    assert pragma == {"journal_mode": "wal", "busy_timeout": 2500, "foreign_keys": 1,
                      "synchronous": 2, "wal_autocheckpoint": 1000}
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(tmp_path / "c.db", timeout=0.1, isolation_level=None)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("SELECT 1")  # a read only: the lock is already held
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released with the commit
        other.execute("ROLLBACK")
    finally:
        other.close()
        engine.dispose()


def test_a_writer_waiting_past_the_busy_timeout_is_told_the_database_is_locked(tmp_path):
    import sqlite3

    from sharewise.plugin.db import is_locked

    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}", busy_timeout=0.2)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(tmp_path / "l.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sa.exc.OperationalError) as caught, engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert is_locked(caught.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
    with engine.begin() as conn:  # the failed BEGIN left nothing behind
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    engine.dispose()
    assert not is_locked(ValueError("database is locked"))


def test_in_memory_uri_databases_leave_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///file::memory:?cache=shared&uri=true", "sqlite://"):
        engine = make_engine(url)
        upgrade(engine)
        with engine.begin() as conn:  # a write
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        engine.dispose()
    assert list(tmp_path.iterdir()) == []


def _child_backend(url: str, engine, queue) -> None:
    queue.put((engine.pool.checkedin(), _backend_id(engine)))


def _backend_id(engine) -> object:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        return id(conn.connection.dbapi_connection)


def test_a_forked_child_opens_its_own_connections(database_url):
    """After any fork the child's pool is empty (the parent's connections are left to the
    parent, not closed and not shared), and the parent's connection still works."""
    engine = make_engine(database_url)
    parent = _backend_id(engine)
    assert engine.pool.checkedin() == 1
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_backend, args=(database_url, engine, queue))
    child.start()
    checked_in, backend = queue.get(timeout=30)
    child.join(30)
    assert child.exitcode == 0 and checked_in == 0
    if engine.dialect.name == "postgresql":
        assert backend != parent
    assert _backend_id(engine) == parent  # the parent's connection was not closed by the child
    engine.dispose()


def test_an_idle_sqlite_engine_keeps_one_connection_open(tmp_path):
    """Between uses a process keeps one SQLite connection; a burst's extra connections are
    closed after it. SQLite itself keeps the database file's descriptor of a closed connection
    while another connection of the process holds a lock on it, and hands it to the next
    connection it opens: so a second burst opens no more descriptors than the first left."""
    import os
    from collections import Counter

    engine = make_engine(f"sqlite:///{tmp_path / 'idle.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")

    def open_files() -> Counter[str]:
        paths = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                paths.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        return Counter(p for p in paths if p.startswith(str(tmp_path)))

    db, wal, shm = (str(tmp_path / name) for name in ("idle.db", "idle.db-wal", "idle.db-shm"))
    assert open_files() == {db: 1, wal: 1, shm: 1} and engine.pool.checkedin() == 1

    def burst() -> Counter[str]:
        # four threads' readers at once (deferred BEGIN: readers do not queue on the write lock)
        held = [engine.connect().execution_options(sqlite_deferred=True) for _ in range(4)]
        for conn in held:
            conn.exec_driver_sql("SELECT x FROM t").all()
        for conn in held:
            conn.close()
        return open_files()

    after_one = burst()
    assert engine.pool.checkedin() == 1  # the pool keeps one connection, closes the rest
    assert after_one[wal] == after_one[shm] == 1 and 1 <= after_one[db] <= 4
    assert burst() == after_one  # reused, not more
    engine.dispose()
    assert open_files() == {}
