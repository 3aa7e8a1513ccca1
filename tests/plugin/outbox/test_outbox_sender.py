"""The sender's guarantees without a worker in between: claims, the sweep's choice, races."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from sharewise.plugin.db import session_scope, sessionmaker_for, utcnow
from sharewise.plugin.outbox.models import (
    DEAD,
    DELIVERED,
    FAILED,
    PENDING,
    RECORD_OVERDUE,
    SENDING,
    Delivery,
    DeliveryAttempt,
)
from sharewise.plugin.outbox.sender import attempt_delivery, due_ids
from sharewise.plugin.outbox.services import build_record_overdue, enqueue_event
from sharewise.plugin.records.models import Record


def write(app, record, step="due"):
    with app.app_context(), session_scope(app) as s:
        r = s.get(Record, record.id)
        return enqueue_event(s, tenant=r.tenant, record=r, event_type=RECORD_OVERDUE,
                             data=build_record_overdue(r, escalated_to="manager"),
                             dedupe_key=step).public_id


def set_row(app, public_id, **values):
    with session_scope(app) as s:
        d = s.scalars(select(Delivery).where(Delivery.public_id == public_id)).one()
        for k, v in values.items():
            setattr(d, k, v)


def test_eight_workers_at_once_send_a_delivery_exactly_once(app, host, make_record):
    record = make_record()
    wid = write(app, record)
    host.stall(1, seconds=0.3)  # keep the first sender busy while the others try
    barrier = threading.Barrier(8)
    results: list[str] = []

    def worker():
        barrier.wait()
        with app.app_context():
            results.append(attempt_delivery(app, wid))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [DELIVERED] + ["not_due"] * 7
    assert len(host.requests) == 1 and list(host.records) == [wid]
    with session_scope(app) as s:
        assert s.scalar(select(func.count()).select_from(DeliveryAttempt)) == 1


def test_two_transactions_racing_to_write_the_same_event_make_one_row(app, make_record,
                                                                    backend):
    """On PostgreSQL both transactions are open and past their read when they insert; SQLite
    serialises writers (BEGIN IMMEDIATE), so there they start together and queue."""
    record = make_record()
    in_transaction = backend == "postgres"
    barrier = threading.Barrier(2)
    ids: list[str] = []
    errors: list[BaseException] = []

    def writer():
        try:
            with app.app_context():
                session = sessionmaker_for(app)()
                try:
                    if not in_transaction:
                        barrier.wait()
                    r = session.get(Record, record.id)
                    if in_transaction:
                        barrier.wait()
                    d = enqueue_event(session, tenant=r.tenant, record=r,
                                      event_type=RECORD_OVERDUE,
                                      data=build_record_overdue(r, escalated_to="manager"),
                                      dedupe_key="+1wd")
                    public_id = d.public_id
                    session.commit()
                    ids.append(public_id)
                finally:
                    session.close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(ids) == 2 and ids[0] == ids[1]
    with session_scope(app) as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 1


def test_sweep_picks_due_and_abandoned_rows_only(app, make_record):
    record = make_record()
    now = utcnow()
    long_ago = now - timedelta(hours=1)
    ids = {name: write(app, record, step=name) for name in (
        "due", "future", "fresh_handover", "parked", "leased", "lease_expired", "delivered",
        "failed", "dead")}
    set_row(app, ids["due"], next_attempt_at=long_ago, enqueued_at=long_ago)
    set_row(app, ids["future"], next_attempt_at=now + timedelta(minutes=5), enqueued_at=None)
    set_row(app, ids["fresh_handover"], next_attempt_at=long_ago, enqueued_at=now)
    set_row(app, ids["parked"], next_attempt_at=None, enqueued_at=None)
    set_row(app, ids["leased"], state=SENDING, lease_until=now + timedelta(minutes=1),
            enqueued_at=None)
    set_row(app, ids["lease_expired"], state=SENDING, lease_until=now - timedelta(seconds=1),
            enqueued_at=None)
    for name, state in (("delivered", DELIVERED), ("failed", FAILED), ("dead", DEAD)):
        set_row(app, ids[name], state=state, next_attempt_at=None, enqueued_at=None)
    picked = due_ids(app, now=now)
    assert sorted(picked) == sorted([ids["due"], ids["lease_expired"]])
    # handed over just now: the next sweep leaves them alone until the hand-over is stale
    assert due_ids(app, now=now) == []
    later = now + timedelta(seconds=2)  # DELIVERY_REQUEUE_AFTER is 1 s in these tests
    assert set(due_ids(app, now=later)) >= {ids["due"], ids["lease_expired"]}


def test_a_delivery_in_flight_cannot_be_claimed_again(app, host, make_record):
    record = make_record()
    wid = write(app, record)
    set_row(app, wid, state=SENDING, lease_until=utcnow() + timedelta(minutes=1))
    assert attempt_delivery(app, wid) == "not_due"
    assert host.requests == []
    set_row(app, wid, lease_until=utcnow() - timedelta(seconds=1))
    assert attempt_delivery(app, wid) == DELIVERED
    assert list(host.records) == [wid]


def test_unknown_delivery_and_not_yet_due_are_no_ops(app, host, make_record):
    record = make_record()
    wid = write(app, record)
    set_row(app, wid, next_attempt_at=utcnow() + timedelta(minutes=5))
    assert attempt_delivery(app, wid) == "not_due"
    assert attempt_delivery(app, "msg_doesnotexist") == "not_due"
    with session_scope(app) as s:
        assert s.scalars(select(Delivery.state)).all() == [PENDING]
    assert host.requests == []


def test_operator_email_that_failed_is_sent_by_the_next_sweep(app, host, make_record, smtp):
    from sharewise.plugin.outbox.sender import sweep

    record = make_record()
    wid = write(app, record)
    set_row(app, wid, attempts=9)  # the next attempt is the tenth and last
    host.always(503)
    smtp.stop()  # the mail server is down when the delivery dies
    assert attempt_delivery(app, wid) == DEAD
    with session_scope(app) as s:
        d = s.scalars(select(Delivery).where(Delivery.public_id == wid)).one()
        assert d.state == DEAD and d.attempts == 10 and d.operators_notified_at is None
    smtp.start()
    assert sweep(app)["notified"] == 1
    (mail,) = smtp.wait_for(1)
    assert wid in mail.part("plain")
    assert sweep(app)["notified"] == 0  # told once
    assert len(smtp.received) == 1


def test_a_message_that_arrives_before_the_row_is_due_is_not_dropped(
    app, host, make_record, celery_worker
):
    from tests.plugin.outbox.test_outbox_delivery import state_is, wait_until

    record = make_record()
    due = utcnow() + timedelta(seconds=1.5)
    with app.app_context(), session_scope(app) as s:
        r = s.get(Record, record.id)
        d = enqueue_event(s, tenant=r.tenant, record=r, event_type=RECORD_OVERDUE,
                          data=build_record_overdue(r, escalated_to="manager"))
        # the after-commit message will reach the worker before the row is due (as a countdown
        # message can, by timer jitter), and the sweep would not look at it for an hour
        d.next_attempt_at = due
        d.enqueued_at = due + timedelta(hours=1)
        wid = d.public_id
    wait_until(state_is(app, wid, DELIVERED))
    assert list(host.records) == [wid]
    assert host.requests[0].at >= due.timestamp()
