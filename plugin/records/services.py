"""Record services: intake (``create_from_event``), cancellation, status transitions.

Idempotency comes from unique constraints, never from check-then-insert: a duplicate delivery
that races the first one fails on ``uq_records_tenant_request`` / ``uq_webhook_tenant_id``, its
transaction rolls back, and it answers with the body stored for the first delivery.
Every status change writes an :class:`AuditEntry` in the same transaction.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Connection, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sharewise.forms.prefill import FormDataError
from sharewise.plugin import links, writerprocess
from sharewise.plugin.bulkinsert import BulkInsert
from sharewise.plugin.db import database_file, engine_for, session_scope, utcnow
from sharewise.plugin.groupcommit import GroupCommitter
from sharewise.plugin.outbox.services import enqueue_record_cancelled
from sharewise.plugin.records import policy, prefill
from sharewise.plugin.records.models import (
    AWAITING,
    CANCELLED,
    COMPLETE,
    TRANSITIONS,
    AuditEntry,
    Record,
    WebhookEvent,
    new_public_id,
)
from sharewise.plugin.records.schemas import prefill_values, trusted_prefill_fields
from sharewise.plugin.reminders.models import REMINDER_COLUMNS, Reminder
from sharewise.plugin.reminders.services import reminder_rows
from sharewise.plugin.storage import NotFound, StorageError, storage
from sharewise.plugin.tenants import Tenant
from sharewise.plugin.writerprocess import (
    WriterClient,
    WriterConflict,
    WriterFailed,
    WriterLost,
    WriterSupervisor,
    WriterUnavailable,
)

log = logging.getLogger(__name__)


class RecordNotFound(LookupError):
    """No record for this tenant and request id / public id."""


class InvalidTransition(ValueError):
    """The record cannot move to that status (e.g. it is already final)."""

    def __init__(self, record_id: str, from_status: str, to_status: str) -> None:
        super().__init__(f"record {record_id} cannot go from {from_status} to {to_status}")
        self.from_status = from_status
        self.to_status = to_status


class PrefillRejected(ValueError):
    """The form library refused the event's values; ``errors`` lists each field problem."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(f"{len(errors)} prefill error(s)")
        self.errors = errors


@dataclass
class IntakeResult:
    """What a webhook delivery produced: the HTTP status and body to answer with."""

    status: int
    body: dict[str, Any]
    record_id: str | None = None
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- lookups


def find_record(session: Session, tenant: str, request_id: str) -> Record | None:
    """The record of a host request."""
    return session.scalar(
        select(Record).where(Record.tenant == tenant, Record.request_id == request_id)
    )


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


#: In a stored first answer, the key that stands for its four links: the second they were
#: issued at (see :func:`stored_body`).
LINKS_ISSUED_AT = "links_issued_at"
_LINK_KEYS = frozenset(links.URL_KEYS.values())
#: The keys of a first answer, in the order :func:`_record_body` writes them.
_BODY_ORDER = ("record_id", "status", *links.URL_KEYS.values(), "due_at")


def stored_body(body: dict[str, Any], issued_at: int) -> dict[str, Any]:
    """What is kept of a first answer: its links replaced by the second they were issued at.

    Links are bearer credentials to a record's form: the database keeps none, so a copy of
    it opens nothing without the link keys (and the row is 400 bytes shorter, about an
    eighth of what an intake writes). :func:`answer_body` makes the same links again.
    """
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in _LINK_KEYS:
            out.setdefault(LINKS_ISSUED_AT, issued_at)
        else:
            out[key] = value
    return out


def answer_body(stored: dict[str, Any], tenant: str, app: Flask | None = None
                ) -> dict[str, Any]:
    """A stored answer as it was first sent: its links made again, byte for byte, from the
    second they were issued at (with the current first link key: after a key rotation the
    links differ from the first ones and open the same pages). A body stored whole (records
    created before links were left out) is returned as stored."""
    issued, record_id = stored.get(LINKS_ISSUED_AT), stored.get("record_id")
    if type(issued) is not int or not isinstance(record_id, str):
        return dict(stored)  # stored whole (or not by this code): as it is
    made = links.links_for(tenant, record_id, app, issued_at=issued)
    # in the first answer's key order (PostgreSQL's jsonb keeps keys in an order of its own)
    whole = {**stored, **made}
    out = {key: whole[key] for key in _BODY_ORDER if key in whole}
    out.update((k, v) for k, v in whole.items() if k not in out and k != LINKS_ISSUED_AT)
    return out


