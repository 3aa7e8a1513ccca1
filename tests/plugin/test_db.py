"""Database plumbing: concurrent migrations, SQLite writers in several processes, UTC times."""

from __future__ import annotations

import multiprocessing as mp
import os
import uuid
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
import sqlalchemy as sa

from sharewise.plugin.db import current_revision, make_engine, upgrade

HEAD = "0004_reminders"
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


def test_sqlite_text_of_utc_datetime_is_what_sqlalchemy_stores(monkeypatch):
    """The one-step processor makes the text SQLAlchemy's own two steps make (UTC, then its
    SQLite DATETIME format), for any zone, microsecond, the two instants of a repeated hour,
    and from what it remembers."""
    import random
    from zoneinfo import ZoneInfo

    from sqlalchemy.dialects import sqlite

    from sharewise.plugin import db
    from sharewise.plugin.db import UTCDateTime, sqlite_utc_text

    monkeypatch.setattr(db, "_recent_text", {})  # nothing remembered from other tests
    dialect = sqlite.dialect()
    impl = UTCDateTime().dialect_impl(dialect)
    assert impl.bind_processor(dialect) is sqlite_utc_text
    inner = impl.impl_instance.dialect_impl(dialect).bind_processor(dialect)

    def reference(value):
        return inner(UTCDateTime().process_bind_param(value, dialect))

    london = ZoneInfo("Europe/London")
    rng = random.Random(7)
    values = [datetime(2026, 6, 1, 12, 0, tzinfo=UTC), datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
              datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
              # 01:30 happens twice on 25 October 2026 in London (fold 0: BST, 1: GMT), and
              # not at all on 29 March
              datetime(2026, 10, 25, 1, 30, tzinfo=london),
              datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=london),
              datetime(2026, 3, 29, 1, 30, tzinfo=london),
              datetime(2026, 3, 29, 1, 30, fold=1, tzinfo=london)]
    for _ in range(300):
        zone = rng.choice([UTC, london, timezone(timedelta(minutes=rng.randrange(-840, 840)))])
        values.append((datetime(2000, 1, 1, tzinfo=UTC)
                       + timedelta(microseconds=rng.randrange(10**17))).astimezone(zone))
    texts = set()
    for value in values:
        first = sqlite_utc_text(value)
        again = sqlite_utc_text(value)  # a UTC one from what is remembered
        assert first == again == reference(value), value
        if value.tzinfo is UTC:
            assert db._recent_text[value] == first
        texts.add(first)
    assert len(texts) == len({v.astimezone(UTC) for v in values})  # distinct instants
    assert sqlite_utc_text(values[3]) != sqlite_utc_text(values[4])  # the repeated hour
    # an equal instant in another zone is the same text
    assert sqlite_utc_text(values[0].astimezone(timezone(timedelta(hours=9)))) == reference(
        values[0])
    assert len(db._recent_text) <= 64

    class Shown(datetime):  # a subclass that shows itself otherwise stores the same text
        def isoformat(self, *args, **kwargs):
            return "not this"

    odd = Shown(2026, 6, 1, 12, 0, 0, 5, tzinfo=UTC)
    assert sqlite_utc_text(odd) == reference(datetime(2026, 6, 1, 12, 0, 0, 5, tzinfo=UTC))
    assert sqlite_utc_text(None) is None
    with pytest.raises(ValueError, match="naive"):
        sqlite_utc_text(datetime(2026, 6, 1))

    class NoOffset(tzinfo):
        def utcoffset(self, dt):
            return None

    with pytest.raises(ValueError, match="naive"):
        sqlite_utc_text(datetime(2026, 6, 1, tzinfo=NoOffset()))
    # anything else than SQLite, and a subclass with its own conversion, keep SQLAlchemy's
    from sqlalchemy.dialects import postgresql

    pg = postgresql.dialect()
    assert UTCDateTime().dialect_impl(pg).bind_processor(pg) is not sqlite_utc_text

    class Shifted(UTCDateTime):
        cache_ok = True

        def process_bind_param(self, value, dialect):
            return super().process_bind_param(value + timedelta(hours=1), dialect)

    assert Shifted().dialect_impl(dialect).bind_processor(dialect) is not sqlite_utc_text


def test_write_lock_nested_in_one_thread_times_out(tmp_path):
    from sharewise.plugin.db import SQLiteWriteLock

    lock = SQLiteWriteLock(str(tmp_path / "x.writelock"), timeout=0.2)
    lock.acquire()
    with pytest.raises(TimeoutError):
        lock.acquire()
    lock.release()
    lock.acquire()  # released properly: free again
    lock.release()


def test_two_engines_on_one_file_share_the_lock(tmp_path):
    import threading

    url = f"sqlite:///{tmp_path / 'two.db'}"
    first, second = make_engine(url), make_engine(url)
    upgrade(first)
    order = []
    with first.begin() as conn:
        conn.exec_driver_sql("SELECT 1")

        def other():
            with second.begin() as c2:
                order.append("second")
                c2.exec_driver_sql("SELECT 1")

        t = threading.Thread(target=other)
        t.start()
        t.join(0.3)
        assert t.is_alive()  # waits for the first writer
        order.append("first")
    t.join(5)
    assert order == ["first", "second"]
    first.dispose()
    second.dispose()


