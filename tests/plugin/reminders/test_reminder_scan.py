"""The reminder scan and sending, inline (no worker), against a real SMTP server.

Covers: rows at intake, one email per step, a late scan sending only the latest step per
recipient, completion/cancellation stopping the rest, overlapping scans, the overdue post-back
row, permanent refusals, and the manager digest.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from sharewise.plugin.db import session_scope
from sharewise.plugin.mail import make_message_id
from sharewise.plugin.records.models import Record
from sharewise.plugin.reminders.models import Digest, Reminder
from sharewise.plugin.reminders.services import run_scan, scan, send_reminder

LONDON = ZoneInfo("Europe/London")


def reminders_of(app, record_id):
    with session_scope(app) as s:
        rows = s.scalars(select(Reminder).where(Reminder.record_id == record_id)
                         .order_by(Reminder.due_at)).all()
        return {(r.step, r.recipient): r for r in rows}


def test_intake_schedules_the_default_steps(app, signed_post, sample_event, tenant):
    due = "2026-05-26T16:00:00Z"  # 17:00 BST, Tuesday after the Spring Bank Holiday
    resp = signed_post(tenant, sample_event(due_at=due))
    assert resp.status_code == 201, resp.get_json()
    with session_scope(app) as s:
        record = s.scalar(select(Record).where(Record.public_id == resp.get_json()["record_id"]))
        rows = s.scalars(select(Reminder).where(Reminder.record_id == record.id)).all()
        got = sorted((r.due_at.astimezone(LONDON).strftime("%a %d %b %H:%M"), r.step,
                      r.recipient, r.kind, r.address, r.state) for r in rows
                     if r.kind != "request")
        # and the request email, due at once (this tenant sends at any hour): the next scan
        # sends it
        [request] = [r for r in rows if r.kind == "request"]
        assert (request.step, request.recipient, request.address, request.state) == (
            "request", "practitioner", "sian.oconnor@example.org", "pending")
        assert request.due_at <= datetime.now(UTC) and request.claim is None
    assert got == [
        ("Fri 29 May 17:00", "+3wd", "manager", "overdue", "dafydd.llyr@example.org", "pending"),
        ("Tue 26 May 15:00", "-2h", "practitioner", "due_soon", "sian.oconnor@example.org",
         "pending"),
        ("Tue 26 May 17:00", "0", "practitioner", "due_now", "sian.oconnor@example.org",
         "pending"),
        ("Wed 27 May 17:00", "+1wd", "manager", "overdue", "dafydd.llyr@example.org", "pending"),
    ]
    # The scan that sends the request email skips the practitioner's steps due by then (this
    # due time has passed): the request email says the same, once. The manager's latest step
    # goes, the earlier one superseded.
    with session_scope(app) as s:
        claimed = {rid for rid, _ in scan(s, now=datetime.now(UTC), tenants={}).reminders}
    states = {step: ("claimed" if r.id in claimed else r.state)
              for (step, _), r in reminders_of(app, record.id).items()}
    assert states == {"request": "claimed", "-2h": "skipped", "0": "skipped",
                      "+1wd": "skipped", "+3wd": "claimed"}



def test_a_step_falling_due_before_the_request_email_goes_is_said_by_it(app, signed_post,
                                                                        sample_event, tenant):
    """The request email goes with the next scan, up to a minute after intake: a "due soon"
    falling due in that minute is said by it, not sent beside it."""
    intake = datetime.now(UTC)
    resp = signed_post(tenant, sample_event(due_at=(intake + timedelta(hours=2, seconds=30))
                                            .isoformat()))
    assert resp.status_code == 201, resp.get_json()
    with session_scope(app) as s:
        record_id = s.scalar(select(Record.id).where(
            Record.public_id == resp.get_json()["record_id"]))
    assert reminders_of(app, record_id)[("-2h", "practitioner")].state == "pending"
    with session_scope(app) as s:
        claimed = scan(s, now=intake + timedelta(minutes=1), tenants={}).reminders
    rows = reminders_of(app, record_id)
    assert [rid for rid, _ in claimed] == [rows[("request", "practitioner")].id]
    assert rows[("-2h", "practitioner")].state == "skipped"
    assert rows[("0", "practitioner")].state == "pending"  # not due yet: it goes in its time

def test_each_step_is_sent_once_with_its_message_id(app, smtp, make_record):
    now = datetime.now(UTC)
    rid = make_record(due_at=now + timedelta(hours=1))  # the -2h heads-up is due already
    first = run_scan(app, send_inline=True)
    assert first.outcomes == ["sent"]
    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == ["prac.one@team.example"]
    assert mail.subject.endswith("is due soon")
    row = reminders_of(app, rid)[("-2h", "practitioner")]
    assert row.state == "sent" and row.attempts == 1
    assert mail.message_id == row.message_id == make_message_id(row.idempotency_key,
                                                                "sharewise@council.example")
    again = run_scan(app, send_inline=True)
    assert again.reminders == [] and again.outcomes == []
    assert len(smtp.received) == 1


def test_late_scan_sends_only_the_latest_step_per_recipient(app, smtp, make_record):
    from sharewise.plugin.outbox.models import Delivery

    due = datetime(2026, 5, 22, 16, 0, tzinfo=UTC)  # Fri 17:00 BST before the bank holiday
    rid = make_record(due_at=due, practitioner="p@team.example", manager="m@team.example")
    # Eight days later (after downtime): the practitioner hears "due now" at most, the manager only
    # the "+3 working days" step; nobody gets the heads-up.
    result = run_scan(app, now=datetime(2026, 5, 30, 12, 0, tzinfo=UTC), send_inline=True)
    assert sorted(result.outcomes) == ["sent", "sent"] and result.skipped == 2
    mails = {m.rcpt_tos[0]: m for m in smtp.wait_for(2)}
    assert mails["p@team.example"].subject.endswith("is due now")
    assert mails["m@team.example"].subject.endswith("is overdue")
    assert "manager of the practitioner" in mails["m@team.example"].part("plain")
    rows = reminders_of(app, rid)
    assert {k: r.state for k, r in rows.items()} == {
        ("-2h", "practitioner"): "skipped", ("0", "practitioner"): "sent",
        ("+1wd", "manager"): "skipped", ("+3wd", "manager"): "sent"}
    with session_scope(app) as s:
        deliveries = s.scalars(select(Delivery).where(Delivery.record_id == rid)).all()
        assert [(d.event_type, d.payload["data"]["escalated_to"],
                 d.dedupe_key) for d in deliveries] == [
            ("share.record_overdue", "manager", "+3wd:manager")]
    assert len(smtp.received) == 2


def test_sent_email_carries_no_personal_data(notify_off, app, smtp, signed_post, sample_event,
                                              tenant):
    # the scan's reminder: with the request email on, it would go instead of this one (its own
    # test is in test_request_email.py)
    due = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    resp = signed_post(tenant, sample_event(due_at=due))
    assert resp.status_code == 201
    run_scan(app, send_inline=True)
    [mail] = smtp.wait_for(1)
    raw = mail.raw.decode("utf-8", "replace")
    text = mail.part("plain") + mail.part("html")
    assert resp.get_json()["record_id"] in mail.subject
    assert "CASE-2026-0042" in text
    for secret in ("Zoë", "Ångström", "Nørgaard", "2014-03-09", "09/03/2014", "Siân",
                   "O'Connor", "Dafydd", "Llŷr", "Renée", "strategy discussion",
                   "School attendance"):
        assert secret not in text and secret not in raw


@pytest.mark.parametrize("final", ["complete", "cancelled"])
def test_final_record_stops_pending_and_queued_reminders(app, smtp, make_record, final):
    now = datetime.now(UTC)
    rid = make_record(due_at=now + timedelta(hours=1))
    with session_scope(app) as s:
        claimed = scan(s, now=now, tenants={}).reminders  # claimed, as if queued for a worker
    assert len(claimed) == 1
    with session_scope(app) as s:
        s.get(Record, rid).status = final
    outcome = send_reminder(*claimed[0], app=app)
    assert outcome.state == "cancelled"
    result = run_scan(app, now=now + timedelta(days=10), send_inline=True)
    assert result.cancelled == 3 and result.outcomes == []
    assert {r.state for r in reminders_of(app, rid).values()} == {"cancelled"}
    assert smtp.received == []


def test_overlapping_scans_claim_each_reminder_once(app, make_record):
    now = datetime.now(UTC)
    for i in range(30):
        make_record(due_at=now - timedelta(minutes=i), practitioner=f"p{i}@team.example")
    results, barrier = [], threading.Barrier(3)

    def one():
        barrier.wait()
        with session_scope(app) as s:
            results.append(scan(s, now=now, tenants={}).reminders)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [rid for r in results for rid, _ in r]
    assert len(claimed) == 30 and len(set(claimed)) == 30  # the "0" step of each, exactly once


def test_redelivered_send_for_a_sent_reminder_does_nothing(app, smtp, make_record):
    rid = make_record(due_at=datetime.now(UTC) + timedelta(hours=1))
    with session_scope(app) as s:
        [(reminder_id, claim)] = scan(s, now=datetime.now(UTC), tenants={}).reminders
    assert send_reminder(reminder_id, claim, app=app).state == "sent"
    assert send_reminder(reminder_id, claim, app=app).state == "sent"  # the duplicate message
    assert len(smtp.wait_for(1)) == 1
    assert reminders_of(app, rid)[("-2h", "practitioner")].attempts == 1


def test_permanent_refusal_marks_failed_and_is_not_retried(app, smtp, make_record):
    rid = make_record(due_at=datetime.now(UTC) + timedelta(hours=1))
    smtp.rcpt_reply = "550 5.1.1 no such mailbox"
    assert run_scan(app, send_inline=True).outcomes == ["failed"]
    row = reminders_of(app, rid)[("-2h", "practitioner")]
    assert row.state == "failed" and "550" in row.last_error
    smtp.rcpt_reply = None
    assert run_scan(app, send_inline=True).reminders == []


def test_transient_failure_releases_the_claim_for_the_next_scan(app, smtp, make_record):
    rid = make_record(due_at=datetime.now(UTC) + timedelta(hours=1))
    smtp.stop()
    assert run_scan(app, send_inline=True).outcomes == ["error"]
    row = reminders_of(app, rid)[("-2h", "practitioner")]
    assert row.state == "pending" and row.claim is None and "connect" in row.last_error
    smtp.start()
    assert run_scan(app, send_inline=True).outcomes == ["sent"]
    assert len(smtp.wait_for(1)) == 1


def test_digest_groups_by_manager_and_lists_only_overdue(digests_on, app, smtp, make_record):
    # Tuesday 26 May 2026 08:05 BST, a working day.
    now = datetime(2026, 5, 26, 7, 5, tzinfo=UTC)
    a, b = "alice.manager@team.example", "bob.manager@team.example"
    overdue = [make_record(due_at=now - timedelta(days=d), manager=a, case_reference=f"A-{d}")
               for d in (1, 3)]
    make_record(due_at=now + timedelta(hours=3), manager=a, case_reference="A-NOT-YET")
    make_record(due_at=now - timedelta(days=2), manager=a, status="complete",
                case_reference="A-DONE")
    make_record(due_at=now - timedelta(days=1), manager=b, case_reference="B-1")
    make_record(due_at=now - timedelta(days=1), manager="carol@other.example",
                tenant="southvale", case_reference="S-1")
    with session_scope(app) as s:  # keep the per-record reminders out of this test
        s.query(Reminder).update({"state": "skipped"})
    result = run_scan(app, now=now, send_inline=True)
    assert result.digests_created == 3 and sorted(result.outcomes) == ["sent"] * 3
    mails = {m.rcpt_tos[0]: m for m in smtp.wait_for(3)}
    assert set(mails) == {a, b, "carol@other.example"}
    body_a = mails[a].part("plain")
    assert "A-1" in body_a and "A-3" in body_a
    assert "A-NOT-YET" not in body_a and "A-DONE" not in body_a and "B-1" not in body_a
    assert body_a.index("A-3") < body_a.index("A-1")  # oldest first
    assert mails[a].subject.startswith("2 overdue information-sharing records")
    assert "B-1" in mails[b].part("plain") and "A-1" not in mails[b].part("plain")
    # the digest links to the manager's own team overview, whose link names no address
    team = re.search(r"http://\S+/admin/team/\S+", body_a)
    assert team is not None and "alice" not in team[0]
    page = app.test_client().get(team[0].removeprefix(app.config["BASE_URL"]))
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "A-1" in html and "A-NOT-YET" in html
    assert "B-1" not in html and "A-DONE" not in html  # another team's; finished
    with session_scope(app) as s:
        assert s.scalar(select(func.count()).select_from(Digest)) == 3
        assert {d.records for d in s.scalars(select(Digest))} == {2, 1}
        assert overdue  # (ids kept for debugging)
    # Later the same day: nothing new. Saturday: no digest at all.
    assert run_scan(app, now=now + timedelta(hours=5), send_inline=True).digests_created == 0
    assert run_scan(app, now=datetime(2026, 5, 30, 9, 0, tzinfo=UTC),
                    send_inline=True).digests_created == 0
    assert len(smtp.received) == 3


def test_the_due_query_is_served_by_the_state_due_index(app, backend):
    """The scan's cost follows the due rows: its query is an index range scan, not a table scan
    (figures: bench/bench_scan.py and docs/performance.md)."""
    from sharewise.plugin.db import engine_for
    from sharewise.plugin.reminders.services import due_query

    if backend != "sqlite":
        pytest.skip("the PostgreSQL planner's choice depends on table statistics (see the bench)")
    now = datetime.now(UTC)
    stmt = due_query(now, now, 500).compile(engine_for(app), compile_kwargs={"literal_binds": True})
    with engine_for(app).connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {stmt}"))
    assert "USING INDEX ix_reminders_state_due (state=? AND due_at<?)" in plan, plan
    assert "SCAN reminders" not in plan.replace("USING INDEX", ""), plan


def test_a_scan_does_not_send_a_manager_both_the_overdue_email_and_the_digest(
        digests_on, app, smtp, make_record):
    """The same scan emails the manager about a record once: its own overdue email, which the
    digest then leaves out; a record emailed about in an earlier scan stays in the digest."""
    now = datetime(2026, 5, 26, 7, 5, tzinfo=UTC)  # Tuesday 08:05 BST
    boss = "alice.manager@team.example"
    emailed_now = make_record(due_at=now - timedelta(days=1), manager=boss,
                              case_reference="NOW-1")
    emailed_before = make_record(due_at=now - timedelta(days=2), manager=boss,
                                 case_reference="BEFORE-1")
    quiet = make_record(due_at=now - timedelta(days=3), manager=boss, case_reference="QUIET-1")
    with session_scope(app) as s:
        s.query(Reminder).update({"state": "skipped"})
        for rid, state, sent in ((emailed_now, "pending", None),
                                 (emailed_before, "sent", now - timedelta(days=1))):
            row = s.scalars(select(Reminder).where(
                Reminder.record_id == rid, Reminder.recipient == "manager")
                .order_by(Reminder.due_at)).first()
            row.state, row.due_at, row.sent_at = state, now - timedelta(hours=1), sent
    result = run_scan(app, now=now, send_inline=True)
    assert sorted(result.outcomes) == ["sent", "sent"]  # NOW-1's own email, and the digest
    mails = smtp.wait_for(2)
    digest = next(m for m in mails if "overdue information-sharing" in m.subject)
    own = next(m for m in mails if m is not digest)
    assert "NOW-1" in own.part("plain") and own.rcpt_tos == [boss]
    body = digest.part("plain")
    assert "NOW-1" not in body and "BEFORE-1" in body and "QUIET-1" in body
    assert quiet  # (kept for debugging)
