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

There is no writer thread: the submitting threads take turns as *leader*. A thread that
finds no leader becomes one and writes the next batch itself, its own item included; the
others wait and are answered by whoever writes their item; when the leader's own item is
committed it hands over (wakes the waiters, one of which leads the next batch). So a lone
intake writes in its own thread with no hand-over at all, and under load each batch costs
one thread switch less than with a dedicated writer thread (A/B runs of the intake
benchmark: 868 against 759 intakes per second on average). On SQLite the batch is taken
once the write lock is held: intakes that arrive while another process commits join the
next transaction instead of waiting for one more. The leaders share one connection, kept
between batches (no pool round trip per batch: on PostgreSQL that is a ping); one unused
for ``idle`` seconds goes back to the pool at the next batch and a fresh one is taken, so a
process that stops writing keeps one connection checked out. A forked child starts with
nothing queued and no connection.
Limits: at most ``max_batch`` items per transaction.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
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
        """Nothing queued, no leader, no connection (at creation, and in a forked child)."""
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[tuple[T, Future[R], float]] = collections.deque()
        self._leading = False
        self._conn: Connection | None = None  # the leaders' connection, kept while busy
        self._last_used = 0.0
        #: (batches, items) committed by this process; for tests and the benchmark.
        self.stats = [0, 0]

    def pending(self) -> int:
        """Items queued and not yet taken into a transaction."""
        return len(self._queue)

    def submit(self, item: T, timeout: float = 30.0) -> R:
        """Write ``item`` in the next group transaction and return its result once committed.

        Raises :class:`TimeoutError` if the item was not taken into a transaction within
        ``timeout`` seconds (it is then withdrawn: nothing of it is stored). That holds for
        the leader's own item too: one found expired when its batch is taken is left out.
        """
        future: Future[R] = Future()
        deadline = time.monotonic() + timeout
        entry = (item, future, deadline)
        with self._cond:
            self._queue.append(entry)
            while not future.done():
                if not self._leading:
                    self._leading = True  # this thread writes the next batch(es)
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 and not future.running():
                    self._queue.remove(entry)  # still queued: withdrawn, nothing stored
                    raise TimeoutError
                # an item already taken is waited for: its transaction holds the lock
                self._cond.wait(remaining if remaining > 0 else None)
            else:
                return future.result()
        try:
            while True:
                self._batch()
                if future.done():
                    break
                self._wake()  # answered items' threads go on while this one leads on
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()
        return future.result()

    def _take(self) -> list[tuple[T, Future[R]]]:
        """The items queued now (up to ``max_batch``), marked as taken; an item whose
        submitter's timeout has passed is answered with :class:`TimeoutError` instead."""
        now = time.monotonic()
        live = []
        with self._cond:
            for _ in range(min(len(self._queue), self.max_batch)):
                item, fut, deadline = self._queue.popleft()
                fut.set_running_or_notify_cancel()  # under the lock: a timed-out submit
                if deadline < now:                  # sees it taken
                    fut.set_exception(TimeoutError())
                else:
                    live.append((item, fut))
        return live

    def _batch(self) -> None:
        """Write one batch in the leader's thread; every item taken is answered."""
        live: list[tuple[T, Future[R]]] = []
        taken = False

        def take() -> list[T]:
            nonlocal live, taken
            live, taken = self._take(), True
            return [item for item, _ in live]

        try:
            outcomes = self.run_batch(take)
            for (_, fut), outcome in zip(live, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)
        except BaseException as exc:  # noqa: BLE001 - every waiter must be answered
            if not taken:  # failed before the batch was taken: it would have failed too
                live = self._take()
            log.warning("%s: a batch of %d failed (%s)", self.name, len(live),
                        type(exc).__name__)
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(exc)

    def run_batch(self, take: Callable[[], list[T]]) -> list[R | BaseException]:
        """Begin a transaction, call ``take`` for the items to write, write and commit them.

        On SQLite ``begin`` waits for the write lock, so ``take`` runs once it is held and
        whatever queued meanwhile joins this batch. ``take`` is called at most once (not
        again when the batch is retried on a fresh connection). Returns one outcome per
        item: its result, or the exception of an item that alone broke a constraint.
        Raises what failed the whole batch (the connection is then dropped). Used by
        :meth:`submit`'s leaders and by a writer process (:mod:`sharewise.plugin.writerprocess`).
        """
        if self._conn is not None and time.monotonic() - self._last_used > self.idle:
            spare, self._conn = self._conn, None  # unused for a while: back to the pool,
            spare.close()                         # a fresh one from it
        items: list[T] | None = None
        try:
            for attempt in (1, 2):
                if self._conn is None:
                    self._conn = self.engine.connect()
                try:
                    tx = self._conn.begin()
                    if items is None:
                        items = take()
                    if not items:  # nothing to write (every item taken had expired)
                        tx.rollback()
                        return []
                    outcomes = self._commit(self._conn, tx, items)
                    break
                except DBAPIError as exc:
                    if not exc.connection_invalidated or attempt == 2:
                        raise
                    log.warning("%s: connection lost; the batch is tried again", self.name)
                    self._conn = self._discard(self._conn)
        except BaseException:
            self._conn = self._discard(self._conn)
            raise
        self._last_used = time.monotonic()
        self.stats[0] += 1
        self.stats[1] += len(items)
        return outcomes

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

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
