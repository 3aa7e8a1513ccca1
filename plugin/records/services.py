"""Record services: look-ups, the prefilled PDF, the status a host or script reads, and the
withdrawal of a record's practitioner links.

What changes a record lives with the flow that changes it: intake and cancellation in
:mod:`sharewise.plugin.webhooks.services`, uploads in :mod:`sharewise.plugin.uploads.services`,
status changes and their audit rows in :mod:`sharewise.plugin.records.audit`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from sharewise.forms.prefill import FormDataError
from sharewise.forms.validate import validate
from sharewise.plugin.db import utcnow
from sharewise.plugin.records import prefill
from sharewise.plugin.records.audit import audit
from sharewise.plugin.records.models import AWAITING, Record, request_hash
from sharewise.plugin.sealed import keyring_of
from sharewise.plugin.storage import NotFound, StorageError, storage

log = logging.getLogger(__name__)


class RecordNotFound(LookupError):
    """No record for this tenant and request id / public id."""


def find_record(session: Session, tenant: str, request_id: str, *,
                lock: bool = False) -> Record | None:
    """The record of a host request: by the keyed hash of its id (under any configured key),
    else, for a row written before the hashes existed, by its plain JSON text (until
    ``sharewise keys rotate`` seals and hashes it). Two indexed look-ups, not one ``OR``,
    which SQLite would answer by reading every record of the tenant."""
    legacy = json.dumps(request_id, ensure_ascii=False)
    for clause in (Record.request_hash.in_(request_hash(keyring_of(session), tenant, request_id)),
                   and_(Record.request_hash.is_(None), Record.request_id_sealed == legacy)):
        stmt = select(Record).where(Record.tenant == tenant, clause)
        found = session.scalar(stmt.with_for_update() if lock else stmt)
        if found is not None:
            return found
    return None


def may_be_stored_unhashed(session: Session, tenant: str) -> bool:
    """Whether a request of ``tenant`` may be stored where the unique key on ``request_hash``
    does not see it: under an older key's hash during a rotation, or without a hash before
    the first rotation after the upgrade that added them. Only then must intake look for a
    duplicate itself (one indexed query); otherwise the unique key finds it."""
    if len(keyring_of(session)) > 1:
        return True
    unhashed = select(Record.id).where(Record.tenant == tenant, Record.request_hash.is_(None))
    return session.scalar(unhashed.limit(1)) is not None


def links_revoked(record: Record, issued_at: datetime) -> bool:
    """Whether a link to ``record`` signed at ``issued_at`` was withdrawn since (a link signed
    in the same second as the withdrawal counts as withdrawn: tokens carry whole seconds)."""
    revoked = record.links_revoked_at
    return revoked is not None and issued_at <= revoked


def revoke_links(session: Session, public_id: str, reason: str | None = None) -> Record:
    """Withdraw every practitioner link to the record signed until now (its page, download
    and upload links; the host's status link stays). Links made afterwards open it."""
    record = get_by_public_id(session, public_id, lock=True)
    record.links_revoked_at = utcnow()
    audit(session, record, "operator", "links_revoked", reason or "links withdrawn")
    return record


def get_by_public_id(
    session: Session, public_id: str, tenant: str | None = None, *, lock: bool = False
) -> Record:
    """The record with this public id (optionally of this tenant); :class:`RecordNotFound`."""
    stmt = select(Record).where(Record.public_id == public_id)
    if tenant is not None:
        stmt = stmt.where(Record.tenant == tenant)
    if lock:
        stmt = stmt.with_for_update()
    record = session.scalar(stmt)
    if record is None:
        raise RecordNotFound(public_id)
    return record


def prefill_key(tenant: str, record_id: str, version: int) -> str:
    """Storage key of a record's prefilled PDF, one per version."""
    return f"{tenant}/{record_id}/prefill-{version}.pdf"


def prefilled_pdf(record: Record, app: Flask | None = None) -> bytes:
    """The record's prefilled PDF: the stored file, else made from the record's values.

    Intake stores the values, not the PDF; the first download makes it and stores it
    (atomically, so concurrent first downloads are harmless: they write the same bytes).
    A store that fails to keep it does not fail the download; the next one makes it again.
    """
    store = storage(app)
    if record.prefill_pdf_key:
        try:
            return store.get(record.prefill_pdf_key)
        except NotFound:
            pass
        except StorageError as exc:  # unreadable: made again from the values, as if missing
            log.warning("record %s: prefilled PDF not read (%s); made from its values",
                        record.public_id, exc)
    try:
        pdf = prefill.build_pdf(record.prefill or {}, record.prefill_hash,
                                record.schema_version, record.tenant_options)
    except FormDataError:
        # values accepted at intake that a later form schema refuses: draw them as stored
        # rather than fail the download (fill checks only field names, choices and dates)
        log.warning("record %s: stored prefill values no longer pass the form schema",
                    record.public_id)
        pdf = prefill.build_pdf_unchecked(record.prefill or {}, record.public_id,
                                          record.prefill_hash, record.schema_version,
                                          record.tenant_options)
    if record.prefill_pdf_key:
        try:
            store.put(record.prefill_pdf_key, pdf)
        except StorageError as exc:
            log.warning("record %s: prefilled PDF not stored (%s); served from its values",
                        record.public_id, exc)
    return pdf


def status_body(record: Record) -> dict[str, Any]:
    """The JSON of ``GET status_url``."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    missing = list(record.missing or [])
    if record.status == AWAITING and not missing:
        # nothing uploaded yet: everything the prefilled form still lacks
        missing = [p.as_dict() for p in validate(record.prefill or {},
                                                  version=record.schema_version,
                                                  tenant_options=record.tenant_options)]
    return {
        "record_id": record.public_id,
        "schema_version": record.schema_version,
        "status": record.status,
        "missing": missing,
        "due_at": iso(record.due_at),
        "completed_at": iso(record.completed_at),
        "purged_at": iso(record.purged_at),
    }
