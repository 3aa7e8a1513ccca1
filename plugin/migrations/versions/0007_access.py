"""records.links_revoked_at and audit_entries.client (issue 18)

``links_revoked_at``: links to the record signed up to this moment no longer open it
(``sharewise links revoke``). ``client``: the keyed hash of the address of the client whose
request wrote an audit entry (page views, downloads, uploads, the host's events); part of the
entry's hash-chain link when present, so entries written before it keep their links.

Revision ID: 0007_access
Revises: 0006_audit_chain
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_access"
down_revision = "0006_audit_chain"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("records", sa.Column("links_revoked_at", sa.DateTime(timezone=True),
                                       nullable=True))
    op.add_column("audit_entries", sa.Column("client", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # plain ALTER TABLE (SQLite 3.35+): a batch rebuild would lose the append-only triggers
    op.execute("ALTER TABLE audit_entries DROP COLUMN client")
    op.execute("ALTER TABLE records DROP COLUMN links_revoked_at")
