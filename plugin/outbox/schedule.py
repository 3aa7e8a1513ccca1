"""The delivery retry schedule: pure functions, no clock, no database.

Sharewise follows the Standard Webhooks schedule: an attempt immediately, then after 5 seconds,
5 minutes, 30 minutes, 2, 5, 10, 14, 20 and 24 hours, ten attempts in all; after the last one
fails the delivery is dead-lettered. Each delay gets a little random jitter (so a host that comes
back is not hit by every delivery in the same second) and a host's ``Retry-After`` wins when it
asks for a longer pause than the schedule would give.

The schedule can be replaced (tests use a scaled-down one so that a day of retries takes a
second), and a ``scale`` factor multiplies every scheduled delay; ``Retry-After`` is never
scaled, because it is what the host asked for.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: Seconds to wait before attempt ``n + 1`` (index 0 is the first attempt: immediately).
STANDARD_SCHEDULE: tuple[float, ...] = (
    0,
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    24 * 3600,
)

#: Default relative jitter: each delay is multiplied by a factor in ``[1 - j, 1 + j]``.
DEFAULT_JITTER = 0.1

#: The longest ``Retry-After`` Sharewise honours; a longer one is cut to this.
MAX_RETRY_AFTER = 24 * 3600.0


def max_attempts(schedule: Sequence[float] = STANDARD_SCHEDULE) -> int:
    """The number of attempts a delivery gets before it is dead-lettered."""
    return len(schedule)


def next_delay(
    attempts_made: int,
    *,
    schedule: Sequence[float] = STANDARD_SCHEDULE,
    retry_after: float | None = None,
    jitter: float = DEFAULT_JITTER,
    scale: float = 1.0,
    max_retry_after: float = MAX_RETRY_AFTER,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` when the delivery is dead.

    ``attempts_made`` counts the attempts already made (1 after the first one failed). The
    delay is the scheduled one, scaled and jittered, or the host's ``retry_after`` (capped at
    ``max_retry_after``) when that is later.
    """
    if attempts_made < 1:
        raise ValueError("attempts_made counts attempts already made and starts at 1")
    if not 0 <= jitter < 1:
        raise ValueError("jitter must be in [0, 1)")
    if attempts_made >= len(schedule):
        return None
    base = float(schedule[attempts_made]) * scale
    factor = 1.0 + (rng or random).uniform(-jitter, jitter) if jitter else 1.0
    delay = max(0.0, base * factor)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(float(retry_after), max_retry_after))
    return delay


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header: delay-seconds or an HTTP-date; ``None`` if absent or bad.

    A date in the past gives ``0``; anything unparseable is ignored (``None``) rather than
    trusted.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())
