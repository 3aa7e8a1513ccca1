"""The audit trail: every status change of a record, and other things that happened to it.

:func:`transition` moves a record to a new status and writes its audit row; :func:`audit` writes
a row that is not a status change (an upload, a reminder...). Both add to the caller's session,
so the row commits with the change it describes. Audit rows are append-only (database triggers,
see the ``0001_core`` migration) and hash-chained (:mod:`.chain`; :func:`verify_trails` checks
the chains, ``sharewise audit verify``). Used by intake, uploads and reminders alike, which is
why it stands apart from any of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from sharewise.plugin.db import utcnow
from sharewise.plugin.logs import fields
from sharewise.plugin.records.chain import Break, first_break
from sharewise.plugin.records.models import CANCELLED, COMPLETE, TRANSITIONS, AuditEntry, Record

log = logging.getLogger(__name__)


class InvalidTransition(ValueError):
    """The record cannot move to that status (e.g. it is already final)."""

    def __init__(self, record_id: str, from_status: str, to_status: str) -> None:
        super().__init__(f"record {record_id} cannot go from {from_status} to {to_status}")
        self.from_status = from_status
        self.to_status = to_status


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
    session.add(AuditEntry(record=record, at=now, actor=actor, event=event,
                           from_status=from_status, to_status=to_status, reason=reason))
    log.info("record %s: %s -> %s by %s", record.public_id, from_status, to_status, actor,
             extra=fields(record=record.public_id, tenant=record.tenant, event=event,
                          status=to_status))
    return True


def audit(
    session: Session, record: Record, actor: str, event: str, reason: str | None = None
) -> AuditEntry:
    """Append an audit entry that is not a status change (an upload, a reminder...)."""
    entry = AuditEntry(record=record, actor=actor, event=event, reason=reason,
                       from_status=record.status, to_status=record.status)
    session.add(entry)
    return entry


@dataclass(frozen=True)
class TrailCheck:
    """One record's audit trail, checked: ``broken`` is its first bad link, if any."""

    public_id: str
    entries: int
    broken: Break | None


def verify_trails(session: Session, public_id: str | None = None,
                  batch: int = 500) -> Iterator[TrailCheck]:
    """Check the hash chain of one record's audit trail, or of every record's (in batches of
    ``batch`` records, so a large database is never read at once)."""
    query = select(Record.id, Record.public_id).order_by(Record.id)
    if public_id is not None:
        query = query.where(Record.public_id == public_id)
    last = 0
    while True:
        records = session.execute(query.where(Record.id > last).limit(batch)).all()
        if not records:
            return
        ids = [r.id for r in records]
        trails: dict[int, list[AuditEntry]] = {i: [] for i in ids}
        for entry in session.scalars(select(AuditEntry).where(AuditEntry.record_id.in_(ids))
                                     .order_by(AuditEntry.record_id, AuditEntry.id)):
            trails[entry.record_id].append(entry)
        for record_id, pid in records:
            yield TrailCheck(pid, len(trails[record_id]), first_break(trails[record_id]))
        session.expunge_all()
        last = ids[-1]
