"""plugin.walcheckpoint: WAL checkpoints outside the write lock, bounded WAL, failures logged."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from sharewise.plugin import db
from sharewise.plugin.walcheckpoint import WalCheckpointer
from tests.polling import wait_until

ROW = "x" * 3000  # most of a 4 KB page: every committed row adds WAL frames


def _wal_frames(path: Path) -> int:
    size = Path(f"{path}-wal").stat().st_size if Path(f"{path}-wal").exists() else 0
    return max(0, (size - 32) // (4096 + 24))


def _raw_wal_db(path: Path, rows: int) -> sqlite3.Connection:
    """A WAL database without automatic checkpoints, ``rows`` page-sized rows in its WAL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (a TEXT)")
    for _ in range(rows):
        conn.execute("INSERT INTO t VALUES (?)", (ROW,))
    return conn


def _checkpointer(engine) -> WalCheckpointer:
    real = os.path.realpath(engine.url.database)
    return db._CHECKPOINTERS[real + ".writelock"]


def _engine(tmp_path: Path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT)"))
    return engine


def test_engine_connections_leave_checkpoints_to_the_checkpointer(tmp_path):
    engine = _engine(tmp_path)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_the_wal_stays_bounded_and_nothing_is_lost(tmp_path):
    """2000 commits of about a page each: without checkpoints the WAL would pass 2000 frames;
    the checkpointer copies them out and the WAL starts over near ``restart_frames``."""
    engine = _engine(tmp_path)
    checkpointer = _checkpointer(engine)
    checkpointer.restart_frames = 200
    biggest = 0
    for i in range(2000):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (a) VALUES (:a)"), {"a": f"{i}:{ROW}"})
        if i % 50 == 0:
            biggest = max(biggest, _wal_frames(tmp_path / "w.db"))
    biggest = max(biggest, _wal_frames(tmp_path / "w.db"))
    passes, tails, failures = checkpointer.stats
    assert passes > 0 and tails > 0 and failures == 0
    assert biggest < 1500, biggest  # restarted near 200 frames, not grown to 2000+
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2000
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    engine.dispose()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_two_processes_writing_while_checkpoints_run(tmp_path):
    """A forked child and the parent commit concurrently on one file, each process with its
    own checkpointer: every row is kept and the database checks clean."""
    engine = _engine(tmp_path)
    _checkpointer(engine).restart_frames = 100
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports by exit code
        code = 1
        try:
            engine.dispose(close=False)
            for i in range(600):
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO t (a) VALUES (:a)"), {"a": f"c{i}:{ROW}"})
            code = 0
        finally:
            os._exit(code)
    for i in range(600):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (a) VALUES (:a)"), {"a": f"p{i}:{ROW}"})
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1200
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    assert _checkpointer(engine).stats[2] == 0
    engine.dispose()


def test_the_tail_is_copied_holding_the_write_lock(tmp_path):
    path = tmp_path / "raw.db"
    conn = _raw_wal_db(path, rows=0)
    held, inside, passes = [], [False], []  # per pass: was the write lock held?

    @contextmanager
    def lock():
        held.append(True)
        inside[0] = True
        try:
            yield
        finally:
            inside[0] = False

    class Probe:  # the checkpointer's connection, recording each pass
        def execute(self, sql):
            passes.append(inside[0])
            return real.execute(sql)

    checkpointer = WalCheckpointer(str(path), lock, restart_frames=50, interval=0)
    for _ in range(60):
        conn.execute("INSERT INTO t VALUES (?)", (ROW,))
    real = sqlite3.connect(path, isolation_level=None)
    probe = Probe()
    frames, copied = checkpointer.checkpoint(probe)
    assert passes == [False, True]  # the second pass ran inside the lock
    assert held == [True] and frames == copied >= 50
    conn.execute("INSERT INTO t VALUES ('after')")  # starts the WAL over: it was all copied
    assert _wal_frames(path) >= 60  # the file is reused, not truncated...
    frames, _ = checkpointer.checkpoint(probe)
    assert frames < 5  # ...but it holds only the new frames
    real.close()
    conn.close()


def test_a_failed_checkpoint_is_logged_and_tried_again(tmp_path, caplog):
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is not SQLite" * 100)
    checkpointer = WalCheckpointer(str(path), interval=0, idle=0.2)
    with caplog.at_level(logging.WARNING, logger="sharewise.plugin.walcheckpoint"):
        checkpointer.committed()
        wait_until(lambda: checkpointer.stats[2] >= 1, timeout=5)
        checkpointer.committed()
        wait_until(lambda: checkpointer.stats[2] >= 2, timeout=5)
    assert "WAL checkpoint of not-a-database.db failed (DatabaseError" in caplog.text
    assert str(tmp_path) not in caplog.text  # the file's name, not where it lives
    wait_until(lambda: checkpointer._thread is None, timeout=5)  # idle: the thread stops


