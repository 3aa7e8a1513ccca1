"""Due-date policy: working days in the tenant's time zone and ``due_at`` by urgency.

Working days exclude Saturdays, Sundays and England-and-Wales bank holidays (``holidays``,
``GB`` subdivision ``ENG``). Defaults, overridable per tenant in ``[tenants.<slug>.policy]``
(``due_time = "17:00"``, ``urgent_cutoff = "13:00"``, ``emergency_hours = 2``):

* routine: 17:00 of the next working day after the request;
* urgent: 17:00 of the same day if it is a working day and the request came by 13:00,
  otherwise 17:00 of the next working day;
* emergency: 2 hours after the request.

Local wall-clock times are built with ``zoneinfo``, so 17:00 is 17:00 in GMT and in BST.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

DEFAULT_TIMEZONE = "Europe/London"
DEFAULT_DUE_TIME = time(17, 0)
DEFAULT_URGENT_CUTOFF = time(13, 0)
DEFAULT_EMERGENCY_HOURS = 2.0


@cache
def _bank_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=year).keys())


def warm_up(today: date | None = None) -> None:
    """Load this year's and next year's bank holidays now (the first load imports the
    ``holidays`` country modules, about 0.25 s), not during a process's first intake."""
    year = (today or datetime.now(UTC).date()).year
    _bank_holidays(year)
    _bank_holidays(year + 1)


def is_working_day(day: date) -> bool:
    """Monday to Friday and not an England-and-Wales bank holiday."""
    return day.weekday() < 5 and day not in _bank_holidays(day.year)


def next_working_day(day: date) -> date:
    """The first working day strictly after ``day``."""
    day += timedelta(days=1)
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def add_working_days(day: date, n: int) -> date:
    """``day`` moved by ``n`` working days (``n >= 0``; 0 gives ``day`` itself)."""
    for _ in range(n):
        day = next_working_day(day)
    return day


def at_local(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """``clock`` on ``day`` in ``zone``, as aware UTC."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def _parse_time(value: Any, default: time) -> time:
    if value is None:
        return default
    if isinstance(value, time):
        return value
    hours, _, minutes = str(value).partition(":")
    return time(int(hours), int(minutes or 0))


def check_policy(tenant: Any) -> None:
    """A tenant's due-date keys are usable (``ValueError`` naming the key); for the tenants
    file's ``checks``."""
    policy = tenant.policy
    for key, default in (("due_time", DEFAULT_DUE_TIME), ("urgent_cutoff",
                                                         DEFAULT_URGENT_CUTOFF)):
        try:
            _parse_time(policy.get(key), default)
        except (ValueError, TypeError):
            raise ValueError(f"{key} must be a local time like '17:00'") from None
    hours = policy.get("emergency_hours", DEFAULT_EMERGENCY_HOURS)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= 720:
        raise ValueError("emergency_hours must be a number of hours above 0 (720 at most)")


def due_at(
    requested_at: datetime,
    urgency: str,
    timezone: str = DEFAULT_TIMEZONE,
    policy: Mapping[str, Any] | None = None,
) -> datetime:
    """When a record is due, as aware UTC."""
    if requested_at.tzinfo is None:
        raise ValueError("requested_at must be timezone-aware")
    policy = policy or {}
    zone = ZoneInfo(timezone)
    due_time = _parse_time(policy.get("due_time"), DEFAULT_DUE_TIME)
    if urgency == "emergency":
        hours = float(policy.get("emergency_hours", DEFAULT_EMERGENCY_HOURS))
        return (requested_at + timedelta(hours=hours)).astimezone(UTC)
    local = requested_at.astimezone(zone)
    if urgency == "urgent":
        cutoff = _parse_time(policy.get("urgent_cutoff"), DEFAULT_URGENT_CUTOFF)
        if is_working_day(local.date()) and local.time() <= cutoff:
            return at_local(local.date(), due_time, zone)
        return at_local(next_working_day(local.date()), due_time, zone)
    return at_local(next_working_day(local.date()), due_time, zone)
