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
  first written as a whole inside a savepoint and, if any constraint fails, rolled back to it
  and written again item by item, a savepoint each (still one transaction and one commit);
* any other database error (the disk is full, the lock timed out) fails every item of the
  batch, as their own transactions would have failed;
* ``timeout`` bounds the wait; an item that times out may still be committed later, which
  is harmless for idempotent work (a host retries and gets the stored answer).

On SQLite the batch is taken once the write lock is held: intakes that arrive while another
process commits join the next transaction instead of waiting for one more. The writer
thread starts on first use, after a fork too, and stops after ``idle`` seconds
with nothing to do. Limits: at most ``max_batch`` items per transaction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from sqlalchemy import Connection, Engine, RootTransaction
from sqlalchemy.exc import IntegrityError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: ``write(connection, items) -> results``: inserts every item, one result per item, in order.
BatchWriter = Callable[[Connection, Sequence[T]], list[R]]


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
        self._queue: queue.SimpleQueue[tuple[T, Future[R]]] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        #: (batches, items) committed by this process; for tests and the benchmark.
        self.stats = [0, 0]

    def submit(self, item: T, timeout: float = 30.0) -> R:
        """Write ``item`` in the next group transaction and return its result once committed."""
        future: Future[R] = Future()
        with self._guard:
            if self._pid != os.getpid():  # forked: the parent's thread and queue are not ours
                self._queue, self._thread, self._pid = queue.SimpleQueue(), None, os.getpid()
                self.stats = [0, 0]
            self._queue.put((item, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        return future.result(timeout)

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
                    if conn is None:
                        conn = self.engine.connect()
                    # On SQLite this waits for the write lock, while another process commits;
                    # the items that queue meanwhile join this batch (taken only now).
                    tx = conn.begin()
                    live = [(item, fut) for item, fut in self._drain([first])
                            if fut.set_running_or_notify_cancel()]
                    outcomes = self._commit(conn, tx, [item for item, _ in live])
                except BaseException as exc:  # noqa: BLE001 - every waiter must be answered
                    if not live:  # failed before the batch was taken: answer the first item
                        live = [first] if first[1].set_running_or_notify_cancel() else []
                    log.warning("%s: a batch of %d failed (%s)", self.name, len(live),
                                type(exc).__name__)
                    if conn is not None:  # a fresh connection for the next batch
                        with contextlib.suppress(Exception):
                            conn.invalidate()
                            conn.close()
                        conn = None
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
            if conn is not None:
                conn.close()

    def _commit(self, conn: Connection, tx: RootTransaction, items: list[T]
                ) -> list[R | BaseException]:
        """Write ``items`` in ``tx`` and commit; constraint failures isolated item by item."""
        try:
            outcomes: list[R | BaseException] = list(self.write(conn, items))
            tx.commit()
            return outcomes
        except IntegrityError as exc:
            tx.rollback()
            if len(items) == 1:
                return [exc]
        except BaseException:
            with contextlib.suppress(Exception):
                tx.rollback()
            raise
        with conn.begin():  # again, a savepoint per item: keep all but the duplicates
            outcomes = []
            for item in items:
                try:
                    with conn.begin_nested():
                        outcomes.append(self.write(conn, [item])[0])
                except IntegrityError as exc:
                    outcomes.append(exc)
            return outcomes
