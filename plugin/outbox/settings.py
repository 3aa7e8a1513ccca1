"""The outbox's settings: the ``DELIVERY_*`` settings as the sender and the sweep use them.

Their definitions, defaults and checks live in :mod:`sharewise.plugin.settings`; this is the
outbox's view of them (``OutboxSettings.of(app)``), with one rule of its own: a lease is kept
longer than an attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from sharewise.plugin.settings import Settings, settings_of


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
    def from_settings(cls, settings: Settings) -> OutboxSettings:
        """The outbox's view of ``settings``."""
        timeout = settings.delivery_timeout
        lease = settings.delivery_lease
        if lease <= timeout:
            # a lease shorter than an attempt would let a second worker send the same row
            lease = timeout * 2 + 5
        return cls(
            timeout=timeout,
            schedule=settings.delivery_schedule,
            scale=settings.delivery_schedule_scale,
            jitter=settings.delivery_jitter,
            max_retry_after=settings.delivery_max_retry_after,
            lease=lease,
            requeue_after=settings.delivery_requeue_after,
            countdown_max=settings.delivery_countdown_max,
            sweep_interval=settings.delivery_sweep_interval,
            sweep_batch=settings.delivery_sweep_batch,
            max_response_bytes=settings.delivery_max_response_bytes,
        )

    @classmethod
    def of(cls, app: Flask | None = None) -> OutboxSettings:
        """The outbox settings of ``app`` (default: the current app)."""
        return cls.from_settings(settings_of(app))
