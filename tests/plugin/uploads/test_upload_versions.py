"""``handle_upload``: versions, nothing lost, status and audit, completion in one transaction,
racing uploads, and the host's ``share.form_submitted`` going through the same path."""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from sharewise.plugin.db import session_scope
from sharewise.plugin.outbox.models import Delivery
from sharewise.plugin.records.models import AuditEntry
from sharewise.plugin.storage import storage
from sharewise.plugin.uploads import services
from sharewise.plugin.uploads.services import handle_upload
from tests.forms import badpdfs
from tests.plugin.uploads.journey import (
    complete_answers,
    create_record,
    filled_pdf,
    partial_answers,
    record_row,
    versions,
)


@pytest.fixture
def made(app, signed_post, sample_event) -> dict[str, Any]:
    return create_record(signed_post, sample_event)


def upload(app, record_id: str, data: bytes, source: str = "api") -> services.UploadResult:
    record = record_row(app, record_id)
    with app.app_context(), session_scope(app) as session:
        return handle_upload(session, record, data, source=source, actor="practitioner")


def audit_trail(app, record_id: str) -> list[tuple[str, str | None, str | None]]:
    record = record_row(app, record_id)
    with app.app_context(), session_scope(app) as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.record_id == record.id)
                               .order_by(AuditEntry.id))
        return [(a.event, a.from_status, a.to_status) for a in rows]


def test_every_upload_is_a_numbered_version_and_nothing_is_lost(app, client, made):
    rid = made["record_id"]
    prefilled = client.get(made["form_pdf_url"].removeprefix("http://sharewise.test")).data
    sent = [
        b"this is not a pdf",
        filled_pdf(app, rid, partial_answers()),
        badpdfs.set_text(prefilled, "case_reference", "OTHER-CASE"),
        filled_pdf(app, rid, complete_answers()),
        filled_pdf(app, rid, {**complete_answers(), "decision": "not_share"}),
    ]
    results = [upload(app, rid, data) for data in sent]
    assert [(r.version, r.outcome, r.rejection_code, r.status) for r in results] == [
        (1, "rejected", "not_pdf", "awaiting_completion"),
        (2, "incomplete", None, "incomplete"),
        (3, "rejected", "tampered", "incomplete"),
        (4, "accepted", None, "complete"),
        (5, "rejected", "record_complete", "complete"),
    ]
    rows = versions(app, rid)
    assert [v.version for v in rows] == [1, 2, 3, 4, 5]
    with app.app_context():
        for row, data in zip(rows, sent, strict=True):
            assert storage(app).get(row.storage_key) == data
            assert row.sha256 == hashlib.sha256(data).hexdigest() and row.size == len(data)
    # parsed values and problems are kept with the version that was read
    assert rows[1].values["decision"] == "share" and rows[1].problems
    assert rows[3].values["consent"] == "given" and rows[3].problems == []
    assert rows[0].values is None and rows[4].values is None
    # (the downloads of the form, access entries of their own, are left out here)
    assert [e for e in audit_trail(app, rid) if e[0] != "downloaded"] == [
        ("created", None, "awaiting_completion"),
        ("upload_rejected", "awaiting_completion", "awaiting_completion"),
        ("upload_incomplete", "awaiting_completion", "incomplete"),
        ("upload_rejected", "incomplete", "incomplete"),
        ("completed", "incomplete", "complete"),
        ("upload_rejected", "complete", "complete"),
    ]


def test_a_second_incomplete_upload_keeps_the_status_and_updates_what_is_missing(app, made):
    rid = made["record_id"]
    first = upload(app, rid, filled_pdf(app, rid, partial_answers()))
    more = {**partial_answers(), **{k: v for k, v in complete_answers().items()
                                    if k.startswith("check_")}}
    second = upload(app, rid, filled_pdf(app, rid, more))
    assert (first.status, second.status) == ("incomplete", "incomplete")
    assert {m["rule"] for m in first.missing} == {1, 2, 3, 4, 6}
    assert not any(m["field"].startswith("check_") for m in second.missing)
    assert record_row(app, rid).missing == second.missing
    assert audit_trail(app, rid)[-1] == ("upload_incomplete", "incomplete", "incomplete")


