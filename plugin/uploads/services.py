"""The completion path: one function takes an uploaded PDF to a new version and a record status.

:func:`handle_upload` is used by the practitioner page, by scripts posting to ``upload_url`` and
by the host's ``share.form_submitted`` event, so every route behaves the same:

1. The bytes are written to the file store first, under a fresh key, whatever happens next:
   nothing a practitioner sent is lost.
2. They are read with :func:`forms.sandbox.read_upload` in the reader sandbox (a separate worker
   process bounded in time and memory) and the values are checked with
   :func:`sharewise.forms.validate.validate` (the golden rules). No database lock is held meanwhile.
3. In the caller's transaction: the record row is locked (``SELECT ... FOR UPDATE`` on
   PostgreSQL; SQLite transactions are ``BEGIN IMMEDIATE`` and so serialised already), the
   next version number is taken (``max + 1``, guarded by a unique constraint), and the version
   row, the status change and its audit row are written. Two uploads racing for one record are
   therefore both kept with distinct numbers, and the record's status follows the later one.
4. When the upload passes validation the record becomes ``complete``: the final PDF is made with
   :func:`forms.finalise.finalise` (the prefilled values merged with the parsed ones, and the
   record's audit trail), stored, its SHA-256 kept, and the post-back delivery row is written
   through the outbox, all in the same transaction.

A record that is already ``complete`` (or ``cancelled``) refuses the upload without changing
anything, but the bytes are still stored and recorded as a rejected version.

:func:`save_online` is the same path for the online form (no file: the values are what was
sent, kept in the version row). A submission behaves exactly as an upload of a PDF holding
those values; a draft is kept and checked the same way but never completes the record.

The function does not commit: the caller's unit of work (``session_scope``) does, so the record,
version, audit rows and delivery row become visible together or not at all.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sharewise.forms.reader import UploadRejected
from sharewise.forms.sandbox import read_upload
from sharewise.forms.spec import load_spec
from sharewise.forms.validate import Problem, validate
from sharewise.forms.values import canonical_json
from sharewise.plugin.db import utcnow
from sharewise.plugin.logs import fields
from sharewise.plugin.metrics import UPLOADS
from sharewise.plugin.outbox.services import enqueue_record_completed
from sharewise.plugin.records.audit import audit, transition
from sharewise.plugin.records.models import (
    AWAITING,
    CANCELLED,
    COMPLETE,
    INCOMPLETE,
    AuditEntry,
    Record,
)
from sharewise.plugin.reminders.services import schedule_escalation, schedule_follow_ups
from sharewise.plugin.storage import storage
from sharewise.plugin.tenants import get_tenant
from sharewise.plugin.uploads.models import (
    ACCEPTED,
    DRAFT,
    ONLINE,
    REJECTED,
    SOURCES,
    UploadVersion,
)
from sharewise.plugin.uploads.models import INCOMPLETE as OUTCOME_INCOMPLETE

log = logging.getLogger(__name__)

#: HTTP status of each rejection code (documented in docs and the practitioner views):
#: 400 the body is not a usable PDF at all; 413 over the size limit; 422 a PDF that is not an
#: acceptable decision form for this record; 409 the record no longer takes uploads.
REJECTION_STATUS: dict[str, int] = {
    "empty": 400,
    "not_pdf": 400,
    "malformed": 400,
    "too_large": 413,
    "encrypted": 422,
    "xfa": 422,
    "active_content": 422,
    "attachments": 422,
    "wrong_form": 422,
    "wrong_record": 422,
    "tampered": 422,
    "too_complex": 422,
    "record_complete": 409,
    "record_cancelled": 409,
}

#: Practitioner messages of the refusals that come from the record's state, not the file.
STATE_MESSAGES = {
    "record_complete": "This decision record is already complete, so it cannot be changed or "
    "replaced. We kept a copy of what you sent; if the completed record needs correcting, "
    "speak to your manager.",
    "record_cancelled": "This request was cancelled in the case system, so the form is no longer "
    "needed. We kept a copy of what you sent.",
}

#: Default time bound of one read (seconds); ``UPLOAD_READ_TIMEOUT`` in the app config wins.
DEFAULT_READ_TIMEOUT = 10.0


@dataclass(frozen=True)
class UploadResult:
    """What one upload did: its version, outcome and the record's status afterwards."""

    record_id: str
    status: str
    version: int
    outcome: str
    missing: list[dict[str, Any]] = field(default_factory=list)
    rejection_code: str | None = None
    message: str | None = None

    @property
    def http_status(self) -> int:
        """200 for a read upload (complete or incomplete), else the rejection's status."""
        if self.rejection_code is None:
            return 200
        return REJECTION_STATUS.get(self.rejection_code, 422)

    @property
    def completed(self) -> bool:
        """Whether this upload completed the record."""
        return self.outcome == ACCEPTED

    def as_json(self) -> dict[str, Any]:
        """The ``Accept: application/json`` body of an accepted or incomplete upload."""
        return {
            "record_id": self.record_id,
            "status": self.status,
            "version": self.version,
            "missing": list(self.missing),
        }


