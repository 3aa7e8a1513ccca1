"""Key rotation: re-encrypt what is stored with the newest of ``ENCRYPTION_KEYS``, in batches,
while the service runs (``sharewise keys rotate``): the stored PDFs and the sealed fields of
the database (:mod:`sharewise.plugin.sealed`).

To rotate: put a new key first in ``ENCRYPTION_KEYS`` (keep the old ones after it), restart
the processes so they all encrypt with it, run ``sharewise keys rotate``, and remove an old key
only once a rotation reports nothing left under it. Every stored PDF the database knows of (a
record's prefilled and final PDFs, every upload) is read with whichever key opens it and
written again under the newest; a PDF stored before encryption existed is sealed for the first
time; so is every sealed field (a record's prefill, an upload's values, a post-back's body),
one batch of rows per transaction. The database is the list: a file it does not name is not
touched. Each object is
rewritten atomically (the store's own guarantee), so readers see the old or the new, never
half, and running it twice does nothing the second time. Records are taken in batches under
their row locks, so a record being purged or uploaded to waits or is waited for, and a purged
record is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from sqlalchemy import select

from sharewise.plugin.crypto import keyring
from sharewise.plugin.db import session_scope
from sharewise.plugin.outbox.models import Delivery
from sharewise.plugin.records.models import Record
from sharewise.plugin.sealed import is_current, sealed_fields
from sharewise.plugin.storage import EncryptedStorage, storage
from sharewise.plugin.uploads.models import UploadVersion


@dataclass
class RotationResult:
    """What a rotation did."""

    checked: int = 0
    resealed: int = 0
    rows: int = 0
    fields: int = 0

    def summary(self) -> str:
        """One line for the operator."""
        return (f"{self.checked} stored PDF(s) checked, {self.resealed} encrypted again with "
                f"the newest key; {self.rows} database row(s) checked, {self.fields} sealed "
                "field(s) encrypted again")


def rotate(app: Flask, batch: int = 100) -> RotationResult:
    """Re-encrypt every stored PDF and sealed field that is not under the newest key.

    Record by record in batches of ``batch``, each batch one transaction holding its records'
    row locks, so a purge or an upload of the same record waits (and a purged record is
    skipped: nothing of it comes back).
    """
    store = storage(app)
    assert isinstance(store, EncryptedStorage)  # the app's store always is
    keys = keyring(app)
    result = RotationResult()
    last = 0
    while True:
        with session_scope(app) as session:
            records = list(session.scalars(
                select(Record).where(Record.id > last).order_by(Record.id).limit(batch)
                .with_for_update()))
            if not records:
                break
            last = records[-1].id
            live = [r for r in records if r.purged_at is None]
            ids = [r.id for r in live]
            uploads = list(session.scalars(select(UploadVersion)
                                           .where(UploadVersion.record_id.in_(ids))))
            deliveries = list(session.scalars(select(Delivery)
                                              .where(Delivery.record_id.in_(ids))))
            for key in [k for r in live for k in (r.prefill_pdf_key, r.final_pdf_key)] + [
                    u.storage_key for u in uploads]:
                if key:
                    result.checked += 1
                    result.resealed += store.reseal(key)
            for row in [*live, *uploads, *deliveries]:
                result.rows += 1
                for f in sealed_fields(type(row)):
                    if not is_current(keys, getattr(row, f.column)):
                        setattr(row, f.name, getattr(row, f.name))  # sealed anew on flush
                        result.fields += 1
    return result
