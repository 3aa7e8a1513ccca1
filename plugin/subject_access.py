"""Subject access requests: every record about one person, written to a folder for the
information-governance team (``sharewise export --subject-name ... --date-of-birth ...``).

Records are found by their ``subject_hash`` (a keyed hash of the normalised name and the date
of birth, :func:`sharewise.plugin.records.models.subject_hash`), under every configured key:
nothing is decrypted to search, and a record of another person is never opened. The name is
compared after Unicode normalisation, case folding and collapsing spaces, so "ZOË  Ångström"
finds "Zoë Ångström"; a different spelling is a different person, as it would be to a
case system. Records written before the hashes existed are found once ``sharewise keys
rotate`` has run.

The folder holds, per record, ``<record id>/record.json`` (the record's status and times, the
values the case system sent, each upload's values, the audit trail) and its PDFs (the final
record, and each upload as it was received), plus ``index.json`` listing the records. Every
free-text answer is listed under ``third_party_review``: such text may name other people
(relatives, the referrer), whose data must be considered before anything is disclosed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from sharewise.forms.spec import load_spec
from sharewise.plugin.crypto import keyring
from sharewise.plugin.db import session_scope
from sharewise.plugin.records.models import AuditEntry, Record, subject_hash
from sharewise.plugin.storage import NotFound, storage
from sharewise.plugin.uploads.models import UploadVersion

FREE_TEXT = ("text", "multiline")


@dataclass
class Export:
    """What an export wrote."""

    folder: Path
    records: list[str] = field(default_factory=list)
    files: int = 0


def _free_text(values: dict[str, Any], version: int) -> list[str]:
    spec = load_spec(version)
    return [f.name for f in spec.fields
            if f.type in FREE_TEXT and not f.read_only and values.get(f.name)]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def export_subject(app: Flask, name: str, date_of_birth: str | None, folder: Path) -> Export:
    """Write every record about the person to ``folder`` (which must not exist yet)."""
    folder.mkdir(parents=True, mode=0o700)  # FileExistsError: never mix two exports
    result = Export(folder)
    hashes = subject_hash(keyring(app), name, date_of_birth)
    store = storage(app)
    with session_scope(app, readonly=True) as session:
        records = session.scalars(select(Record).where(Record.subject_hash.in_(hashes))
                                  .order_by(Record.created_at))
        for record in records:
            uploads = list(session.scalars(select(UploadVersion)
                                           .where(UploadVersion.record_id == record.id)
                                           .order_by(UploadVersion.version)))
            trail = list(session.scalars(select(AuditEntry)
                                         .where(AuditEntry.record_id == record.id)
                                         .order_by(AuditEntry.id)))
            review = sorted({name for u in uploads if u.values
                             for name in _free_text(u.values, record.schema_version)}
                            | {name for u in uploads for name in u.typed or {}})
            doc = {
                "record_id": record.public_id, "tenant": record.tenant,
                "request_id": record.request_id, "case_reference": record.case_reference,
                "status": record.status, "schema_version": record.schema_version,
                "requested_at": record.requested_at.isoformat(),
                "due_at": record.due_at.isoformat(),
                "completed_at": record.completed_at and record.completed_at.isoformat(),
                "cancelled_at": record.cancelled_at and record.cancelled_at.isoformat(),
                "from_the_case_system": record.prefill,
                "uploads": [{"version": u.version, "received_at": u.received_at.isoformat(),
                             "source": u.source, "outcome": u.outcome, "values": u.values,
                             "typed_but_not_read": u.typed}
                            for u in uploads],
                "audit": [e.as_dict() for e in trail],
                "third_party_review": {
                    "fields": review,
                    "why": "Free text may name or describe other people (relatives, the "
                           "referrer, professionals). Consider their data before "
                           "disclosing it.",
                },
            }
            base = folder / record.public_id
            _write(base / "record.json",
                   json.dumps(doc, ensure_ascii=False, indent=2).encode())
            result.files += 1
            keys = [("final-record.pdf", record.final_pdf_key)] + [
                (f"upload-{u.version}.pdf", u.storage_key) for u in uploads]
            for filename, key in keys:
                if not key:
                    continue
                try:
                    _write(base / filename, store.get(key))
                except NotFound:
                    continue
                result.files += 1
            result.records.append(record.public_id)
    _write(folder / "index.json", json.dumps(
        {"records": result.records, "files": result.files}, indent=2).encode())
    return result
