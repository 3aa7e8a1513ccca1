"""``GET /metrics``: the Prometheus exporter.

Shows the counters and histograms of :mod:`sharewise.plugin.metrics` (every process's, added
up, in prometheus-client's multiprocess mode; this process's otherwise) and two figures read
from the database at each scrape, true whichever process did the work:

- ``sharewise_records{tenant, status}``: records by tenant and state;
- ``sharewise_oldest_due_seconds{queue}``: queue lag, the age of the oldest reminder and of the
  oldest delivery that are due and not yet sent (0 when none).

The endpoint is meant for the monitoring network: it shows counts by tenant, never a record id
or anything personal. Put it behind the same proxy rules as ``/readyz``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from sharewise.plugin.db import session_scope, utcnow
from sharewise.plugin.outbox.models import PENDING as DELIVERY_PENDING
from sharewise.plugin.outbox.models import Delivery
from sharewise.plugin.records.models import Record
from sharewise.plugin.reminders.models import PENDING as REMINDER_PENDING
from sharewise.plugin.reminders.models import Reminder

bp = Blueprint("exporter", __name__)
_EXTENSION = "sharewise.exporter"


class DatabaseCollector(Collector):
    """Records by state and queue lag, read from the database at each scrape."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One grouped count and two ``MIN``\\ s."""
        records = GaugeMetricFamily("sharewise_records", "Records by tenant and state.",
                                    labels=["tenant", "status"])
        lag = GaugeMetricFamily("sharewise_oldest_due_seconds", "Age of the oldest reminder or "
                                "delivery that is due and not sent (0 when none).",
                                labels=["queue"])
        now = utcnow()
        with session_scope(self.app, readonly=True) as session:
            for tenant, status, count in session.execute(
                    select(Record.tenant, Record.status, func.count())
                    .group_by(Record.tenant, Record.status)):
                records.add_metric([tenant, status], count)
            oldest_reminder = session.scalar(
                select(func.min(Reminder.due_at)).where(Reminder.state == REMINDER_PENDING,
                                                        Reminder.due_at <= now))
            oldest_delivery = session.scalar(
                select(func.min(Delivery.next_attempt_at)).where(
                    Delivery.state == DELIVERY_PENDING, Delivery.next_attempt_at <= now))
        lag.add_metric(["reminders"], _age(oldest_reminder, now))
        lag.add_metric(["deliveries"], _age(oldest_delivery, now))
        yield records
        yield lag


def _age(then: datetime | None, now: datetime) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:  # SQLite gives naive UTC
        then = then.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - then).total_seconds())


def registries(app: Flask) -> tuple[CollectorRegistry, ...]:
    """What a scrape shows, in order, built once per app: the counters (every process's, added
    up by prometheus-client's multiprocess collector on the app's registry when
    ``PROMETHEUS_MULTIPROC_DIR`` is set; else this process's, the default registry), then the
    database figures (the app's registry)."""
    found = app.extensions.get(_EXTENSION)
    if found is None:
        own = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            prometheus_multiprocess.MultiProcessCollector(own)
            found = (own,)
        else:
            found = (REGISTRY, own)
        own.register(DatabaseCollector(app))
        found = app.extensions.setdefault(_EXTENSION, found)
    return found


@bp.get("/metrics")
def metrics() -> Response:
    """The Prometheus text format."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    body = b"".join(generate_latest(reg) for reg in registries(app))
    return Response(body, content_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
