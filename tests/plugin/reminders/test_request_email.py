"""The request email: a new record's practitioner is emailed by the next scan, once, with no
personal data.

Through the real intake (signed ``share.requested``), the scan, a real Celery worker and a real
SMTP server (aiosmtpd): the email carries the record id, the case reference, the due time in
the tenant's zone and the practitioner's link, and nothing of the event's personal data; a
repeated delivery, a second delivery of the same request and later scans send nothing more; a
message the broker lost is sent by a scan once its lease is over. With
``notify_on_request = false`` nothing is sent, and the prefilled form does not send the
practitioner looking for an email.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from sqlalchemy import delete, select, update

from sharewise.plugin.db import session_scope
from sharewise.plugin.links import load_token
from sharewise.plugin.mail import make_message_id
from sharewise.plugin.records.models import AuditEntry, Record
from sharewise.plugin.reminders.emails import format_due
from sharewise.plugin.reminders.models import Reminder
from sharewise.plugin.reminders.services import run_scan, schedule_reminders, send_reminder

LONDON = ZoneInfo("Europe/London")
PRACTITIONER = "sian.oconnor@example.org"
#: What the sample event carries that no email may: names, the date of birth (as sent and as
#: the form shows it), the free text, the teams and roles.
PERSONAL = ("Zoë", "Ångström", "Nørgaard", "2014-03-09", "09/03/2014", "Siân", "O'Connor",
            "Dafydd", "Llŷr", "Renée", "Faÿ", "strategy discussion", "School attendance",
            "Children's Services", "Investigating officer", "Northshire Police", "P-17")


def _intake(signed_post, sample_event, tenant, due: datetime, **kwargs):
    event = sample_event(due_at=due.isoformat())
    resp = signed_post(tenant, event, **kwargs)
    assert resp.status_code == 201, resp.get_json()
    return event, resp.get_json()


def _request_rows(app, public_id: str) -> list[Reminder]:
    with session_scope(app) as s:
        return list(s.scalars(select(Reminder).join(Record, Record.id == Reminder.record_id)
                              .where(Record.public_id == public_id,
                                     Reminder.kind == "request")))


def _settle(smtp, expected: int, grace: float = 1.0) -> None:
    """``expected`` messages arrived, and no other follows shortly after."""
    if expected:
        smtp.wait_for(expected, timeout=60)
    time.sleep(grace)  # an absence cannot be awaited; a short grace catches a late one
    assert len(smtp.received) == expected


def test_sent_through_the_worker_once_with_no_personal_data(app, smtp, signed_post,
                                                           sample_event, tenant, celery_worker):
    due = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    event, made = _intake(signed_post, sample_event, tenant, due, webhook_id="msg_request_1")
    record_id = made["record_id"]
    [row] = _request_rows(app, record_id)  # a row first: the next scan sends it
    assert (row.state, row.claim, row.due_at <= datetime.now(UTC)) == ("pending", None, True)
    assert len(run_scan(app).reminders) == 1  # handed to the worker
    [mail] = smtp.wait_for(1, timeout=60)
    assert mail.rcpt_tos == [PRACTITIONER]
    assert " ".join(mail.subject.split()) == (
        f"Information-sharing record {record_id} is waiting for your decision")
    plain, html = mail.part("plain"), mail.part("html")
    for text in (plain, html):
        assert record_id in text and "CASE-2026-0042" in text
        assert format_due(due, LONDON) in text  # in the tenant's zone, as the reminders say it
    [link] = [line for line in plain.splitlines() if line.startswith("http://sharewise.test/")]
    assert link.startswith("http://sharewise.test/form/") and f'href="{link}"' in html
    assert load_token(link.rsplit("/", 1)[1], "form", app) == ("northshire", record_id)
    headers = "\n".join(f"{k}: {v}" for k, v in mail.message.items())
    raw = mail.raw.decode("utf-8", "replace")
    for secret in PERSONAL:
        assert secret not in plain and secret not in html, secret
        assert secret not in headers and secret not in raw, secret

    # the same delivery again, another delivery of the same request, and scans: nothing more
    assert signed_post(tenant, event, webhook_id="msg_request_1").status_code == 200
    assert signed_post(tenant, event).status_code == 200
    assert run_scan(app, send_inline=True).outcomes == []
    assert run_scan(app, send_inline=True).outcomes == []
    _settle(smtp, 1)
    [row] = _request_rows(app, record_id)
    assert (row.state, row.attempts, row.address) == ("sent", 1, PRACTITIONER)
    assert mail.message_id == make_message_id(row.idempotency_key, "sharewise@council.example")
    with session_scope(app) as s:  # the audit trail says what went, not to whom
        reasons = s.scalars(select(AuditEntry.reason).where(
            AuditEntry.record_id == row.record_id, AuditEntry.event == "request_sent")).all()
    assert reasons == ["request email to the practitioner"]


def test_a_lost_message_is_sent_by_the_scan_once_its_lease_is_over(app, smtp, signed_post,
                                                                  sample_event, tenant):
    """No worker: the message the scan handed to the broker is never taken (as if lost)."""
    _, made = _intake(signed_post, sample_event, tenant, datetime.now(UTC) + timedelta(days=3))
    [(row_id, claim)] = run_scan(app).reminders
    [row] = _request_rows(app, made["record_id"])
    assert (row.id, row.claim) == (row_id, claim) and row.lease_until > datetime.now(UTC)
    assert run_scan(app, send_inline=True).outcomes == []  # the claim holds it
    with session_scope(app) as s:  # the lease runs out
        s.execute(update(Reminder).where(Reminder.id == row.id)
                  .values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))
    assert run_scan(app, send_inline=True).outcomes == ["sent"]
    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == [PRACTITIONER] and made["record_id"] in mail.subject
    # the lost message turns up after all: its claim is stale, nothing is sent again
    assert send_reminder(row.id, claim, app=app).state == "sent"
    assert run_scan(app, send_inline=True).outcomes == []
    # every send above was inline, and the sink records a message before its 250 reply
    assert len(smtp.received) == 1


def test_it_stands_for_the_steps_already_due_when_the_record_came(app, smtp, signed_post,
                                                                 sample_event, tenant):
    """A record due in an hour: the practitioner gets the request email, not "due soon" too;
    "due now" and the manager's steps follow as usual."""
    due = datetime.now(UTC) + timedelta(hours=1)
    _, made = _intake(signed_post, sample_event, tenant, due)
    [row] = _request_rows(app, made["record_id"])
    assert run_scan(app, send_inline=True).outcomes == ["sent"]  # the request email only
    assert run_scan(app, send_inline=True).outcomes == []
    with session_scope(app) as s:
        steps = dict(s.execute(select(Reminder.step, Reminder.state)
                               .where(Reminder.record_id == row.record_id)).all())
    assert steps == {"request": "sent", "-2h": "skipped", "0": "pending", "+1wd": "pending",
                     "+3wd": "pending"}
    assert run_scan(app, now=due, send_inline=True).outcomes == ["sent"]
    request, due_now = smtp.wait_for(2)
    assert request.subject.endswith("is waiting for your decision")
    assert due_now.subject.endswith("is due now")


