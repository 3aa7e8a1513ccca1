"""What each host event does: intake (``share.requested``), cancellation, a submitted form.

Each event is one transaction that also stores the delivery's answer (a
:class:`~sharewise.plugin.records.models.WebhookEvent` row), so a host that sends the same
delivery again, after any failure, gets the first answer. Idempotency comes from unique
constraints, never from check-then-insert: a duplicate that races the first delivery fails on
``uq_records_tenant_request`` or ``uq_webhook_tenant_id``, its transaction rolls back, and it
is answered with the body stored for the first one.

This module sits above records, reminders, uploads and the outbox: it is where the flows that
a host event starts are put together, and none of them imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from sharewise.forms.prefill import FormDataError
from sharewise.plugin import links
from sharewise.plugin.db import is_locked, session_scope, utcnow
from sharewise.plugin.logs import fields
from sharewise.plugin.outbox.services import enqueue_record_cancelled
from sharewise.plugin.records import policy, prefill
from sharewise.plugin.records.audit import transition
from sharewise.plugin.records.models import (
    AWAITING,
    CANCELLED,
    AuditEntry,
    Record,
    WebhookEvent,
    new_public_id,
)
from sharewise.plugin.records.schemas import (
    flatten_errors,
    prefill_values,
    trusted_prefill_fields,
)
from sharewise.plugin.records.services import (
    RecordNotFound,
    find_record,
    may_be_stored_unhashed,
    prefill_key,
)
from sharewise.plugin.reminders.services import schedule_reminders
from sharewise.plugin.tenants import Tenant
from sharewise.plugin.uploads.services import handle_upload

log = logging.getLogger(__name__)

REQUESTED, CANCELLED_EVENT, FORM_SUBMITTED = (
    "share.requested", "share.cancelled", "share.form_submitted")


class PrefillRejected(ValueError):
    """The form library refused the event's values; ``errors`` lists each field problem."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(f"{len(errors)} prefill error(s)")
        self.errors = errors


class ServiceBusy(RuntimeError):
    """The database did not take the write in time; nothing was stored, the host retries."""


@dataclass
class IntakeResult:
    """What a webhook delivery produced: the HTTP status and body to answer with."""

    status: int
    body: dict[str, Any]
    record_id: str | None = None
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- answers

#: Keys of a stored first answer that were links, in older releases (never stored now).
_OLD_LINK_KEYS = frozenset({*links.URL_KEYS.values(), "links_issued_at"})


def answer_body(event_type: str, stored: dict[str, Any], tenant: str,
                app: Flask | None = None) -> dict[str, Any]:
    """A stored answer as it is sent: for ``share.requested``, with the record's links.

    The database keeps no links (they are bearer credentials to the record's form): each
    answer, first or repeated, carries links signed now, which open the same pages.
    """
    if event_type != REQUESTED or not isinstance(stored.get("record_id"), str):
        return dict(stored)
    kept = {k: v for k, v in stored.items() if k not in _OLD_LINK_KEYS}
    made = links.links_for(tenant, kept["record_id"], app)
    head = {k: kept.pop(k) for k in ("record_id", "status") if k in kept}
    return {**head, **made, **kept}


def find_replay(session: Session, tenant: str, webhook_id: str) -> WebhookEvent | None:
    """A webhook delivery already answered (same tenant and ``webhook-id``)."""
    return session.scalar(
        select(WebhookEvent).where(
            WebhookEvent.tenant == tenant, WebhookEvent.webhook_id == webhook_id
        )
    )


def replay_result(replay: WebhookEvent, app: Flask | None = None) -> IntakeResult:
    """The answer to a repeated delivery: the stored body; a first 201 is repeated as 200."""
    status = 200 if replay.response_status == 201 else replay.response_status
    return IntakeResult(status, answer_body(replay.event_type, replay.response_body,
                                            replay.tenant, app))


def _replay(tenant: Tenant, webhook_id: str, app: Flask) -> IntakeResult | None:
    with session_scope(app, readonly=True) as session:
        replay = find_replay(session, tenant.slug, webhook_id)
        return None if replay is None else replay_result(replay, app)


def _event_row(tenant: Tenant, webhook_id: str, event_type: str, record: Record | None,
               status: int, body: dict[str, Any]) -> WebhookEvent:
    """The delivery's answer, for replays (``record`` flushed already)."""
    return WebhookEvent(tenant=tenant.slug, webhook_id=webhook_id, event_type=event_type,
                        record_id=None if record is None else record.id,
                        response_status=status, response_body=body)


def _busy(exc: OperationalError, what: str) -> ServiceBusy:
    log.warning("%s: the database stayed locked past the timeout", what)
    return ServiceBusy(what)


class RecordPurged(LookupError):
    """The request's record was purged after its retention period: nothing more is kept."""


