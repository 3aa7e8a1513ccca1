"""Reminder rows and digest rows: every email Sharewise owes someone is a row first.

``Reminder``: one per (record, step, recipient role), UNIQUE, created with the record (the
policy's steps and, at intake, the ``request`` email that tells the practitioner of the
record). The scan finds due rows through the ``(state, due_at)`` index, so its cost follows
the number of DUE reminders, not the number of records. ``Digest``: one per (tenant, manager
address, local day), UNIQUE, created by the first scan after the digest time; ``DigestRun``
marks that a tenant's digests for a day have been created, so later scans that day skip the
manager query.

Both sendable rows share the claim columns (:class:`Claimable`):

* ``claim`` / ``lease_until``: a scan claimed the row and enqueued a send task carrying the
  claim token; no scan re-enqueues it before
  ``lease_until`` (unless the task gives up and releases it). A task whose token no longer
  matches does nothing.
* ``sending_until``: a task is talking to the SMTP server right now; nobody else may send it
  until then (a redelivered message for a killed worker waits for this to pass).

Recipient addresses are personal data: they stay in these rows and are never logged or passed
as task arguments.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sharewise.plugin.db import Base, UTCDateTime, utcnow

PENDING = "pending"
SENT = "sent"
SKIPPED = "skipped"
CANCELLED = "cancelled"
FAILED = "failed"  # the mail server refused the recipient for good (5xx)
STATES = (PENDING, SENT, SKIPPED, CANCELLED, FAILED)
#: The columns a new reminder row is written with (``reminders.services.reminder_rows``).
REMINDER_COLUMNS = ("record_id", "step", "recipient", "kind", "address", "due_at", "state",
                    "last_error", "attempts", "created_at")


class Claimable:
    """Columns shared by rows a send task works on."""

    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sending_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Reminder(Claimable, Base):
    """One reminder step of one record for one recipient role."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("record_id", "step", "recipient", name="uq_reminders_record_step_to"),
        Index("ix_reminders_state_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"))
    #: the step's canonical offset (``-2h``, ``0``, ``+1wd`` ...), or the kind of a row that
    #: is not a policy step (``request``, ``review`` ...)
    step: Mapped[str] = mapped_column(String(16))
    #: ``practitioner`` or ``manager``
    recipient: Mapped[str] = mapped_column(String(16))
    #: ``due_soon``, ``due_now`` or ``overdue`` (a policy step); ``request`` (the email that
    #: tells the practitioner of a new record), ``review``, ``inform`` or ``escalation``
    kind: Mapped[str] = mapped_column(String(16))
    #: the recipient's email address (personal data: stays behind the model layer)
    address: Mapped[str | None] = mapped_column(String(254), nullable=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())

    @property
    def idempotency_key(self) -> str:
        """The unique key as text (the Message-ID is derived from it)."""
        return f"reminder:{self.record_id}:{self.step}:{self.recipient}"

    def __repr__(self) -> str:  # never the address
        return (f"<Reminder {self.id} record={self.record_id} {self.step} {self.recipient} "
                f"{self.state}>")


class Digest(Claimable, Base):
    """One manager's daily digest of overdue records."""

    __tablename__ = "reminder_digests"
    __table_args__ = (
        UniqueConstraint("tenant", "address", "day", name="uq_digests_tenant_address_day"),
        Index("ix_digests_state_created", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    #: the manager's email address (personal data: stays behind the model layer)
    address: Mapped[str] = mapped_column(String(254))
    day: Mapped[date] = mapped_column(Date())
    #: how many records the digest listed when it was sent
    records: Mapped[int] = mapped_column(Integer, default=0)

    @property
    def idempotency_key(self) -> str:
        """The unique key as text (the Message-ID is derived from it)."""
        return f"digest:{self.tenant}:{self.id}:{self.day.isoformat()}"

    def __repr__(self) -> str:
        return f"<Digest {self.id} {self.tenant} {self.day} {self.state}>"


class DigestRun(Base):
    """A tenant's digests for one day have been created (written once, by one scan)."""

    __tablename__ = "reminder_digest_runs"
    __table_args__ = (UniqueConstraint("tenant", "day", name="uq_digest_runs_tenant_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    digests: Mapped[int] = mapped_column(Integer, default=0)
