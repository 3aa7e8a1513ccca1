"""records.purged_at: when a finished record's PDFs and personal fields were deleted (issue 18)

Revision ID: 0010_retention
Revises: 0009_keyed_hashes
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_retention"
down_revision = "0009_keyed_hashes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("records", sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE records DROP COLUMN purged_at")  # no table rebuild on SQLite
