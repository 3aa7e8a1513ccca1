"""Sending one delivery, safely under concurrency and crashes, and the sweep that finds work.

:func:`attempt_delivery` is what the ``tasks.delivery.send`` task runs:

1. **Claim** the row in a short transaction: a single conditional ``UPDATE`` moves it from
   ``pending`` (and due) or ``sending`` with an expired lease to ``sending`` with a fresh lease
   and a random token. At most one worker's ``UPDATE`` matches, on SQLite and PostgreSQL alike,
   so two workers never send the same delivery at once. The attempt is written now (no
   outcome yet), so an attempt whose worker dies stays visible (marked ``interrupted``).
2. **Post** outside any transaction (never hold a database transaction across a network call).
3. **Record** the outcome in a second transaction: the attempt, and the delivery's next state.
   A delivery is marked delivered in the same transaction as its successful attempt is
   recorded. If the worker dies between 2 and 3, the lease runs out, the sweep re-enqueues the
   row and it is posted again *with the same webhook-id*: the host deduplicates.

:func:`sweep` finds rows that are due and not done (pending and due, or a lease that ran out)
and hands them to the broker again; it also retries telling operators about failed and dead
deliveries whose email did not go out. It never relies on a broker's long ``eta``.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import and_, func, or_, select, update

from sharewise.plugin.db import session_scope, utcnow
from sharewise.plugin.logs import fields
from sharewise.plugin.metrics import DELIVERIES, DELIVERY_ATTEMPTS
from sharewise.plugin.outbox.client import AttemptOutcome, Verdict, post_signed
from sharewise.plugin.outbox.models import (
    DEAD,
    DELIVERED,
    FAILED,
    PENDING,
    RECORD_OVERDUE,
    SENDING,
    SKIPPED,
    Delivery,
    DeliveryAttempt,
    TenantState,
)
from sharewise.plugin.outbox.schedule import next_delay
from sharewise.plugin.outbox.services import PdfMismatch, body_bytes, send_soon
from sharewise.plugin.outbox.settings import OutboxSettings
from sharewise.plugin.settings import settings_of

log = logging.getLogger(__name__)

#: ``post(url, secret=..., msg_id=..., body=..., timeout=..., max_response_bytes=...)``
Poster = Callable[..., AttemptOutcome]


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    public_id: str
    tenant: str
    record_public_id: str
    event_type: str
    attempt_id: int
    attempt_number: int
    payload: dict[str, Any]
    pdf_key: str | None


def _due_clause(now: datetime) -> Any:
    return or_(
        and_(Delivery.state == PENDING, Delivery.next_attempt_at <= now),
        and_(Delivery.state == SENDING, Delivery.lease_until < now),
    )


def _tenant_disabled(session: Any, tenant: str) -> bool:
    row = session.get(TenantState, tenant)
    return bool(row and row.callback_disabled)


def _claim(app: Flask, public_id: str, token: str, cfg: OutboxSettings) -> _Claimed | str:
    from sharewise.plugin.records.models import Record

    now = utcnow()
    with session_scope(app) as session:
        result = session.execute(
            update(Delivery)
            .where(Delivery.public_id == public_id, _due_clause(now))
            .values(
                state=SENDING,
                lease_until=now + timedelta(seconds=cfg.lease),
                lease_token=token,
                attempts=Delivery.attempts + 1,
                enqueued_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            return "not_due"
        d = session.scalars(select(Delivery).where(Delivery.public_id == public_id)).one()
        session.execute(
            update(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == d.id, DeliveryAttempt.verdict.is_(None))
            .values(verdict="interrupted", error="interrupted")
            .execution_options(synchronize_session=False)
        )
        record = session.get(Record, d.record_id)
        if _tenant_disabled(session, d.tenant):
            # parked: nothing is sent until an operator re-enables the tenant's callback
            d.state, d.next_attempt_at, d.lease_until, d.lease_token = PENDING, None, None, None
            d.attempts -= 1
            return "parked"
        if d.event_type == RECORD_OVERDUE and record is not None and record.is_final:
            d.state, d.next_attempt_at, d.lease_until, d.lease_token = SKIPPED, None, None, None
            d.attempts -= 1
            d.last_error = "record_final"
            return SKIPPED
        # numbered across operator re-sends (``attempts`` counts the current round of retries)
        number = 1 + (session.scalar(
            select(func.count()).select_from(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == d.id)
        ) or 0)
        attempt = DeliveryAttempt(delivery_id=d.id, number=number, started_at=now)
        session.add(attempt)
        session.flush()
        claimed = _Claimed(
            delivery_id=d.id,
            public_id=d.public_id,
            tenant=d.tenant,
            record_public_id=record.public_id if record is not None else "?",
            event_type=d.event_type,
            attempt_id=attempt.id,
            attempt_number=number,
            payload=json.loads(json.dumps(d.payload)),
            pdf_key=d.pdf_key,
        )
    return claimed


def _prepare(app: Flask, c: _Claimed) -> tuple[str, str, bytes] | AttemptOutcome:
    """``(url, secret, body)`` for the attempt, or the outcome that makes posting pointless.

    Runs outside any transaction: reading the PDF may be slow (S3).
    """
    from sharewise.plugin.storage import NotFound, StorageError, storage
    from sharewise.plugin.tenants import get_tenant

    tenant = get_tenant(c.tenant, app)
    if tenant is None:
        return AttemptOutcome(Verdict.FAILED, None, "unknown_tenant", 0)
    if not tenant.callback_url or not tenant.callback_secret:
        return AttemptOutcome(Verdict.FAILED, None, "no_callback_configured", 0)
    try:
        body = body_bytes(c.public_id, c.payload, c.pdf_key, storage(app).get)
    except NotFound:
        return AttemptOutcome(Verdict.FAILED, None, "pdf_missing", 0)
    except PdfMismatch:
        return AttemptOutcome(Verdict.FAILED, None, "pdf_mismatch", 0)
    except StorageError:
        return AttemptOutcome(Verdict.RETRY, None, "storage_error", 0)
    return tenant.callback_url, tenant.callback_secret, body


def attempt_delivery(
    app: Flask, public_id: str, *, post: Poster = post_signed
) -> str:
    """Make one attempt at delivery ``public_id`` if it is due; return what happened.

    The result is the delivery's new state (``delivered``, ``pending``, ``failed``, ``dead``,
    ``skipped``), ``parked`` (its tenant's callback is disabled) or ``not_due`` (nothing to do:
    not found, already done, not due yet, or another worker holds it).
    """
    cfg = OutboxSettings.of(app)
    token = secrets.token_hex(16)
    claimed = _claim(app, public_id, token, cfg)
    if isinstance(claimed, str):
        if claimed == "not_due":
            _requeue_if_early(app, public_id, cfg)
        return claimed
    prepared = _prepare(app, claimed)
    if isinstance(prepared, AttemptOutcome):
        outcome = prepared
    else:
        url, secret, body = prepared
        outcome = post(
            url,
            secret=secret,
            msg_id=claimed.public_id,
            body=body,
            timeout=cfg.timeout,
            max_response_bytes=cfg.max_response_bytes,
        )
    state, countdown = _record_outcome(app, claimed, token, outcome, cfg)
    log.info(
        "delivery %s attempt %d: %s (%s) -> %s",
        claimed.public_id, claimed.attempt_number, outcome.verdict.value,
        outcome.status_code or outcome.error, state,
        extra=fields(delivery=claimed.public_id, attempt=claimed.attempt_number,
                     status=state, http_status=outcome.status_code,
                     duration_ms=outcome.duration_ms),
    )
    DELIVERY_ATTEMPTS.labels(outcome.verdict.value).inc()
    DELIVERIES.labels(state).inc()
    if countdown is not None:
        send_soon(claimed.public_id, countdown=countdown, app=app)
    if state in (FAILED, DEAD):
        notify_operators(app, claimed.public_id)
    return state


def _requeue_if_early(app: Flask, public_id: str, cfg: OutboxSettings) -> None:
    """A countdown message that arrived a moment before ``next_attempt_at`` (timer jitter)
    would otherwise wait for the sweep: hand it back for the remaining time."""
    now = utcnow()
    with session_scope(app) as session:
        row = session.execute(
            select(Delivery.state, Delivery.next_attempt_at).where(Delivery.public_id == public_id)
        ).first()
    if row is None or row.state != PENDING or row.next_attempt_at is None:
        return
    remaining = (row.next_attempt_at - now).total_seconds()
    if 0 < remaining <= cfg.countdown_max:
        send_soon(public_id, countdown=remaining + 0.01, app=app)


def _record_outcome(
    app: Flask, c: _Claimed, token: str, outcome: AttemptOutcome, cfg: OutboxSettings
) -> tuple[str, float | None]:
    now = utcnow()
    countdown: float | None = None
    with session_scope(app) as session:
        attempt = session.get(DeliveryAttempt, c.attempt_id)
        if attempt is not None:
            attempt.verdict = outcome.verdict.value
            attempt.status_code = outcome.status_code
            attempt.error = outcome.error
            attempt.duration_ms = outcome.duration_ms
        d = session.get(Delivery, c.delivery_id)
        assert d is not None
        d.last_status = outcome.status_code
        d.last_error = outcome.error
        if outcome.verdict is Verdict.SUCCESS:
            # true whoever holds the lease now: the host has it
            d.state, d.delivered_at = DELIVERED, now
            d.next_attempt_at = d.lease_until = d.lease_token = None
            return DELIVERED, None
        if d.lease_token != token:
            log.warning("delivery %s: lease lost during attempt %d; outcome recorded only",
                        c.public_id, c.attempt_number)
            return d.state, None
        d.lease_until = d.lease_token = None
        if outcome.verdict is Verdict.RETRY:
            delay = next_delay(
                d.attempts,
                schedule=cfg.schedule,
                retry_after=outcome.retry_after,
                jitter=cfg.jitter,
                scale=cfg.scale,
                max_retry_after=cfg.max_retry_after,
            )
            if delay is None:
                d.state, d.next_attempt_at = DEAD, None
                return DEAD, None
            d.state = PENDING
            d.next_attempt_at = now + timedelta(seconds=delay)
            if delay <= cfg.countdown_max:
                countdown = delay
                d.enqueued_at = d.next_attempt_at
            else:
                d.enqueued_at = None  # the sweep takes it when it is due
            return PENDING, countdown
        d.state, d.next_attempt_at = FAILED, None
        if outcome.verdict is Verdict.DISABLE:
            disable_callback(
                session, d.tenant, f"host answered 410 Gone to {d.public_id}", now=now
            )
        return FAILED, None


def disable_callback(
    session: Any, tenant: str, reason: str, *, now: datetime | None = None
) -> None:
    """Mark ``tenant``'s callback disabled (in the caller's transaction)."""
    now = now or utcnow()
    row = session.get(TenantState, tenant)
    if row is None:
        row = TenantState(tenant=tenant, updated_at=now)
        session.add(row)
    row.callback_disabled = True
    row.disabled_at = now
    row.disabled_reason = reason[:200]
    log.error("tenant %s: callback disabled (%s); re-enable with "
              "`sharewise deliveries enable-callback %s`", tenant, reason, tenant)


def enable_callback(session: Any, tenant: str, *, now: datetime | None = None) -> list[str]:
    """Re-enable ``tenant``'s callback and make its parked deliveries due; returns their ids."""
    now = now or utcnow()
    row = session.get(TenantState, tenant)
    if row is None:
        row = TenantState(tenant=tenant, updated_at=now)
        session.add(row)
    row.callback_disabled = False
    row.disabled_at = None
    row.disabled_reason = None
    parked = session.scalars(
        select(Delivery).where(
            Delivery.tenant == tenant,
            Delivery.state == PENDING,
            Delivery.next_attempt_at.is_(None),
        )
    ).all()
    for d in parked:
        d.next_attempt_at = now
        d.enqueued_at = now
    return [d.public_id for d in parked]


