"""Database: one SQLAlchemy engine and session factory per Flask app, ``Base``, migrations.

* SQLite (the embedded default) runs in WAL mode with a busy timeout and foreign keys on; every
  transaction starts with ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy timeout
  instead of failing on a read-to-write lock upgrade (``SQLITE_BUSY_SNAPSHOT``). Sessions that
  only read can ask for a deferred ``BEGIN`` (``readonly=True``) so they never block writers.
  ``synchronous=FULL``: every commit fsyncs the WAL before it returns, so what was answered
  (a 201 to the host, an upload's result) survives a power loss. ``NORMAL`` skips that fsync
  (about 0.3 ms per commit here) and can lose the last commits on power loss: the host would
  hold a 201 and links for a record that no longer exists, and would not retry. SQLite's
  automatic WAL checkpoints are off: :mod:`sharewise.plugin.walcheckpoint` takes them outside the
  write lock (an automatic one ran inside the commit that crossed 1000 pages).
* PostgreSQL runs through psycopg 3 (``postgresql+psycopg://``).
* :func:`session_scope` is the unit of work for requests, Celery tasks and CLI commands:
  commit on success, roll back on error, always close.
* :func:`upgrade` applies the Alembic migrations in ``plugin/migrations`` (``upgrade head``),
  serialised across processes by a PostgreSQL advisory lock or a file lock next to the SQLite
  database, so several processes starting at once are safe.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from flask import Flask, current_app, g
from sqlalchemy import DateTime, Engine, create_engine, event, text
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from sharewise.plugin.walcheckpoint import WalCheckpointer

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Key of the PostgreSQL advisory lock held while migrating ("SHAREWSE" in ASCII).
MIGRATION_LOCK_KEY = 0x5348415245575345


class Base(DeclarativeBase):
    """Declarative base of every model (``plugin/models.py`` imports them all)."""


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC ``datetime`` on every backend (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store in UTC; naive values are refused (they are always a bug)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, :func:`sqlite_utc_text` (the same text as the two steps SQLAlchemy
        chains, in one); elsewhere SQLAlchemy's."""
        if (dialect.name == "sqlite"
                and type(self).process_bind_param is UTCDateTime.process_bind_param
                and getattr(self.impl_instance.dialect_impl(dialect), "_storage_format",
                            None) == _SQLITE_DATETIME):
            return sqlite_utc_text
        return super().bind_processor(dialect)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return aware UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: SQLAlchemy's default storage format of ``DateTime`` on SQLite (what is stored today).
_SQLITE_DATETIME = ("%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d"
                    ".%(microsecond)06d")
_recent_text: dict[datetime, str] = {}


def sqlite_utc_text(value: datetime | None) -> str | None:
    """An aware ``datetime`` as SQLite stores a :class:`UTCDateTime`: UTC, naive text
    ``YYYY-MM-DD HH:MM:SS.ffffff``. ``ValueError`` for a naive one, and for one whose zone
    gives no offset (SQLAlchemy's two steps took that as the machine's local time).

    Intake binds about fourteen instants a record, most of them the same "now" in UTC; the
    text of the last 64 instants given in UTC is kept (about 50 us an intake). Only those:
    in a zone with summer time, two different instants (a repeated hour, told apart by
    ``fold``) are equal as dict keys.
    """
    if value is None:
        return None
    if value.tzinfo is UTC:
        text = _recent_text.get(value)
        if text is None:
            text = datetime.isoformat(value, " ", "microseconds")[:-6]  # "+00:00" off
            if len(_recent_text) >= 64:
                _recent_text.clear()
            _recent_text[value] = text
        return text
    if value.utcoffset() is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    return datetime.isoformat(value.astimezone(UTC), " ", "microseconds")[:-6]


_ORJSON_STRICT = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
                  | orjson.OPT_PASSTHROUGH_SUBCLASS)


def json_text(value: Any) -> str:
    """The text a ``JSON`` column stores (compact, UTF-8): orjson's, several times faster than
    the standard library's (intake stores three JSON values a record).

    What orjson refuses (keys that are not text, subclasses of ``str``, dates, dataclasses,
    unpaired surrogates, integers over 64 bits) is written by the standard library as
    before; what neither writes raises ``TypeError``. Two differences remain: orjson writes
    ``NaN`` and the infinities as ``null`` (the standard library wrote ``NaN``, which is not
    JSON), and it writes ``UUID`` and ``Enum`` values, which the standard library refused.
    No column holds such values today.
    """
    try:
        return orjson.dumps(value, option=_ORJSON_STRICT).decode()
    except TypeError:
        return json.dumps(value)


def utcnow() -> datetime:
    """The current time, aware, UTC."""
    return datetime.now(UTC)


