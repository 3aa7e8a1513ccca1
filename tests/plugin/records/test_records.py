"""Records: transitions and the append-only audit trail, cancellation, the status endpoint."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from sharewise.plugin import links
from sharewise.plugin.db import session_scope
from sharewise.plugin.records import audit, services
from sharewise.plugin.records.models import (
    AppendOnlyError,
    AuditEntry,
    Record,
    new_public_id,
)

PROBLEM = "application/problem+json"


def _path(url):
    return url[len("http://sharewise.test"):]


def _cancel(signed_post, tenant, request_id, webhook_id=None, reason="withdrawn by the host"):
    event = {"type": "share.cancelled", "timestamp": "2026-11-24T10:00:00Z",
             "data": {"request_id": request_id, "reason": reason}}
    return signed_post(tenant, event, webhook_id=webhook_id)


@pytest.fixture
def created(tenant, signed_post, sample_event):
    resp = signed_post(tenant, sample_event(request_id="REQ-C"))
    assert resp.status_code == 201
    return resp.get_json()


def test_public_ids_are_opaque():
    ids = {new_public_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("SR-") and len(i) == 19 and i[3:].isalnum() and i[3:].isupper()
               for i in ids)


def test_transitions_write_audit(app, created):
    with session_scope(app) as s:
        record = services.get_by_public_id(s, created["record_id"])
        assert audit.transition(s, record, "incomplete", "practitioner", "upload 1")
        assert not audit.transition(s, record, "incomplete", "practitioner")
        audit.transition(s, record, "complete", "practitioner")
        with pytest.raises(audit.InvalidTransition):
            audit.transition(s, record, "cancelled", "host")
    with session_scope(app) as s:
        record = services.get_by_public_id(s, created["record_id"])
        assert record.status == "complete" and record.completed_at is not None
        assert [(a.from_status, a.to_status, a.actor) for a in record.audit] == [
            (None, "awaiting_completion", "host"),
            ("awaiting_completion", "incomplete", "practitioner"),
            ("incomplete", "complete", "practitioner"),
        ]


def test_audit_is_append_only_in_model_and_database(app, created):
    with pytest.raises(AppendOnlyError), session_scope(app) as s:
        entry = s.scalar(select(AuditEntry))
        entry.reason = "rewritten"
    with pytest.raises(AppendOnlyError), session_scope(app) as s:
        s.delete(s.scalar(select(AuditEntry)))
    with pytest.raises(AppendOnlyError), session_scope(app) as s:
        s.execute(sa.update(AuditEntry).values(reason="x"))
    # below the model layer, the database refuses too
    engine = app.extensions["sharewise.db"]["engine"]
    for sql in ("UPDATE audit_entries SET reason = 'x'", "DELETE FROM audit_entries"):
        with pytest.raises(sa.exc.DatabaseError), engine.begin() as conn:
            conn.exec_driver_sql(sql)


def test_cancel(app, tenant, signed_post, created, db_session):
    resp = _cancel(signed_post, tenant, "REQ-C", webhook_id="c1")
    assert resp.status_code == 200
    assert resp.get_json() == {"record_id": created["record_id"], "status": "cancelled"}
    again = _cancel(signed_post, tenant, "REQ-C", webhook_id="c1")
    other = _cancel(signed_post, tenant, "REQ-C", webhook_id="c2")
    assert again.get_json() == other.get_json() == resp.get_json()
    record = db_session.scalar(select(Record))
    assert record.status == "cancelled" and record.cancelled_at is not None
    events = [(a.event, a.to_status, a.reason) for a in record.audit]
    assert events[1:] == [("cancelled", "cancelled", "withdrawn by the host")]
    status = app.test_client().get(_path(created["status_url"])).get_json()
    assert status["status"] == "cancelled"


def test_cancel_complete_record_is_409(app, tenant, signed_post, created):
    with session_scope(app) as s:
        audit.transition(s, services.get_by_public_id(s, created["record_id"]), "complete",
                            "practitioner")
    resp = _cancel(signed_post, tenant, "REQ-C")
    assert resp.status_code == 409 and resp.mimetype == PROBLEM


def test_cancel_other_tenants_request_is_404(other_tenant, signed_post, created):
    assert _cancel(signed_post, other_tenant, "REQ-C").status_code == 404


def test_status_endpoint_tokens(app, client, created):
    body = client.get(_path(created["status_url"])).get_json()
    missing = body.pop("missing")
    assert body == {"record_id": created["record_id"], "status": "awaiting_completion",
                    "schema_version": 2, "due_at": created["due_at"], "completed_at": None,
                    "purged_at": None}
    # nothing uploaded yet: what the prefilled form still lacks, rule by rule
    assert {1, 2, 7} <= {m["rule"] for m in missing}
    assert all(set(m) == {"field", "rule", "message"} for m in missing)
    assert {"decision", "decided_at"} <= {m["field"] for m in missing}
    form_token = created["form_url"].rsplit("/", 1)[1]
    wrong = client.get(f"/status/{form_token}")
    assert wrong.status_code == 403 and wrong.get_json()["type"].endswith("link-wrong-purpose")
    bad = client.get("/status/not-a-token")
    assert bad.status_code == 403 and bad.mimetype == PROBLEM
    with app.app_context():
        foreign = links.make_token("southvale", created["record_id"], "status")
    assert client.get(f"/status/{foreign}").status_code == 404
