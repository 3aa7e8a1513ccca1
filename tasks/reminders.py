"""Celery tasks of the reminders concern: the beat scan and the send tasks.

* ``tasks.reminders.scan`` (beat, every ``REMINDER_SCAN_INTERVAL`` seconds, default 60): one
  :func:`sharewise.plugin.reminders.services.run_scan`.
* ``tasks.reminders.send`` / ``tasks.reminders.send_digest`` (reminder or digest id, claim
  token): ``acks_late`` and ``reject_on_worker_lost`` (a message whose worker died is
  redelivered where the broker can), retried on transient SMTP errors with capped exponential
  backoff and jitter (short countdowns only: no long ``eta`` that Redis would redeliver after its
  visibility timeout). After ``REMINDER_MAX_RETRIES`` the task releases its claim and the next
  scan enqueues the row again, so a reminder is never dropped while the mail server is down.
"""

from __future__ import annotations

import random
from typing import Any

from celery import Task, shared_task

from sharewise.plugin.reminders.services import SendOutcome, run_scan, send_digest, send_reminder
from sharewise.plugin.settings import settings_of
from sharewise.tasks.sweeps import register_sweep

SCAN_TASK = "tasks.reminders.scan"


def backoff(retries: int, base: float, cap: float) -> float:
    """Exponential backoff with "equal jitter": between half and all of min(cap, base * 2^n)."""
    ceiling = min(cap, base * (2 ** retries))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _retry_or_return(task: Task, outcome: SendOutcome) -> str:
    if outcome.retry_in is None:
        return outcome.state
    settings = settings_of()
    if task.request.retries >= settings.reminder_max_retries:
        return outcome.state  # the claim was released (or its lease runs out): the scan resumes
    delay = outcome.retry_in or backoff(task.request.retries, settings.reminder_retry_base,
                                        settings.reminder_retry_cap)
    raise task.retry(countdown=delay, max_retries=None)


def _final(task: Task) -> bool:
    return task.request.retries >= settings_of().reminder_max_retries


@shared_task(name=SCAN_TASK, ignore_result=True)
def scan() -> str:
    """Claim what is due and enqueue the sends (overlapping scans do no double work)."""
    return run_scan().summary()


@shared_task(name="tasks.reminders.send", bind=True, acks_late=True,
             reject_on_worker_lost=True, ignore_result=True, max_retries=None)
def send(self: Task, reminder_id: int, claim: str) -> str:
    """Send one claimed reminder; does nothing if it was sent, superseded or the record is final."""
    return _retry_or_return(self, send_reminder(reminder_id, claim, final_attempt=_final(self)))


@shared_task(name="tasks.reminders.send_digest", bind=True, acks_late=True,
             reject_on_worker_lost=True, ignore_result=True, max_retries=None)
def send_digest_task(self: Task, digest_id: int, claim: str) -> str:
    """Send one claimed manager digest (same guarantees as ``send``)."""
    return _retry_or_return(self, send_digest(digest_id, claim, final_attempt=_final(self)))


register_sweep("reminders-scan", SCAN_TASK, every="reminder_scan_interval")

__all__: list[Any] = ["backoff", "scan", "send", "send_digest_task"]