def upload_key(tenant: str, record_id: str, at: datetime | None = None) -> str:
    """A fresh storage key for an upload's bytes (never reused, so never overwritten)."""
    stamp = (at or utcnow()).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{tenant}/{record_id}/upload-{stamp}-{secrets.token_hex(4)}.pdf"


def final_key(tenant: str, record_id: str, version: int) -> str:
    """Storage key of the final PDF made from upload ``version``."""
    return f"{tenant}/{record_id}/final-{version}.pdf"


def latest_version(session: Session, record: Record) -> UploadVersion | None:
    """The record's newest upload version, if any."""
    return session.scalar(
        select(UploadVersion)
        .where(UploadVersion.record_id == record.id)
        .order_by(UploadVersion.version.desc())
        .limit(1)
    )


def latest_readable(session: Session, record: Record) -> UploadVersion | None:
    """The newest version that was read (accepted, incomplete or an online draft): the
    practitioner's own work."""
    return session.scalar(
        select(UploadVersion)
        .where(UploadVersion.record_id == record.id, UploadVersion.outcome != REJECTED)
        .order_by(UploadVersion.version.desc())
        .limit(1)
    )


def record_too_large(
    session: Session, record: Record, size: int, *, source: str, actor: str
) -> UploadResult:
    """Record an upload refused for its size before its body was read (no bytes to keep)."""
    return _commit_version(
        session,
        record,
        source=source,
        actor=actor,
        size=size,
        sha256=None,
        key=None,
        code="too_large",
        message=UploadRejected("too_large").message,
        values=None,
        problems=[],
    )


def handle_upload(
    session: Session,
    record: Record,
    data: bytes,
    *,
    source: str,
    actor: str,
    app: Flask | None = None,
) -> UploadResult:
    """Store, read, validate and record one upload of ``record``'s form (see the module doc).

    ``source`` is ``page``, ``api`` or ``host``; ``actor`` goes into the audit trail (a role,
    never a name). The caller commits ``session``.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown upload source {source!r}")
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    data = bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    key = upload_key(record.tenant, record.public_id)
    storage(app).put(key, data)

    found = inspect_upload(record, data, app)
    return _commit_version(
        session,
        record,
        source=source,
        actor=actor,
        size=len(data),
        sha256=digest,
        key=key,
        code=found.code,
        message=found.message,
        values=found.values,
        problems=found.problems,
        app=app,
    )


@dataclass(frozen=True)
class Inspection:
    """What reading and validating an upload found (before anything is recorded)."""

    code: str | None = None
    message: str | None = None
    values: dict[str, Any] | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)


def inspect_upload(record: Record, data: bytes, app: Flask | None = None) -> Inspection:
    """Read ``data`` in the reader sandbox and validate it against the golden rules.

    The read-back plus validation step of :func:`handle_upload` (no storage, no database).
    A record that is already complete or cancelled is not read at all.
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    if record.status in (COMPLETE, CANCELLED):
        return Inspection(code="record_complete" if record.status == COMPLETE
                          else "record_cancelled")
    try:
        read = read_upload(
            data,
            record_id=record.public_id,
            expected=record.prefill or {},
            max_bytes=app.config["MAX_BODY_BYTES"],
            timeout=float(app.config.get("UPLOAD_READ_TIMEOUT", DEFAULT_READ_TIMEOUT)),
            isolate=True,
            version=record.schema_version,
            tenant_options=record.tenant_options,
        )
    except UploadRejected as exc:
        return Inspection(code=exc.code, message=exc.message)
    values = dict(read.values)
    merged = {**(record.prefill or {}), **values}
    checked = validate(merged, version=record.schema_version,
                       tenant_options=record.tenant_options)
    problems = [p.as_dict() for p in merge_problems(read.problems, checked,
                                                    record.schema_version)]
    return Inspection(values=values, problems=problems)


