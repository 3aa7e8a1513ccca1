"""The retry schedule: Standard Webhooks delays, jitter bounds, Retry-After, dead-lettering."""

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from sharewise.plugin.outbox.schedule import (
    STANDARD_SCHEDULE,
    max_attempts,
    next_delay,
    parse_retry_after,
)


def test_standard_schedule_is_the_published_one():
    assert STANDARD_SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert max_attempts() == 10


def test_without_jitter_the_delays_follow_the_schedule_then_dead():
    delays = [next_delay(n, jitter=0) for n in range(1, 11)]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400, None]


def test_jitter_stays_within_bounds_and_varies():
    rng = random.Random(1)
    seen = {next_delay(2, jitter=0.1, rng=rng) for _ in range(200)}
    assert all(270 <= d <= 330 for d in seen)
    assert len(seen) > 100
    assert min(seen) < 285 and max(seen) > 315


def test_retry_after_wins_when_later_and_not_when_earlier():
    assert next_delay(1, jitter=0, retry_after=60) == 60
    assert next_delay(3, jitter=0, retry_after=60) == 1800
    assert next_delay(1, jitter=0, retry_after=10**9) == 24 * 3600
    assert next_delay(1, jitter=0, retry_after=0) == 5


def test_retry_after_does_not_resurrect_a_dead_delivery():
    assert next_delay(10, retry_after=5) is None


def test_scale_shrinks_the_schedule_but_never_retry_after():
    assert next_delay(2, jitter=0, scale=0.001) == pytest.approx(0.3)
    assert next_delay(2, jitter=0, scale=0.001, retry_after=2) == 2


def test_custom_schedule_sets_the_number_of_attempts():
    sched = (0, 0.1, 0.2)
    assert max_attempts(sched) == 3
    assert next_delay(1, schedule=sched, jitter=0) == 0.1
    assert next_delay(3, schedule=sched) is None


@pytest.mark.parametrize("bad", [0, -1])
def test_attempts_made_starts_at_one(bad):
    with pytest.raises(ValueError):
        next_delay(bad)


def test_parse_retry_after_seconds_and_dates():
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120
    assert parse_retry_after(" 7 ", now=now) == 7
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now) == 90
    earlier = format_datetime(now - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0
    for junk in (None, "", "soon", "-5", "1.5e3"):
        assert parse_retry_after(junk, now=now) is None