def test_a_removed_database_is_skipped_quietly(tmp_path, caplog):
    checkpointer = WalCheckpointer(str(tmp_path / "gone.db"), interval=0, idle=0.1)
    with caplog.at_level(logging.WARNING, logger="sharewise.plugin.walcheckpoint"):
        checkpointer.committed()
        wait_until(lambda: checkpointer._thread is None, timeout=5)
    assert checkpointer.stats == [0, 0, 0] and not caplog.records
    assert not (tmp_path / "gone.db").exists()  # never created by the checkpointer


def test_commits_from_many_threads_start_one_thread(tmp_path):
    path = tmp_path / "raw.db"
    sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").close()
    checkpointer = WalCheckpointer(str(path), interval=0.01, idle=5)
    threads = [threading.Thread(target=checkpointer.committed) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mine = [t for t in threading.enumerate() if t.name == "sharewise-checkpoint:raw.db"]
    assert len(mine) == 1 and mine[0] is checkpointer._thread
    wait_until(lambda: checkpointer.stats[0] >= 1, timeout=5)


def test_a_write_lock_that_times_out_is_a_logged_failure(tmp_path, caplog):
    path = tmp_path / "raw.db"
    conn = _raw_wal_db(path, rows=20)

    @contextmanager
    def stuck():
        raise TimeoutError("timed out waiting for the SQLite write lock")
        yield  # pragma: no cover

    checkpointer = WalCheckpointer(str(path), stuck, restart_frames=10, interval=0, idle=0.2)
    with caplog.at_level(logging.WARNING, logger="sharewise.plugin.walcheckpoint"):
        checkpointer.committed()
        wait_until(lambda: checkpointer.stats[2] >= 1, timeout=5)
    assert "failed (TimeoutError; 1 failures so far)" in caplog.text
    assert checkpointer.stats[0] >= 1  # the pass outside the lock ran
    conn.close()


def test_a_path_with_uri_characters_is_the_file_checkpointed(tmp_path):
    """The checkpointer opens the database through a file: URI; '#', '?' and '%' in the
    path are escaped, so it checkpoints that file and creates no other."""
    folder = tmp_path / "a#b?c%20d"
    folder.mkdir()
    path = folder / "w.db"
    conn = _raw_wal_db(path, rows=30)
    checkpointer = WalCheckpointer(str(path), interval=0, idle=0.2)
    checkpointer._pass()
    assert checkpointer.stats == [1, 0, 0]
    frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1:]
    assert frames == copied >= 30  # nothing left: the pass above copied them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a#b?c%20d"]
    conn.close()


def test_only_write_transactions_wake_the_checkpointer(tmp_path, monkeypatch):
    engine = _engine(tmp_path)
    checkpointer = _checkpointer(engine)
    woken = []
    monkeypatch.setattr(checkpointer, "committed", lambda: woken.append(1))
    with engine.execution_options(sqlite_deferred=True).begin() as conn:
        conn.execute(text("SELECT count(*) FROM t")).scalar()
    assert woken == []
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (a) VALUES ('x')"))
    assert woken == [1]
    engine.dispose()


def test_uri_and_memory_databases_keep_sqlites_own_checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = db.make_engine(f"sqlite:///file:{tmp_path / 'u.db'}?uri=true")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        conn.exec_driver_sql("CREATE TABLE t (a TEXT)")
        conn.commit()
    db.upgrade(engine)  # its lock file, too, goes next to the database
    engine.dispose()
    assert (tmp_path / "u.db.migrate.lock").exists()
    assert (tmp_path / "u.db").exists()
    assert (tmp_path / "u.db.writelock").exists()  # next to the database, as for a path
    assert not (tmp_path / "file:").exists()  # a URI name is not taken for a path to create


def test_a_tail_pass_a_reader_blocks_backs_off(tmp_path):
    """A reader on an old snapshot keeps frames from being copied: the tail pass under the
    lock cannot finish, so the next passes skip it (no write lock taken) for TAIL_BACKOFF."""
    from sharewise.plugin.walcheckpoint import TAIL_BACKOFF

    path = tmp_path / "raw.db"
    conn = _raw_wal_db(path, rows=5)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (5,)  # snapshot held
    for _ in range(20):
        conn.execute("INSERT INTO t VALUES (?)", (ROW,))
    held = []

    @contextmanager
    def lock():
        held.append(True)
        yield

    checkpointer = WalCheckpointer(str(path), lock, restart_frames=10, interval=0)
    probe = sqlite3.connect(path, isolation_level=None)
    frames, copied = checkpointer.checkpoint(probe)
    assert copied < frames and held == [True]  # tried under the lock, could not finish
    checkpointer.checkpoint(probe)
    assert held == [True]  # backed off: no second tail pass
    assert checkpointer._no_tail_until > 0 and TAIL_BACKOFF > 0
    reader.execute("COMMIT")
    checkpointer._no_tail_until = 0.0  # the back-off over
    frames, copied = checkpointer.checkpoint(probe)
    assert held == [True, True] and frames == copied  # the reader gone: all copied
    for c in (probe, reader, conn):
        c.close()