def save_online(
    session: Session,
    record: Record,
    values: dict[str, Any],
    read_problems: list[Problem],
    *,
    submit: bool,
    typed: dict[str, str] | None = None,
    actor: str = "practitioner",
    app: Flask | None = None,
) -> UploadResult:
    """Record one save of the online form as the record's next version (caller commits).

    ``values``: the normalised values of the fields the practitioner may change
    (:func:`sharewise.forms.webform.read_web_form`), ``read_problems`` the texts it could not
    read and ``typed`` those texts as typed (kept with the version, so the form shows them
    again). ``submit=True`` is a submission: complete when the golden rules hold, else incomplete,
    as an upload would be. ``submit=False`` saves a draft: checked, never completing.

    The same save again (a refreshed page re-posting it, a second click on the button: the same
    values, the same problems, the same button) is not a new version: the answer is the last
    save's result, and nothing else happens.
    """
    record = _lock(session, record)  # its status and last version, as of this save
    problems: list[dict[str, Any]] = []
    if not record.is_final:  # a final one refuses the save (_commit_version)
        merged = {**(record.prefill or {}), **values}
        checked = validate(merged, version=record.schema_version,
                           tenant_options=record.tenant_options)
        problems = [p.as_dict() for p in merge_problems(read_problems, checked,
                                                        record.schema_version)]
    typed = typed or None
    repeated = _repeated_save(session, record, values, typed, problems, submit=submit)
    if repeated is not None:
        return repeated
    # no sha256: over a sparse draft's values (a few choices) a plain hash could be reversed
    return _commit_version(
        session, record, source=ONLINE, actor=actor, size=len(canonical_json(values)),
        sha256=None, key=None, code=None, message=None, values=dict(values),
        problems=problems, app=app, draft=not submit, typed=typed)


def _repeated_save(session: Session, record: Record, values: dict[str, Any],
                   typed: dict[str, str] | None, problems: list[dict[str, Any]], *,
                   submit: bool) -> UploadResult | None:
    """The result of the record's last version when it was this very online save, else
    ``None``. The caller holds the record lock, so two identical posts at once make one
    version."""
    last = latest_version(session, record)
    if (last is None or last.source != ONLINE or last.typed != typed
            or last.values != values):
        return None
    if last.outcome == ACCEPTED:  # it completed the record: a repeated submission is that
        same = submit
    elif record.is_final:  # cancelled since: this save is refused
        same = False
    else:
        same = (last.outcome == (OUTCOME_INCOMPLETE if submit else DRAFT)
                and last.problems == problems)
    if not same:
        return None
    log.info("record %s: online save repeats version %d; nothing saved", record.public_id,
             last.version, extra=fields(record=record.public_id, tenant=record.tenant,
                                        event="upload", status="repeated", version=last.version))
    return UploadResult(record_id=record.public_id, status=record.status, version=last.version,
                        outcome=last.outcome, missing=list(last.problems or []))


def version_values(record: Record, version: UploadVersion) -> dict[str, Any]:
    """Every field's value as of ``version`` (a read one): the prefill, then what it held."""
    return {**(record.prefill or {}), **(version.values or {})}


def online_pdf(record: Record, version: UploadVersion) -> bytes:
    """The record's form as a PDF holding what an online save held: what the download gives
    after one, so the practitioner can carry on in a PDF reader."""
    from sharewise.plugin.records.prefill import build_pdf_unchecked

    return build_pdf_unchecked(version_values(record, version), record.public_id,
                               record.prefill_hash, record.schema_version,
                               record.tenant_options)


def merge_problems(read: Any, validated: list[Problem], version: int = 1) -> list[Problem]:
    """Reader problems (values that could not be understood) first, one per field, in order."""
    order = {name: i for i, name in enumerate(load_spec(version).names)}
    seen: set[str] = set()
    out: list[Problem] = []
    for problem in [*read, *validated]:
        if problem.field in seen:
            continue
        seen.add(problem.field)
        out.append(problem)
    out.sort(key=lambda p: (p.rule, order.get(p.field, len(order))))
    return out


