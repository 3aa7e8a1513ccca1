"""Models of the records concern: ``Record``, ``AuditEntry`` (append-only), ``WebhookEvent``.

Outside the database a record is known only by its opaque public id (``SR-`` + 16 random
base32 characters); the integer primary key never leaves the model layer. Personal data (names,
emails, dates of birth, form text) lives only in ``Record.prefill`` (sealed: encrypted in its
column, bound to the record) and the email columns.
"""

from __future__ import annotations

import base64
import secrets
import unicodedata
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Mapper, Session, mapped_column, object_session, relationship

from sharewise.plugin.crypto import Keyring
from sharewise.plugin.db import Base, UTCDateTime, utcnow
from sharewise.plugin.records.chain import link_of
from sharewise.plugin.sealed import SealedJSON, register

JSONType = JSON().with_variant(JSONB(), "postgresql")

AWAITING = "awaiting_completion"
INCOMPLETE = "incomplete"
COMPLETE = "complete"
CANCELLED = "cancelled"
STATUSES = (AWAITING, INCOMPLETE, COMPLETE, CANCELLED)
FINAL_STATUSES = frozenset({COMPLETE, CANCELLED})
#: Allowed status changes (a record may stay ``incomplete`` across uploads without a change).
TRANSITIONS: dict[str, frozenset[str]] = {
    AWAITING: frozenset({INCOMPLETE, COMPLETE, CANCELLED}),
    INCOMPLETE: frozenset({COMPLETE, CANCELLED}),
    COMPLETE: frozenset(),
    CANCELLED: frozenset(),
}


def new_public_id() -> str:
    """A fresh opaque record id: ``SR-`` and 80 random bits in base32 (not guessable)."""
    return "SR-" + base64.b32encode(secrets.token_bytes(10)).decode("ascii")


class Record(Base):
    """One information-sharing decision record, created by a ``share.requested`` event."""

    __tablename__ = "records"
    __table_args__ = (
        Index("uq_records_tenant_request_hash", "tenant", "request_hash", unique=True),
        Index("ix_records_status_due", "status", "due_at"),
        Index("ix_records_subject_hash", "subject_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    tenant: Mapped[str] = mapped_column(String(64))
    #: the host's id of the request: sealed (it may carry a case system's own numbering);
    #: looked up by ``request_hash``, its keyed hash (:func:`request_hash`)
    request_id_sealed: Mapped[str | None] = mapped_column("request_id", Text, nullable=True)
    request_id = SealedJSON("request_id_sealed")
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: keyed hash of the person's normalised name and date of birth (:func:`subject_hash`),
    #: how a subject access request finds their records without reading every one
    subject_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(32), default=AWAITING)
    urgency: Mapped[str] = mapped_column(String(16), default="routine")
    case_reference: Mapped[str] = mapped_column(String(64), default="")
    practitioner_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    practitioner_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    manager_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: when its PDFs and personal fields were deleted (:mod:`sharewise.plugin.retention`)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: links signed up to this moment no longer open the record (``sharewise links revoke``)
    links_revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: the normalised prefill values (personal data: sealed in the database, :mod:`..sealed`)
    prefill_sealed: Mapped[str | None] = mapped_column("prefill", Text, nullable=True)
    prefill = SealedJSON("prefill_sealed", default=dict)
    prefill_hash: Mapped[str] = mapped_column(String(64), default="")
    prefill_version: Mapped[int] = mapped_column(Integer, default=1)
    #: the decision-record schema (form and rules) this record keeps for its whole life
    schema_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: the choices the tenant offered on the form, ``[[code, title], ...]`` (see
    #: :func:`sharewise.forms.spec.form_for`); kept so a tenants-file change leaves it alone
    form_options: Mapped[list[list[str]] | None] = mapped_column(JSONType, nullable=True)
    #: storage key of the current prefilled PDF
    prefill_pdf_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    #: what is still missing, as ``[{"field", "rule", "message"}]`` (updated on each upload)
    missing: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    final_pdf_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    final_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)

    audit: Mapped[list[AuditEntry]] = relationship(
        back_populates="record", order_by="AuditEntry.id", passive_deletes=True
    )

    @property
    def tenant_options(self) -> tuple[tuple[str, str], ...]:
        """:attr:`form_options` as the form library takes them."""
        return tuple((str(code), str(title)) for code, title in self.form_options or ())

    @property
    def is_final(self) -> bool:
        """Whether the record is ``complete`` or ``cancelled`` (nothing more happens)."""
        return self.status in FINAL_STATUSES

    def __repr__(self) -> str:  # never personal data
        return f"<Record {self.public_id} {self.tenant} {self.status}>"


class AuditEntry(Base):
    """One line of a record's audit trail. Append-only: updates and deletes are refused."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_record", "record_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="RESTRICT"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    from_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: keyed hash of the address of the client whose request wrote the entry (see
    #: :data:`CLIENT`); never the address itself
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: SHA-256 of the previous entry's ``chain`` and this entry (:mod:`.chain`); set on insert
    chain: Mapped[str | None] = mapped_column(String(64), nullable=True)

    record: Mapped[Record] = relationship(back_populates="audit")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (for the post-back and the final PDF's audit page)."""
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "event": self.event,
            "from_status": self.from_status,
            "to_status": self.to_status,
            "reason": self.reason,
        }


