"""plugin.groupcommit: shared transactions, per-item duplicates, failures, timeouts, idling."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from sharewise.plugin.db import engine_for
from sharewise.plugin.groupcommit import GroupCommitter
from sharewise.plugin.records.models import WebhookEvent
from tests.polling import wait_until

EVENTS = WebhookEvent.__table__


def _write(conn, items):
    """One webhook_events row per item (unique on tenant + webhook_id); result: the id."""
    conn.execute(insert(EVENTS), [
        {"tenant": "t", "webhook_id": key, "event_type": "x", "response_status": 200,
         "response_body": {}} for key in items])
    return [f"ok:{key}" for key in items]


def _keys(app):
    with engine_for(app).connect() as conn:
        return sorted(conn.scalars(select(EVENTS.c.webhook_id)).all())


class Gate:
    """Holds the first batch until all ``total`` items are in it or queued behind it."""

    def __init__(self, committer, total):
        self.committer, self.total, self.first = committer, total, True

    def __call__(self, conn, items):
        if self.first:
            self.first = False
            wait_until(lambda: len(items) + self.committer.pending() >= self.total,
                       timeout=20)
        return _write(conn, items)


def _submit_all(committer, keys, **kwargs):
    results: dict[str, object] = {}

    def run(key):
        try:
            results[key] = committer.submit(key, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertions
            results[key] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in keys]
    for t in threads:
        t.start()
        time.sleep(0.002)  # queue them in order
    for t in threads:
        t.join(30)
    return results


def test_waiting_items_share_one_transaction(app):
    committer = GroupCommitter(engine_for(app), _write)
    committer.write = Gate(committer, total=10)
    keys = [f"k{i:02}" for i in range(10)]
    results = _submit_all(committer, keys)
    assert results == {k: f"ok:{k}" for k in keys}
    assert _keys(app) == keys
    assert committer.stats[1] == 10
    assert committer.stats[0] <= 2  # the gated first batch, then everything behind it


def test_a_duplicate_fails_alone_and_its_batch_is_kept(app):
    committer = GroupCommitter(engine_for(app), _write)
    assert committer.submit("dup") == "ok:dup"
    committer.write = Gate(committer, total=5)
    results = _submit_all(committer, ["first", "a", "dup", "b", "a"])
    assert results["first"] == "ok:first" and results["b"] == "ok:b"
    assert isinstance(results["dup"], IntegrityError)
    # the two "a" raced in one batch: exactly one of them won
    assert _keys(app) == ["a", "b", "dup", "first"]


def test_a_database_error_fails_the_batch_and_the_next_batch_works(app):
    calls = []

    def write(conn, items):
        calls.append(list(items))
        if items == ["boom"]:
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        return _write(conn, items)

    committer = GroupCommitter(engine_for(app), write)
    with pytest.raises(OperationalError):
        committer.submit("boom")
    assert committer.submit("after") == "ok:after"
    assert _keys(app) == ["after"]


def test_a_timed_out_item_still_waiting_is_withdrawn(app):
    release, holding = threading.Event(), threading.Event()

    def held(conn, items):
        if "first" in items:
            holding.set()
            release.wait(20)
        return _write(conn, items)

    committer = GroupCommitter(engine_for(app), held)
    first = threading.Thread(target=committer.submit, args=("first",))
    first.start()
    assert holding.wait(10)
    with pytest.raises(FutureTimeout):
        committer.submit("late", timeout=0.2)  # queued behind the held batch
    release.set()
    first.join(10)
    assert committer.submit("after") == "ok:after"
    assert _keys(app) == ["after", "first"]  # "late" was never written


def test_an_item_already_being_written_is_waited_for(app):
    """A follower whose item is inside a batch that outlasts its timeout gets its result:
    that transaction holds the lock and ends; withdrawing the item is no longer possible."""
    calls = []

    def slow_second(conn, items):
        calls.append(list(items))
        if len(calls) == 1:  # the first leader's batch: wait until the other two queue
            wait_until(lambda: committer.pending() >= 2, timeout=20)
        else:
            time.sleep(3.0)  # longer than their timeout
        return _write(conn, items)

    committer = GroupCommitter(engine_for(app), slow_second)
    first = threading.Thread(target=committer.submit, args=("first",))
    first.start()
    wait_until(lambda: calls, timeout=10)
    results = _submit_all(committer, ["b", "c"], timeout=2.0)
    first.join(10)
    assert results == {"b": "ok:b", "c": "ok:c"}
    assert sorted(calls[1]) == ["b", "c"]  # one batch: one thread led it, one followed
    assert _keys(app) == ["b", "c", "first"]


def test_a_leaders_own_item_expired_while_it_waited_for_the_lock_is_left_out(app, backend):
    """The leader waits for the write lock like anyone; if its own timeout passed meanwhile,
    its item is left out of the batch (TimeoutError, nothing stored), as a follower's is."""
    if backend != "sqlite":
        pytest.skip("only SQLite's write lock makes a leader wait before its batch")
    engine = engine_for(app)
    committer = GroupCommitter(engine, _write)
    holder = engine.connect()
    tx = holder.begin()  # holds the write lock
    outcome = {}

    def late():
        try:
            outcome["r"] = committer.submit("late", timeout=0.2)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertions
            outcome["r"] = exc

    thread = threading.Thread(target=late)
    thread.start()
    time.sleep(0.6)
    tx.rollback()
    holder.close()
    thread.join(10)
    assert isinstance(outcome["r"], TimeoutError)
    assert committer.submit("after") == "ok:after"
    assert _keys(app) == ["after"]