class _Duplicate(Exception):
    """``work`` found the event's request recorded already (nothing was written)."""


def _answered_once(tenant: Tenant, webhook_id: str, app: Flask, what: str,
                   work: Callable[[Session], IntakeResult],
                   duplicate: Callable[[], IntakeResult | None] | None = None) -> IntakeResult:
    """``work`` in one transaction that also stores the answer. When a unique key says the
    event was answered already: ``duplicate()``'s answer (default: the stored answer of this
    ``webhook-id``). :class:`ServiceBusy` when the database stayed locked."""
    try:
        with session_scope(app) as session:
            return work(session)
    except (IntegrityError, _Duplicate):
        answer = duplicate() if duplicate else _replay(tenant, webhook_id, app)
        if answer is None:  # pragma: no cover - the constraint that failed names a row
            raise
        return answer
    except OperationalError as exc:
        if not is_locked(exc):
            raise
        raise _busy(exc, what) from None


# ----------------------------------------------------------------------------- intake


def _as_field_errors(errors: Any) -> list[dict[str, str]]:
    if isinstance(errors, dict):
        return flatten_errors(errors, "prefill")
    return [{"field": str(e.get("field", "prefill")), "message": str(e.get("message", e))}
            if isinstance(e, dict) else {"field": "prefill", "message": str(e)}
            for e in errors]


def _duplicate(tenant: Tenant, webhook_id: str, request_id: str, app: Flask
               ) -> IntakeResult | None:
    """The answer to a ``share.requested`` that repeats a delivery or a request: the stored
    one, or the request's first answer (remembered for this ``webhook-id`` too)."""
    replay = _replay(tenant, webhook_id, app)
    if replay is not None:
        return replay
    with session_scope(app, readonly=True) as session:
        record = find_record(session, tenant.slug, request_id)
        if record is None:
            return None
        first = session.scalar(
            select(WebhookEvent)
            .where(WebhookEvent.record_id == record.id, WebhookEvent.response_status == 201)
            .order_by(WebhookEvent.id).limit(1))
        stored = (dict(first.response_body) if first is not None
                  else _first_body(record.public_id, record.due_at))
    try:
        with session_scope(app) as session:
            record = find_record(session, tenant.slug, request_id)
            session.add(_event_row(tenant, webhook_id, REQUESTED, record, 200, stored))
    except IntegrityError:
        pass  # the same delivery, at the same moment: its row is there
    return IntakeResult(200, answer_body(REQUESTED, stored, tenant.slug, app), stored["record_id"])


def _first_body(record_id: str, due: datetime) -> dict[str, Any]:
    """The stored first answer to a ``share.requested`` (links are added when it is sent)."""
    return {"record_id": record_id, "status": AWAITING,
            "due_at": due.isoformat().replace("+00:00", "Z")}


def tenant_prefill(tenant: Tenant) -> dict[str, Any]:
    """What the form shows of the tenant's organisation (the version 2 case details)."""
    return {"public_authority": "yes" if tenant.public_authority else "no",
            "dpia_reference": tenant.dpia_reference}