def replay_result(replay: WebhookEvent, app: Flask | None = None) -> IntakeResult:
    """The answer to a repeated delivery: the stored body; a first 201 is repeated as 200."""
    status = 200 if replay.response_status == 201 else replay.response_status
    return IntakeResult(status, answer_body(replay.response_body, replay.tenant, app))


def find_replay(session: Session, tenant: str, webhook_id: str) -> WebhookEvent | None:
    """A webhook delivery already answered (same tenant and ``webhook-id``)."""
    return session.scalar(
        select(WebhookEvent).where(
            WebhookEvent.tenant == tenant, WebhookEvent.webhook_id == webhook_id
        )
    )


# ----------------------------------------------------------------------------- transitions


def transition(
    session: Session,
    record: Record,
    to_status: str,
    actor: str,
    reason: str | None = None,
    *,
    event: str = "status_changed",
    at: datetime | None = None,
) -> bool:
    """Move ``record`` to ``to_status`` and write the audit row (same transaction).

    Returns ``False`` (and writes nothing) when the record already has that status;
    raises :class:`InvalidTransition` when the move is not allowed.
    """
    if record.status == to_status:
        return False
    if to_status not in TRANSITIONS.get(record.status, frozenset()):
        raise InvalidTransition(record.public_id, record.status, to_status)
    now = at or utcnow()
    from_status = record.status
    record.status = to_status
    if to_status == COMPLETE:
        record.completed_at = now
    elif to_status == CANCELLED:
        record.cancelled_at = now
    session.add(
        AuditEntry(
            record=record,
            at=now,
            actor=actor,
            event=event,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
        )
    )
    log.info("record %s: %s -> %s by %s", record.public_id, from_status, to_status, actor)
    return True


def audit(
    session: Session, record: Record, actor: str, event: str, reason: str | None = None
) -> AuditEntry:
    """Append an audit entry that is not a status change (an upload, a reminder...)."""
    entry = AuditEntry(record=record, actor=actor, event=event, reason=reason,
                       from_status=record.status, to_status=record.status)
    session.add(entry)
    return entry


# ----------------------------------------------------------------------------- intake


def _record_body(record_id: str, tenant: str, due: datetime, app: Flask, issued_at: int
                 ) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "status": AWAITING,
        **links.links_for(tenant, record_id, app, issued_at=issued_at),
        "due_at": due.isoformat().replace("+00:00", "Z"),
    }


def _creation_body(session: Session, record: Record, app: Flask) -> dict[str, Any]:
    """The body first answered for this record, as stored (so every duplicate gets the same
    body; :func:`answer_body` makes it whole)."""
    first = session.scalar(
        select(WebhookEvent)
        .where(WebhookEvent.record_id == record.id, WebhookEvent.response_status == 201)
        .order_by(WebhookEvent.id)
        .limit(1)
    )
    if first is not None:
        return dict(first.response_body)
    issued = links.issued_now()
    return stored_body(
        _record_body(record.public_id, record.tenant, record.due_at, app, issued), issued)


def _replay_or_existing(
    tenant: Tenant, webhook_id: str, event_type: str, request_id: str, app: Flask
) -> IntakeResult | None:
    """The answer for a duplicate: a stored replay, or the existing record's creation body."""
    with session_scope(app, readonly=True) as session:
        replay = find_replay(session, tenant.slug, webhook_id)
        if replay is not None:
            return replay_result(replay, app)
        record = find_record(session, tenant.slug, request_id)
        if record is None:
            return None
        stored = _creation_body(session, record, app)
        record_id = record.public_id
        pk = record.id
    remember(tenant.slug, webhook_id, event_type, pk, 200, stored, app)
    return IntakeResult(200, answer_body(stored, tenant.slug, app), record_id)


