"""records.schema_version and records.form_options (issue 16)

``schema_version``: the decision-record schema a record was created with. Records made before
this revision are version 1 and keep the version 1 form and rules to their completion; new
records get the version intake chooses. ``form_options``: the choices the record's tenant
offered on its form (its information sharing agreements, as ``[[code, title], ...]``), kept
with the record so a later change to the tenants file does not change a form in use.

Revision ID: 0005_schema_version
Revises: 0004_reminders
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

#: JSON on every backend, JSONB on PostgreSQL
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0005_schema_version"
down_revision = "0004_reminders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.add_column(
            sa.Column("schema_version", sa.Integer(), nullable=False, server_default="1")
        )
        batch.add_column(sa.Column("form_options", JSON_TYPE, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("form_options")
        batch.drop_column("schema_version")
