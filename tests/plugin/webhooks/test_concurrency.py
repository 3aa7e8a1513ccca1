"""Duplicate deliveries arriving at the same time create one record (unique constraints)."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from sharewise.plugin.demo import signed_request
from sharewise.plugin.records.models import AuditEntry, Record, WebhookEvent
from tests.concurrent import post_all_at_once

THREADS = 8


def _counts(db_session):
    db_session.rollback()
    return tuple(db_session.scalar(select(func.count()).select_from(m))
                 for m in (Record, AuditEntry, WebhookEvent))


def test_concurrent_new_webhook_ids_for_one_request(app, tenant, sample_event, db_session):
    event = sample_event(request_id="REQ-RACE")
    deliveries = [signed_request(tenant.webhook_secrets[0], event, f"msg_{i}")
                  for i in range(THREADS)]
    results = post_all_at_once(app, tenant, deliveries)
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * (THREADS - 1) + [201], results
    bodies = [b for _, b in results]
    assert all(b == bodies[0] for b in bodies)
    assert _counts(db_session) == (1, 1, THREADS)
    # intake writes no file (the prefilled PDF is made on first download)
    assert not list((app.extensions["sharewise.storage"].root / tenant.slug).rglob("*"))


def test_concurrent_same_webhook_id(app, tenant, sample_event, db_session):
    delivery = signed_request(tenant.webhook_secrets[0], sample_event(), "msg_dup")
    results = post_all_at_once(app, tenant, [delivery] * THREADS)
    assert sorted(s for s, _ in results) == [200] * (THREADS - 1) + [201], results
    assert len({b["record_id"] for _, b in results}) == 1
    assert _counts(db_session) == (1, 1, 1)


def test_concurrent_distinct_requests_all_created(app, tenant, sample_event, db_session):
    deliveries = [signed_request(tenant.webhook_secrets[0], sample_event(request_id=f"R-{i}"))
                  for i in range(THREADS)]
    results = post_all_at_once(app, tenant, deliveries)
    assert [s for s, _ in results] == [201] * THREADS, results
    assert _counts(db_session) == (THREADS, THREADS, THREADS)


def test_one_group_commit_with_duplicates_inside(app, tenant, sample_event, db_session):
    """Intakes queued behind a held commit are written together; a repeat among them (same
    request, new webhook-id) gets 200 with the first answer while the others are created."""
    from sharewise.plugin.records.services import intake_committer
    from sharewise.plugin.reminders.models import Reminder
    from tests.polling import wait_until

    committer = intake_committer(app)
    write, first = committer.write, threading.Event()

    def held(conn, items):
        if not first.is_set():
            first.set()
            wait_until(lambda: len(items) + committer.pending() >= 6, timeout=20)
        return write(conn, items)

    committer.write = held
    secret = tenant.webhook_secrets[0]
    deliveries = [signed_request(secret, sample_event(request_id=f"G-{i}")) for i in range(4)]
    deliveries += [signed_request(secret, sample_event(request_id="G-1"), "msg_repeat"),
                   signed_request(secret, sample_event(request_id="G-2"), "msg_repeat2")]
    before = list(committer.stats)
    try:
        results = post_all_at_once(app, tenant, deliveries)
    finally:
        committer.write = write
    statuses = [s for s, _ in results]
    assert sorted(statuses) == [200, 200, 201, 201, 201, 201], results
    by_request = {}
    for status, body in results:
        by_request.setdefault(body["record_id"], []).append((status, body))
    assert len(by_request) == 4
    for answers in by_request.values():  # a repeat is answered with the first body
        assert all(b["form_url"] == answers[0][1]["form_url"] for _, b in answers)
    assert _counts(db_session) == (4, 4, 6)
    assert db_session.scalar(select(func.count()).select_from(Reminder)) == 16
    batches, items = committer.stats[0] - before[0], committer.stats[1] - before[1]
    assert items == 6 and batches <= 2  # the held batch, then all the others together


def test_a_write_not_taken_in_time_is_a_503_and_nothing_is_stored(app, client, tenant,
                                                                    sample_event, db_session):
    """An intake still queued when INTAKE_TIMEOUT runs out is withdrawn: 503, nothing kept,
    and the host's repeat creates the record then."""
    from sharewise.plugin.records.services import intake_committer

    committer = intake_committer(app)
    write, release, holding = committer.write, threading.Event(), threading.Event()

    def stuck(conn, items):
        holding.set()
        release.wait(20)
        return write(conn, items)

    secret = tenant.webhook_secrets[0]
    ahead = signed_request(secret, sample_event(request_id="AHEAD"), "msg_ahead")
    body, headers = signed_request(secret, sample_event(request_id="SLOW"), "msg_slow")
    committer.write = stuck
    first = threading.Thread(target=lambda: app.test_client().post(
        f"/webhooks/{tenant.slug}", data=ahead[0], headers=ahead[1]))
    first.start()
    try:
        assert holding.wait(10)  # the writer is inside the batch before ours
        committer.write = write
        app.config["INTAKE_TIMEOUT"] = 0.3
        resp = client.post(f"/webhooks/{tenant.slug}", data=body, headers=headers)
        assert resp.status_code == 503
        assert resp.mimetype == "application/problem+json"
        assert resp.headers["Retry-After"] == "5"
        assert "record_id" not in resp.get_json() and "Traceback" not in resp.get_data(True)
    finally:
        release.set()
        first.join(20)
        app.config["INTAKE_TIMEOUT"] = 30
    assert _counts(db_session) == (1, 1, 1)  # only the intake ahead of ours
    again = client.post(f"/webhooks/{tenant.slug}", data=body, headers=headers)
    assert again.status_code == 201
    assert again.get_json()["status"] == "awaiting_completion"
    assert _counts(db_session) == (2, 2, 2)
