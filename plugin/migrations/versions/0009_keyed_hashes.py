"""records.request_hash and records.subject_hash: look-ups by keyed hash (issue 18)

The host's ``request_id`` becomes a sealed field (its text is encrypted by the application)
and is found by ``request_hash``, a keyed hash of the tenant and the id; the unique key of a
tenant's requests moves to it. ``subject_hash``, a keyed hash of the person's normalised name
and date of birth, lets a subject access request find a person's records without reading
every record. The keys live in the application's settings, not here: this revision writes
each existing ``request_id`` as JSON text, which the application still finds and reads, and
``sharewise keys rotate`` then seals it and fills both hashes.

Revision ID: 0009_keyed_hashes
Revises: 0008_sealed_fields
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_keyed_hashes"
down_revision = "0008_sealed_fields"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column("records", sa.Column("request_hash", sa.String(length=64), nullable=True))
    op.add_column("records", sa.Column("subject_hash", sa.String(length=64), nullable=True))
    # A unique index, not a table constraint: SQLite would have to rebuild the table (which
    # its audit entries' foreign keys forbid) to change a constraint. There the old
    # (tenant, request_id) constraint stays, and never bites: a sealed id is unique text.
    op.create_index("uq_records_tenant_request_hash", "records", ["tenant", "request_hash"],
                    unique=True)
    if postgres:
        op.drop_constraint("uq_records_tenant_request", "records", type_="unique")
        op.alter_column("records", "request_id", type_=sa.Text(), existing_nullable=False,
                        nullable=True)
    op.create_index("ix_records_subject_hash", "records", ["subject_hash"])
    quote = "to_json(request_id)::text" if postgres else "json_quote(request_id)"
    op.execute(f"UPDATE records SET request_id = {quote}")  # noqa: S608  # nosec B608 - fixed


def downgrade() -> None:
    raise NotImplementedError("request ids are sealed from 0009 on: restore a backup instead")
