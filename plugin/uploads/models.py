"""``UploadVersion``: every PDF a practitioner (or the host on their behalf) hands back, and
every save of the online form.

Each upload or save is a numbered version of its record (1, 2, 3 ... unique per record),
whatever its outcome: ``accepted`` (the record became complete), ``incomplete`` (read, but
golden-rule items are missing), ``draft`` (an online save the practitioner has not submitted)
or ``rejected`` (not a readable decision form for this record, too large, or sent to a record
that is already complete or cancelled). The uploaded bytes are written to the file store
*before* the row is committed, so nothing a practitioner sent is ever lost; an upload refused
for its size before it was read has no stored bytes (``storage_key`` is ``None``), nor has an
online save, whose ``values`` are all it sent.

``values`` (the parsed, normalised field values) and the stored PDF are personal data: they stay
in the model and storage layer, like ``Record.prefill``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sharewise.plugin.db import Base, UTCDateTime, utcnow
from sharewise.plugin.records.models import JSONType, Record
from sharewise.plugin.sealed import SealedJSON, register

ACCEPTED = "accepted"
INCOMPLETE = "incomplete"
REJECTED = "rejected"
#: a save of the online form as a draft: kept and checked, never completes the record
DRAFT = "draft"
OUTCOMES = (ACCEPTED, INCOMPLETE, REJECTED, DRAFT)
ONLINE = "online"
SOURCES = ("page", "api", "host", ONLINE)


class UploadVersion(Base):
    """One upload of a record's form (append-only in practice: rows are never changed)."""

    __tablename__ = "upload_versions"
    __table_args__ = (
        UniqueConstraint("record_id", "version", name="uq_upload_versions_record_version"),
        Index("ix_upload_versions_record", "record_id", "version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="RESTRICT"))
    version: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: ``page`` (the practitioner page), ``api`` (a raw body to upload_url), ``host``
    #: (``share.form_submitted``), ``online`` (the online form: no file, ``values`` only)
    source: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    storage_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    rejection_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: the parsed, normalised values (``None`` for a rejected upload); sealed in the database
    values_sealed: Mapped[str | None] = mapped_column("values", Text, nullable=True)
    values = SealedJSON("values_sealed")
    #: an online save's texts that could not be read (``{field: text}``, else ``None``), kept
    #: to show again; sealed like ``values``
    typed_sealed: Mapped[str | None] = mapped_column("typed", Text, nullable=True)
    typed = SealedJSON("typed_sealed")
    #: ``[{"field", "rule", "message"}]`` still missing (empty when accepted or rejected)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)

    record: Mapped[Record] = relationship()

    def __repr__(self) -> str:  # never personal data
        return f"<UploadVersion {self.record_id}#{self.version} {self.outcome}>"


register(UploadVersion, lambda upload, field: f"upload_versions.{field}:{upload.record_id}")
