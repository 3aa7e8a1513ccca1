"""Delivery tasks: ``tasks.delivery.send`` (one attempt) and the ``tasks.delivery.sweep`` beat.

Both are thin: the work is :mod:`plugin.outbox.sender`. ``send`` is ``acks_late`` and rejected
(redelivered) when its worker is lost; whether or not the broker redelivers, the sweep finds a
row whose lease ran out and sends it again with the same webhook-id. The sweep runs every
``DELIVERY_SWEEP_INTERVAL`` seconds (default 30; beat reads it from its app's settings).
"""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from sharewise.plugin.outbox import sender
from sharewise.tasks.sweeps import register_sweep

SEND = "tasks.delivery.send"
SWEEP = "tasks.delivery.sweep"


@shared_task(name=SEND, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def send(public_id: str) -> str:
    """Make one attempt at delivery ``public_id`` if it is due (see the sender module)."""
    return sender.attempt_delivery(current_app._get_current_object(), public_id)


@shared_task(name=SWEEP, acks_late=True, ignore_result=True)
def sweep() -> dict[str, int]:
    """Re-enqueue deliveries that are due and not done; retry unsent operator emails."""
    return sender.sweep(current_app._get_current_object())


register_sweep("delivery", SWEEP, every="delivery_sweep_interval")
