"""Reminder services: scheduling rows at intake, the scan, sending one reminder or digest.

The flow (the database is the truth, the broker only carries work):

1. :func:`schedule_reminders` writes one ``Reminder`` row per policy step in the transaction
   that creates the record; at intake (``request=True``) also the request email's row (the
   practitioner told of the record and given its link), due at once, unless the tenant's
   ``notify_on_request`` is off. The next scan sends it, within ``REMINDER_SCAN_INTERVAL``:
   intake itself publishes nothing, so a host's backlog costs one more row per event.
2. :func:`scan` (Celery beat every minute, or ``sharewise reminders scan``) runs in one
   transaction under a lock (PostgreSQL: ``pg_try_advisory_xact_lock``; SQLite: every
   transaction already starts with ``BEGIN IMMEDIATE``). It reads due pending rows through the
   ``(state, due_at)`` index, cancels the rows of final records, keeps per (record, recipient)
   only the LATEST due step (earlier ones become ``skipped``; so do the practitioner's "due
   soon" and "due now" steps when the request email goes now), and claims the rest with a fresh
   token and a lease. After the commit, :func:`run_scan` enqueues ``tasks.reminders.send`` with
   (reminder id, claim token) for each claimed row.
3. :func:`send_reminder` (the task body) checks the claim and the record's state, marks the row
   as being sent (``sending_until``), commits, talks to the SMTP server, then marks it ``sent``
   in one transaction with the audit entry and, for overdue steps, the ``share.record_overdue``
   outbox row. A transient SMTP failure keeps the row pending (the task retries; when it gives
   up it releases the claim and the next scan re-enqueues it).

At-least-once boundary: if the process dies after the SMTP server accepted the message and
before step 3's commit, the row is still pending and the reminder is sent again later, with the
same Message-ID (derived from the row's unique key) so the duplicate is recognisable. A process
dying at any earlier point sends nothing twice: the server had not accepted the message.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from sqlalchemy import or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from sharewise.plugin.db import session_scope, utcnow
from sharewise.plugin.links import link_url, team_url
from sharewise.plugin.logs import fields
from sharewise.plugin.mail import MailError, PermanentMailError, make_message_id, send_mail
from sharewise.plugin.metrics import REMINDERS_SENT
from sharewise.plugin.records.audit import audit
from sharewise.plugin.records.models import (
    AWAITING,
    COMPLETE,
    FINAL_STATUSES,
    INCOMPLETE,
    Record,
)
from sharewise.plugin.reminders.emails import RecordRef, digest_email, reminder_email
from sharewise.plugin.reminders.models import (
    CANCELLED,
    FAILED,
    PENDING,
    SENT,
    SKIPPED,
    Digest,
    DigestRun,
    Reminder,
)
from sharewise.plugin.reminders.policy import (
    ReminderPolicyError,
    parse_reminder_policy,
    policy_for_tenant,
)

log = logging.getLogger(__name__)

SEND_TASK = "tasks.reminders.send"
DIGEST_TASK = "tasks.reminders.send_digest"
#: Key of the PostgreSQL advisory lock held by a scan ("SWREMIND" in ASCII).
SCAN_LOCK_KEY = 0x5357_5245_4D49_4E44 & 0x7FFF_FFFF_FFFF_FFFF
OPEN_STATUSES = (AWAITING, INCOMPLETE)
#: Reminders of a date a completed decision set (look at a decision not to share again; tell
#: the person about the sharing): sent although the record is complete.
FOLLOW_UP_KINDS = ("review", "inform")
#: The manager did not endorse the decision: told at once; the record stays open.
ESCALATION = "escalation"
#: The request email (its step and kind): tells the practitioner of a new record, with its
#: link, once; it stands for their "due soon" / "due now" steps due by the scan that sends it.
REQUEST = "request"
#: The practitioner's steps a request email going out in the same scan says already.
SAID_BY_REQUEST = ("due_soon", "due_now")
#: Kinds that are their own group in the scan: never superseded by a chasing step.
OWN_GROUP_KINDS = (*FOLLOW_UP_KINDS, ESCALATION, REQUEST)


@dataclass(frozen=True)
class ReminderSettings:
    """Timings of the scan and send tasks (settings ``REMINDER_*``, in seconds)."""

    lease: timedelta = timedelta(minutes=10)
    sending: timedelta = timedelta(minutes=2)
    batch: int = 500
    max_per_scan: int = 20_000

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ReminderSettings:
        """From an app's (typed) config: ``REMINDER_LEASE``, ``REMINDER_SENDING_LEASE``..."""
        return cls(
            lease=timedelta(seconds=config["REMINDER_LEASE"]),
            sending=timedelta(seconds=config["REMINDER_SENDING_LEASE"]),
            batch=config["REMINDER_SCAN_BATCH"],
            max_per_scan=config["REMINDER_SCAN_MAX"],
        )


