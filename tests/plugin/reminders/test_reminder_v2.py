"""Reminders that follow practice (issue 16): an emergency record's own steps in hours,
sending hours for the others, and the dates a decision sets as reminders."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from sharewise.plugin.reminders.policy import ReminderPolicyError, parse_reminder_policy

POLICY = parse_reminder_policy({"emergency_reminder_steps": True, "send_hours": True})


def test_an_emergency_record_reaches_the_manager_one_hour_overdue_at_any_hour():
    due = datetime(2026, 3, 7, 23, 30, tzinfo=UTC)  # a Saturday night
    steps = [(s.to, s.key, when) for s, when in POLICY.schedule(due, emergency=True)]
    assert steps == [("practitioner", "0", due),
                     ("manager", "+1h", datetime(2026, 3, 8, 0, 30, tzinfo=UTC))]


def test_other_emails_wait_for_the_sending_hours_of_a_working_day():
    due = datetime(2026, 3, 6, 17, 0, tzinfo=UTC)  # Friday 17:00 in London
    schedule = {s.key: when for s, when in POLICY.schedule(due)}
    assert schedule["-2h"] == datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # inside: unchanged
    assert schedule["0"] == due
    late = POLICY.in_send_hours(datetime(2026, 3, 6, 19, 0, tzinfo=UTC))  # Friday evening
    assert late == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)  # Monday 08:00
    early = POLICY.in_send_hours(datetime(2026, 3, 9, 6, 0, tzinfo=UTC))  # Monday 06:00
    assert early == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    assert POLICY.on_day(date(2026, 3, 8)) == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)


def test_both_are_on_by_default():
    assert parse_reminder_policy({}) == POLICY
    due = datetime(2026, 3, 7, 23, 30, tzinfo=UTC)  # a Saturday night
    assert [s.key for s, _ in parse_reminder_policy({}).schedule(due, emergency=True)] == [
        "0", "+1h"]
    assert {when for _, when in parse_reminder_policy({}).schedule(due)} >= {
        datetime(2026, 3, 9, 8, 0, tzinfo=UTC)}  # Monday 08:00, not the weekend


def test_a_tenant_can_turn_each_off():
    plain = parse_reminder_policy({"emergency_reminder_steps": [], "send_hours": ""})
    due = datetime(2026, 3, 7, 23, 30, tzinfo=UTC)
    assert [k for k, _ in ((s.key, w) for s, w in plain.schedule(due, emergency=True))] == [
        "-2h", "0", "+1wd", "+3wd"]
    assert plain.in_send_hours(due) == due


@pytest.mark.parametrize("hours", ["18:00-08:00", "8-18", "08:00", "25:00-26:00"])
def test_bad_sending_hours_are_refused(hours):
    with pytest.raises(ReminderPolicyError):
        parse_reminder_policy({"send_hours": hours})