def remember(
    tenant: str,
    webhook_id: str,
    event_type: str,
    record_pk: int | None,
    status: int,
    body: dict[str, Any],
    app: Flask | None = None,
) -> None:
    """Store a delivery's answer for replay (a concurrent duplicate that wins is fine)."""
    try:
        with session_scope(app) as session:
            session.add(
                WebhookEvent(
                    tenant=tenant,
                    webhook_id=webhook_id,
                    event_type=event_type,
                    record_id=record_pk,
                    response_status=status,
                    response_body=body,
                )
            )
    except IntegrityError:
        pass


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
    try:
        pdf = prefill.build_pdf(record.prefill or {}, record.prefill_hash)
    except FormDataError:
        # values accepted at intake that a later form schema refuses: draw them as stored
        # rather than fail the download (fill checks only field names, choices and dates)
        log.warning("record %s: stored prefill values no longer pass the form schema",
                    record.public_id)
        pdf = prefill.build_pdf_unchecked(record.prefill or {}, record.public_id,
                                          record.prefill_hash)
    if record.prefill_pdf_key:
        try:
            store.put(record.prefill_pdf_key, pdf)
        except StorageError as exc:
            log.warning("record %s: prefilled PDF not stored (%s); served from its values",
                        record.public_id, type(exc).__name__)
    return pdf


def _as_field_errors(errors: Any) -> list[dict[str, str]]:
    from sharewise.plugin.records.schemas import flatten_errors

    if isinstance(errors, dict):
        return flatten_errors(errors, "prefill")
    out = []
    for e in errors:
        if isinstance(e, dict):
            out.append(
                {"field": str(e.get("field", "prefill")), "message": str(e.get("message", e))}
            )
        else:
            out.append({"field": str(getattr(e, "field", "prefill")),
                        "message": str(getattr(e, "message", e))})
    return out


def prefill_key(tenant: str, record_id: str, version: int) -> str:
    """Storage key of a record's prefilled PDF, one per version."""
    return f"{tenant}/{record_id}/prefill-{version}.pdf"


_RECORD_COLUMNS = (
    "public_id", "tenant", "request_id", "status", "urgency", "case_reference",
    "practitioner_ref", "practitioner_email", "manager_email", "requested_at", "due_at",
    "created_at", "updated_at", "prefill", "prefill_hash", "prefill_version",
    "prefill_pdf_key", "missing",
)
# Intake's inserts: values converted in the request's thread, one statement per table for a
# whole group commit (plugin.bulkinsert). record_id comes first in the three child tables.
_RECORDS = BulkInsert(Record.__table__, _RECORD_COLUMNS, returning=("id", "public_id"))
_AUDIT = BulkInsert(AuditEntry.__table__, ("record_id", "at", "actor", "event", "from_status",
                                           "to_status", "reason"))
_REMINDERS = BulkInsert(Reminder.__table__, REMINDER_COLUMNS, ignore_conflicts=True)
_EVENTS = BulkInsert(WebhookEvent.__table__, ("record_id", "tenant", "webhook_id", "event_type",
                                              "received_at", "response_status",
                                              "response_body"))


class ServiceBusy(RuntimeError):
    """The database did not take the write in time; nothing was stored, the host retries."""


@dataclass
class NewRecord:
    """The columns of a record intake is about to insert (what the reminder rows read)."""

    public_id: str
    tenant: str
    request_id: str
    urgency: str
    practitioner_email: str | None
    manager_email: str | None
    due_at: datetime


@dataclass
class IntakeRows:
    """Everything one ``share.requested`` writes, converted for the database already.

    ``record`` is the record's row; ``audit``, ``reminders`` and ``event`` are rows without
    their first column, the record's id, which is known only once the record is inserted.
    """

    public_id: str
    request_key: tuple[str, str]  # (tenant, request_id): unique among records
    event_key: tuple[str, str]  # (tenant, webhook_id): unique among webhook events
    record: tuple[Any, ...]
    audit: tuple[Any, ...]
    reminders: list[tuple[Any, ...]]
    event: tuple[Any, ...]

    def to_wire(self) -> list[Any]:
        """As a JSON value, for the writer process (:mod:`sharewise.plugin.writerprocess`)."""
        return [self.public_id, self.request_key, self.event_key, self.record, self.audit,
                self.reminders, self.event]

    @classmethod
    def from_wire(cls, value: Any) -> IntakeRows:
        """Back from :meth:`to_wire`; ``ValueError`` when ``value`` is not one (of this
        version: every row must have this code's number of columns)."""
        if not (isinstance(value, list) and len(value) == 7):
            raise ValueError("not intake rows")
        public_id, request_key, event_key, record, audit, reminders, event = value
        rows = (record, audit, event, *(reminders if isinstance(reminders, list) else [None]))
        widths = (len(_RECORDS.columns), len(_AUDIT.columns) - 1, len(_EVENTS.columns) - 1,
                  *[len(_REMINDERS.columns) - 1] * (len(rows) - 3))
        if not (isinstance(public_id, str)
                and all(_pair_of_text(key) for key in (request_key, event_key))
                and all(isinstance(row, list) and len(row) == width
                        for row, width in zip(rows, widths, strict=True))):
            raise ValueError("not intake rows of this version")
        if record[:3] != [public_id, *request_key] or event[:2] != [*event_key]:
            raise ValueError("the rows' keys are not their own")
        return cls(public_id, tuple(request_key), tuple(event_key),  # type: ignore[arg-type]
                   tuple(record), tuple(audit), [tuple(row) for row in reminders],
                   tuple(event))


