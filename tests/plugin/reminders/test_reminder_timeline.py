"""Whole timelines through the real intake and the scan run at chosen moments (``--now``).

A record is created by a signed ``share.requested`` whose timestamp is the request time; the
scan then runs at moments before and after each step, and the real SMTP server shows which
emails went out when. The tenants keep the default sending hours (08:00-18:00 on working
days) and the emergency steps (the practitioner when due, the manager an hour later). The
request email is off (``notify_off``): it goes at the real moment of intake, which these
timelines, set in May 2026, cannot place (it is tested in test_request_email.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from sharewise.plugin.reminders.services import run_scan

LONDON = ZoneInfo("Europe/London")
PRAC, MANAGER = "sian.oconnor@example.org", "dafydd.llyr@example.org"

pytestmark = pytest.mark.usefixtures("send_hours_on", "notify_off")


def at(*args):
    return datetime(*args, tzinfo=LONDON).astimezone(UTC)


def create(signed_post, sample_event, tenant, requested, urgency):
    event = sample_event(urgency=urgency)
    event["timestamp"] = requested.isoformat()
    resp = signed_post(tenant, event)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def timeline(app, smtp, moments):
    """{moment: [(recipient, subject ending)]} for scans run one after the other."""
    seen, out = len(smtp.received), {}
    for moment in moments:
        run_scan(app, now=moment, send_inline=True)
        new = smtp.received[seen:]
        seen = len(smtp.received)
        out[moment.astimezone(LONDON).strftime("%a %d %H:%M")] = [
            (m.rcpt_tos[0], m.subject.rsplit(" is ", 1)[1]) for m in new]
    return out


def test_routine_on_friday_before_bank_holiday_monday(app, smtp, signed_post, sample_event,
                                                      tenant):
    body = create(signed_post, sample_event, tenant, at(2026, 5, 22, 14, 30), "routine")
    assert body["due_at"] == "2026-05-26T16:00:00Z"  # Tuesday 17:00 BST
    got = timeline(app, smtp, [
        at(2026, 5, 22, 17, 0), at(2026, 5, 25, 12, 0),   # Friday evening, bank holiday
        at(2026, 5, 26, 14, 59), at(2026, 5, 26, 15, 0),  # heads-up at 15:00 Tuesday
        at(2026, 5, 26, 17, 0),                           # due now
        at(2026, 5, 27, 16, 59), at(2026, 5, 27, 17, 0),  # manager, +1 working day
        at(2026, 5, 28, 17, 0), at(2026, 5, 29, 17, 0),   # nothing, then +3 working days
        at(2026, 6, 5, 17, 0),                            # nothing more, ever
    ])
    assert got == {
        "Fri 22 17:00": [], "Mon 25 12:00": [], "Tue 26 14:59": [],
        "Tue 26 15:00": [(PRAC, "due soon")], "Tue 26 17:00": [(PRAC, "due now")],
        "Wed 27 16:59": [], "Wed 27 17:00": [(MANAGER, "overdue")],
        "Thu 28 17:00": [], "Fri 29 17:00": [(MANAGER, "overdue")], "Fri 05 17:00": [],
    }


@pytest.mark.parametrize("requested,due,expected", [
    # Urgent after 13:00 on Friday: due Tuesday 17:00 (Monday is a bank holiday).
    (at(2026, 5, 22, 13, 30), "2026-05-26T16:00:00Z",
     {"Tue 26 15:00": [(PRAC, "due soon")], "Tue 26 17:00": [(PRAC, "due now")],
      "Wed 27 17:00": [(MANAGER, "overdue")]}),
    # Urgent before 13:00: due the same day at 17:00; the manager hears on Tuesday.
    (at(2026, 5, 22, 10, 0), "2026-05-22T16:00:00Z",
     {"Fri 22 15:00": [(PRAC, "due soon")], "Fri 22 17:00": [(PRAC, "due now")],
      "Tue 26 17:00": [(MANAGER, "overdue")]}),
])
def test_urgent(app, smtp, signed_post, sample_event, tenant, requested, due, expected):
    body = create(signed_post, sample_event, tenant, requested, "urgent")
    assert body["due_at"] == due
    moments = [datetime.strptime(f"2026 May {k[4:]}", "%Y %b %d %H:%M").replace(tzinfo=LONDON)
               for k in expected]
    assert timeline(app, smtp, moments) == expected


def test_emergency_two_hours_then_cancelled(app, smtp, signed_post, sample_event, tenant):
    body = create(signed_post, sample_event, tenant, at(2026, 5, 26, 9, 0), "emergency")
    assert body["due_at"] == "2026-05-26T10:00:00Z"  # 11:00 BST
    got = timeline(app, smtp, [at(2026, 5, 26, 9, 0), at(2026, 5, 26, 10, 59),
                               at(2026, 5, 26, 11, 0), at(2026, 5, 26, 11, 59)])
    assert got == {"Tue 26 09:00": [], "Tue 26 10:59": [],
                   "Tue 26 11:00": [(PRAC, "due now")], "Tue 26 11:59": []}
    cancel = {"type": "share.cancelled", "timestamp": datetime.now(UTC).isoformat(),
              "data": {"request_id": _request_id(app, body["record_id"]),
                       "reason": "withdrawn"}}
    assert signed_post(tenant, cancel).status_code == 200
    # The manager's email an hour after the due time is not sent: the request was withdrawn.
    assert timeline(app, smtp, [at(2026, 5, 26, 12, 0), at(2026, 5, 27, 11, 0),
                                at(2026, 6, 1, 11, 0)]) == {
        "Tue 26 12:00": [], "Wed 27 11:00": [], "Mon 01 11:00": []}


def test_emergency_at_night_reaches_the_manager_an_hour_overdue(app, smtp, signed_post,
                                                                 sample_event, tenant):
    body = create(signed_post, sample_event, tenant, at(2026, 5, 23, 22, 30), "emergency")
    assert body["due_at"] == "2026-05-23T23:30:00Z"  # Sunday 00:30 BST
    got = timeline(app, smtp, [at(2026, 5, 24, 0, 30), at(2026, 5, 24, 1, 29),
                               at(2026, 5, 24, 1, 30)])
    assert got == {"Sun 24 00:30": [(PRAC, "due now")], "Sun 24 01:29": [],
                   "Sun 24 01:30": [(MANAGER, "overdue")]}


def test_a_review_date_on_a_bank_holiday_waits_for_the_next_working_morning(
        app, smtp, signed_post, sample_event, tenant):
    from datetime import date

    from sharewise.plugin.db import session_scope
    from sharewise.plugin.records.models import Record
    from sharewise.plugin.reminders.models import Reminder
    from sharewise.plugin.reminders.services import schedule_follow_ups

    body = create(signed_post, sample_event, tenant, at(2026, 5, 22, 14, 30), "routine")
    with session_scope(app) as s:  # only the review, set for the bank holiday Monday
        record = s.query(Record).filter_by(public_id=body["record_id"]).one()
        s.query(Reminder).filter_by(record_id=record.id).delete()
        schedule_follow_ups(s, record, tenant, [("review", date(2026, 5, 25))])
    got = timeline(app, smtp, [at(2026, 5, 25, 9, 0), at(2026, 5, 26, 7, 59),
                               at(2026, 5, 26, 8, 0)])
    assert got == {"Mon 25 09:00": [], "Tue 26 07:59": [],
                   "Tue 26 08:00": [(PRAC, "due for review")]}


def test_completion_stops_the_rest(app, smtp, signed_post, sample_event, tenant):
    from sharewise.plugin.db import session_scope
    from sharewise.plugin.records.audit import transition
    from sharewise.plugin.records.models import Record

    body = create(signed_post, sample_event, tenant, at(2026, 5, 22, 14, 30), "routine")
    assert timeline(app, smtp, [at(2026, 5, 26, 15, 0)]) == {
        "Tue 26 15:00": [(PRAC, "due soon")]}
    with session_scope(app) as s:
        record = s.query(Record).filter_by(public_id=body["record_id"]).one()
        transition(s, record, "complete", "test")
    assert timeline(app, smtp, [at(2026, 5, 26, 17, 0), at(2026, 5, 29, 17, 0)]) == {
        "Tue 26 17:00": [], "Fri 29 17:00": []}


def _request_id(app, public_id):
    from sharewise.plugin.db import session_scope
    from sharewise.plugin.records.models import Record

    with session_scope(app) as s:
        return s.query(Record).filter_by(public_id=public_id).one().request_id
