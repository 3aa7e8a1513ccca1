"""Writing deliveries in the caller's transaction, and building the events' bodies.

:func:`enqueue_event` is the transactional outbox: it only *adds rows to the caller's session*;
it never commits. When (and only when) that transaction commits, an ``after_commit`` hook hands
``tasks.delivery.send`` to the broker by name. If the process dies between the commit and that
hand-over, or the broker loses the message, the beat sweep finds the row and sends it later. So:
no completed record without a delivery, and no delivery of a record that did not commit.

A second call for the same ``(record, event type, dedupe key)`` returns the existing delivery
instead of creating another one (a unique constraint, so this holds under concurrency too).

The bodies (:func:`build_record_completed`, :func:`build_record_cancelled`,
:func:`build_record_overdue`) are documented in ``docs/events.md``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from sharewise.plugin.db import utcnow
from sharewise.plugin.outbox.models import (
    EVENT_TYPES,
    PENDING,
    RECORD_CANCELLED,
    RECORD_COMPLETED,
    RECORD_OVERDUE,
    Delivery,
)

log = logging.getLogger(__name__)

SEND_TASK = "tasks.delivery.send"
_PENDING_KEY = "sharewise.outbox.to_enqueue"
_HOOKED_KEY = "sharewise.outbox.hooked"
_APP_KEY = "sharewise.outbox.app"


class PdfMismatch(RuntimeError):
    """The stored PDF no longer matches the SHA-256 or size the delivery announced."""


# -- writing ---------------------------------------------------------------------------------


def enqueue_event(
    session: Session,
    *,
    tenant: str,
    record: Any,
    event_type: str,
    data: Mapping[str, Any],
    dedupe_key: str = "",
    pdf_key: str | None = None,
    now: datetime | None = None,
) -> Delivery:
    """Add a delivery of ``event_type`` for ``record`` to the caller's transaction.

    ``record`` is a :class:`plugin.records.models.Record` (flushed or not). ``data`` is the
    event's ``data`` object (JSON-ready); for a record with a PDF, pass the ``pdf`` object
    without ``base64`` and the file store key as ``pdf_key``: the bytes are read and checked at
    send time. Returns the new delivery, or the existing one for the same
    ``(record, event_type, dedupe_key)``.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown outbound event type {event_type!r}")
    if record.id is None:
        session.flush()
    existing = _existing(session, record.id, event_type, dedupe_key)
    if existing is not None:
        return existing
    at = now or utcnow()
    delivery = Delivery(
        tenant=tenant,
        record_id=record.id,
        event_type=event_type,
        dedupe_key=dedupe_key,
        payload={"type": event_type, "timestamp": _iso(at), "data": dict(data)},
        pdf_key=pdf_key,
        state=PENDING,
        attempts=0,
        next_attempt_at=at,
        enqueued_at=at,
        created_at=at,
        updated_at=at,
    )
    try:
        with session.begin_nested():
            session.add(delivery)
    except IntegrityError:
        # a concurrent transaction wrote the same event first: theirs is the one
        existing = _existing(session, record.id, event_type, dedupe_key)
        if existing is None:
            raise
        return existing
    _enqueue_after_commit(session, delivery.public_id)
    return delivery


def _existing(session: Session, record_id: int, event_type: str, key: str) -> Delivery | None:
    return session.scalars(
        select(Delivery).where(
            Delivery.record_id == record_id,
            Delivery.event_type == event_type,
            Delivery.dedupe_key == key,
        )
    ).first()


def _enqueue_after_commit(session: Session, public_id: str) -> None:
    session.info.setdefault(_PENDING_KEY, []).append(public_id)
    if has_app_context():
        session.info[_APP_KEY] = current_app._get_current_object()  # type: ignore[attr-defined]
    if session.info.get(_HOOKED_KEY):
        return
    session.info[_HOOKED_KEY] = True
    event.listen(session, "after_commit", _after_commit)
    event.listen(session, "after_rollback", _after_rollback)


def _after_commit(session: Session) -> None:
    ids = session.info.pop(_PENDING_KEY, [])
    app = session.info.get(_APP_KEY)
    for public_id in ids:
        send_soon(public_id, app=app)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


def send_soon(public_id: str, countdown: float | None = None, app: Flask | None = None) -> bool:
    """Hand ``tasks.delivery.send`` for ``public_id`` to the broker; False if that failed.

    Uses ``app``'s Celery application, else the current app's, else Celery's default one. A
    failure is logged and otherwise ignored: the row is the truth and the sweep sends it.
    """
    from sharewise.plugin.celery import enqueue

    options: dict[str, Any] = {}
    if countdown:
        options["countdown"] = countdown
    try:
        if app is not None or has_app_context():
            enqueue(SEND_TASK, public_id, app=app, **options)
        else:
            from celery import current_app as default_celery

            default_celery.send_task(SEND_TASK, args=(public_id,), **options)
    except Exception as exc:  # noqa: BLE001 - any broker trouble is the sweep's job
        log.warning("delivery %s not enqueued (%s); the sweep will send it", public_id,
                    type(exc).__name__)
        return False
    return True


# -- bodies ----------------------------------------------------------------------------------


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date):
        return value.isoformat()
    return value


def schema_id(version: int) -> str:
    """The schema id a post-back names for a record of this version (the form's own id)."""
    from sharewise.forms.spec import load_spec

    return load_spec(version).schema


