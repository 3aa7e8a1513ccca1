"""Duplicate deliveries arriving at the same time create one record (unique constraints)."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from plugin.demo import signed_request
from plugin.records.models import AuditEntry, Record, WebhookEvent

THREADS = 8


def _race(app, tenant, deliveries):
    barrier = threading.Barrier(len(deliveries))
    results = [None] * len(deliveries)

    def run(i, body, headers):
        client = app.test_client()
        barrier.wait()
        resp = client.post(f"/webhooks/{tenant.slug}", data=body, headers=headers)
        results[i] = (resp.status_code, resp.get_json())

    threads = [threading.Thread(target=run, args=(i, b, h)) for i, (b, h) in enumerate(deliveries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _counts(db_session):
    db_session.rollback()
    return tuple(db_session.scalar(select(func.count()).select_from(m))
                 for m in (Record, AuditEntry, WebhookEvent))


def test_concurrent_new_webhook_ids_for_one_request(app, tenant, sample_event, db_session):
    event = sample_event(request_id="REQ-RACE")
    deliveries = [signed_request(tenant.webhook_secrets[0], event, f"msg_{i}")
                  for i in range(THREADS)]
    results = _race(app, tenant, deliveries)
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * (THREADS - 1) + [201], results
    bodies = [b for _, b in results]
    assert all(b == bodies[0] for b in bodies)
    assert _counts(db_session) == (1, 1, THREADS)
    # intake writes no file (the prefilled PDF is made on first download)
    assert not list((app.extensions["sharewise.storage"].root / tenant.slug).rglob("*"))


def test_concurrent_same_webhook_id(app, tenant, sample_event, db_session):
    delivery = signed_request(tenant.webhook_secrets[0], sample_event(), "msg_dup")
    results = _race(app, tenant, [delivery] * THREADS)
    assert sorted(s for s, _ in results) == [200] * (THREADS - 1) + [201], results
    assert len({b["record_id"] for _, b in results}) == 1
    assert _counts(db_session) == (1, 1, 1)


def test_concurrent_distinct_requests_all_created(app, tenant, sample_event, db_session):
    deliveries = [signed_request(tenant.webhook_secrets[0], sample_event(request_id=f"R-{i}"))
                  for i in range(THREADS)]
    results = _race(app, tenant, deliveries)
    assert [s for s, _ in results] == [201] * THREADS, results
    assert _counts(db_session) == (THREADS, THREADS, THREADS)