def test_failed_begin_raises_sqlalchemy_error_and_frees_the_lock(tmp_path):
    """BEGIN goes straight to the driver; its error is still SQLAlchemy's and the
    cross-process write lock is let go, so the next writer is not stuck behind it."""
    import sqlite3
    import threading

    path = tmp_path / "busy.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    intruder = sqlite3.connect(path, isolation_level=None)  # a writer outside Sharewise
    intruder.execute("BEGIN IMMEDIATE")
    other_wrote = threading.Event()

    def other_writer():  # Sharewise's write lock is taken before SQLite's: it waits on this
        with engine.begin() as c:
            c.exec_driver_sql("INSERT INTO t VALUES (2)")
        other_wrote.set()

    try:
        with engine.connect() as conn:
            conn.connection.driver_connection.execute("PRAGMA busy_timeout=50")
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                conn.begin()
            intruder.execute("ROLLBACK")
            # still inside the block (no pool check-in has released anything yet): another
            # writer gets the lock, so the failed BEGIN let go of it
            writer = threading.Thread(target=other_writer)
            writer.start()
            assert other_wrote.wait(5)
            writer.join(5)
    finally:
        if intruder.in_transaction:
            intruder.execute("ROLLBACK")
        intruder.close()
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2
    engine.dispose()


@pytest.mark.parametrize(("database", "query", "expected"), [
    ("data/x.db", {}, "data/x.db"),
    (":memory:", {}, None),
    ("file:data/x.db", {"uri": "true"}, "data/x.db"),  # a URI: its path
    ("file:/abs/x%20y.db", {"uri": "true", "mode": "rwc"}, "/abs/x y.db"),
    ("file:data/x.db", {}, "file:data/x.db"),  # no uri=true: SQLite takes the name as a path
    ("file::memory:", {"uri": "true", "cache": "shared"}, None),
    ("file:mem1", {"uri": "true", "mode": "memory"}, None),
])
def test_database_file_of_sqlite_names(database, query, expected):
    from sqlalchemy.engine import URL

    from sharewise.plugin.db import _database_file

    url = URL.create("sqlite", database=database, query=query)
    assert _database_file(url) == expected


def test_in_memory_uri_databases_leave_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///file::memory:?cache=shared&uri=true", "sqlite://"):
        engine = make_engine(url)
        upgrade(engine)
        with engine.begin() as conn:  # a write: the lock of its own, with no file
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        engine.dispose()
    assert list(tmp_path.iterdir()) == []


def test_json_columns_store_what_the_standard_library_reads_back(tmp_path):
    """JSON columns are written by orjson (compact UTF-8), or by the standard library for
    what orjson refuses; either way the value reads back equal, and a value neither can
    write is still a ``StatementError`` (``TypeError``), not stored."""
    import json

    from sharewise.plugin.db import json_text

    engine = make_engine(f"sqlite:///{tmp_path / 'j.db'}")
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("doc", sa.JSON))
    table.metadata.create_all(engine)
    values = [{"name": "Zoë Ångström", "n": [1, 2.5, None, True], "nested": {"a": "\u2014"}},
              {1: "int key"}, ["lone \ud800 surrogate"], "text", 12]
    with engine.begin() as conn:
        for value in values:
            conn.execute(table.insert().values(doc=value))
        raw = sa.text("SELECT CAST(doc AS TEXT) FROM t ORDER BY id")
        stored = [json.loads(t) for t in conn.execute(raw).scalars()]
        got = conn.execute(sa.select(table.c.doc).order_by(table.c.id)).scalars().all()
    expected = [values[0], {"1": "int key"}, values[2], "text", 12]
    assert stored == expected and got == expected
    assert json_text(values[0]) == '{"name":"Zoë Ångström","n":[1,2.5,null,true],' \
                                   '"nested":{"a":"\u2014"}}'
    with pytest.raises(sa.exc.StatementError), engine.begin() as conn:
        conn.execute(table.insert().values(doc={"when": datetime(2026, 1, 1)}))
    # the differences from the standard library that remain (documented in json_text)
    import enum
    import uuid

    class Colour(enum.Enum):
        RED = "red"

    class Text(str):
        pass

    assert json_text({"x": float("nan"), "y": float("inf")}) == '{"x":null,"y":null}'
    assert json_text([uuid.UUID(int=1), Colour.RED]) == \
        '["00000000-0000-0000-0000-000000000001","red"]'
    assert json_text({"big": 2**70, Text("k"): Text("v")}) == json.dumps(
        {"big": 2**70, "k": "v"})  # the standard library's, spaces and all
    assert json_text({"a": {1: "nested int key"}}) == '{"a": {"1": "nested int key"}}'
    engine.dispose()
