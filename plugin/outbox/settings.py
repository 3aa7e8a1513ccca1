"""The outbox's settings, read from the app config (``SHAREWISE_DELIVERY_*`` variables).

Defaults and documentation live in ``config/defaults.toml``; the values here are the fallback
when a key is missing (an app built from an older defaults file, or a bare config in a test).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sharewise.plugin.outbox.schedule import DEFAULT_JITTER, MAX_RETRY_AFTER, STANDARD_SCHEDULE

FALLBACKS: dict[str, Any] = {
    "DELIVERY_TIMEOUT": 15,
    "DELIVERY_SCHEDULE": "",
    "DELIVERY_SCHEDULE_SCALE": 1.0,
    "DELIVERY_JITTER": DEFAULT_JITTER,
    "DELIVERY_MAX_RETRY_AFTER": MAX_RETRY_AFTER,
    "DELIVERY_LEASE": 120,
    "DELIVERY_REQUEUE_AFTER": 300,
    "DELIVERY_COUNTDOWN_MAX": 60,
    "DELIVERY_SWEEP_INTERVAL": 30,
    "DELIVERY_SWEEP_BATCH": 500,
    "DELIVERY_MAX_RESPONSE_BYTES": 65536,
}


def parse_schedule(value: Any) -> tuple[float, ...]:
    """A schedule from a list of seconds, a comma-separated string or a JSON list.

    Empty means the Standard Webhooks schedule.
    """
    if value in (None, "", []):
        return STANDARD_SCHEDULE
    if isinstance(value, str):
        text = value.strip()
        items = json.loads(text) if text.startswith("[") else text.split(",")
    else:
        items = list(value)
    schedule = tuple(float(str(v).strip()) for v in items if str(v).strip())
    if not schedule or any(d < 0 for d in schedule):
        raise ValueError("DELIVERY_SCHEDULE must be a non-empty list of non-negative seconds")
    return schedule


@dataclass(frozen=True)
class OutboxSettings:
    """Everything the sender and the sweep need to know, typed."""

    timeout: float
    schedule: tuple[float, ...]
    scale: float
    jitter: float
    max_retry_after: float
    lease: float
    requeue_after: float
    countdown_max: float
    sweep_interval: float
    sweep_batch: int
    max_response_bytes: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OutboxSettings:
        """Read (and check) the settings from a Flask config mapping."""

        def get(key: str) -> Any:
            value = config.get(key)
            return FALLBACKS[key] if value is None or value == "" else value

        timeout = float(get("DELIVERY_TIMEOUT"))
        lease = float(get("DELIVERY_LEASE"))
        if lease <= timeout:
            # a lease shorter than an attempt would let a second worker send the same row
            lease = timeout * 2 + 5
        return cls(
            timeout=timeout,
            schedule=parse_schedule(config.get("DELIVERY_SCHEDULE")),
            scale=float(get("DELIVERY_SCHEDULE_SCALE")),
            jitter=float(get("DELIVERY_JITTER")),
            max_retry_after=float(get("DELIVERY_MAX_RETRY_AFTER")),
            lease=lease,
            requeue_after=float(get("DELIVERY_REQUEUE_AFTER")),
            countdown_max=float(get("DELIVERY_COUNTDOWN_MAX")),
            sweep_interval=float(get("DELIVERY_SWEEP_INTERVAL")),
            sweep_batch=int(get("DELIVERY_SWEEP_BATCH")),
            max_response_bytes=int(get("DELIVERY_MAX_RESPONSE_BYTES")),
        )
