"""Celery task of retention: ``tasks.retention.purge`` (beat, every
``RETENTION_SWEEP_INTERVAL`` seconds): one :func:`sharewise.plugin.retention.purge` (a query,
the deletions, a commit per record; what it does not finish, the next run does)."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from sharewise.plugin.retention import purge
from sharewise.tasks.sweeps import register_sweep

PURGE_TASK = "tasks.retention.purge"


@shared_task(name=PURGE_TASK)
def purge_due() -> int:
    """Purge the records whose retention has run out; how many."""
    return len(purge(current_app))


register_sweep("retention-purge", PURGE_TASK, every="retention_sweep_interval")
