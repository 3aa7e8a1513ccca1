"""reminders (reminder rows; filled by the reminders work, issue 5)

Revision ID: 0004_reminders
Revises: 0003_outbox
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql

#: JSON on every backend, JSONB on PostgreSQL
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0004_reminders"
down_revision = "0003_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
