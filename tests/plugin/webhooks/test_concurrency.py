"""Duplicate deliveries arriving at the same time create one record (unique constraints)."""

from __future__ import annotations

from sqlalchemy import func, select

from sharewise.plugin.demo import signed_request
from sharewise.plugin.records.models import AuditEntry, Record, WebhookEvent
from tests.answers import same_answer
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
    assert all(same_answer(b, bodies[0]) for b in bodies)
    assert _counts(db_session) == (1, 1, THREADS)
    # intake writes no file (the prefilled PDF is made on first download)
    assert not list((app.extensions["sharewise.storage"].inner.root / tenant.slug).rglob("*"))


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


def test_a_database_locked_past_the_timeout_is_a_503_and_nothing_is_stored(
        app_config, backend, tenant, sample_event):
    """While another process holds SQLite's write lock for longer than INTAKE_TIMEOUT, an
    intake answers 503 with Retry-After and stores nothing; the host's repeat creates it."""
    import sqlite3

    import pytest

    from sharewise.plugin.app import create_app
    from sharewise.plugin.db import engine_for, session_scope

    if backend != "sqlite":
        pytest.skip("a database server takes concurrent writers; only SQLite has one lock")
    app = create_app({**app_config, "INTAKE_TIMEOUT": 0.3})
    client = app.test_client()
    body, headers = signed_request(tenant.webhook_secrets[0], sample_event(request_id="SLOW"),
                                   "msg_slow")
    blocker = sqlite3.connect(engine_for(app).url.database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process's write transaction
    try:
        resp = client.post(f"/webhooks/{tenant.slug}", data=body, headers=headers)
        assert resp.status_code == 503
        assert resp.mimetype == "application/problem+json"
        assert resp.headers["Retry-After"] == "5"
        assert "record_id" not in resp.get_json() and "Traceback" not in resp.get_data(True)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with app.app_context(), session_scope(app, readonly=True) as session:
        assert tuple(session.scalar(select(func.count()).select_from(m))
                     for m in (Record, AuditEntry, WebhookEvent)) == (0, 0, 0)
    again = client.post(f"/webhooks/{tenant.slug}", data=body, headers=headers)
    assert again.status_code == 201
    assert again.get_json()["status"] == "awaiting_completion"
    engine_for(app).dispose()