def _lock(session: Session, record: Record) -> Record:
    """The record row, re-read under a row lock (PostgreSQL) / the write lock (SQLite)."""
    return session.execute(
        select(Record)
        .where(Record.id == record.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def _next_version(session: Session, record: Record) -> int:
    current = session.scalar(
        select(func.coalesce(func.max(UploadVersion.version), 0)).where(
            UploadVersion.record_id == record.id
        )
    )
    return int(current or 0) + 1


def _commit_version(
    session: Session,
    record: Record,
    *,
    source: str,
    actor: str,
    size: int,
    sha256: str | None,
    key: str | None,
    code: str | None,
    message: str | None,
    values: dict[str, Any] | None,
    problems: list[dict[str, Any]],
    app: Flask | None = None,
    draft: bool = False,
    typed: dict[str, str] | None = None,
) -> UploadResult:
    """Number the version and apply its effect under the record lock (caller commits).
    ``draft``: an online draft, kept and checked but never completing the record; ``typed``:
    an online save's texts that could not be read."""
    record = _lock(session, record)
    if record.purged_at is not None and key is not None:
        # purged while this file was read: keep nothing of it (the version row says so)
        storage(app or current_app._get_current_object()).delete(key)  # type: ignore[attr-defined]
        key = None
    # The status may have changed while the file was read (a racing upload completed it).
    if code is None and record.status in (COMPLETE, CANCELLED):
        code = "record_complete" if record.status == COMPLETE else "record_cancelled"
    # what a refused version keeps of what was sent: an upload its file; an online save, which
    # has no file, its values (sealed; a purged record keeps nothing)
    keep_values = code is None or (source == ONLINE and record.purged_at is None)
    if code in STATE_MESSAGES:
        message = STATE_MESSAGES[code]
        problems = []
    version = _next_version(session, record)
    now = utcnow()
    if code is not None:
        outcome = REJECTED
    elif draft:
        outcome = DRAFT
    elif problems:
        outcome = OUTCOME_INCOMPLETE
    else:
        outcome = ACCEPTED
    row = UploadVersion(
        record_id=record.id,
        version=version,
        received_at=now,
        source=source,
        actor=actor,
        size=size,
        sha256=sha256,
        storage_key=key,
        outcome=outcome,
        rejection_code=code,
        values=values if keep_values else None,
        problems=problems,
    )
    if typed and keep_values:
        row.typed = typed
    session.add(row)

    if outcome not in (REJECTED, DRAFT):
        _schedule_from_values(session, record, values or {}, outcome == ACCEPTED, app)
    if outcome == REJECTED:
        audit(session, record, actor, "upload_rejected", f"upload {version}: {code}")
    elif outcome in (DRAFT, OUTCOME_INCOMPLETE):
        record.missing = problems
        if outcome == DRAFT:
            event, reason = "draft_saved", f"version {version}: draft saved online, "
        else:
            event, reason = "upload_incomplete", f"upload {version}: "
        reason += f"{len(problems)} item(s) missing"
        if record.status == AWAITING:
            transition(session, record, INCOMPLETE, actor, reason, event=event, at=now)
        else:
            audit(session, record, actor, event, reason)
    else:
        _complete(session, record, version, values or {}, actor, now, app)
    session.flush()
    log.info(
        "record %s: upload %d from %s %s%s",
        record.public_id,
        version,
        source,
        outcome,
        f" ({code})" if code else "",
        extra=fields(record=record.public_id, tenant=record.tenant, event="upload",
                     status=outcome, version=version, code=code),
    )
    UPLOADS.labels(source, outcome).inc()
    return UploadResult(
        record_id=record.public_id,
        status=record.status,
        version=version,
        outcome=outcome,
        missing=list(problems),
        rejection_code=code,
        message=message,
    )


def _schedule_from_values(session: Session, record: Record, values: dict[str, Any],
                          complete: bool, app: Flask | None) -> None:
    """What the uploaded answers ask of the reminders: the manager told at once when they
    did not endorse the decision; on completion, the dates the decision set (a review, telling
    the person) as reminders to the practitioner. Rows are unique: a repeat adds nothing."""
    form = load_spec(record.schema_version)
    merged = {**(record.prefill or {}), **values}
    if form.escalates(merged):
        schedule_escalation(session, record)
    if complete:
        dates = form.reminder_dates(merged)
        tenant = get_tenant(record.tenant, app)
        if dates and tenant is not None:
            schedule_follow_ups(session, record, tenant, dates)


def _complete(
    session: Session,
    record: Record,
    version: int,
    values: dict[str, Any],
    actor: str,
    now: datetime,
    app: Flask | None,
) -> None:
    """Make the record complete: final PDF, hash, audit row and post-back delivery row."""
    from sharewise.forms.finalise import finalise

    merged = {**(record.prefill or {}), **values}
    transition(
        session, record, COMPLETE, actor, f"upload {version} complete", event="completed", at=now
    )
    session.flush()
    trail = [
        entry.as_dict()
        for entry in session.scalars(
            select(AuditEntry).where(AuditEntry.record_id == record.id).order_by(AuditEntry.id)
        )
    ]
    final = finalise(
        merged,
        record_id=record.public_id,
        decision=str(merged.get("decision") or ""),
        completed_at=now,
        audit=trail,
        version=record.schema_version,
        tenant_options=record.tenant_options,
    )
    key = final_key(record.tenant, record.public_id, version)
    storage(app).put(key, final.pdf)
    record.final_pdf_key = key
    record.final_sha256 = final.sha256
    record.missing = []
    # The post-back (issue 6): the delivery row joins this transaction; it is sent after commit.
    enqueue_record_completed(
        session,
        record,
        values=merged,
        pdf_key=key,
        pdf_sha256=final.sha256,
        pdf_size=len(final.pdf),
    )