def notify_operators(app: Flask, public_id: str) -> bool:
    """Announce a failed or dead delivery: an error log line and an email to the tenant admin.

    Ids and codes only, never the body. Marks the row notified when done; returns False if
    the email could not be sent (the sweep tries again).
    """
    from sharewise.plugin.mail import MailError, make_message_id, send_mail
    from sharewise.plugin.records.models import Record
    from sharewise.plugin.tenants import get_tenant

    with session_scope(app) as session:
        d = session.scalars(select(Delivery).where(Delivery.public_id == public_id)).one_or_none()
        if d is None or d.state not in (FAILED, DEAD) or d.operators_notified_at is not None:
            return True
        record = session.get(Record, d.record_id)
        record_id = record.public_id if record is not None else "?"
        state, attempts, tenant_slug = d.state, d.attempts, d.tenant
        last = str(d.last_status or d.last_error or "unknown")
        event_type = d.event_type
    log.error(
        "delivery %s (%s, record %s, tenant %s) is %s after %d attempt(s); last result %s",
        public_id, event_type, record_id, tenant_slug, state, attempts, last,
    )
    tenant = get_tenant(tenant_slug, app)
    if tenant is not None and tenant.admin_email:
        what = "was dead-lettered after its last retry" if state == DEAD else \
            "was rejected by the host"
        subject = f"Sharewise: delivery of record {record_id} to {tenant_slug} {state}"
        text = (
            f"The post-back {public_id} ({event_type}) of record {record_id} to tenant "
            f"{tenant_slug} {what}.\n\n"
            f"Attempts: {attempts}\nLast result: {last}\n\n"
            "Nothing is lost: the delivery is kept. Once the host is fixed, re-send it (the host "
            f"sees the same webhook-id) with:\n\n    sharewise deliveries retry {public_id}\n\n"
            f"See its attempts with: sharewise deliveries show {public_id}\n"
        )
        try:
            sender = settings_of(app).mail_from
            send_mail(app, tenant.admin_email, subject, text,
                      message_id=make_message_id(f"outbox:{public_id}:{state}:{attempts}", sender))
        except MailError as exc:
            log.warning("delivery %s: operator email not sent (%s); will retry",
                        public_id, exc.summary)
            return False
    with session_scope(app) as session:
        d = session.scalars(select(Delivery).where(Delivery.public_id == public_id)).one()
        d.operators_notified_at = utcnow()
    return True