def test_leadership_passes_on_when_a_batch_is_full(app):
    """max_batch 2, nine threads: a leader whose item is answered hands over, and the items
    left queued are written by the next leader, until every one is committed."""
    committer = GroupCommitter(engine_for(app), Gate(None, 0), max_batch=2)
    gate = committer.write
    gate.committer, gate.total = committer, 9
    keys = [f"b{i}" for i in range(9)]
    results = _submit_all(committer, keys)
    assert results == {k: f"ok:{k}" for k in keys}
    assert committer.stats == [5, 9]  # 2 + 2 + 2 + 2 + 1
    assert committer.pending() == 0 and not committer._leading


def test_a_leader_that_raises_hands_over(app):
    """A batch failing with something that is not a database error (here a
    KeyboardInterrupt-like BaseException) answers its own items with it; the threads
    queued behind it lead on and are written."""

    class Stop(BaseException):
        pass

    calls = []

    def boom(conn, items):
        calls.append(list(items))
        if "boom" in items:
            wait_until(lambda: committer.pending() >= 2, timeout=20)
            raise Stop
        return _write(conn, items)

    committer = GroupCommitter(engine_for(app), boom)
    results = _submit_all(committer, ["boom", "x", "y"])
    assert isinstance(results["boom"], Stop)
    assert results["x"] == "ok:x" and results["y"] == "ok:y"
    assert calls[0] == ["boom"] and not committer._leading
    assert _keys(app) == ["x", "y"]


