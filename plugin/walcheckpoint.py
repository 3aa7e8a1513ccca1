"""WAL checkpoints of the embedded SQLite database, taken outside every write transaction.

SQLite's automatic checkpoint runs inside the ``COMMIT`` of whichever connection pushes the
WAL past 1000 pages: it copies those pages into the database file and fsyncs both files
before the commit returns. Sharewise's cross-process write lock (:class:`sharewise.plugin.db.
SQLiteWriteLock`) is held until the commit returns, so every writer of every process waited
for that copy (about 4 MB, several times a second under intake load).

Instead every connection of the engine runs with ``wal_autocheckpoint=0`` and each process
has one :class:`WalCheckpointer` per database file: a thread with its own connection, woken
after commits, that runs ``PRAGMA wal_checkpoint(PASSIVE)`` while writers go on (SQLite lets
a checkpoint run beside a writer: it copies only frames already committed). A passive
checkpoint cannot copy the frames committed while it ran, and SQLite only starts the WAL file
over when a writer begins while every frame is copied; so once the WAL holds more than
``restart_frames`` pages, the checkpointer finishes the few frames left while holding the
write lock (no writer can add more), and the next writer starts the WAL over. The lock is
then held for that short tail, not for the whole copy.

Limits and errors: a checkpoint that fails (disk full, the database busy with another
process's checkpoint) is logged and tried again on the next wake-up; writers never see it.
The thread starts on the first commit (also in a forked child) and stops after ``idle``
seconds without commits; a fork waits for a pass under way to end, so the child never
inherits SQLite's mutexes held by a thread it does not have. A process that exits with
frames left leaves them in the WAL, where SQLite reads them as usual and the next
checkpoint copies them.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

log = logging.getLogger(__name__)

#: SQLite's own default for ``wal_autocheckpoint``: pages of WAL after which it checkpoints.
DEFAULT_RESTART_FRAMES = 1000
#: After a tail pass that readers kept from finishing, no tail pass for this long (seconds).
TAIL_BACKOFF = 1.0
#: At most one warning about failing passes per this many seconds (the rest are counted).
WARN_EVERY = 60.0

_ALL: weakref.WeakSet[WalCheckpointer] = weakref.WeakSet()
#: the checkpointers whose pass lock the forking thread holds (see _before_fork)
_HELD: list[WalCheckpointer] = []


def _before_fork() -> None:
    # A thread inside SQLite at fork time may hold SQLite's process-wide mutexes, which
    # the child would inherit locked with no thread to unlock them: its next
    # sqlite3.connect() would hang. So no pass runs across a fork (waits for one that does).
    for checkpointer in list(_ALL):
        if checkpointer._pass_lock.acquire(timeout=10):
            _HELD.append(checkpointer)
        else:  # a tail pass waiting for a write lock this thread holds: fork anyway
            log.warning("fork while a WAL checkpoint of %s was under way",
                        os.path.basename(checkpointer.database))


def _after_fork_in_parent() -> None:
    while _HELD:
        _HELD.pop()._pass_lock.release()


def _after_fork_in_child() -> None:
    _HELD.clear()
    for checkpointer in list(_ALL):
        checkpointer._reset()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)


class WalCheckpointer:
    """Checkpoints one SQLite database's WAL from a background thread (see module doc).

    ``write_lock`` returns a context manager holding the database's write lock (the same one
    every writer of the engine takes); ``interval`` is the least time between two passes,
    so a burst of commits costs one checkpoint, not one each.
    """

    def __init__(
        self,
        database: str,
        write_lock: Callable[[], AbstractContextManager[object]] | None = None,
        *,
        restart_frames: int = DEFAULT_RESTART_FRAMES,
        interval: float = 0.02,
        idle: float = 5.0,
    ) -> None:
        self.database = database
        self.write_lock = write_lock or nullcontext
        self.restart_frames = restart_frames
        self.interval = interval
        self.idle = idle
        self._reset()
        _ALL.add(self)

    def _reset(self) -> None:
        """No thread, fresh lock and event (at creation, and in a forked child)."""
        self._guard = threading.Lock()
        self._pass_lock = threading.Lock()  # held for a pass; taken across a fork
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._no_tail_until = 0.0
        self._warned_at = -WARN_EVERY
        #: [passes outside the write lock, passes finished under it, failures]; for tests
        self.stats = [0, 0, 0]

    def committed(self) -> None:
        """Tell the checkpointer a transaction committed (cheap; call after every commit)."""
        if self._wake.is_set() and self._thread is not None:
            return
        with self._guard:
            self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, daemon=True,
                    name=f"sharewise-checkpoint:{os.path.basename(self.database)}")
                self._thread.start()

    def checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int]:
        """One pass on ``conn``: ``(frames in the WAL, frames copied)`` after it."""
        _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.stats[0] += 1
        if frames >= self.restart_frames and time.monotonic() >= self._no_tail_until:
            # finish the tail with writers held off (frames committed during the pass above
            # are not counted in ``frames``): every frame copied, so the next writer starts
            # the WAL over instead of appending to it
            with self.write_lock():
                _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.stats[1] += 1
            if copied < frames:  # a reader still needs older pages: try again later
                self._no_tail_until = time.monotonic() + TAIL_BACKOFF
        return frames, copied

    def _connect(self) -> sqlite3.Connection:
        # mode=rw: never creates a database (one removed meanwhile is simply not checkpointed)
        uri = Path(self.database).absolute().as_uri() + "?mode=rw"  # '#', '?', '%' escaped
        conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")  # fsync as the writers do
        return conn

    def _pass(self) -> None:
        """One checkpoint on a connection of its own, closed after it: a thread that holds
        no connection between passes lets the last connection of the engine to close
        checkpoint and remove the WAL as SQLite does."""
        try:
            with self._pass_lock:
                if not os.path.exists(self.database):
                    return
                conn = self._connect()
                try:
                    self.checkpoint(conn)
                finally:
                    conn.close()
        except Exception as exc:  # noqa: BLE001 - a failed pass is logged, never fatal
            self.stats[2] += 1
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY:  # a lasting failure: one line a minute
                self._warned_at = now
                detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, sqlite3.Error) else (
                    type(exc).__name__)  # SQLite's messages name no data; others might
                log.warning("WAL checkpoint of %s failed (%s; %d failures so far); tried "
                            "again later", os.path.basename(self.database), detail,
                            self.stats[2])

    def _run(self) -> None:
        try:
            while True:
                if not self._wake.wait(self.idle):
                    with self._guard:
                        if not self._wake.is_set():
                            self._thread = None
                            return
                self._wake.clear()
                self._pass()
                time.sleep(self.interval)  # commits meanwhile: one pass for all of them
        finally:
            with self._guard:
                if self._thread is threading.current_thread():
                    self._thread = None