def _pair_of_text(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)


def _child(table: BulkInsert, dialect: Dialect, row: dict[str, Any]) -> tuple[Any, ...]:
    """A child row without its first column, ``record_id`` (filled in by write_intakes)."""
    return table.prepare(dialect, {"record_id": None, **row})[1:]


if any(t.columns[0] != "record_id" for t in (_AUDIT, _REMINDERS, _EVENTS)):
    raise RuntimeError("intake's child tables must list record_id first (see _child)")

#: The intake rows' wire format (their columns): part of the writer process's address, so a
#: web process only talks to a writer that writes the same columns.
#: Bump ``_WIRE_FORMAT`` when IntakeRows or the message format changes in another way.
_WIRE_FORMAT = 1
WIRE_VERSION = hashlib.sha256(repr([_WIRE_FORMAT] + [
    (t.table.name, t.columns) for t in (_RECORDS, _AUDIT, _REMINDERS, _EVENTS)
]).encode()).hexdigest()[:16]


def write_intakes(conn: Connection, items: Sequence[IntakeRows]) -> list[int]:
    """Insert ``items`` (one statement per table for all of them); their record ids, in order.

    Raises :class:`IntegrityError` when any of them repeats a request or a delivery; the
    group committer then writes them one by one to find which (:mod:`sharewise.plugin.groupcommit`).
    """
    # rows in key order: two processes' batches then take PostgreSQL's unique-key locks in the
    # same order and cannot deadlock on each other (SQLite has one writer at a time anyway)
    by_request = sorted(items, key=lambda i: i.request_key)
    ids = {public_id: pk
           for pk, public_id in _RECORDS.execute(conn, [i.record for i in by_request])}
    pks = [ids[item.public_id] for item in items]
    _AUDIT.execute(conn, [(pk, *item.audit) for item, pk in zip(items, pks, strict=True)])
    reminders = [(pk, *row) for item, pk in zip(items, pks, strict=True) for row in item.reminders]
    if reminders:
        _REMINDERS.execute(conn, reminders)
    by_event = sorted(zip(items, pks, strict=True), key=lambda pair: pair[0].event_key)
    _EVENTS.execute(conn, [(pk, *item.event) for item, pk in by_event])
    return pks


def init_app(app: Flask) -> None:
    """Give ``app`` its intake group committer (its writer thread starts on first use)."""
    app.extensions["sharewise.intake"] = GroupCommitter(
        engine_for(app), write_intakes, name="sharewise-intake",
        max_batch=int(app.config["INTAKE_MAX_BATCH"]))
    app.extensions["sharewise.intake_writer"] = None


def use_writer_process(app: Flask, start: bool = True) -> WriterSupervisor | None:
    """Send ``app``'s intakes to the database's writer process (:mod:`plugin.writerprocess`)
    and, with ``start``, keep one running from this process when it holds the writer lock.

    Called once per web process by :mod:`sharewise.plugin.wsgi`. Does nothing (``None``) unless
    ``INTAKE_WRITER`` is on, the database is a SQLite file and this is Linux. Intakes the
    writer cannot take are committed by this process's own group committer.
    """
    file = database_file(app.config["DATABASE_URL"])
    if not (app.config.get("INTAKE_WRITER") and file and writerprocess.SUPPORTED):
        return None
    app.extensions["sharewise.intake_writer"] = WriterClient(
        writerprocess.address_for(file, WIRE_VERSION))
    if not start:
        return None
    env = {**os.environ, "SHAREWISE_DATABASE_URL": app.config["DATABASE_URL"],
           "SHAREWISE_DATA_DIR": app.config["DATA_DIR"],
           "SHAREWISE_INTAKE_MAX_BATCH": str(app.config["INTAKE_MAX_BATCH"])}
    supervisor = WriterSupervisor(file + ".writer",
                                  [sys.executable, "-m", "sharewise.plugin.records.intakewriter"], env)  # noqa: E501
    supervisor.start()
    return supervisor