class SQLiteWriteLock:
    """Queues SQLite writers in the kernel instead of in SQLite's busy handler.

    SQLite's busy handler polls with sleeps of up to 100 ms, which wastes most of the time
    when many short write transactions compete. Every write transaction therefore takes this
    lock first: a ``threading.Lock`` between the threads of a process, then ``flock`` on a
    file next to the database between processes (each process opens its own descriptor,
    also after a fork). Held from ``BEGIN IMMEDIATE`` to commit / rollback, exactly like
    SQLite's own write lock, so it adds no waiting that SQLite would not impose anyway.
    ``path`` ``None``: the thread lock only (an in-memory database lives in one process).
    """

    def __init__(self, path: str | None, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh thread lock and descriptor (the parent's are not ours)."""
        self._thread_lock = threading.Lock()
        self._fd = None

    def _descriptor(self) -> int:
        assert self.path is not None  # noqa: S101 - only called for a lock with a file
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self) -> None:
        """Wait for the write lock (``TimeoutError`` after ``timeout`` within this process)."""
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise TimeoutError("timed out waiting for the SQLite write lock")
        try:
            if self.path is not None:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        """Release the write lock."""
        try:
            if self.path is not None:
                fcntl.flock(self._descriptor(), fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        """The lock held for a block (writers of every process wait meanwhile)."""
        self.acquire()
        try:
            yield
        finally:
            self.release()


_WRITE_LOCKS: dict[str, SQLiteWriteLock] = {}
_CHECKPOINTERS: dict[str, WalCheckpointer] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _reset_write_locks_after_fork() -> None:
    global _WRITE_LOCKS_GUARD
    _WRITE_LOCKS_GUARD = threading.Lock()
    for lock in _WRITE_LOCKS.values():
        lock.reset_after_fork()


os.register_at_fork(after_in_child=_reset_write_locks_after_fork)


def _database_file(url: URL) -> str | None:
    """The file a SQLite URL's database is kept in; ``None`` for an in-memory database.

    With ``?uri=true`` a ``file:`` name is a URI: its path (``file:/var/x.db`` is
    ``/var/x.db``; ``file::memory:`` and ``mode=memory`` are in memory). Without it, SQLite
    takes the name as a path, ``file:`` and all.
    """
    database = url.database or ""
    if database in ("", ":memory:"):
        return None
    uri = str(url.query.get("uri", "")).lower() in ("true", "1")
    if uri and database.startswith("file:"):
        path = unquote(urlsplit(database).path)
        if path in ("", ":memory:") or url.query.get("mode") == "memory":
            return None
        return path
    return database


def database_file(url: str) -> str | None:
    """The file of a SQLite URL's database (its real path); ``None`` for another backend,
    an in-memory database or a ``file:`` URI name."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or (parsed.database or "").startswith("file:"):
        return None
    file = _database_file(parsed)
    return os.path.realpath(file) if file is not None else None


def _write_lock_for(url: URL) -> tuple[SQLiteWriteLock, WalCheckpointer | None]:
    """One lock and one WAL checkpointer per database file and process, shared by every
    engine on that file. An in-memory database gets a lock of its own with no file, and no
    checkpointer; neither does a ``file:`` URI name (SQLite's automatic checkpoints stay on
    for those)."""
    file = _database_file(url)
    if file is None:
        return SQLiteWriteLock(None), None
    real = os.path.realpath(file)
    path = real + ".writelock"
    with _WRITE_LOCKS_GUARD:
        if path not in _WRITE_LOCKS:
            lock = _WRITE_LOCKS[path] = SQLiteWriteLock(path)
            if not (url.database or "").startswith("file:"):
                _CHECKPOINTERS[path] = WalCheckpointer(real, lock.held)
        return _WRITE_LOCKS[path], _CHECKPOINTERS.get(path)


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the per-backend settings described above."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        file = _database_file(parsed)
        if file is not None:
            Path(file).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, pool_pre_ping=False,
                               json_serializer=json_text)
        lock, checkpointer = _write_lock_for(parsed) if parsed.database else (None, None)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")
            if checkpointer is not None:  # it checkpoints, outside the write lock
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        held: set[int] = set()  # id() of DBAPI connections holding the write lock

        def _begin_on(conn: Any, sql: str) -> None:
            # straight on the driver's connection: SQLAlchemy's execution context costs
            # about 30 us, paid under the write lock by every intake batch; its errors are
            # still raised as SQLAlchemy's (OperationalError for "database is locked")
            try:
                conn.connection.driver_connection.execute(sql).close()
            except sqlite3.Error as exc:
                # what SQLAlchemy's own BEGIN does with a driver error: a lost connection is
                # invalidated (the group committer then writes its batch again on a new one)
                # and the error raised as SQLAlchemy's
                conn._handle_dbapi_exception(exc, sql, (), None, None)
                raise  # not reached: the call above raises

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if conn.get_execution_options().get("sqlite_deferred"):
                _begin_on(conn, "BEGIN")
                return
            if lock is None:
                _begin_on(conn, "BEGIN IMMEDIATE")
                return
            dbapi_conn = conn.connection.dbapi_connection
            lock.acquire()
            held.add(id(dbapi_conn))
            try:
                _begin_on(conn, "BEGIN IMMEDIATE")
            except BaseException:
                _release(dbapi_conn)
                raise

        def _release(conn: Any) -> None:
            # do_commit / do_rollback get the pool's proxy; pool events the DBAPI connection
            key = id(getattr(conn, "dbapi_connection", conn))
            if lock is not None and key in held:
                held.discard(key)
                lock.release()

        # release only after SQLite has really committed / rolled back
        do_commit, do_rollback = engine.dialect.do_commit, engine.dialect.do_rollback

        def _do_commit(dbapi_conn: Any) -> None:
            wrote = id(getattr(dbapi_conn, "dbapi_connection", dbapi_conn)) in held
            try:
                do_commit(dbapi_conn)
            finally:
                _release(dbapi_conn)
            if wrote and checkpointer is not None:
                try:
                    checkpointer.committed()
                except Exception as exc:  # noqa: BLE001 - the commit itself succeeded
                    log.warning("WAL checkpointer not woken (%s)", type(exc).__name__)

        def _do_rollback(dbapi_conn: Any) -> None:
            try:
                do_rollback(dbapi_conn)
            finally:
                _release(dbapi_conn)

        engine.dialect.do_commit = _do_commit  # type: ignore[method-assign]
        engine.dialect.do_rollback = _do_rollback  # type: ignore[method-assign]

        @event.listens_for(engine.pool, "close")
        def _sqlite_close(dbapi_conn: Any, _record: Any) -> None:
            _release(dbapi_conn)

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10,
                         json_serializer=json_text)


def init_app(app: Flask) -> None:
    """Create the app's engine and session factory (``app.extensions['sharewise.db']``)."""
    engine = make_engine(app.config["DATABASE_URL"])
    factory = sessionmaker(engine, expire_on_commit=False)
    readonly = sessionmaker(engine.execution_options(sqlite_deferred=True), expire_on_commit=False)
    app.extensions["sharewise.db"] = {
        "engine": engine,
        "sessionmaker": factory,
        "readonly_sessionmaker": readonly,
    }

    @app.teardown_appcontext
    def _close_request_session(_exc: BaseException | None) -> None:
        session = g.pop("sharewise_session", None)
        if session is not None:
            session.rollback()
            session.close()


def engine_for(app: Flask | None = None) -> Engine:
    """The engine of ``app`` (default: the current app)."""
    return (app or current_app).extensions["sharewise.db"]["engine"]


def sessionmaker_for(app: Flask | None = None, *, readonly: bool = False) -> sessionmaker[Session]:
    """The session factory of ``app`` (default: the current app).

    ``readonly=True``: on SQLite its transactions start with a plain (deferred) ``BEGIN``, so a
    long-lived reader never blocks writers; use it only for sessions that do not write.
    """
    key = "readonly_sessionmaker" if readonly else "sessionmaker"
    return (app or current_app).extensions["sharewise.db"][key]


@contextmanager
def session_scope(app: Flask | None = None, *, readonly: bool = False) -> Iterator[Session]:
    """A unit of work: commit when the block ends normally, roll back on error, close always.

    ``readonly=True`` for a block that only reads (see :func:`sessionmaker_for`).
    """
    session = sessionmaker_for(app, readonly=readonly)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def request_session() -> Session:
    """A session for the current app context, rolled back and closed at teardown."""
    session = g.get("sharewise_session")
    if session is None:
        session = g.sharewise_session = sessionmaker_for()()
    return session


def alembic_config(connection: Any = None) -> Any:
    """An Alembic ``Config`` for ``plugin/migrations`` (no ini file needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``, holding a cross-process lock while doing so."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line of our own instead
    if engine.dialect.name == "sqlite":
        file = _database_file(engine.url)
        lock_path = None if file is None else Path(file + ".migrate.lock")
        ctx = _file_lock(lock_path) if lock_path else _null()
    else:
        ctx = _null()
    with ctx, engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        before = MigrationContext.configure(conn).get_current_revision()
        command.upgrade(alembic_config(conn), revision)
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("database migrated from %s to %s", before or "empty", after)


@contextmanager
def _null() -> Iterator[None]:
    yield


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision (``None`` before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