def create_from_event(
    tenant: Tenant,
    webhook_id: str,
    data: dict[str, Any],
    requested_at: datetime,
    app: Flask | None = None,
) -> IntakeResult:
    """Intake of a ``share.requested`` event: 201 on first delivery, 200 for any duplicate.

    Checks the values with the form library (refused values raise :class:`PrefillRejected`
    and nothing is kept), then writes, in one transaction, the record (with its prefill
    values and hash), its first audit entry, its reminder rows (with the request email's, due
    now, unless the tenant's ``notify_on_request`` is off: the next reminder scan sends it)
    and the delivery's answer. The prefilled PDF is made from the stored values on first
    download, so intake writes no file.
    Raises :class:`ServiceBusy` when the database stayed locked past ``INTAKE_TIMEOUT``
    (nothing is stored; a repeat is safe).
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    request_id = data["request_id"]
    record_id = new_public_id()
    version = tenant.form_version
    values = prefill_values(data, record_id, requested_at, version, tenant_prefill(tenant))
    urgency = values["urgency"]
    due = data.get("due_at") or policy.due_at(requested_at, urgency, tenant.timezone,
                                              tenant.policy)
    try:
        checked = prefill.check_prefill(values, trusted=trusted_prefill_fields(),
                                        version=version, options=tenant.sharing_agreements)
    except FormDataError as exc:
        raise PrefillRejected(_as_field_errors(exc.errors)) from None

    practitioner = data["practitioner"]
    body = _first_body(record_id, due)
    now = utcnow()

    def work(session: Session) -> IntakeResult:
        if (may_be_stored_unhashed(session, tenant.slug)
                and find_record(session, tenant.slug, request_id) is not None):
            raise _Duplicate()  # its stored hash is one the unique key would not compare
        record = Record(
            public_id=record_id, tenant=tenant.slug, request_id=request_id,
            status=AWAITING, urgency=urgency, case_reference=data["case"]["reference"],
            practitioner_ref=practitioner["id"], practitioner_email=practitioner["email"],
            manager_email=practitioner["manager"]["email"], requested_at=requested_at,
            due_at=due, created_at=now, updated_at=now, prefill=values,
            prefill_hash=checked.prefill_hash, prefill_version=1, schema_version=version,
            form_options=[list(pair) for pair in tenant.sharing_agreements] or None,
            prefill_pdf_key=prefill_key(tenant.slug, record_id, 1), missing=[])
        session.add(record)
        session.add(AuditEntry(record=record, at=now, actor="host", event="created",
                               from_status=None, to_status=AWAITING))
        session.flush()  # a duplicate request fails here
        session.add(_event_row(tenant, webhook_id, REQUESTED, record, 201, body))
        # flushes: a duplicate delivery fails
        schedule_reminders(session, record, tenant, request=True, now=now)
        return IntakeResult(201, body, record_id, list(checked.warnings))

    result = _answered_once(tenant, webhook_id, app, f"record {record_id}", work,
                            lambda: _duplicate(tenant, webhook_id, request_id, app))
    if result.status != 201:
        return result
    log.info("record %s created for %s", record_id, tenant.slug,
             extra=fields(record=record_id, tenant=tenant.slug, event=REQUESTED))
    answer = answer_body(REQUESTED, body, tenant.slug, app)  # links signed after the commit
    if result.warnings:
        answer["warnings"] = result.warnings
    return IntakeResult(201, answer, record_id, result.warnings)


# ----------------------------------------------------------------------------- cancel


def cancel(
    tenant: Tenant,
    webhook_id: str,
    request_id: str,
    reason: str | None,
    app: Flask | None = None,
) -> IntakeResult:
    """``share.cancelled``: the record becomes ``cancelled`` (idempotent).

    Raises :class:`RecordNotFound` and, for a ``complete`` record,
    :class:`~sharewise.plugin.records.audit.InvalidTransition`.
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]

    def work(session: Session) -> IntakeResult:
        replay = find_replay(session, tenant.slug, webhook_id)
        if replay is not None:
            return replay_result(replay, app)
        record = find_record(session, tenant.slug, request_id, lock=True)
        if record is None:
            raise RecordNotFound(request_id)
        if record.status != CANCELLED:
            transition(session, record, CANCELLED, "host", reason, event="cancelled")
            enqueue_record_cancelled(session, record, reason=reason)  # tell the host
        body = {"record_id": record.public_id, "status": record.status}
        session.add(_event_row(tenant, webhook_id, CANCELLED_EVENT, record, 200, body))
        return IntakeResult(200, body, record.public_id)

    return _answered_once(tenant, webhook_id, app, f"cancel for {tenant.slug}", work)


# ----------------------------------------------------------------------------- form submitted


def form_submitted(tenant: Tenant, webhook_id: str, request_id: str, pdf: bytes,
                   app: Flask | None = None) -> IntakeResult:
    """``share.form_submitted``: the same completion path as an upload through the page.

    The delivery's answer is stored in the upload's own transaction, so a host that sends it
    again after any failure (a lost answer, a crash after the commit) gets the first answer,
    never a "record complete" refusal of its own form.
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    replay = _replay(tenant, webhook_id, app)
    if replay is not None:
        return replay
    with session_scope(app, readonly=True) as session:  # no write lock while the PDF is read
        record = find_record(session, tenant.slug, request_id)
        if record is None:
            raise RecordNotFound(request_id)
        if record.purged_at is not None:  # its content was deleted: nothing more is kept
            raise RecordPurged(request_id)

    def work(session: Session) -> IntakeResult:
        result = handle_upload(session, record, pdf, source="host", actor="host", app=app)
        body = result.as_json()
        if result.rejection_code is not None:
            code = result.rejection_code
            # a problem's "status" is its HTTP status (RFC 9457): the record's is record_status
            kept = {k: v for k, v in body.items() if k != "status"}
            body = {"type": f"urn:sharewise:problem:upload-{code.replace('_', '-')}",
                    "title": "Upload rejected", "status": result.http_status,
                    "detail": result.message or "The PDF was not accepted.",
                    "code": code, **kept, "record_status": body.get("status")}
        session.add(_event_row(tenant, webhook_id, FORM_SUBMITTED, record,
                               result.http_status, body))
        return IntakeResult(result.http_status, body, result.record_id)

    return _answered_once(tenant, webhook_id, app, f"record {record.public_id}: submitted form",
                          work)
