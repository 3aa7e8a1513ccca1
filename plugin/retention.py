"""Retention: a finished record's PDFs and personal fields are deleted once the host has had
it for its tenant's ``retention_days`` (default 30); the host is the system of record.

A record is due when it is ``complete`` or ``cancelled``, its final post-back
(``share.record_completed`` or ``share.record_cancelled``) was acknowledged by the host with a
2xx at least ``retention_days`` ago, and no reminder of it is still waiting (a review date or
a date to tell the person keeps it until that email has gone). A record whose post-back never
arrived is never purged automatically: an operator sees it in ``sharewise deliveries list``.

Purging deletes the record's stored PDFs (prefilled, uploads, final) and empties its personal
fields (the case system's values, every upload's answers, the post-backs' bodies, the staff
addresses, the subject hash); what remains is the audit skeleton: ids, states, times, the
hashes of the final PDF and of every upload, and the audit trail, which gains a ``purged``
entry. It all happens in one transaction under the record's row lock (files deleted, fields
emptied, commit), so a purge cut short is simply done again by the next sweep, and an upload
or a key rotation of the same record waits for it. ``sharewise purge --dry-run`` lists what a
purge would delete; the beat sweep ``tasks.retention.purge`` does it every
``RETENTION_SWEEP_INTERVAL``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import exists, select, update

from sharewise.plugin.db import session_scope, utcnow
from sharewise.plugin.logs import fields
from sharewise.plugin.outbox.models import (
    DELIVERED,
    RECORD_CANCELLED,
    RECORD_COMPLETED,
    SKIPPED,
    Delivery,
)
from sharewise.plugin.records.audit import audit
from sharewise.plugin.records.models import FINAL_STATUSES, Record
from sharewise.plugin.reminders.models import PENDING as REMINDER_PENDING
from sharewise.plugin.reminders.models import Reminder
from sharewise.plugin.storage import storage
from sharewise.plugin.tenants import all_tenants
from sharewise.plugin.uploads.models import UploadVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Due:
    """A record due for purging."""

    record_id: int
    public_id: str
    tenant: str
    acknowledged_at: datetime


def due_for_purge(app: Flask, now: datetime | None = None, limit: int = 500) -> list[Due]:
    """Records whose retention has run out, oldest acknowledgement first (at most ``limit``)."""
    now = now or utcnow()
    tenants = all_tenants(app)
    acked = (select(Delivery.record_id, Delivery.delivered_at)
             .where(Delivery.event_type.in_((RECORD_COMPLETED, RECORD_CANCELLED)),
                    Delivery.state == DELIVERED).subquery())
    waiting = exists().where(Reminder.record_id == Record.id,
                             Reminder.state == REMINDER_PENDING)
    out: list[Due] = []
    with session_scope(app, readonly=True) as session:
        for slug, tenant in tenants.items():
            cutoff = now - timedelta(days=tenant.retention_days)
            rows = session.execute(
                select(Record.id, Record.public_id, acked.c.delivered_at)
                .join(acked, acked.c.record_id == Record.id)
                .where(Record.tenant == slug, Record.status.in_(FINAL_STATUSES),
                       Record.purged_at.is_(None), acked.c.delivered_at <= cutoff, ~waiting)
                .order_by(acked.c.delivered_at).limit(limit)).all()
            out.extend(Due(r.id, r.public_id, slug, r.delivered_at) for r in rows)
    return sorted(out, key=lambda d: d.acknowledged_at)[:limit]


def purge_record(app: Flask, due: Due, now: datetime | None = None) -> bool:
    """Delete one record's PDFs and personal fields (idempotent); whether it did.

    One transaction, under the record's row lock (so an upload or a key rotation of the same
    record waits): the files are deleted, then the fields emptied, then it commits. A purge
    cut short leaves the record unpurged, and the next run does it again.
    """
    now = now or utcnow()
    store = storage(app)
    with session_scope(app) as session:
        record = session.get(Record, due.record_id, with_for_update=True)
        if record is None or record.purged_at is not None:
            return False
        uploads = list(session.scalars(select(UploadVersion)
                                       .where(UploadVersion.record_id == record.id)))
        for key in [record.prefill_pdf_key, record.final_pdf_key,
                    *(u.storage_key for u in uploads)]:
            if key:
                store.delete(key)  # no error for one already gone
        record.prefill = {}
        record.subject_hash = None
        record.practitioner_email = record.manager_email = record.practitioner_ref = None
        record.prefill_pdf_key = record.final_pdf_key = None
        record.purged_at = now
        for upload in uploads:
            upload.values = None
            upload.typed = None
            upload.storage_key = None
        for delivery in session.scalars(select(Delivery)
                                        .where(Delivery.record_id == record.id)):
            delivery.payload = {}
            delivery.pdf_key = None
            if delivery.state != DELIVERED:  # nothing left to send: never retried
                delivery.state, delivery.last_error = SKIPPED, "record purged"
                delivery.next_attempt_at = None
        session.execute(update(Reminder).where(Reminder.record_id == record.id)
                        .values(address=None))
        days = (now - due.acknowledged_at).days
        audit(session, record, "sharewise", "purged",
              f"PDFs and personal fields deleted {days} day(s) after the host acknowledged "
              "the record")
    log.info("record %s purged (retention)", due.public_id,
             extra=fields(record=due.public_id, status="purged"))
    return True


def purge(app: Flask, now: datetime | None = None, limit: int = 500) -> list[Due]:
    """Purge every record that is due (at most ``limit`` per call); the ones purged."""
    return [d for d in due_for_purge(app, now, limit) if purge_record(app, d, now)]
