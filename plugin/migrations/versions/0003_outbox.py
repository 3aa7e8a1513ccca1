"""outbox (deliveries and attempts; filled by the post-back work, issue 6)

Revision ID: 0003_outbox
Revises: 0002_uploads
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql

#: JSON on every backend, JSONB on PostgreSQL
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0003_outbox"
down_revision = "0002_uploads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
