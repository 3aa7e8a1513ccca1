"""Due dates by urgency: working days, England-and-Wales bank holidays, DST, tenant overrides."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from sharewise.plugin.records.policy import (
    add_working_days,
    due_at,
    is_working_day,
    next_working_day,
)

LONDON = ZoneInfo("Europe/London")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def local(*args):
    return datetime(*args, tzinfo=LONDON)


def test_working_days():
    assert is_working_day(date(2026, 5, 22))           # Friday
    assert not is_working_day(date(2026, 5, 23))       # Saturday
    assert not is_working_day(date(2026, 5, 25))       # Spring bank holiday (Monday)
    assert not is_working_day(date(2026, 12, 28))      # Boxing Day substitute
    assert not is_working_day(date(2026, 4, 3))        # Good Friday
    assert is_working_day(date(2026, 11, 30))          # St Andrew's Day: Scotland only
    assert next_working_day(date(2026, 5, 22)) == date(2026, 5, 26)
    assert add_working_days(date(2026, 12, 24), 1) == date(2026, 12, 29)
    assert add_working_days(date(2026, 12, 24), 0) == date(2026, 12, 24)


@pytest.mark.parametrize("requested,urgency,expected", [
    # routine: 17:00 of the next working day
    (local(2026, 11, 24, 10, 0), "routine", local(2026, 11, 25, 17, 0)),
    # Friday before the Spring bank holiday: Tuesday
    (local(2026, 5, 22, 15, 30), "routine", local(2026, 5, 26, 17, 0)),
    # Saturday: next working day is Monday
    (local(2026, 11, 28, 9, 0), "routine", local(2026, 11, 30, 17, 0)),
    # urgent by 13:00 on a working day: same day
    (local(2026, 11, 24, 12, 59), "urgent", local(2026, 11, 24, 17, 0)),
    (local(2026, 11, 24, 13, 0), "urgent", local(2026, 11, 24, 17, 0)),
    # urgent after 13:00: next working day
    (local(2026, 11, 24, 13, 1), "urgent", local(2026, 11, 25, 17, 0)),
    # urgent on the bank holiday Monday: Tuesday
    (local(2026, 5, 25, 9, 0), "urgent", local(2026, 5, 26, 17, 0)),
    # urgent on a Friday afternoon before the bank holiday
    (local(2026, 5, 22, 14, 0), "urgent", local(2026, 5, 26, 17, 0)),
    # emergency: 2 hours, even on a Sunday night
    (local(2026, 11, 29, 23, 30), "emergency", local(2026, 11, 30, 1, 30)),
])
def test_due_at(requested, urgency, expected):
    assert due_at(requested, urgency) == expected.astimezone(UTC)


def test_dst_spring_forward_weekend():
    # Clocks go forward on Sunday 29 March 2026:
    # Friday 17:00 GMT = 17:00Z, Monday 17:00 BST = 16:00Z
    assert due_at(local(2026, 3, 26, 11, 0), "routine") == utc(2026, 3, 27, 17, 0)
    assert due_at(local(2026, 3, 27, 11, 0), "routine") == utc(2026, 3, 30, 16, 0)


def test_dst_autumn_back_weekend():
    # Clocks go back on Sunday 25 October 2026: Monday 17:00 GMT = 17:00Z
    assert due_at(local(2026, 10, 23, 16, 0), "routine") == utc(2026, 10, 26, 17, 0)
    assert due_at(local(2026, 10, 23, 11, 0), "urgent") == utc(2026, 10, 23, 16, 0)


def test_emergency_across_dst_is_two_real_hours():
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 00:30 GMT; at 01:00 GMT it is 02:00 BST
    assert due_at(start, "emergency") == utc(2026, 3, 29, 2, 30)


def test_requests_in_utc_are_judged_in_local_time():
    # 12:30Z in summer is 13:30 BST: after the urgent cut-off
    assert due_at(datetime(2026, 7, 1, 12, 30, tzinfo=UTC), "urgent") == local(2026, 7, 2, 17, 0)
    # 23:30Z on Friday 22 May is 00:30 BST on Saturday: not a working day
    assert due_at(datetime(2026, 5, 21, 23, 30, tzinfo=UTC), "urgent") == local(2026, 5, 22, 17, 0)


def test_tenant_policy_overrides_and_timezone():
    policy = {"due_time": "16:30", "urgent_cutoff": "12:00", "emergency_hours": 4}
    urgent = due_at(local(2026, 11, 24, 12, 30), "urgent", policy=policy)
    assert urgent == local(2026, 11, 25, 16, 30)
    emergency = due_at(local(2026, 11, 24, 9, 0), "emergency", policy=policy)
    assert emergency == local(2026, 11, 24, 13, 0)
    belfast = due_at(datetime(2026, 11, 24, 10, tzinfo=UTC), "routine", "Europe/Belfast")
    assert belfast == utc(2026, 11, 25, 17)


def test_naive_time_refused():
    with pytest.raises(ValueError):
        due_at(datetime(2026, 11, 24, 10), "routine")