def test_a_postgresql_deadlock_between_two_batches_fails_no_batch(app, backend):
    """Two processes' batches locking the same keys in opposite orders: PostgreSQL kills one
    transaction; its items are written again one by one and meet the other's rows."""
    if backend != "postgres":
        pytest.skip("SQLite has a single writer: no deadlock to detect")
    barrier = threading.Barrier(2, timeout=20)

    def crossing(conn, items):
        if len(items) == 2:  # the first, whole-batch attempt: one row, wait, the other
            _write(conn, items[:1])
            barrier.wait()
            _write(conn, items[1:])
            return [f"ok:{k}" for k in items]
        return _write(conn, items)

    committer = GroupCommitter(engine_for(app), crossing)
    results: dict[str, list] = {}

    def batch(name, keys):  # what each process's writer does with its batch of two
        with engine_for(app).connect() as conn:
            results[name] = committer._commit(conn, conn.begin(), keys)

    threads = [threading.Thread(target=batch, args=("a", ["k1", "k2"])),
               threading.Thread(target=batch, args=("b", ["k2", "k1"]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert _keys(app) == ["k1", "k2"]
    winners = [name for name, out in results.items() if "ok:k1" in out]
    assert len(winners) == 1, results
    loser = results["b" if winners == ["a"] else "a"]
    # the loser's items met the winner's committed rows: duplicates, not a failed batch
    assert len(loser) == 2 and all(isinstance(o, IntegrityError) for o in loser), results


def test_the_connection_is_kept_between_batches_and_swapped_when_idle(app):
    """Nine threads, two items a batch: every batch is written on the same connection,
    whichever thread leads it; after ``idle`` seconds unused it goes back to the pool and
    the next batch takes a fresh one."""
    seen = []

    class Recording(Gate):
        def __call__(self, conn, items):
            seen.append(conn)
            return super().__call__(conn, items)

    committer = GroupCommitter(engine_for(app), _write, max_batch=2, idle=0.3)
    committer.write = Recording(committer, total=9)
    keys = [f"c{i}" for i in range(9)]
    results = _submit_all(committer, keys)
    assert results == {k: f"ok:{k}" for k in keys}
    assert len(seen) == committer.stats[0] >= 5 and all(c is seen[0] for c in seen)
    assert committer._conn is seen[0]  # kept for the next batch
    time.sleep(0.5)
    assert committer.submit("later") == "ok:later"
    assert seen[-1] is not seen[0] and seen[0].closed


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_afresh(app, backend):
    if backend != "sqlite":
        pytest.skip("a forked child must not share the parent's PostgreSQL connections")
    committer = GroupCommitter(engine_for(app), _write)
    assert committer.submit("parent") == "ok:parent"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports by exit code
        code = 1
        try:
            engine_for(app).dispose(close=False)
            code = 0 if committer.submit("child") == "ok:child" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _keys(app) == ["child", "parent"]


def test_every_item_of_many_threads_is_committed_once(app):
    committer = GroupCommitter(engine_for(app), _write)
    keys = [f"m{i:03}" for i in range(120)]
    results = _submit_all(committer, keys)
    assert all(results[k] == f"ok:{k}" for k in keys)
    with engine_for(app).connect() as conn:
        assert conn.scalar(select(func.count()).select_from(EVENTS)) == 120
    assert committer.stats[1] == 120


def test_a_batch_whose_connection_was_lost_is_tried_again(app, backend):
    """PostgreSQL ends the leader's session in the middle of a batch (a restart, a
    failover): the batch fails on the dead connection and is written again, once, on a
    fresh one."""
    if backend != "postgres":
        pytest.skip("only a database server can drop a connection")
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    admin = create_engine(engine_for(app).url.render_as_string(hide_password=False),
                          poolclass=NullPool)  # not the pool the committer draws from
    pids = []

    def write(conn, items):
        pids.append(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
        if len(pids) == 1:
            with admin.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0]})
                other.commit()
        return _write(conn, items)

    committer = GroupCommitter(engine_for(app), write)
    assert committer.submit("x") == "ok:x"
    assert len(pids) == 2 and pids[1] != pids[0]  # written again on a new connection
    assert _keys(app) == ["x"]
    admin.dispose()


def test_a_lost_sqlite_connection_at_begin_is_replaced(app, backend, caplog):
    """BEGIN goes straight to the driver on SQLite; a connection that is gone by then (here:
    closed under the committer) is still seen as lost, so the batch is written on a new one
    instead of failing."""
    if backend != "sqlite":
        pytest.skip("the SQLite BEGIN path")
    committer = GroupCommitter(engine_for(app), _write)
    assert committer.submit("first") == "ok:first"
    committer._conn.connection.driver_connection.close()  # kept for the next batch: now dead
    with caplog.at_level("WARNING", logger="sharewise.plugin.groupcommit"):
        assert committer.submit("second") == "ok:second"
    assert "connection lost; the batch is tried again" in caplog.text
    assert _keys(app) == ["first", "second"]
