"""uploads: upload versions (every upload of a record's form, numbered, whatever its outcome)

Revision ID: 0002_uploads
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

#: JSON on every backend, JSONB on PostgreSQL
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0002_uploads"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("storage_key", sa.String(length=512), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("rejection_code", sa.String(length=32), nullable=True),
        sa.Column("values", JSON_TYPE, nullable=True),
        sa.Column("problems", JSON_TYPE, nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("record_id", "version", name="uq_upload_versions_record_version"),
        sa.CheckConstraint(
            "outcome IN ('accepted', 'incomplete', 'rejected')", name="ck_upload_versions_outcome"
        ),
        sa.CheckConstraint(
            "source IN ('page', 'api', 'host')", name="ck_upload_versions_source"
        ),
    )
    op.create_index("ix_upload_versions_record", "upload_versions", ["record_id", "version"])


def downgrade() -> None:
    op.drop_index("ix_upload_versions_record", table_name="upload_versions")
    op.drop_table("upload_versions")
