"""Reminder steps: when each reminder of a record is due, from the tenant's policy.

A tenant's ``[tenants.<slug>.policy]`` table may hold::

    reminder_steps = [
      { offset = "-2h", to = "practitioner" },               # heads-up
      { offset = "0", to = "practitioner" },                 # due now
      { offset = "+1 working day", to = "manager" },         # overdue, escalated
      { offset = "+3 working days", to = "manager" },        # still overdue
    ]
    digest_time = "08:00"    # manager digest on working days; "" switches it off
    emergency_reminder_steps = [                            # an emergency record's own steps
      { offset = "0", to = "practitioner" },
      { offset = "+1h", to = "manager" },                    # escalated in hours, not days
    ]
    send_hours = "08:00-18:00"   # emails of non-emergency records wait for these hours on
                                 # working days; "" sends at any time

Both are on by default with the values shown (``true`` stands for them too);
``emergency_reminder_steps = []`` makes an emergency record follow ``reminder_steps`` like any
other, and ``send_hours = ""`` sends at any time. An emergency record's emails go at once; any
other record's email that falls outside the sending hours (or on a day that is not a working
day) waits until the next start of them.

Offsets are relative to the record's ``due_at``: ``0``, ``±N h`` / ``±N hours``, ``±N m`` /
``±N minutes`` (elapsed time), ``±N day(s)`` (calendar days, same local wall-clock time) and
``±N working day(s)`` (skipping weekends and England-and-Wales bank holidays, same local
wall-clock time, in the tenant's time zone; DST is handled by building the local time with
``zoneinfo``). Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sharewise.plugin.records.policy import is_working_day

Role = Literal["practitioner", "manager"]
Kind = Literal["request", "due_soon", "due_now", "overdue", "review", "inform", "escalation"]
ROLES: tuple[Role, ...] = ("practitioner", "manager")

DEFAULT_STEPS: tuple[Mapping[str, str], ...] = (
    {"offset": "-2h", "to": "practitioner"},
    {"offset": "0", "to": "practitioner"},
    {"offset": "+1 working day", "to": "manager"},
    {"offset": "+3 working days", "to": "manager"},
)
#: what ``emergency_reminder_steps = true`` stands for: told at once, the manager 1 hour later
DEFAULT_EMERGENCY_STEPS: tuple[Mapping[str, str], ...] = (
    {"offset": "0", "to": "practitioner"},
    {"offset": "+1h", "to": "manager"},
)
DEFAULT_DIGEST_TIME = time(8, 0)
#: what ``send_hours = true`` stands for
DEFAULT_SEND_HOURS = (time(8, 0), time(18, 0))

_UNITS = {
    "m": "minutes", "min": "minutes", "mins": "minutes", "minute": "minutes",
    "minutes": "minutes",
    "h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
    "wd": "working_days", "working day": "working_days", "working days": "working_days",
    "working-day": "working_days", "working-days": "working_days",
}
_OFFSET = re.compile(r"^\s*([+-]?)\s*(\d{1,4})\s*([a-z -]*?)\s*$")
_LIMITS = {"minutes": 60 * 24 * 60, "days": 60, "working_days": 40}


class ReminderPolicyError(ValueError):
    """A reminder policy in the tenants file is malformed (the message says where and why)."""


@dataclass(frozen=True, order=True)
class Offset:
    """A signed distance from ``due_at``: minutes (elapsed), calendar days or working days."""

    unit: Literal["minutes", "days", "working_days"]
    amount: int

    @property
    def key(self) -> str:
        """Canonical text (``0``, ``-2h``, ``+30m``, ``+1d``, ``+3wd``): part of the unique key."""
        if self.amount == 0:
            return "0"
        sign = "+" if self.amount > 0 else "-"
        n = abs(self.amount)
        if self.unit == "minutes":
            return f"{sign}{n // 60}h" if n % 60 == 0 else f"{sign}{n}m"
        return f"{sign}{n}{'d' if self.unit == 'days' else 'wd'}"

    @property
    def kind(self) -> Kind:
        """Before, at, or after the due time."""
        if self.amount < 0:
            return "due_soon"
        return "due_now" if self.amount == 0 else "overdue"

    def apply(self, due_at: datetime, zone: ZoneInfo) -> datetime:
        """The moment this offset designates, as aware UTC."""
        if due_at.tzinfo is None:
            raise ValueError("due_at must be timezone-aware")
        if self.amount == 0:
            return due_at.astimezone(UTC)
        if self.unit == "minutes":
            # Elapsed time: add in UTC (aware arithmetic in a local zone is wall-clock time).
            return due_at.astimezone(UTC) + timedelta(minutes=self.amount)
        local = due_at.astimezone(zone)
        if self.unit == "days":
            day = local.date() + timedelta(days=self.amount)
        else:
            day = shift_working_days(local.date(), self.amount)
        return datetime.combine(day, local.time().replace(tzinfo=None), tzinfo=zone).astimezone(UTC)


def shift_working_days(day: date, n: int) -> date:
    """``day`` moved by ``n`` working days, forwards or backwards (``n = 0`` gives ``day``).

    Counting starts from the next (or previous) day, so a step "+1 working day" from a Friday
    before a bank-holiday Monday lands on Tuesday, and from a Saturday on Monday.
    """
    step = 1 if n > 0 else -1
    remaining = abs(n)
    while remaining:
        day += timedelta(days=step)
        if is_working_day(day):
            remaining -= 1
    return day


def parse_offset(text: Any) -> Offset:
    """Parse ``0``, ``-2h``, ``+30 minutes``, ``+1 day``, ``+3 working days`` ..."""
    raw = str(text).strip().lower()
    m = _OFFSET.match(raw)
    unit = _UNITS.get(m.group(3).strip()) if m and m.group(3).strip() else None
    if m and not m.group(3).strip() and int(m.group(2)) == 0:
        return Offset("minutes", 0)
    if m is None or unit is None:
        raise ReminderPolicyError(
            f"offset {text!r} is not understood; write for example '-2h', '0', '+30 minutes', "
            "'+1 day' or '+3 working days'")
    amount = int(m.group(2)) * (-1 if m.group(1) == "-" else 1)
    if unit == "hours":
        unit, amount = "minutes", amount * 60
    if abs(amount) > _LIMITS[unit]:
        raise ReminderPolicyError(f"offset {text!r} is too far from the due time")
    return Offset(unit, amount)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Step:
    """One reminder step: an offset from ``due_at`` and who gets the email."""

    offset: Offset
    to: Role

    @property
    def key(self) -> str:
        """The step's part of the reminder's unique key (record, step, recipient)."""
        return self.offset.key

    @property
    def kind(self) -> Kind:
        """``due_soon``, ``due_now`` or ``overdue``."""
        return self.offset.kind


@dataclass(frozen=True)
class ReminderPolicy:
    """A tenant's reminder steps, digest time and time zone."""

    steps: tuple[Step, ...]
    zone: ZoneInfo
    digest_time: time | None = DEFAULT_DIGEST_TIME
    #: an emergency record's own steps (none: it follows ``steps``)
    emergency_steps: tuple[Step, ...] = ()
    #: (start, end) local times emails of non-emergency records are sent in, working days only
    send_hours: tuple[time, time] | None = None
    #: recent schedules by due instant, in UTC: intakes mostly share a few due times (the
    #: due-date policy's "17:00 on the Nth working day"), and a schedule depends on the
    #: instant alone. In UTC because in a zone with summer time two instants of a repeated
    #: hour (told apart by ``fold``) are equal as dict keys.
    _recent: dict[datetime, tuple[tuple[Step, datetime], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def schedule(self, due_at: datetime, emergency: bool = False
                 ) -> list[tuple[Step, datetime]]:
        """Every step with the moment it is due, earliest first: an emergency record's own
        steps at once, any other record's moved into the sending hours."""
        if due_at.utcoffset() is None:
            raise ValueError("due_at must be timezone-aware")
        instant = due_at.astimezone(UTC)
        if emergency and self.emergency_steps:
            return sorted(((s, s.offset.apply(instant, self.zone)) for s in self.emergency_steps),
                          key=lambda pair: pair[1])
        got = self._recent.get(instant)
        if got is None:
            got = tuple(sorted(((s, self.in_send_hours(s.offset.apply(instant, self.zone)))
                                for s in self.steps), key=lambda pair: pair[1]))
            if len(self._recent) >= 256:
                self._recent.clear()
            self._recent[instant] = got
        return list(got)

    def in_send_hours(self, when: datetime) -> datetime:
        """``when`` if it falls in the sending hours of a working day, else the next start of
        them (UTC)."""
        if self.send_hours is None:
            return when.astimezone(UTC)
        start, end = self.send_hours
        local = when.astimezone(self.zone)
        day = local.date()
        if is_working_day(day) and start <= local.time().replace(tzinfo=None) < end:
            return when.astimezone(UTC)
        if not (is_working_day(day) and local.time().replace(tzinfo=None) < start):
            day = shift_working_days(day, 1)
        return datetime.combine(day, start, tzinfo=self.zone).astimezone(UTC)

    def on_day(self, day: date) -> datetime:
        """The moment an email about a date (a review, telling the person) is due: the start
        of that day's sending hours (09:00 without them), moved to a working day (UTC)."""
        start = self.send_hours[0] if self.send_hours else time(9, 0)
        return self.in_send_hours(datetime.combine(day, start, tzinfo=self.zone))

    def step(self, key: str, to: str) -> Step | None:
        """The configured step with this key and recipient role, if any."""
        return next((s for s in self.steps if s.key == key and s.to == to), None)

    def digest_date(self, now: datetime) -> date | None:
        """The local date whose digest is due at ``now`` (a working day past the digest time)."""
        if self.digest_time is None:
            return None
        local = now.astimezone(self.zone)
        if not is_working_day(local.date()) or local.time() < self.digest_time:
            return None
        return local.date()


def _parse_steps(raw: Iterable[Any], name: str = "reminder_steps") -> tuple[Step, ...]:
    steps: list[Step] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(raw):
        where = f"{name}[{i}]"
        if not isinstance(item, Mapping):
            raise ReminderPolicyError(f"{where} must be a table like {{offset = \"0\", to = ...}}")
        unknown = set(item) - {"offset", "to"}
        if unknown:
            raise ReminderPolicyError(f"{where} has unknown keys {sorted(unknown)}")
        try:
            offset = parse_offset(item.get("offset", ""))
        except ReminderPolicyError as exc:
            raise ReminderPolicyError(f"{where}: {exc}") from None
        to = item.get("to")
        if to not in ROLES:
            raise ReminderPolicyError(f"{where}.to must be 'practitioner' or 'manager'")
        if (offset.key, to) in seen:
            raise ReminderPolicyError(f"{where} repeats step {offset.key} for {to}")
        seen.add((offset.key, to))
        steps.append(Step(offset, to))
    return tuple(steps)


def _parse_clock(value: Any, where: str) -> time | None:
    if value in (None, "", False):
        return None
    if isinstance(value, time):
        return value
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", str(value))
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ReminderPolicyError(f"{where} must be a local time like '08:00'")
    return time(int(m.group(1)), int(m.group(2)))


def parse_reminder_policy(policy: Mapping[str, Any] | None,
                          timezone: str = "Europe/London") -> ReminderPolicy:
    """A tenant's reminder policy from its ``policy`` table (defaults for missing keys)."""
    policy = policy or {}
    steps = _parse_steps(policy.get("reminder_steps", DEFAULT_STEPS))
    raw = policy.get("emergency_reminder_steps", True)
    emergency = _parse_steps(DEFAULT_EMERGENCY_STEPS if raw is True else raw or (),
                             "emergency_reminder_steps")
    digest = (_parse_clock(policy["digest_time"], "digest_time") if "digest_time" in policy
              else DEFAULT_DIGEST_TIME)
    hours = _parse_hours(policy.get("send_hours", True))
    return ReminderPolicy(steps=steps, zone=ZoneInfo(timezone), digest_time=digest,
                          emergency_steps=emergency, send_hours=hours)


def check_policy(tenant: Any) -> None:
    """A tenant's reminder keys are usable (:class:`ReminderPolicyError`, a ``ValueError``
    naming the key); for the tenants file's ``checks``."""
    parse_reminder_policy(tenant.policy, tenant.timezone)


def _parse_hours(value: Any) -> tuple[time, time] | None:
    """``"08:00-18:00"`` (start before end); ``""`` for none."""
    if value in (None, "", False):
        return None
    if value is True:
        return DEFAULT_SEND_HOURS
    parts = str(value).split("-")
    if len(parts) != 2:
        raise ReminderPolicyError("send_hours must be like '08:00-18:00', or '' for any time")
    start = _parse_clock(parts[0], "send_hours")
    end = _parse_clock(parts[1], "send_hours")
    if start is None or end is None or not start < end:
        raise ReminderPolicyError("send_hours must be like '08:00-18:00' (start before end)")
    return start, end


def policy_for_tenant(tenant: Any) -> ReminderPolicy:
    """The policy of a :class:`sharewise.plugin.tenants.Tenant`, with its slug in any error."""
    try:
        return parse_reminder_policy(tenant.policy, tenant.timezone)
    except ReminderPolicyError as exc:
        raise ReminderPolicyError(f"tenant {tenant.slug!r}: policy.{exc}") from None