def _write_intake(app: Flask, rows: IntakeRows, timeout: float) -> None:
    """Commit ``rows`` through the writer process when one runs, else in this process.

    Raises :class:`IntegrityError` or :class:`WriterConflict` for a duplicate and
    :class:`TimeoutError` when the write was not taken in time (nothing stored; see
    :func:`_write_locally_after_writer` for the one exception).
    """
    client: WriterClient | None = app.extensions.get("sharewise.intake_writer")
    if client is not None:
        deadline = time.monotonic() + timeout
        try:
            client.submit(rows.to_wire(), timeout)
            return
        except WriterUnavailable:
            # certainly not written: this process writes it, in the time that is left
            timeout = max(0.0, deadline - time.monotonic())
        except WriterFailed:
            # the writer's batch failed: most likely not written (a commit that failed
            # after landing shows up as this intake's own record)
            _write_locally_after_writer(app, rows, max(0.0, deadline - time.monotonic()))
            return
        except WriterLost:
            log.warning("record %s: writer process lost; written by this process",
                        rows.public_id)
            _write_locally_after_writer(app, rows, timeout)
            return
    intake_committer(app).submit(rows, timeout=timeout)


def _write_locally_after_writer(app: Flask, rows: IntakeRows, timeout: float) -> None:
    """Write ``rows`` in this process after the writer may have committed them.

    If it did, the record is there under this intake's own public id: found by the unique
    key this write breaks, or, when this write timed out behind a writer still holding the
    lock, looked up afterwards. Only a writer stuck for longer than ``INTAKE_TIMEOUT``
    twice over and :data:`writerprocess.GRACE` that commits after that look-up can store an
    intake answered 503 (a repeat then gets the record). This write, like every other on
    SQLite, waits for the write lock as long as another process holds it.
    """
    try:
        intake_committer(app).submit(rows, timeout=timeout)
    except (IntegrityError, TimeoutError):
        if _stored_as(app, rows) != rows.public_id:
            raise


def _stored_as(app: Flask, rows: IntakeRows) -> str | None:
    """The public id of the record stored for ``rows``' request, if any."""
    tenant, request_id = rows.request_key
    with session_scope(app, readonly=True) as session:
        return session.scalar(select(Record.public_id).where(
            Record.tenant == tenant, Record.request_id == request_id))


def intake_committer(app: Flask) -> GroupCommitter[IntakeRows, int]:
    """The app's group committer for intakes (one per app and process; see :func:`init_app`)."""
    return app.extensions["sharewise.intake"]