def test_it_goes_at_once_even_outside_the_sending_hours(send_hours_on, app, tenant, smtp,
                                                       make_record):
    """Like the escalation, it answers something that happens now: the sending hours shift
    the scheduled steps only."""
    saturday_night = datetime(2026, 5, 23, 22, 0, tzinfo=LONDON)
    rid = make_record(due_at=datetime(2026, 5, 26, 16, 0, tzinfo=UTC))
    with session_scope(app) as s:
        s.execute(delete(Reminder).where(Reminder.record_id == rid))  # as if just taken in
        schedule_reminders(s, s.get(Record, rid), tenant, request=True, now=saturday_night)
    with session_scope(app) as s:
        rows = {r.step: r for r in s.scalars(select(Reminder).where(Reminder.record_id == rid))}
    assert rows["request"].due_at == saturday_night
    # the steps (Tuesday, after the bank holiday Monday) are not due yet: they stay
    assert {step: r.state for step, r in rows.items()} == {
        "request": "pending", "-2h": "pending", "0": "pending", "+1wd": "pending",
        "+3wd": "pending"}
    assert run_scan(app, now=saturday_night, send_inline=True).outcomes == ["sent"]
    [mail] = smtp.wait_for(1)
    assert mail.subject.endswith("is waiting for your decision")


def _page_text(pdf: bytes) -> str:
    return " ".join(PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())


@pytest.mark.parametrize("form_version", [1, 2])
def test_off_sends_nothing_and_the_form_points_to_the_page_and_the_case_system(
        notify_off, app, app_config, client, smtp, signed_post, sample_event, tenant,
        form_version):
    path = Path(app_config["TENANTS"])  # the file is re-read when it changes
    path.write_text(path.read_text().replace(
        "[tenants.northshire]\n", f"[tenants.northshire]\nform_version = {form_version}\n"))
    _, made = _intake(signed_post, sample_event, tenant, datetime.now(UTC) - timedelta(hours=1))
    assert _request_rows(app, made["record_id"]) == []
    with session_scope(app) as s:
        assert s.scalar(select(Record.schema_version).where(
            Record.public_id == made["record_id"])) == form_version
    pdf = client.get(made["form_pdf_url"][len("http://sharewise.test"):])
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = _page_text(pdf.data)
    assert "upload it on the Sharewise page you downloaded it from" in text
    assert "sharewise email" not in text.lower() and "link in your" not in text
    if form_version == 1:
        assert "If you no longer have its link, ask for a new one in the case system." in text
    # the scan sends the reminders that are due (the "0" step), as before
    assert run_scan(app, send_inline=True).outcomes == ["sent"]
    [mail] = smtp.wait_for(1)
    assert mail.subject.endswith("is due now")
