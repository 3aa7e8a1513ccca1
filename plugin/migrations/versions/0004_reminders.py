"""reminders (reminder rows, manager digests, digest runs; issue 5)

Revision ID: 0004_reminders
Revises: 0003_outbox
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

#: JSON on every backend, JSONB on PostgreSQL
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0004_reminders"
down_revision = "0003_outbox"
branch_labels = None
depends_on = None


def _claim_columns():
    return [
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claim", sa.String(32), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sending_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("message_id", sa.String(128), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("record_id", sa.Integer(),
                  sa.ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("address", sa.String(254), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        *_claim_columns(),
        sa.UniqueConstraint("record_id", "step", "recipient", name="uq_reminders_record_step_to"),
    )
    op.create_index("ix_reminders_state_due", "reminders", ["state", "due_at"])
    op.create_table(
        "reminder_digests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("address", sa.String(254), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        *_claim_columns(),
        sa.UniqueConstraint("tenant", "address", "day", name="uq_digests_tenant_address_day"),
    )
    op.create_index("ix_digests_state_created", "reminder_digests", ["state", "created_at"])
    op.create_table(
        "reminder_digest_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("digests", sa.Integer(), nullable=False),
        sa.UniqueConstraint("tenant", "day", name="uq_digest_runs_tenant_day"),
    )


def downgrade() -> None:
    op.drop_table("reminder_digest_runs")
    op.drop_index("ix_digests_state_created", table_name="reminder_digests")
    op.drop_table("reminder_digests")
    op.drop_index("ix_reminders_state_due", table_name="reminders")
    op.drop_table("reminders")