def normalise_fields(values: Mapping[str, Any], version: int = 1) -> dict[str, Any]:
    """Every field of the record schema, in spec order, normalised for JSON.

    Codes stay codes, checkboxes become booleans (absent means ``False``), dates ISO strings;
    a field with no value is ``null``. Keys not in the spec are dropped.
    """
    from sharewise.forms.spec import load_spec

    out: dict[str, Any] = {}
    for field in load_spec(version).fields:
        value = values.get(field.name)
        if field.type == "checkbox":
            out[field.name] = bool(value)
        elif value is None or value == "":
            out[field.name] = None
        else:
            out[field.name] = _iso(value)
    return out


def _audit(record: Any) -> list[dict[str, Any]]:
    """The record's audit trail as written so far (queried, so this transaction's entries too)."""
    from sharewise.plugin.records.models import AuditEntry

    session = object_session(record)
    if session is not None and record.id is not None:
        session.flush()
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.record_id == record.id).order_by(AuditEntry.id)
        ).all()
    else:
        entries = list(record.audit)
    return [{"at": _iso(a.at), "event": a.event, "actor": a.actor} for a in entries]


def build_record_completed(
    record: Any,
    *,
    values: Mapping[str, Any],
    pdf_sha256: str,
    pdf_size: int,
    problems: Iterable[Mapping[str, Any]] = (),
    completed_at: datetime | None = None,
) -> dict[str, Any]:
    """The ``data`` of ``share.record_completed`` (the PDF's base64 is added at send time)."""
    fields = normalise_fields(values, record.schema_version)
    when = completed_at or record.completed_at
    return {
        "schema": schema_id(record.schema_version),
        "schema_version": record.schema_version,
        "record_id": record.public_id,
        "request_id": record.request_id,
        "tenant": record.tenant,
        "status": "complete",
        "completed_at": _iso(when),
        "decision": fields.get("decision"),
        "fields": fields,
        "problems": [dict(p) for p in problems],
        "audit": _audit(record),
        "pdf": {"content_type": "application/pdf", "sha256": pdf_sha256, "size": int(pdf_size)},
    }


def build_record_cancelled(record: Any, *, reason: str | None = None) -> dict[str, Any]:
    """The ``data`` of ``share.record_cancelled`` (Sharewise has stopped working on it)."""
    return {
        "schema": schema_id(record.schema_version),
        "schema_version": record.schema_version,
        "record_id": record.public_id,
        "request_id": record.request_id,
        "tenant": record.tenant,
        "status": "cancelled",
        "cancelled_at": _iso(record.cancelled_at),
        "reason": reason,
        "audit": _audit(record),
    }


def build_record_overdue(record: Any, *, escalated_to: str) -> dict[str, Any]:
    """The ``data`` of ``share.record_overdue`` (the reminders concern sends it)."""
    if escalated_to not in ("practitioner", "manager"):
        raise ValueError("escalated_to must be 'practitioner' or 'manager'")
    return {
        "request_id": record.request_id,
        "record_id": record.public_id,
        "due_at": _iso(record.due_at),
        "escalated_to": escalated_to,
    }


def enqueue_record_completed(
    session: Session,
    record: Any,
    *,
    values: Mapping[str, Any],
    pdf_key: str,
    pdf_sha256: str,
    pdf_size: int,
    problems: Iterable[Mapping[str, Any]] = (),
) -> Delivery:
    """Write the ``share.record_completed`` delivery for a record completed in this session."""
    session.flush()  # audit entries written in this transaction belong in the body
    data = build_record_completed(
        record, values=values, pdf_sha256=pdf_sha256, pdf_size=pdf_size, problems=problems
    )
    return enqueue_event(
        session, tenant=record.tenant, record=record, event_type=RECORD_COMPLETED,
        data=data, pdf_key=pdf_key,
    )


def enqueue_record_cancelled(
    session: Session, record: Any, *, reason: str | None = None
) -> Delivery:
    """Write the ``share.record_cancelled`` acknowledgement for a record cancelled now."""
    session.flush()
    return enqueue_event(
        session, tenant=record.tenant, record=record, event_type=RECORD_CANCELLED,
        data=build_record_cancelled(record, reason=reason),
    )


def enqueue_record_overdue(
    session: Session, record: Any, *, escalated_to: str, step: str
) -> Delivery:
    """Write a ``share.record_overdue`` delivery; ``step`` names the reminder step (dedupe)."""
    return enqueue_event(
        session, tenant=record.tenant, record=record, event_type=RECORD_OVERDUE,
        data=build_record_overdue(record, escalated_to=escalated_to), dedupe_key=step,
    )


# -- sending ---------------------------------------------------------------------------------


def body_bytes(
    public_id: str,
    payload: Mapping[str, Any],
    pdf_key: str | None = None,
    read_pdf: Any = None,
) -> bytes:
    """The exact bytes posted for a delivery: the same on every attempt.

    ``read_pdf(key) -> bytes`` loads the PDF when the delivery has one (``pdf_key``); its
    SHA-256 and size must match what the payload announces, or :class:`PdfMismatch` is raised.
    """
    body = json.loads(json.dumps(payload))
    if pdf_key:
        if read_pdf is None:
            raise ValueError("this delivery carries a PDF: read_pdf is required")
        raw = read_pdf(pdf_key)
        pdf = body["data"]["pdf"]
        if hashlib.sha256(raw).hexdigest() != pdf["sha256"] or len(raw) != pdf["size"]:
            raise PdfMismatch(f"stored PDF of delivery {public_id} does not match")
        pdf["base64"] = base64.b64encode(raw).decode("ascii")
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
