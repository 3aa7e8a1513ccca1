"""upload_versions.typed: what an online save could not read, as typed (sealed) (issue 20)

A date typed as "next tuesday" in the online form is not a value, so the version's ``values``
hold ``None`` for it. The text itself is the practitioner's work: it is kept here, sealed like
``values``, so the form shows it again the next time it is opened instead of losing it.

Revision ID: 0012_online_typed
Revises: 0011_online_form
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_online_typed"
down_revision = "0011_online_form"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("upload_versions", sa.Column("typed", sa.Text(), nullable=True))


def downgrade() -> None:
    # typed text is practitioners' work: refuse rather than drop it
    kept = op.get_bind().exec_driver_sql(
        "SELECT count(*) FROM upload_versions WHERE typed IS NOT NULL"
    ).scalar()
    if kept:
        raise RuntimeError(f"{kept} online save(s) hold text that could not be read: the "
                           "release before 0012 cannot keep it, so the database stays at 0012")
    with op.batch_alter_table("upload_versions") as batch:
        batch.drop_column("typed")