def request_hash(keys: Keyring, tenant: str, request_id: str) -> list[str]:
    """The keyed hashes a host's request id may be stored under, newest key first."""
    return keys.keyed_hashes(f"{tenant}\0{request_id}", "request_id")


def normalise_name(name: str) -> str:
    """A person's name as the subject hash sees it: Unicode-normalised (NFKC), case-folded,
    runs of spaces as one, no spaces at either end."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def subject_hash(keys: Keyring, name: str, date_of_birth: str | None) -> list[str]:
    """The keyed hashes of a person (name and ISO date of birth), newest key first."""
    return keys.keyed_hashes(f"{normalise_name(name)}\0{date_of_birth or ''}", "subject")


def _before_seal(record: Record, keys: Keyring) -> None:
    if record.public_id is None:
        record.public_id = new_public_id()
    if record.request_id is not None:
        record.request_hash = request_hash(keys, record.tenant, record.request_id)[0]
    prefill = record.prefill or {}
    if prefill.get("subject_name"):
        record.subject_hash = subject_hash(keys, prefill["subject_name"],
                                           prefill.get("subject_date_of_birth"))[0]


register(Record, lambda record, field: f"records.{field}:{record.public_id}", _before_seal)


class AppendOnlyError(RuntimeError):
    """Something tried to change or delete an audit entry."""


#: The keyed hash of the address of the client being served, set by the web layer for the
#: length of a request (:mod:`sharewise.plugin.access`); every audit entry written meanwhile
#: keeps it. ``None`` outside requests (workers, commands).
CLIENT: ContextVar[str | None] = ContextVar("sharewise_audit_client", default=None)

_TIPS = "sharewise.audit_tips"  # Session.info key: {record_id: chain} of this flush's entries


@event.listens_for(AuditEntry, "before_insert")
def _chain_entry(_mapper: Mapper, conn: Any, target: AuditEntry) -> None:
    """Link a new entry to the record's last one. On PostgreSQL the record's row is locked
    first, so two transactions appending to one record take turns (SQLite has one writer)."""
    table = AuditEntry.__table__
    session = object_session(target)
    tips: dict[int, str] = session.info.setdefault(_TIPS, {}) if session is not None else {}
    previous = tips.get(target.record_id)
    record = target.__dict__.get("record")
    if previous is None and record is not None and inspect(record).pending:
        pass  # the record is inserted in this same flush: this is its first entry
    elif previous is None:
        if conn.dialect.name == "postgresql":
            records = Record.__table__
            conn.execute(select(records.c.id).where(records.c.id == target.record_id)
                         .with_for_update())
        previous = conn.scalar(select(table.c.chain).where(table.c.record_id == target.record_id)
                               .order_by(table.c.id.desc()).limit(1))
    if target.at is None:
        target.at = utcnow()
    if target.client is None:
        target.client = CLIENT.get()
    target.chain = link_of(previous, target)
    tips[target.record_id] = target.chain


@event.listens_for(Session, "after_flush")
def _forget_tips(session: Session, _context: Any) -> None:
    session.info.pop(_TIPS, None)  # flushed: the database has them now


@event.listens_for(Session, "after_soft_rollback")
def _forget_tips_on_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(_TIPS, None)  # a failed flush: none of them was written


@event.listens_for(AuditEntry, "before_update")
def _refuse_update(_mapper: Mapper, _conn: Any, target: AuditEntry) -> None:
    raise AppendOnlyError(f"audit entry {target.id} is append-only")


@event.listens_for(AuditEntry, "before_delete")
def _refuse_delete(_mapper: Mapper, _conn: Any, target: AuditEntry) -> None:
    raise AppendOnlyError(f"audit entry {target.id} is append-only")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk(state: Any) -> None:
    if (state.is_update or state.is_delete) and any(
        m.class_ is AuditEntry for m in state.all_mappers
    ):
        raise AppendOnlyError("audit entries are append-only")


class WebhookEvent(Base):
    """A webhook delivery received from a host, kept for deduplication and replay."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("tenant", "webhook_id", name="uq_webhook_tenant_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    webhook_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[int | None] = mapped_column(
        ForeignKey("records.id", ondelete="SET NULL"), nullable=True
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
