"""plugin.groupcommit: shared transactions, per-item duplicates, failures, timeouts, idling."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from plugin.db import engine_for
from plugin.groupcommit import GroupCommitter
from plugin.records.models import WebhookEvent
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
            wait_until(lambda: len(items) + self.committer._queue.qsize() >= self.total,
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


def test_a_timed_out_item_is_still_committed(app):
    release = threading.Event()

    def slow(conn, items):
        release.wait(20)
        return _write(conn, items)

    committer = GroupCommitter(engine_for(app), slow)
    with pytest.raises(FutureTimeout):
        committer.submit("late", timeout=0.2)
    release.set()
    wait_until(lambda: _keys(app) == ["late"], timeout=10)


def test_the_writer_thread_stops_when_idle_and_restarts(app):
    committer = GroupCommitter(engine_for(app), _write, idle=0.05)
    assert committer.submit("one") == "ok:one"
    wait_until(lambda: committer._thread is None, timeout=5)
    assert committer.submit("two") == "ok:two"
    assert _keys(app) == ["one", "two"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_writer(app, backend):
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
