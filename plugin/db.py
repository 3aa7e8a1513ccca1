"""Database: one SQLAlchemy engine and session factory per Flask app, ``Base``, migrations.

* SQLite (the embedded default) is configured with SQLAlchemy's documented event recipe
  (*Serializable isolation / Savepoints / Transactional DDL* in the SQLite dialect notes): the
  driver's own transaction handling is switched off and every transaction starts with
  ``BEGIN IMMEDIATE``, so concurrent writers queue on SQLite's busy timeout instead of failing
  on a read-to-write lock upgrade. Each connection runs in WAL mode with ``busy_timeout``,
  ``foreign_keys=ON`` and ``synchronous=FULL`` (every commit is on disk before it returns, so
  what was answered survives a power loss); SQLite checkpoints the WAL itself. The first
  connections to a new file race to switch it to WAL; SQLite answers the loser's lock upgrade
  with an immediate "database is locked" (its busy handler is not called for an upgrade from a
  read lock), so :func:`_use_wal` tries again until the busy timeout. Each process
  keeps at most one connection open between uses (``pool_size=1``; a burst's extra ones,
  as many as its threads need, are closed when it is over), as the embedded broker does: opening a
  connection for every transaction (``NullPool``) cost its pragmas and, when it was the last
  one, a WAL checkpoint on close, about a tenth of intake's time. A writer that waits past the
  busy timeout gets "database is locked" (:func:`is_locked`), which callers answer with 503
  and ``Retry-After``.
* PostgreSQL runs through psycopg 3 (``postgresql+psycopg://``).
* A forked process never uses its parent's connections: every engine made here is disposed
  with ``close=False`` in the child of any ``fork`` (Celery's prefork pool, gunicorn's
  workers, ``multiprocessing``), as SQLAlchemy documents for pools and ``os.fork()``; the
  child opens its own connections and leaves the parent's alone.
* :func:`session_scope` is the unit of work for requests, Celery tasks and CLI commands:
  commit on success, roll back on error, always close.
* :func:`upgrade` applies the Alembic migrations in ``migrations/`` (``upgrade head``),
  serialised across processes by a PostgreSQL advisory lock or SQLite's own write lock.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import DateTime, Engine, create_engine, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Key of the PostgreSQL advisory lock held while migrating ("SHAREWSE" in ASCII).
MIGRATION_LOCK_KEY = 0x5348415245575345
#: Default of how long a SQLite writer waits for another's transaction before "database is
#: locked", in seconds (the app passes its ``INTAKE_TIMEOUT`` setting).
SQLITE_BUSY_TIMEOUT = 30.0


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
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return aware UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, aware, UTC."""
    return datetime.now(UTC)


#: Every engine :func:`make_engine` made in this process (disposed in a forked child).
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _fresh_pools_after_fork() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)  # forget the parent's connections without closing them


os.register_at_fork(after_in_child=_fresh_pools_after_fork)


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked": the busy timeout ran out."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def _use_wal(cur: sqlite3.Cursor, busy_timeout: float) -> None:
    """Put the database file in WAL mode (it stays so), retrying a lost race until
    ``busy_timeout`` seconds have passed (a last try may itself wait that long for a lock);
    a file already in WAL mode costs one read."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "database is locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    """SQLAlchemy's documented recipe for SQLite transactions, plus the pragmas above."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # pysqlite emits no BEGIN of its own
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        _use_wal(cur, busy_timeout)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # a read-only session asks for a deferred BEGIN, so a long reader never blocks writers
        deferred = conn.get_execution_options().get("sqlite_deferred")
        conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def make_engine(url: str, busy_timeout: float = SQLITE_BUSY_TIMEOUT) -> Engine:
    """An engine for ``url`` with the per-backend settings described above; ``busy_timeout``
    (seconds) is how long a SQLite writer waits for the write lock."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        # in memory, or a ``file:`` URI: each connection as SQLite opens it
        pool: dict[str, Any] = {"poolclass": NullPool}
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            # one kept; as many more as the process's threads need at once, closed after
            pool = {"pool_size": 1, "max_overflow": -1}
        engine = create_engine(url, connect_args={"timeout": busy_timeout}, **pool)
        _configure_sqlite(engine, busy_timeout)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    _ENGINES.add(engine)
    return engine


def init_app(app: Flask) -> None:
    """Create the app's engine and session factory (``app.extensions['sharewise.db']``)."""
    engine = make_engine(app.config["DATABASE_URL"], app.config["INTAKE_TIMEOUT"])
    factory = sessionmaker(engine, expire_on_commit=False)
    readonly = sessionmaker(engine.execution_options(sqlite_deferred=True), expire_on_commit=False)
    app.extensions["sharewise.db"] = {
        "engine": engine,
        "sessionmaker": factory,
        "readonly_sessionmaker": readonly,
    }


def use_keyring(app: Flask, keys: Any) -> None:
    """Give every session of ``app`` the keyring its sealed fields use
    (:mod:`sharewise.plugin.sealed`)."""
    for key in ("sessionmaker", "readonly_sessionmaker"):
        app.extensions["sharewise.db"][key].configure(info={"sharewise.keyring": keys})


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


def alembic_config(connection: Any = None) -> Any:
    """An Alembic ``Config`` for ``plugin/migrations`` (no ini file needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``; several processes starting at once are safe.

    The whole upgrade is one transaction that first takes the database's write lock: a
    PostgreSQL advisory lock, or SQLite's own (``BEGIN IMMEDIATE``), so the second process
    waits, then finds the database at head and does nothing.
    """
    # before importing alembic, whose plugin set-up logs at INFO; one line of our own instead
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        before = MigrationContext.configure(conn).get_current_revision()
        command.upgrade(alembic_config(conn), revision)
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("database migrated from %s to %s", before or "empty", after)


def head_revision() -> str:
    """The newest migration in the code (what ``upgrade head`` reaches)."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision (``None`` before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