def test_completion_stores_the_final_pdf_and_writes_the_post_back_row(app, made):
    rid = made["record_id"]
    answers = complete_answers()
    result = upload(app, rid, filled_pdf(app, rid, answers))
    assert result.completed and result.http_status == 200
    record = record_row(app, rid)
    assert record.status == "complete" and record.completed_at is not None
    with app.app_context():
        final = storage(app).get(record.final_pdf_key)
    assert hashlib.sha256(final).hexdigest() == record.final_sha256
    with app.app_context(), session_scope(app) as session:
        [delivery] = session.scalars(select(Delivery).where(Delivery.record_id == record.id))
        data = delivery.payload["data"]
        assert (delivery.event_type, delivery.pdf_key) == ("share.record_completed",
                                                           record.final_pdf_key)
    assert data["pdf"]["sha256"] == record.final_sha256
    assert data["pdf"]["size"] == len(final)
    assert data["record_id"] == rid and data["decision"] == "share"
    for name, value in answers.items():
        assert data["fields"][name] == value
    assert data["fields"]["case_reference"] == "CASE-2026-0042"
    assert [a["event"] for a in data["audit"]][-1] == "completed"


def test_completion_is_one_transaction(app, made, monkeypatch):
    """If the post-back row cannot be written, the record does not become complete either."""
    rid = made["record_id"]

    def refuse(*_a, **_k):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(services, "enqueue_record_completed", refuse)
    pdf = filled_pdf(app, rid, complete_answers())
    with pytest.raises(RuntimeError):
        upload(app, rid, pdf)
    record = record_row(app, rid)
    assert (record.status, record.final_pdf_key, record.final_sha256) == (
        "awaiting_completion", None, None)
    assert versions(app, rid) == []
    assert audit_trail(app, rid) == [("created", None, "awaiting_completion")]
    monkeypatch.undo()
    # the same upload again now goes through, numbered 1 (nothing half-written stayed behind)
    assert upload(app, rid, pdf).version == 1


def _race(app, rid: str, payloads: list[bytes]) -> list[services.UploadResult]:
    barrier = threading.Barrier(len(payloads))
    results: list[Any] = [None] * len(payloads)
    record = record_row(app, rid)

    def run(i: int) -> None:
        with app.app_context():
            barrier.wait()
            with session_scope(app) as session:
                results[i] = handle_upload(session, record, payloads[i], source="api",
                                           actor="practitioner")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None for r in results), "an upload thread failed"
    return results


def test_racing_incomplete_uploads_are_all_kept_with_distinct_numbers(app, made):
    rid = made["record_id"]
    payloads = [filled_pdf(app, rid, {**partial_answers(), "decision_reasons": f"Reason {i}"})
                for i in range(4)]
    results = _race(app, rid, payloads)
    assert sorted(r.version for r in results) == [1, 2, 3, 4]
    rows = versions(app, rid)
    assert [v.outcome for v in rows] == ["incomplete"] * 4
    with app.app_context():
        assert sorted(storage(app).get(v.storage_key) for v in rows) == sorted(payloads)
    record = record_row(app, rid)
    assert record.status == "incomplete"
    assert record.missing == rows[-1].problems  # the record follows the later one


def test_racing_complete_and_incomplete_uploads(app, made):
    """One complete upload among partial ones: it wins once; later ones are refused, kept."""
    rid = made["record_id"]
    payloads = [filled_pdf(app, rid, partial_answers()) for _ in range(4)]
    payloads.insert(2, filled_pdf(app, rid, complete_answers()))
    _race(app, rid, payloads)
    rows = versions(app, rid)
    assert [v.version for v in rows] == [1, 2, 3, 4, 5]
    outcomes = [v.outcome for v in rows]
    assert outcomes.count("accepted") == 1
    done = outcomes.index("accepted")
    assert all(o == "incomplete" for o in outcomes[:done])
    assert all(v.rejection_code == "record_complete" for v in rows[done + 1:])
    assert record_row(app, rid).status == "complete"
    with app.app_context():
        assert all(storage(app).exists(v.storage_key) for v in rows)


# ------------------------------------------------------------------ the host's upload


def _form_submitted(app, request_id: str, pdf: bytes) -> dict[str, Any]:
    return {"type": "share.form_submitted", "timestamp": "2026-01-01T00:00:00Z",
            "data": {"request_id": request_id,
                     "pdf_base64": base64.b64encode(pdf).decode("ascii")}}


