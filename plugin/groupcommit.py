"""Group commit: many threads' inserts written in one transaction, committed with one fsync.

On the embedded default every write transaction holds SQLite's single write lock through
its commit's fsync (``synchronous=FULL``), so concurrent intakes queue one fsync each.
A :class:`GroupCommitter` (one per engine and process) takes the units of work waiting at
that moment, writes them together (one statement per table for the whole batch) and
commits once; each caller is answered only after that commit, so what it was told is on
disk is on disk, exactly as with its own transaction.

Semantics seen by a caller of :meth:`GroupCommitter.submit`:

* its items are committed before it returns, or it gets the exception;
* an item that breaks a unique constraint gets that :class:`~sqlalchemy.exc.IntegrityError`
  and nothing of it is kept, while the other items of the batch are committed: the batch is
  first written as a whole and, if any constraint fails, rolled back and written again item
  by item in a new transaction, a savepoint each (then committed once). A PostgreSQL
  deadlock or serialization failure with another process's batch is handled the same way;
* any other database error (the disk is full, the lock timed out) fails every item of the
  batch, as their own transactions would have failed; a batch whose connection was lost
  (the database restarted) is tried once more on a fresh connection (idempotent work: a
  commit that did land shows up as a unique-constraint failure for that item);
* ``timeout`` bounds the wait *before the item is taken*: an item still queued then is
  withdrawn and :class:`TimeoutError` raised, so a timeout means nothing was stored; an item
  already inside a transaction is waited for (that transaction holds the lock and ends).

On SQLite the batch is taken once the write lock is held: intakes that arrive while another
process commits join the next transaction instead of waiting for one more. The writer
thread starts on first use (in a forked child too, with fresh locks) and stops after
``idle`` seconds with nothing to do; if it ever dies, the next submit starts another.
Limits: at most ``max_batch`` items per transaction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from sqlalchemy import Connection, Engine, RootTransaction
from sqlalchemy.exc import DBAPIError, IntegrityError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: ``write(connection, items) -> results``: inserts every item, one result per item, in order.
BatchWriter = Callable[[Connection, Sequence[T]], list[R]]

#: PostgreSQL SQLSTATEs of a failure one item can cause for a whole batch.
_RETRY_ITEMWISE = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def item_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is an error to isolate item by item (see the module doc)."""
    if isinstance(exc, IntegrityError):
        return True
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        return code in _RETRY_ITEMWISE
    return False


_ALL: weakref.WeakSet[GroupCommitter] = weakref.WeakSet()  # type: ignore[type-arg]


def _after_fork_in_child() -> None:
    for committer in list(_ALL):
        committer._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)


class GroupCommitter(Generic[T, R]):
    """Commits items submitted by many threads in shared transactions (see module doc)."""

    def __init__(
        self,
        engine: Engine,
        write: BatchWriter[T, R],
        *,
        name: str = "group-commit",
        max_batch: int = 64,
        idle: float = 5.0,
    ) -> None:
        self.engine = engine
        self.write = write
        self.name = name
        self.max_batch = max_batch
        self.idle = idle
        self._reset()
        _ALL.add(self)

    def _reset(self) -> None:
        """Fresh queue, lock and no thread (at creation, and in a forked child)."""
        self._queue: queue.SimpleQueue[tuple[T, Future[R]]] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        #: (batches, items) committed by this process; for tests and the benchmark.
        self.stats = [0, 0]

    def _ensure_thread(self) -> None:
        """Start the writer thread if none runs (call with ``_guard`` held)."""
        if self._thread is None or not self._thread.is_alive():
            thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            thread.start()
            self._thread = thread

    def submit(self, item: T, timeout: float = 30.0) -> R:
        """Write ``item`` in the next group transaction and return its result once committed.

        Raises :class:`TimeoutError` if the item was still waiting after ``timeout`` seconds
        (it is then withdrawn: nothing of it is stored).
        """
        future: Future[R] = Future()
        with self._guard:
            self._queue.put((item, future))
            self._ensure_thread()
        try:
            return future.result(timeout)
        except TimeoutError:
            if future.cancel():  # still queued: the writer will skip it
                raise
        return future.result()  # inside a transaction that holds the lock: it ends soon

    def _wait(self) -> tuple[T, Future[R]] | None:
        """The first item of the next batch; ``None`` when idle long enough to stop."""
        try:
            return self._queue.get(timeout=self.idle)
        except queue.Empty:
            with self._guard:
                if self._queue.empty():
                    self._thread = None
                    return None
            return self._queue.get()

    def _drain(self, batch: list[tuple[T, Future[R]]]) -> list[tuple[T, Future[R]]]:
        """``batch`` with every item already waiting appended (up to ``max_batch``)."""
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        conn: Connection | None = None  # kept while busy: no pool round trip per batch
        try:
            while (first := self._wait()) is not None:
                live: list[tuple[T, Future[R]]] = []
                try:
                    for attempt in (1, 2):
                        if conn is None:
                            conn = self.engine.connect()
                        try:
                            # On SQLite this waits for the write lock while another process
                            # commits; the items queued meanwhile join this batch.
                            tx = conn.begin()
                            if not live:
                                live = [(item, fut) for item, fut in self._drain([first])
                                        if fut.set_running_or_notify_cancel()]
                            if not live:  # every item taken had been withdrawn
                                tx.rollback()
                                outcomes = []
                                break
                            outcomes = self._commit(conn, tx, [item for item, _ in live])
                            break
                        except DBAPIError as exc:
                            if not exc.connection_invalidated or attempt == 2:
                                raise
                            log.warning("%s: connection lost; the batch is tried again",
                                        self.name)
                            conn = self._discard(conn)
                except BaseException as exc:  # noqa: BLE001 - every waiter must be answered
                    if not live:  # failed before the batch was taken: answer the first item
                        live = [first] if first[1].set_running_or_notify_cancel() else []
                    log.warning("%s: a batch of %d failed (%s)", self.name, len(live),
                                type(exc).__name__)
                    conn = self._discard(conn)
                    for _, fut in live:
                        fut.set_exception(exc)
                    continue
                self.stats[0] += 1
                self.stats[1] += len(live)
                for (_, fut), outcome in zip(live, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        fut.set_exception(outcome)
                    else:
                        fut.set_result(outcome)
        finally:
            self._discard(conn)
            with self._guard:  # an unexpected death: whoever is queued still gets a writer
                if self._thread is threading.current_thread():
                    self._thread = None
                if not self._queue.empty():
                    self._ensure_thread()

    @staticmethod
    def _discard(conn: Connection | None) -> None:  # returns None: ``conn = _discard(conn)``
        """Close ``conn`` for good (a fresh one serves the next batch)."""
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()

    def _commit(self, conn: Connection, tx: RootTransaction, items: list[T]
                ) -> list[R | BaseException]:
        """Write ``items`` in ``tx`` and commit; conflicts isolated item by item."""
        try:
            outcomes: list[R | BaseException] = list(self.write(conn, items))
            tx.commit()
            return outcomes
        except BaseException as exc:
            with contextlib.suppress(Exception):
                tx.rollback()
            if not item_conflict(exc):
                raise
            if len(items) == 1:
                return [exc]
        with conn.begin():  # again, a savepoint per item: keep all but the conflicting ones
            outcomes = []
            for item in items:
                try:
                    with conn.begin_nested():
                        outcomes.append(self.write(conn, [item])[0])
                except DBAPIError as exc:
                    if not item_conflict(exc):
                        raise
                    outcomes.append(exc)
            return outcomes