def due_ids(app: Flask, *, now: datetime | None = None, limit: int | None = None) -> list[str]:
    """Ids of deliveries the sweep should hand to the broker now."""
    cfg = OutboxSettings.of(app)
    now = now or utcnow()
    stale = now - timedelta(seconds=cfg.requeue_after)
    with session_scope(app) as session:
        rows = session.scalars(
            select(Delivery.public_id)
            .where(
                _due_clause(now),
                or_(Delivery.enqueued_at.is_(None), Delivery.enqueued_at <= stale),
            )
            .order_by(Delivery.next_attempt_at)
            .limit(limit or cfg.sweep_batch)
        ).all()
        if rows:
            session.execute(
                update(Delivery)
                .where(Delivery.public_id.in_(rows))
                .values(enqueued_at=now)
                .execution_options(synchronize_session=False)
            )
    return list(rows)


def sweep(app: Flask, *, now: datetime | None = None) -> dict[str, int]:
    """Re-enqueue what is due and not done; retry unsent operator emails. Returns counts."""
    ids = due_ids(app, now=now)
    sent = sum(1 for public_id in ids if send_soon(public_id, app=app))
    with session_scope(app) as session:
        unannounced = session.scalars(
            select(Delivery.public_id)
            .where(Delivery.state.in_((FAILED, DEAD)), Delivery.operators_notified_at.is_(None))
            .limit(50)
        ).all()
    notified = sum(1 for public_id in unannounced if notify_operators(app, public_id))
    if ids or unannounced:
        log.info("delivery sweep: %d re-enqueued, %d operator notices", sent, notified)
    return {"enqueued": sent, "due": len(ids), "notified": notified}