def test_form_submitted_by_the_host_goes_through_the_same_path(app, made, signed_post):
    rid = made["record_id"]
    request_id = record_row(app, rid).request_id
    partial = filled_pdf(app, rid, partial_answers())
    webhook_id = f"msg_{uuid.uuid4().hex}"
    first = signed_post("northshire", _form_submitted(app, request_id, partial), webhook_id)
    assert first.status_code == 200
    body = first.get_json()
    assert (body["record_id"], body["status"], body["version"]) == (rid, "incomplete", 1)
    assert {m["rule"] for m in body["missing"]} == {1, 2, 3, 4, 6}
    # the same delivery again: the same answer, no second version
    again = signed_post("northshire", _form_submitted(app, request_id, partial), webhook_id)
    assert again.status_code == 200 and again.get_json() == body
    assert [v.source for v in versions(app, rid)] == ["host"]

    bad = signed_post("northshire", _form_submitted(app, request_id, b"GIF89a not a pdf"))
    assert bad.status_code == 400
    assert bad.mimetype == "application/problem+json"
    problem = bad.get_json()
    assert problem["code"] == "not_pdf"
    # RFC 9457: the problem's status is the HTTP status; the record's is record_status
    assert problem["status"] == 400 and problem["record_status"] == "incomplete"

    full = signed_post("northshire",
                       _form_submitted(app, request_id, filled_pdf(app, rid, complete_answers())))
    assert full.status_code == 200
    assert full.get_json() == {"record_id": rid, "status": "complete", "version": 3,
                               "missing": []}
    late = signed_post("northshire", _form_submitted(app, request_id, partial))
    assert late.status_code == 409 and late.get_json()["code"] == "record_complete"
    assert [v.outcome for v in versions(app, rid)] == ["incomplete", "rejected", "accepted",
                                                      "rejected"]


def test_form_submitted_that_failed_to_commit_is_answered_first_on_the_retry(
        app, made, signed_post, db_session):
    """The delivery's answer commits with the upload's outcome: when that transaction fails
    (here: the database refuses the commit once), nothing is kept, the host's retry
    completes the record, and every later retry gets that same answer, never a 409."""
    from sqlalchemy import event, func

    from sharewise.plugin.db import sessionmaker_for
    from sharewise.plugin.records.models import WebhookEvent
    from sharewise.plugin.uploads.models import UploadVersion

    rid = made["record_id"]
    request_id = record_row(app, rid).request_id
    delivery = _form_submitted(app, request_id, filled_pdf(app, rid, complete_answers()))
    fail = {"once": True}

    def refuse_commit(session):
        stored = [*session.new, *session.identity_map.values()]
        if any(isinstance(o, WebhookEvent) for o in stored) and fail.pop("once", False):
            raise RuntimeError("the database went away at the commit")

    factory = sessionmaker_for(app)
    event.listen(factory, "before_commit", refuse_commit)
    try:
        failed = signed_post("northshire", delivery, "msg_submit")
        assert failed.status_code == 500 and "Traceback" not in failed.get_data(True)
        db_session.rollback()
        assert db_session.scalar(select(func.count()).select_from(UploadVersion)) == 0
        assert db_session.scalar(select(func.count()).select_from(WebhookEvent).where(
            WebhookEvent.webhook_id == "msg_submit")) == 0
        assert record_row(app, rid).status == "awaiting_completion"
        retried = signed_post("northshire", delivery, "msg_submit")
        again = signed_post("northshire", delivery, "msg_submit")
    finally:
        event.remove(factory, "before_commit", refuse_commit)
    expected = {"record_id": rid, "status": "complete", "version": 1, "missing": []}
    assert (retried.status_code, retried.get_json()) == (200, expected)
    assert (again.status_code, again.get_json()) == (200, expected)
    assert [v.outcome for v in versions(app, rid)] == ["accepted"]


def test_no_database_lock_is_held_while_an_upload_is_read(app, client, made, monkeypatch):
    """A slow read (a large or hostile PDF) does not hold up other writers of the database."""
    from sharewise.plugin.records.audit import audit as write_audit

    reading, release = threading.Event(), threading.Event()
    real_read = services.read_upload

    def slow_read(*args, **kwargs):
        reading.set()
        assert release.wait(20)
        return real_read(*args, **kwargs)

    monkeypatch.setattr(services, "read_upload", slow_read)
    rid = made["record_id"]
    pdf = filled_pdf(app, rid, partial_answers())
    answers: list[Any] = []
    upload_path = made["upload_url"].removeprefix("http://sharewise.test")
    uploader = threading.Thread(target=lambda: answers.append(client.post(
        upload_path, data=pdf,
        headers={"Content-Type": "application/pdf", "Accept": "application/json"})))
    uploader.start()
    try:
        assert reading.wait(20)
        record = record_row(app, rid)
        wrote = threading.Event()

        def writer() -> None:
            with app.app_context(), session_scope(app) as session:
                write_audit(session, session.merge(record), "test", "probe")
            wrote.set()

        other = threading.Thread(target=writer)
        other.start()
        assert wrote.wait(5), "a writer waited for the upload being read"
        other.join(5)
    finally:
        release.set()
        uploader.join(30)
    assert answers[0].status_code == 200
    assert answers[0].get_json()["version"] == 1