# ----------------------------------------------------------------------------- scheduling


@cache
def _insert_ignore_stmt(table: Any, dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing()


def _insert_ignore(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    # Core executemany with a statement built once (the ORM bulk path cost ~0.3 ms at intake);
    # pending ORM changes are flushed first, as the ORM statement's autoflush did
    session.flush()
    conn = session.connection()
    conn.execute(_insert_ignore_stmt(model.__table__, conn.dialect.name), rows)


_POLICIES: dict[int, tuple[Any, Any]] = {}


def _tenant_policy(tenant: Any) -> Any:
    """The tenant's parsed reminder policy, parsed once per tenant object (reloads make new)."""
    cached = _POLICIES.get(id(tenant))
    if cached is not None and cached[0] is tenant:
        return cached[1]
    try:
        policy = policy_for_tenant(tenant)
    except ReminderPolicyError as exc:  # never lose a record over a bad policy: use the defaults
        log.error("reminders: %s; using the default steps", exc)
        policy = parse_reminder_policy({}, getattr(tenant, "timezone", "Europe/London"))
    if len(_POLICIES) > 256:
        _POLICIES.clear()
    _POLICIES[id(tenant)] = (tenant, policy)  # the reference keeps id(tenant) unique
    return policy


def reminder_rows(record: Any, tenant: Any, record_id: int | None = None,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    """The reminder rows of a new record (one per policy step), ready to insert.

    ``record`` needs ``due_at``, ``practitioner_email`` and ``manager_email``. A step whose
    recipient has no address is written as ``skipped`` so the schedule stays visible.
    """
    created = now or utcnow()
    emergency = getattr(record, "urgency", None) == "emergency"
    return [_row(record, record_id, step.key, step.to, step.kind, when, created)
            for step, when in _tenant_policy(tenant).schedule(record.due_at, emergency)]


def _row(record: Any, record_id: int | None, step: str, to: str, kind: str, when: datetime,
         created: datetime) -> dict[str, Any]:
    """One reminder row, ready to insert (``skipped`` when its recipient has no address)."""
    address = record.practitioner_email if to == "practitioner" else record.manager_email
    return {"record_id": record_id, "step": step, "recipient": to, "kind": kind,
            "address": address or None, "due_at": when,
            "state": PENDING if address else SKIPPED,
            "last_error": None if address else "no address for this recipient",
            "attempts": 0, "created_at": created}


def schedule_reminders(session: Session, record: Record, tenant: Any, *,
                       request: bool = False, now: datetime | None = None) -> int:
    """Write the record's reminder rows (one per policy step) in the caller's transaction.

    ``request=True`` (intake): also the request email's row, due ``now``, unless the tenant's
    ``notify_on_request`` is off. Like the escalation it goes at any hour (the sending hours
    shift the scheduled steps only); the scan that sends it skips the practitioner's "due
    soon" and "due now" steps due by then (:func:`scan`). Idempotent: rows that exist already
    are left alone. Returns the number of rows.
    """
    if record.id is None:
        session.flush()
    now = now or utcnow()
    rows = reminder_rows(record, tenant, record.id, now)
    if request and tenant.notify_on_request:
        rows.append(_row(record, record.id, REQUEST, "practitioner", REQUEST, now, now))
    _insert_ignore(session, Reminder, rows)
    return len(rows)


def schedule_follow_ups(session: Session, record: Record, tenant: Any,
                        dates: Iterable[tuple[str, date]]) -> int:
    """Rows for the dates a completed decision set (``(kind, day)``, kinds of
    :data:`FOLLOW_UP_KINDS`), each due at the start of that day's sending hours; idempotent."""
    policy = _tenant_policy(tenant)
    now = utcnow()
    rows = [_row(record, record.id, kind, "practitioner", kind, policy.on_day(day), now)
            for kind, day in dates]
    _insert_ignore(session, Reminder, rows)
    return len(rows)


def schedule_escalation(session: Session, record: Record, now: datetime | None = None) -> None:
    """A row telling the manager at once that the decision was not endorsed (once a record)."""
    now = now or utcnow()
    _insert_ignore(session, Reminder,
                   [_row(record, record.id, ESCALATION, "manager", ESCALATION, now, now)])


def schedule_missing(app: Flask | None = None, batch: int = 1000) -> int:
    """Schedule reminders for open records without any reminder row (an operator's one-off)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    tenants = _tenants(app)
    done = 0
    while True:
        with session_scope(app) as session:
            records = session.scalars(
                select(Record).where(Record.status.in_(OPEN_STATUSES),
                                     ~select(Reminder.id).where(Reminder.record_id == Record.id)
                                     .exists())
                .order_by(Record.id).limit(batch)).all()
            scheduled = 0
            for record in records:
                tenant = tenants.get(record.tenant)
                if tenant is None:
                    continue
                schedule_reminders(session, record, tenant)
                scheduled += 1
        done += scheduled
        if len(records) < batch or scheduled == 0:
            return done


# ----------------------------------------------------------------------------- the scan


@dataclass
class ScanResult:
    """What one scan did (ids and counts only)."""

    now: datetime
    busy: bool = False
    reminders: list[tuple[int, str]] = field(default_factory=list)
    digests: list[tuple[int, str]] = field(default_factory=list)
    skipped: int = 0
    cancelled: int = 0
    digests_created: int = 0
    #: states reached by the rows sent in this process (``run_scan(send_inline=True)``)
    outcomes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One log-safe line."""
        if self.busy:
            return "another scan holds the lock; nothing done"
        return (f"{len(self.reminders)} request or reminder email(s) to send, "
                f"{self.skipped} skipped as superseded, {self.cancelled} cancelled, "
                f"{self.digests_created} digest(s) created, {len(self.digests)} digest(s) to send")


def _try_lock(session: Session) -> bool:
    if session.get_bind().dialect.name == "postgresql":
        return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                    {"k": SCAN_LOCK_KEY}).scalar())
    # SQLite: plugin.db begins every transaction with BEGIN IMMEDIATE, so this transaction holds
    # the database's write lock from its first statement to its commit: scans are serialised.
    session.execute(text("SELECT 1"))
    return True


def _free(col_until: Any, clock: datetime) -> Any:
    return or_(col_until.is_(None), col_until <= clock)


def _busy_sending(until: datetime | None, clock: datetime) -> bool:
    return until is not None and until > clock


def due_query(now: datetime, clock: datetime, limit: int) -> Any:
    """Due pending reminders not held by anyone, oldest first: served by ``(state, due_at)``."""
    return (select(Reminder.id, Reminder.record_id)
            .where(Reminder.state == PENDING, Reminder.due_at <= now,
                   _free(Reminder.lease_until, clock), _free(Reminder.sending_until, clock))
            .order_by(Reminder.due_at, Reminder.id)
            .limit(limit))


def scan(session: Session, *, now: datetime, tenants: Mapping[str, Any],
         settings: ReminderSettings | None = None, clock: datetime | None = None) -> ScanResult:
    """Find due work and claim it, in the caller's transaction (commit, then enqueue).

    ``now`` decides what is due (``--now`` may move it); ``clock`` (the real time) is used for
    leases, so a scan run with a future ``now`` never blocks the regular scans.
    """
    settings = settings or ReminderSettings()
    clock = clock or utcnow()
    result = ScanResult(now=now)
    if not _try_lock(session):
        result.busy = True
        return result
    token = secrets.token_hex(8)
    lease_until = clock + settings.lease
    seen: set[int] = set()
    while len(seen) < settings.max_per_scan:
        candidates = session.execute(due_query(now, clock, settings.batch)).all()
        fresh = [c for c in candidates if c.id not in seen]
        if not fresh:
            break
        seen.update(c.id for c in fresh)
        record_ids = sorted({c.record_id for c in fresh})
        rows = session.execute(
            select(Reminder.id, Reminder.record_id, Reminder.recipient, Reminder.kind,
                   Reminder.due_at, Reminder.lease_until, Reminder.sending_until, Record.status)
            .join(Record, Record.id == Reminder.record_id)
            .where(Reminder.record_id.in_(record_ids), Reminder.state == PENDING,
                   Reminder.due_at <= now)
        ).all()
        # a final record is chased no more; a complete one's follow-ups still go
        ended = [r.id for r in rows if r.status in FINAL_STATUSES
                 and not (r.status == COMPLETE and r.kind in FOLLOW_UP_KINDS)]
        if ended:
            res = session.execute(
                update(Reminder)
                .where(Reminder.id.in_(ended), Reminder.state == PENDING,
                       _free(Reminder.sending_until, clock))
                .values(state=CANCELLED, claim=None, lease_until=None)
                .execution_options(synchronize_session=False))
            result.cancelled += res.rowcount or 0
        ended_ids = set(ended)
        live = [r for r in rows if r.id not in ended_ids]
        # a request email due now says what the practitioner's due steps would: they are skipped
        requested = {r.record_id for r in live if r.kind == REQUEST}
        said = {r.id for r in live if r.record_id in requested and r.recipient == "practitioner"
                and r.kind in SAID_BY_REQUEST and not _busy_sending(r.sending_until, clock)}
        groups: dict[tuple[int, str, str], list[Any]] = defaultdict(list)
        for r in live:
            if r.id not in said:
                kind = r.kind if r.kind in OWN_GROUP_KINDS else "chase"
                groups[(r.record_id, r.recipient, kind)].append(r)
        to_skip: list[int] = sorted(said)
        to_claim: list[int] = []
        for group in groups.values():
            group.sort(key=lambda r: (r.due_at, r.id))
            *earlier, latest = group
            to_skip += [r.id for r in earlier if not _busy_sending(r.sending_until, clock)]
            if (not _busy_sending(latest.sending_until, clock)
                    and (latest.lease_until is None or latest.lease_until <= clock)):
                to_claim.append(latest.id)
        seen.update(to_skip)
        if to_skip:
            res = session.execute(
                update(Reminder).where(Reminder.id.in_(to_skip), Reminder.state == PENDING)
                .values(state=SKIPPED, claim=None, lease_until=None,
                        last_error="superseded by a later step or the request email")
                .execution_options(synchronize_session=False))
            result.skipped += res.rowcount or 0
        if to_claim:
            session.execute(
                update(Reminder).where(Reminder.id.in_(to_claim), Reminder.state == PENDING)
                .values(claim=token, lease_until=lease_until)
                .execution_options(synchronize_session=False))
            result.reminders += [(rid, token) for rid in sorted(to_claim)]
        if len(candidates) < settings.batch:
            break
    _scan_digests(session, now=now, clock=clock, tenants=tenants, token=token,
                  lease_until=lease_until, result=result)
    return result


def _scan_digests(session: Session, *, now: datetime, clock: datetime,
                  tenants: Mapping[str, Any], token: str, lease_until: datetime,
                  result: ScanResult) -> None:
    for slug, tenant in tenants.items():
        try:
            policy = policy_for_tenant(tenant)
        except ReminderPolicyError as exc:
            log.error("reminders: %s", exc)
            continue
        today = now.astimezone(policy.zone).date()
        # A digest that could not go out on its day is not sent on a later one.
        session.execute(
            update(Digest).where(Digest.tenant == slug, Digest.state == PENDING,
                                 Digest.day < today, _free(Digest.sending_until, clock))
            .values(state=SKIPPED, claim=None, lease_until=None, last_error="day passed")
            .execution_options(synchronize_session=False))
        day = policy.digest_date(now)
        if day is None:
            continue
        ran = session.scalar(select(DigestRun.id).where(DigestRun.tenant == slug,
                                                        DigestRun.day == day))
        if ran is not None:
            continue
        managers = session.scalars(
            select(Record.manager_email).distinct()
            .where(Record.status.in_(OPEN_STATUSES), Record.due_at < now,
                   Record.tenant == slug, Record.manager_email.is_not(None))
        ).all()
        _insert_ignore(session, DigestRun, [{"tenant": slug, "day": day,
                                             "digests": len(managers), "created_at": clock}])
        _insert_ignore(session, Digest, [
            {"tenant": slug, "address": m, "day": day, "state": PENDING, "attempts": 0,
             "records": 0, "created_at": clock} for m in managers if m])
        result.digests_created += len(managers)
    due = session.scalars(
        select(Digest.id).where(Digest.state == PENDING, _free(Digest.lease_until, clock),
                                _free(Digest.sending_until, clock))
    ).all()
    if due:
        session.execute(update(Digest).where(Digest.id.in_(due), Digest.state == PENDING)
                        .values(claim=token, lease_until=lease_until)
                        .execution_options(synchronize_session=False))
        result.digests += [(d, token) for d in sorted(due)]


def _tenants(app: Flask) -> Mapping[str, Any]:
    from sharewise.plugin.tenants import all_tenants

    return all_tenants(app)


def run_scan(app: Flask | None = None, *, now: datetime | None = None,
             send_inline: bool = False,
             enqueue: Callable[..., Any] | None = None) -> ScanResult:
    """One scan in its own transaction, then hand each claimed row to a sender.

    By default each row goes to the Celery worker (``tasks.reminders.send`` /
    ``send_digest``). With ``send_inline`` they are sent in this process, one after the other
    (``sharewise reminders scan``).
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    now = now or utcnow()
    settings = ReminderSettings.from_config(app.config)
    with session_scope(app) as session:
        result = scan(session, now=now, tenants=_tenants(app), settings=settings)
    busy = result.reminders or result.digests or result.skipped or result.cancelled
    log.log(logging.INFO if busy else logging.DEBUG,  # an idle scan every minute is routine
            "reminder scan at %s: %s", now.isoformat(), result.summary())
    jobs = [(SEND_TASK, rid, claim) for rid, claim in result.reminders]
    jobs += [(DIGEST_TASK, did, claim) for did, claim in result.digests]
    if send_inline:
        for task, row_id, claim in jobs:
            sender = send_reminder if task == SEND_TASK else send_digest
            outcome = sender(row_id, claim, app=app, now=now, final_attempt=True)
            result.outcomes.append(outcome.state)
        return result
    if enqueue is None:
        from sharewise.plugin.celery import enqueue as celery_enqueue

        enqueue = celery_enqueue
    for i, (task, row_id, claim) in enumerate(jobs):
        try:
            enqueue(task, row_id, claim, app=app)
        except Exception:  # broker down: give the claims back so the next scan retries
            log.exception("reminders: could not enqueue; releasing %d claim(s)", len(jobs) - i)
            _release_claims(app, jobs[i:])
            break
    return result


def _release_claims(app: Flask, jobs: Iterable[tuple[str, int, str]]) -> None:
    with session_scope(app) as session:
        for task, row_id, claim in jobs:
            model = Reminder if task == SEND_TASK else Digest
            session.execute(update(model).where(model.id == row_id, model.claim == claim,
                                                model.state == PENDING)
                            .values(lease_until=None, claim=None)
                            .execution_options(synchronize_session=False))


# ----------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class SendOutcome:
    """What a send attempt did. ``retry_in`` set: try again after that many seconds."""

    state: str
    retry_in: float | None = None
    error: str | None = None


def _lock_row(session: Session, model: Any, row_id: int) -> Any:
    stmt = select(model).where(model.id == row_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def _zone_of(app: Flask, slug: str) -> ZoneInfo:
    tenant = _tenants(app).get(slug)
    return ZoneInfo(getattr(tenant, "timezone", None) or "Europe/London")


def _link(app: Flask, record: Record) -> str:
    return link_url(record.tenant, record.public_id, "form", app)


def _ref(app: Flask, record: Record) -> RecordRef:
    return RecordRef(record_id=record.public_id, case_reference=record.case_reference or "",
                     due_at=record.due_at, link=_link(app, record))


def _begin(row: Any, claim: str, clock: datetime, settings: ReminderSettings) -> SendOutcome | None:
    """Checks common to reminders and digests; ``None`` means: go ahead."""
    if row is None:
        return SendOutcome("missing")
    if row.state != PENDING:
        return SendOutcome(row.state)
    if row.claim != claim:
        return SendOutcome("superseded")
    if _busy_sending(row.sending_until, clock):
        wait = (row.sending_until - clock).total_seconds()
        return SendOutcome("busy", retry_in=max(wait, 0.1))
    row.sending_until = clock + settings.sending
    row.attempts += 1
    return None


def _fail(app: Flask, model: Any, row_id: int, claim: str, exc: MailError,
          final_attempt: bool) -> SendOutcome:
    permanent = isinstance(exc, PermanentMailError)
    with session_scope(app) as session:
        row = _lock_row(session, model, row_id)
        if row is not None and row.state == PENDING and row.claim == claim:
            row.last_error = exc.summary[:200]
            row.sending_until = None
            if permanent:
                row.state, row.claim, row.lease_until = FAILED, None, None
            elif final_attempt:  # give the row back: the next scan enqueues it again
                row.claim, row.lease_until = None, None
    log.warning("%s %s not sent: %s%s", model.__name__.lower(), row_id, exc.summary,
                " (permanent)" if permanent else "")
    if permanent:
        return SendOutcome(FAILED, error=exc.summary)
    return SendOutcome("error", retry_in=None if final_attempt else 0.0, error=exc.summary)


def send_reminder(reminder_id: int, claim: str, *, app: Flask | None = None,
                  now: datetime | None = None, final_attempt: bool = False) -> SendOutcome:
    """Send one claimed reminder (the body of ``tasks.reminders.send``); idempotent."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    settings = ReminderSettings.from_config(app.config)
    clock = utcnow()
    now = now or clock
    with session_scope(app) as session:
        row = _lock_row(session, Reminder, reminder_id)
        stop = _begin(row, claim, clock, settings)
        if stop is not None:
            session.rollback()
            return stop
        record = session.get(Record, row.record_id)
        follow_up = row.kind in FOLLOW_UP_KINDS
        if record is None or (record.is_final and not (follow_up and
                                                       record.status == COMPLETE)):
            row.state, row.claim, row.lease_until, row.sending_until = CANCELLED, None, None, None
            row.attempts -= 1
            return SendOutcome(CANCELLED)
        content = reminder_email(_ref(app, record), row.kind, row.recipient,  # type: ignore[arg-type]
                                 _zone_of(app, record.tenant), when=row.due_at)
        message_id = make_message_id(row.idempotency_key, app.config["MAIL_FROM"])
        address = row.address
    try:
        send_mail(app, address, content.subject, content.text, html=content.html,
                  message_id=message_id)
    except MailError as exc:
        return _fail(app, Reminder, reminder_id, claim, exc, final_attempt)
    with session_scope(app) as session:
        row = _lock_row(session, Reminder, reminder_id)
        if row.state == SENT:  # cannot happen while claims hold; never un-send
            log.warning("reminder %s was already marked sent", reminder_id)
            return SendOutcome(SENT)
        row.state, row.sent_at, row.message_id = SENT, utcnow(), message_id
        row.claim = row.lease_until = row.sending_until = None
        row.last_error = None
        record = session.get(Record, row.record_id)
        _record_sent(session, record, row)
    log.info("reminder %s sent (%s, step %s, to the %s)", reminder_id, row.kind, row.step,
             row.recipient, extra=fields(reminder=reminder_id, status=SENT))
    REMINDERS_SENT.labels(row.kind, str(row.step)).inc()
    return SendOutcome(SENT)


def _record_sent(session: Session, record: Record, row: Reminder) -> None:
    """Audit entry and, for overdue steps, the ``share.record_overdue`` post-back row."""
    if row.kind == REQUEST:
        audit(session, record, "sharewise", "request_sent",
              reason=f"request email to the {row.recipient}")
    else:
        audit(session, record, "sharewise", "reminder_sent",
              reason=f"{row.kind.replace('_', ' ')} reminder (step {row.step}) to the "
                     f"{row.recipient}")
    if row.kind == "overdue":
        from sharewise.plugin.outbox.services import enqueue_record_overdue

        enqueue_record_overdue(session, record, escalated_to=row.recipient,
                               step=f"{row.step}:{row.recipient}")


def overdue_for_manager(session: Session, tenant: str, address: str,
                        now: datetime, scan_at: datetime | None = None) -> list[Record]:
    """Open records of ``tenant`` managed by ``address`` whose due time has passed (strictly).

    ``scan_at`` (a digest's creation, the moment of its scan): leave out the records whose own
    email to the manager that scan sends, so the manager does not get both at once. Those
    are the manager reminders already due at the scan and not sent before it (the scan
    claimed them); their email says the same, and their post-back still goes.
    """
    query = select(Record).where(Record.status.in_(OPEN_STATUSES), Record.due_at < now,
                                 Record.tenant == tenant, Record.manager_email == address)
    if scan_at is not None:
        same_scan = select(Reminder.record_id).where(
            Reminder.recipient == "manager", Reminder.due_at <= scan_at,
            or_(Reminder.state == PENDING,
                (Reminder.state == SENT) & (Reminder.sent_at >= scan_at)))
        query = query.where(Record.id.not_in(same_scan))
    return list(session.scalars(query.order_by(Record.due_at, Record.id)))


def send_digest(digest_id: int, claim: str, *, app: Flask | None = None,
                now: datetime | None = None, final_attempt: bool = False) -> SendOutcome:
    """Send one claimed digest (the body of ``tasks.reminders.send_digest``); idempotent."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    settings = ReminderSettings.from_config(app.config)
    clock = utcnow()
    now = now or clock
    with session_scope(app) as session:
        row = _lock_row(session, Digest, digest_id)
        stop = _begin(row, claim, clock, settings)
        if stop is not None:
            session.rollback()
            return stop
        records = overdue_for_manager(session, row.tenant, row.address, now, row.created_at)
        if not records:
            row.state, row.claim, row.lease_until, row.sending_until = SKIPPED, None, None, None
            row.last_error = "nothing overdue that this scan did not email about already"
            return SendOutcome(SKIPPED)
        content = digest_email([_ref(app, r) for r in records], row.day,
                               _zone_of(app, row.tenant),
                               team_link=team_url(row.tenant, row.address, app))
        message_id = make_message_id(row.idempotency_key, app.config["MAIL_FROM"])
        address, count = row.address, len(records)
    try:
        send_mail(app, address, content.subject, content.text, html=content.html,
                  message_id=message_id)
    except MailError as exc:
        return _fail(app, Digest, digest_id, claim, exc, final_attempt)
    with session_scope(app) as session:
        row = _lock_row(session, Digest, digest_id)
        row.state, row.sent_at, row.message_id, row.records = SENT, utcnow(), message_id, count
        row.claim = row.lease_until = row.sending_until = None
        row.last_error = None
    log.info("digest %s sent (%d record(s))", digest_id, count)
    REMINDERS_SENT.labels("digest", "digest").inc()
    return SendOutcome(SENT)


__all__ = [
    "ReminderSettings", "ScanResult", "SendOutcome", "due_query",
    "overdue_for_manager", "reminder_rows", "run_scan", "scan",
    "schedule_escalation", "schedule_follow_ups", "schedule_reminders", "send_digest",
    "send_reminder",
]
