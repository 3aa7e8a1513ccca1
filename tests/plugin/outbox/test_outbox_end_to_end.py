"""The whole loop: a signed ``share.requested`` in, the practitioner completes the form through
the upload page, and the host simulator receives a correctly signed ``share.record_completed``
whose PDF hash and fields match what was typed: through a real Celery worker, with the host
down for the first attempts."""

from __future__ import annotations

import base64
import hashlib
import io

from pypdf import PdfReader
from sqlalchemy import select

from sharewise.plugin.db import session_scope
from sharewise.plugin.outbox.models import DELIVERED, Delivery, DeliveryAttempt
from sharewise.plugin.storage import storage
from tests.forms.viewers import fill_with_pdfium
from tests.plugin.outbox.test_outbox_delivery import wait_until
from tests.plugin.uploads.journey import as_typed, complete_answers, path_of, record_row


def test_requested_then_completed_by_upload_reaches_the_host_signed_and_intact(
    app, client, host, tenant, signed_post, sample_event, celery_worker
):
    created = signed_post(tenant, sample_event())
    assert created.status_code == 201
    made = created.get_json()
    rid = made["record_id"]

    host.fail(2, status=503)  # the host is having a bad moment when the record completes
    prefilled = client.get(path_of(made["form_pdf_url"]))
    answers = complete_answers()
    typed = fill_with_pdfium(prefilled.data, as_typed(answers))
    resp = client.post(path_of(made["upload_url"]), data=typed,
                       headers={"content-type": "application/pdf", "accept": "application/json"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["status"] == "complete"

    assert host.wait_for_records(1, timeout=30)
    record = record_row(app, rid)
    (wid, body) = next(iter(host.records.items()))
    # signed (the simulator only stores what its own verifier accepted), one webhook-id
    assert [r.webhook_id for r in host.requests] == [wid] * 3
    assert all(r.verified for r in host.requests)
    assert body["type"] == "share.record_completed"
    data = body["data"]
    assert data["schema"] == "sharewise.decision-record/2" and data["schema_version"] == 2
    assert (data["record_id"], data["request_id"], data["tenant"], data["status"]) == (
        rid, record.request_id, "northshire", "complete")
    assert data["decision"] == "share" and data["problems"] == []
    assert data["completed_at"].startswith(record.completed_at.date().isoformat())
    # every typed answer arrives normalised, and so do the host's own prefilled values
    for name, value in answers.items():
        assert data["fields"][name] == value, name
    assert data["fields"]["record_id"] == rid
    assert data["fields"]["case_reference"] == "CASE-2026-0042"
    assert data["fields"]["subject_name"] == record.prefill["subject_name"]
    assert [a["event"] for a in data["audit"]][-1] == "completed"
    # the PDF: the final, flattened record, byte for byte what Sharewise stored
    pdf = base64.b64decode(data["pdf"]["base64"])
    digest = hashlib.sha256(pdf).hexdigest()
    assert digest == data["pdf"]["sha256"] == record.final_sha256
    assert len(pdf) == data["pdf"]["size"]
    assert pdf == storage(app).get(record.final_pdf_key)
    assert "/AcroForm" not in PdfReader(io.BytesIO(pdf)).trailer["/Root"]

    wait_until(lambda: _state(app, wid) == DELIVERED)
    with session_scope(app) as s:
        d = s.scalars(select(Delivery).where(Delivery.public_id == wid)).one()
        codes = s.scalars(select(DeliveryAttempt.status_code)
                          .where(DeliveryAttempt.delivery_id == d.id)
                          .order_by(DeliveryAttempt.id)).all()
    assert codes == [503, 503, 200]


def _state(app, wid):
    with session_scope(app) as s:
        return s.scalars(select(Delivery.state).where(Delivery.public_id == wid)).one()