def create_from_event(
    tenant: Tenant,
    webhook_id: str,
    data: dict[str, Any],
    requested_at: datetime,
    app: Flask | None = None,
) -> IntakeResult:
    """Intake of a ``share.requested`` event: 201 on first delivery, 200 for any duplicate.

    Checks the values with the form library (:func:`check_prefill`: refused values raise
    :class:`PrefillRejected` and nothing is kept), then writes the record (with its prefill
    values and hash), its first audit entry, its reminder rows and the delivery's answer in
    one transaction, shared with the intakes waiting at the same moment
    (:mod:`plugin.groupcommit`) and committed before this returns. The prefilled PDF is made
    from the stored values on first download (:func:`prefilled_pdf`), so intake writes no
    file. Raises :class:`ServiceBusy` when the write was not taken within ``INTAKE_TIMEOUT``
    (it is then withdrawn: nothing is stored).
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    event_type = "share.requested"
    request_id = data["request_id"]
    # Optimistic: no look-up first (duplicates are rare). A duplicate fails on a unique
    # constraint below and the first delivery's answer is returned.
    record_id = new_public_id()
    values = prefill_values(data, record_id, requested_at)
    urgency = values["urgency"]
    due = data.get("due_at") or policy.due_at(requested_at, urgency, tenant.timezone, tenant.policy)
    try:
        checked = prefill.check_prefill(values, trusted=trusted_prefill_fields())
    except FormDataError as exc:
        raise PrefillRejected(_as_field_errors(exc.errors)) from None

    issued = links.issued_now()
    body = _record_body(record_id, tenant.slug, due, app, issued)
    warnings = list(checked.warnings)
    body_201 = {**body, "warnings": warnings} if warnings else body
    practitioner = data["practitioner"]
    now = utcnow()
    record = NewRecord(
        public_id=record_id,
        tenant=tenant.slug,
        request_id=request_id,
        urgency=urgency,
        practitioner_email=practitioner["email"],
        manager_email=practitioner["manager"]["email"],
        due_at=due,
    )
    dialect = engine_for(app).dialect
    rows = IntakeRows(
        public_id=record_id,
        request_key=(tenant.slug, request_id),
        event_key=(tenant.slug, webhook_id),
        record=_RECORDS.prepare(dialect, {
            "public_id": record_id,
            "tenant": tenant.slug,
            "request_id": request_id,
            "status": AWAITING,
            "urgency": urgency,
            "case_reference": data["case"]["reference"],
            "practitioner_ref": practitioner["id"],
            "practitioner_email": record.practitioner_email,
            "manager_email": record.manager_email,
            "requested_at": requested_at,
            "due_at": due,
            "created_at": now,
            "updated_at": now,
            "prefill": values,
            "prefill_hash": checked.prefill_hash,
            "prefill_version": 1,
            "prefill_pdf_key": prefill_key(tenant.slug, record_id, 1),
            "missing": [],
        }),
        audit=_child(_AUDIT, dialect, {"at": now, "actor": "host", "event": "created",
                                       "from_status": None, "to_status": AWAITING,
                                       "reason": None}),
        reminders=[_child(_REMINDERS, dialect, row)
                   for row in reminder_rows(record, tenant, now=now)],
        event=_child(_EVENTS, dialect, {
            "tenant": tenant.slug, "webhook_id": webhook_id, "event_type": event_type,
            "received_at": now, "response_status": 201,
            "response_body": stored_body(body, issued)}),
    )
    try:
        _write_intake(app, rows, float(app.config["INTAKE_TIMEOUT"]))
    except (IntegrityError, WriterConflict):
        existing = _replay_or_existing(tenant, webhook_id, event_type, request_id, app)
        if existing is None:  # pragma: no cover - the constraint that failed names a row
            raise
        return existing
    except FutureTimeout:
        log.warning("record %s: intake write timed out", record_id)
        raise ServiceBusy(record_id) from None
    return IntakeResult(201, body_201, record_id, warnings)


def cancel(
    tenant: Tenant,
    webhook_id: str,
    request_id: str,
    reason: str | None,
    app: Flask | None = None,
) -> IntakeResult:
    """``share.cancelled``: the record becomes ``cancelled`` (idempotent).

    Raises :class:`RecordNotFound` and, for a ``complete`` record, :class:`InvalidTransition`.
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    with session_scope(app) as session:
        replay = find_replay(session, tenant.slug, webhook_id)
        if replay is not None:
            return replay_result(replay, app)
        record = session.scalar(
            select(Record)
            .where(Record.tenant == tenant.slug, Record.request_id == request_id)
            .with_for_update()
        )
        if record is None:
            raise RecordNotFound(request_id)
        transition(session, record, CANCELLED, "host", reason, event="cancelled")
        enqueue_record_cancelled(session, record, reason=reason)  # outbox: acknowledge to host
        body = {"record_id": record.public_id, "status": record.status}
        pk = record.id
    remember(tenant.slug, webhook_id, "share.cancelled", pk, 200, body, app)
    return IntakeResult(200, body, body["record_id"])


def status_body(record: Record) -> dict[str, Any]:
    """The JSON of ``GET status_url``."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    missing = list(record.missing or [])
    if record.status == AWAITING and not missing:
        # nothing uploaded yet: everything the prefilled form still lacks
        from sharewise.forms.validate import validate

        missing = [p.as_dict() for p in validate(record.prefill or {})]
    return {
        "record_id": record.public_id,
        "status": record.status,
        "missing": missing,
        "due_at": iso(record.due_at),
        "completed_at": iso(record.completed_at),
    }
