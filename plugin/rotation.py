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
half, and running it twice does nothing the second time.
"""

from __future__ import annotations

from collections.abc import Iterator
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

SEALED_MODELS = (Record, UploadVersion, Delivery)


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


def stored_keys(app: Flask, batch: int = 500) -> Iterator[str]:
    """Every storage key the database names, read in batches of ``batch`` rows."""
    for column, id_column in ((Record.prefill_pdf_key, Record.id),
                              (Record.final_pdf_key, Record.id),
                              (UploadVersion.storage_key, UploadVersion.id)):
        last = 0
        while True:
            with session_scope(app, readonly=True) as session:
                rows = session.execute(
                    select(id_column, column).where(id_column > last, column.is_not(None))
                    .order_by(id_column).limit(batch)).all()
            if not rows:
                break
            last = rows[-1][0]
            yield from (key for _, key in rows)


def rotate(app: Flask, batch: int = 500) -> RotationResult:
    """Re-encrypt every stored PDF and sealed field that is not under the newest key."""
    store = storage(app)
    assert isinstance(store, EncryptedStorage)  # the app's store always is
    result = RotationResult()
    for key in stored_keys(app, batch):
        result.checked += 1
        result.resealed += store.reseal(key)
    keys = keyring(app)
    for model in SEALED_MODELS:
        fields = sealed_fields(model)
        last = 0
        while True:
            with session_scope(app) as session:
                rows = list(session.scalars(select(model).where(model.id > last)
                                            .order_by(model.id).limit(batch)))
                for row in rows:
                    for f in fields:
                        if not is_current(keys, getattr(row, f.column)):
                            setattr(row, f.name, getattr(row, f.name))  # sealed anew on flush
                            result.fields += 1
                result.rows += len(rows)
            if not rows:
                break
            last = rows[-1].id
    return result
