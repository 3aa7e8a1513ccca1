"""Reminder step policy: offsets, working days, bank holidays, DST, and the digest day."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from sharewise.plugin.records.policy import due_at
from sharewise.plugin.reminders.policy import (
    ReminderPolicyError,
    parse_offset,
    parse_reminder_policy,
    shift_working_days,
)

LONDON = ZoneInfo("Europe/London")


def local(*args):
    return datetime(*args, tzinfo=LONDON)


def as_london(pairs):
    return [(step.key, step.to, when.astimezone(LONDON).replace(tzinfo=None))
            for step, when in pairs]


DEFAULT = parse_reminder_policy({})
# Without sending hours: the offsets' arithmetic as it is, at any hour of any day.
ANY_HOUR = parse_reminder_policy({"send_hours": ""})


def test_routine_record_on_friday_before_bank_holiday_monday():
    # Friday 22 May 2026, 14:30; Monday 25 May is the Spring Bank Holiday.
    due = due_at(local(2026, 5, 22, 14, 30), "routine")
    assert due == local(2026, 5, 26, 17, 0)
    assert as_london(DEFAULT.schedule(due)) == [
        ("-2h", "practitioner", datetime(2026, 5, 26, 15, 0)),
        ("0", "practitioner", datetime(2026, 5, 26, 17, 0)),
        ("+1wd", "manager", datetime(2026, 5, 27, 17, 0)),
        ("+3wd", "manager", datetime(2026, 5, 29, 17, 0)),
    ]


def test_due_on_friday_escalates_after_the_bank_holiday():
    # Urgent before 13:00 on the Friday: due that day; the manager hears on Tuesday, then Thursday.
    due = due_at(local(2026, 5, 22, 11, 0), "urgent")
    assert due == local(2026, 5, 22, 17, 0)
    got = {key: when for key, _, when in as_london(DEFAULT.schedule(due))}
    assert got["+1wd"] == datetime(2026, 5, 26, 17, 0)
    assert got["+3wd"] == datetime(2026, 5, 28, 17, 0)


def test_urgent_after_1pm_is_due_next_working_day():
    due = due_at(local(2026, 5, 22, 13, 30), "urgent")
    assert due == local(2026, 5, 26, 17, 0)
    got = {key: when for key, _, when in as_london(DEFAULT.schedule(due))}
    assert got["-2h"] == datetime(2026, 5, 26, 15, 0)


def test_emergency_is_due_two_hours_later_even_on_a_bank_holiday():
    requested = local(2026, 5, 25, 10, 15)  # the bank holiday itself
    due = due_at(requested, "emergency")
    assert due == local(2026, 5, 25, 12, 15)
    got = {key: when for key, _, when in as_london(ANY_HOUR.schedule(due))}
    assert got["-2h"] == datetime(2026, 5, 25, 10, 15)  # i.e. at once
    assert got["0"] == datetime(2026, 5, 25, 12, 15)
    # Working-day escalation counts from the next working day: Tuesday, then Thursday.
    assert got["+1wd"] == datetime(2026, 5, 26, 12, 15)
    assert got["+3wd"] == datetime(2026, 5, 28, 12, 15)


def test_working_day_steps_keep_local_wall_clock_across_dst():
    # Autumn: clocks go back on Sunday 25 Oct 2026. 17:00 BST Friday -> 17:00 GMT Monday.
    due = local(2026, 10, 23, 17, 0)
    got = dict((s.key, w) for s, w in DEFAULT.schedule(due))
    assert due.astimezone(UTC).hour == 16
    assert got["+1wd"] == datetime(2026, 10, 26, 17, 0, tzinfo=UTC)
    # Spring: clocks go forward on Sunday 29 Mar 2026. 17:00 GMT Friday -> 17:00 BST Monday.
    got = dict((s.key, w) for s, w in DEFAULT.schedule(local(2026, 3, 27, 17, 0)))
    assert got["+1wd"] == datetime(2026, 3, 30, 16, 0, tzinfo=UTC)


def test_hour_offsets_are_elapsed_time_across_dst():
    due = local(2026, 3, 29, 3, 0)  # 03:00 BST = 02:00 UTC, just after the change
    got = dict((s.key, w) for s, w in ANY_HOUR.schedule(due))
    assert got["-2h"] == datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # two real hours earlier


def test_christmas_and_boxing_day_observed():
    # 25 Dec 2026 is a Friday, Boxing Day (Sat) is observed on Monday 28 Dec.
    assert shift_working_days(date(2026, 12, 24), 1) == date(2026, 12, 29)
    assert shift_working_days(date(2026, 12, 29), -1) == date(2026, 12, 24)
    assert shift_working_days(date(2026, 5, 23), 1) == date(2026, 5, 26)  # Saturday -> Tuesday


@pytest.mark.parametrize("text,key", [
    ("0", "0"), ("+0", "0"), ("0h", "0"), ("-2h", "-2h"), ("-2 hours", "-2h"),
    ("- 120 minutes", "-2h"),
    ("+90m", "+90m"), ("+1 working day", "+1wd"), ("3 working days", "+3wd"), ("+3WD", "+3wd"),
    ("-1 working-day", "-1wd"), ("+2 days", "+2d"), ("+1d", "+1d"),
])
def test_offset_forms_have_a_canonical_key(text, key):
    assert parse_offset(text).key == key


@pytest.mark.parametrize("text", ["", "soon", "+1 fortnight", "2h30", "+9999 days", "1.5h"])
def test_bad_offsets_are_rejected_clearly(text):
    with pytest.raises(ReminderPolicyError, match="offset"):
        parse_offset(text)


def test_policy_from_tenant_table():
    policy = parse_reminder_policy({
        "reminder_steps": [{"offset": "+2 hours", "to": "practitioner"},
                           {"offset": "+1 working day", "to": "manager"}],
        "digest_time": "07:30", "due_time": "17:00"}, "Europe/London")
    assert [(s.key, s.to, s.kind) for s in policy.steps] == [
        ("+2h", "practitioner", "overdue"), ("+1wd", "manager", "overdue")]
    assert policy.digest_time == time(7, 30)
    assert parse_reminder_policy({"digest_time": ""}).digest_time is None
    assert parse_reminder_policy({"reminder_steps": []}).steps == ()


@pytest.mark.parametrize("raw,match", [
    ({"reminder_steps": [{"offset": "0", "to": "director"}]}, r"reminder_steps\[0\]\.to"),
    ({"reminder_steps": [{"offset": "0", "to": "manager"}, {"offset": "0h", "to": "manager"}]},
     "repeats"),
    ({"reminder_steps": ["0 manager"]}, "must be a table"),
    ({"reminder_steps": [{"offset": "0", "to": "manager", "via": "sms"}]}, "unknown keys"),
    ({"digest_time": "8am"}, "digest_time"),
])
def test_bad_policies_say_where(raw, match):
    with pytest.raises(ReminderPolicyError, match=match):
        parse_reminder_policy(raw)


def test_digest_only_on_working_days_after_the_digest_time():
    p = DEFAULT
    assert p.digest_date(local(2026, 5, 26, 7, 59)) is None
    assert p.digest_date(local(2026, 5, 26, 8, 0)) == date(2026, 5, 26)
    assert p.digest_date(local(2026, 5, 26, 23, 0)) == date(2026, 5, 26)
    assert p.digest_date(local(2026, 5, 25, 9, 0)) is None  # bank holiday
    assert p.digest_date(local(2026, 5, 23, 9, 0)) is None  # Saturday
    # 07:30 UTC in summer is 08:30 in London: due.
    assert p.digest_date(datetime(2026, 5, 26, 7, 30, tzinfo=UTC)) == date(2026, 5, 26)
    assert parse_reminder_policy({"digest_time": ""}).digest_date(local(2026, 5, 26, 9)) is None


def test_remembered_schedules_are_the_computed_ones():
    """A schedule is kept per due instant: asked again (in any zone) it is the same, and
    what the caller does to the list it gets does not change the next answer."""
    fresh = parse_reminder_policy({})
    dues = [local(2026, 5, 22, 17, 0), local(2026, 3, 27, 17, 0), local(2026, 10, 23, 9, 15)]
    first = [fresh.schedule(d) for d in dues]
    first[0].clear()
    for due, got in zip(dues, [parse_reminder_policy({}).schedule(d) for d in dues], strict=True):
        assert fresh.schedule(due) == got
        assert fresh.schedule(due.astimezone(UTC)) == got
        assert fresh.schedule(due.astimezone(ZoneInfo("Asia/Tokyo"))) == got
    for n in range(300):  # more due times than are kept: still right
        due = local(2026, 1, 5, 9, 0) + timedelta(hours=n)
        assert fresh.schedule(due) == parse_reminder_policy({}).schedule(due)
    assert fresh == parse_reminder_policy({})  # what is kept is not part of the policy


def test_remembered_schedules_tell_the_two_instants_of_a_repeated_hour_apart():
    """01:30 on 25 October 2026 happens twice in London; equal as dict keys, not as instants.
    Steps of minutes add elapsed time, so the two schedules are an hour apart."""
    steps = {"reminder_steps": [{"offset": "-1h", "to": "practitioner"},
                                {"offset": "0", "to": "manager"}], "send_hours": ""}
    policy = parse_reminder_policy(steps)
    first = datetime(2026, 10, 25, 1, 30, tzinfo=LONDON)
    second = datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=LONDON)
    a, b = policy.schedule(first), policy.schedule(second)
    assert [w - v for (_, v), (_, w) in zip(a, b, strict=True)] == [timedelta(hours=1)] * 2
    assert b == parse_reminder_policy(steps).schedule(second)
    with pytest.raises(ValueError, match="aware"):
        policy.schedule(datetime(2026, 10, 25, 1, 30))
