"""Fixtures of the reminders tests: a real SMTP server and an app that sends through it.

* ``smtp``: a started :class:`tests.smtp.SmtpSink` (plain SMTP with AUTH on loopback).
* ``app_config`` (overrides the suite's): adds ``SMTP_URL`` for ``smtp``, short leases and
  retry delays so downtime tests run in seconds.
* ``digests_on``: request it to keep the daily digest on; otherwise the tenants file switches
  it off (it follows the real clock, which the other tests must not depend on).
* ``send_hours_on``: request it to keep the default sending hours (08:00-18:00 on working
  days); otherwise the tenants file sends at any time, for the same reason.
* ``notify_off``: request it to set ``notify_on_request = false`` for every tenant (no
  request email at intake); otherwise the tenants keep the default (on).
* ``make_record(**fields)``: inserts a record directly (no PDF) and schedules its reminders, the
  way intake does; returns its integer id.
"""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.smtp import SmtpSink

SMTP_USER, SMTP_PASSWORD = "sharewise", "mail-pass"


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink(credentials=(SMTP_USER, SMTP_PASSWORD))
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def digests_on() -> bool:
    """Request this fixture to keep the managers' daily digest on (off otherwise)."""
    return True


@pytest.fixture
def send_hours_on() -> bool:
    """Request this fixture to keep the default sending hours (any time otherwise)."""
    return True


@pytest.fixture
def notify_off() -> bool:
    """Request this fixture to switch the request email off for every tenant."""
    return True


@pytest.fixture
def app_config(app_config: dict[str, Any], smtp: SmtpSink,
               request: pytest.FixtureRequest) -> dict[str, Any]:
    # The digest and the sending hours follow the real clock (08:00 on working days): keep
    # them out of the tests that are not about them, so they do not depend on when they run.
    pinned = "".join(line for fixture, line in (("digests_on", 'digest_time = ""\n'),
                                                ("send_hours_on", 'send_hours = ""\n'))
                     if fixture not in request.fixturenames)
    path = Path(app_config["TENANTS"])
    slugs = tomllib.loads(path.read_text())["tenants"]
    if "notify_off" in request.fixturenames:
        text = path.read_text()
        for slug in slugs:
            text = text.replace(f"[tenants.{slug}]\n",
                                f"[tenants.{slug}]\nnotify_on_request = false\n")
        path.write_text(text)
    if pinned:
        path.write_text(path.read_text() + "".join(
            f"\n[tenants.{slug}.policy]\n{pinned}" for slug in slugs))
    app_config.update(
        SMTP_URL=smtp.url(user=SMTP_USER, password=SMTP_PASSWORD),
        MAIL_FROM="sharewise@council.example",
        SMTP_TIMEOUT=3,
        REMINDER_LEASE=30,
        REMINDER_SENDING_LEASE=10,
        REMINDER_RETRY_BASE=0.1,
        REMINDER_RETRY_CAP=0.4,
        REMINDER_MAX_RETRIES=3,
    )
    return app_config


@pytest.fixture
def make_record(app: Any) -> Callable[..., int]:
    from sharewise.plugin.db import session_scope
    from sharewise.plugin.records.models import Record
    from sharewise.plugin.reminders.services import schedule_reminders
    from sharewise.plugin.tenants import get_tenant

    def make(*, tenant: str = "northshire", due_at: datetime | None = None,
             status: str = "awaiting_completion", manager: str = "manager.one@team.example",
             practitioner: str = "prac.one@team.example", case_reference: str = "CASE-1",
             prefill: dict[str, Any] | None = None) -> int:
        now = datetime.now(UTC)
        with session_scope(app) as session:
            record = Record(tenant=tenant, request_id=f"REQ-{uuid.uuid4().hex[:10]}",
                            status=status, urgency="routine", case_reference=case_reference,
                            practitioner_email=practitioner, manager_email=manager,
                            requested_at=now - timedelta(days=1),
                            due_at=due_at or now + timedelta(hours=1), prefill=prefill or {})
            session.add(record)
            session.flush()
            schedule_reminders(session, record, get_tenant(tenant, app))
            return record.id

    return make
