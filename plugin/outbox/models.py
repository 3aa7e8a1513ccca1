"""Models of the outbox: ``Delivery``, ``DeliveryAttempt`` and ``TenantState``.

A :class:`Delivery` is one event to post to one tenant's host. It is written in the same
transaction as the change that causes it (a record's completion, an overdue step, a
cancellation) and then moves::

    pending -> sending -> delivered
                       -> pending (retry at next_attempt_at) ... -> dead (after the last retry)
                       -> failed (the host rejected it: 4xx, or 410 which also disables the tenant)
    pending -> skipped (an overdue notice whose record became final before it was sent)

``public_id`` (``msg_`` + random) is the Standard Webhooks ``webhook-id``: the same on every
attempt and every operator re-send, so the host can deduplicate. The body is fixed when the row
is written (``payload``, including the event's timestamp); a record's PDF is kept out of the row
and read from the file store at send time by ``pdf_key``, checked against its SHA-256, so every
attempt carries the same bytes.

A ``sending`` row holds a lease (``lease_until``, ``lease_token``): a worker only sends a row it
claimed, and the sweep re-enqueues a row whose lease ran out (its worker died).
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sharewise.plugin.db import Base, UTCDateTime, utcnow
from sharewise.plugin.sealed import SealedJSON, register

PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
FAILED = "failed"
DEAD = "dead"
SKIPPED = "skipped"
STATES = (PENDING, SENDING, DELIVERED, FAILED, DEAD, SKIPPED)

RECORD_COMPLETED = "share.record_completed"
RECORD_OVERDUE = "share.record_overdue"
RECORD_CANCELLED = "share.record_cancelled"
EVENT_TYPES = (RECORD_COMPLETED, RECORD_OVERDUE, RECORD_CANCELLED)


def new_delivery_id() -> str:
    """A fresh webhook id: ``msg_`` and 128 random bits in lower-case base32."""
    return "msg_" + base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()


class Delivery(Base):
    """One outbound event for one tenant, and where it is in its life."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("record_id", "event_type", "dedupe_key", name="uq_deliveries_event"),
        Index("ix_deliveries_state_next", "state", "next_attempt_at"),
        Index("ix_deliveries_state_lease", "state", "lease_until"),
        Index("ix_deliveries_tenant_state", "tenant", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=new_delivery_id)
    tenant: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="RESTRICT"))
    event_type: Mapped[str] = mapped_column(String(64))
    #: distinguishes several events of one type for one record (e.g. the overdue step)
    dedupe_key: Mapped[str] = mapped_column(String(128), default="")
    #: the whole body except the PDF's base64 (added at send time from ``pdf_key``); sealed
    #: in the database (:mod:`sharewise.plugin.sealed`), in its key order (form order)
    payload_sealed: Mapped[str | None] = mapped_column("payload", Text, nullable=True)
    payload = SealedJSON("payload_sealed")
    pdf_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: when a pending row is next due; ``None`` while parked (its tenant's callback is disabled)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: when a message for this row was last handed to the broker (the sweep does not re-enqueue
    #: a row more often than every ``DELIVERY_REQUEUE_AFTER`` seconds)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: set once operators were told about a failed or dead delivery (the sweep retries the mail)
    operators_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    attempt_log: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="delivery", order_by="DeliveryAttempt.id", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Delivery {self.public_id} {self.event_type} {self.state}>"


register(Delivery, lambda delivery, field: f"deliveries.{field}:{delivery.record_id}")


class DeliveryAttempt(Base):
    """One attempt: when, how long, and the status code or error class (never the body)."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_delivery", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: ``None`` while the attempt is in flight; ``interrupted`` if its worker died
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(64), nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)

    delivery: Mapped[Delivery] = relationship(back_populates="attempt_log")


class TenantState(Base):
    """Operational state of a tenant's callback that outlives a restart (410 disables it)."""

    __tablename__ = "tenant_state"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    callback_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: why, in operator words (e.g. "host answered 410 to msg_..."), never personal data
    disabled_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
