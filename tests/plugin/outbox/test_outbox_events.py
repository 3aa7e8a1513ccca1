"""Outbound events written by the other concerns' transactions reach the host, signed, once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from sharewise.plugin.db import session_scope
from sharewise.plugin.outbox.models import RECORD_CANCELLED, Delivery


def cancel_event(request_id: str, reason: str = "Request withdrawn by the police") -> dict:
    return {"type": "share.cancelled", "timestamp": datetime.now(UTC).isoformat(),
            "data": {"request_id": request_id, "reason": reason}}


def test_cancellation_is_acknowledged_to_the_host_once(app, host, make_record, signed_post,
                                                      tenant, celery_worker):
    record = make_record()
    first = signed_post(tenant, cancel_event(record.request_id))
    assert first.status_code == 200, first.get_json()
    # the host sends the cancellation again (new webhook-id): still one acknowledgement
    again = signed_post(tenant, cancel_event(record.request_id))
    assert again.status_code in (200, 409), again.get_json()
    assert host.wait_for_records(1)
    (wid, body) = next(iter(host.records.items()))
    assert body["type"] == RECORD_CANCELLED
    data = body["data"]
    assert data["record_id"] == record.public_id and data["request_id"] == record.request_id
    assert data["status"] == "cancelled" and data["reason"] == "Request withdrawn by the police"
    assert data["cancelled_at"] and any(a["event"] == "cancelled" for a in data["audit"])
    with session_scope(app) as s:
        rows = s.scalars(select(Delivery).where(Delivery.record_id == record.id)).all()
        assert [(d.public_id, d.event_type) for d in rows] == [(wid, RECORD_CANCELLED)]
    assert not host.wait_for_requests(2, timeout=0.5)


def test_overdue_reminder_reaches_the_host_once_through_the_worker(app, host, make_record, smtp,
                                                                   celery_worker):
    from datetime import timedelta

    from sharewise.plugin.reminders.services import run_scan

    due = datetime.now(UTC) - timedelta(days=8)
    record = make_record(due_at=due.isoformat())
    run_scan(app, now=datetime.now(UTC))  # through the real worker, as beat would
    assert host.wait_for_records(1, timeout=30)
    run_scan(app, now=datetime.now(UTC))  # a second scan sends nothing new
    smtp.wait_for(2)
    (body,) = host.records.values()
    assert body["type"] == "share.record_overdue"
    assert body["data"]["record_id"] == record.public_id
    assert body["data"]["escalated_to"] == "manager"
    assert body["data"]["due_at"].startswith(due.date().isoformat())
    assert not host.wait_for_requests(2, timeout=1.0)
