"""records.prefill, upload_versions.values and deliveries.payload become sealed text (issue 18)

These columns hold personal data (the person's details, the practitioner's answers, the body
posted back to the host). From this revision they keep ``sealed:`` and the value encrypted by
the application (:mod:`sharewise.plugin.sealed`), so their type becomes text. The rows written
before stay plain JSON text, which the application still reads, until ``sharewise keys rotate``
seals them: the keys live in the application's settings, not in the migration.

Revision ID: 0008_sealed_fields
Revises: 0007_access
"""

from alembic import op

revision = "0008_sealed_fields"
down_revision = "0007_access"
branch_labels = None
depends_on = None

COLUMNS = (("records", "prefill"), ("upload_versions", "values"), ("deliveries", "payload"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps JSON as text already; the type is the application's
    for table, column in COLUMNS:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" DROP NOT NULL')
        op.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE text '
                   f'USING "{column}"::text')


def downgrade() -> None:
    # only possible while nothing is sealed yet (sealed text is not JSON)
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        json_type = "json" if table == "deliveries" else "jsonb"
        op.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE {json_type} '
                   f'USING "{column}"::{json_type}')
