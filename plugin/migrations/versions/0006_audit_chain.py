"""audit_entries.chain: the audit trail's hash chain (issue 18)

Each entry's ``chain`` is the SHA-256 of the previous entry of its record and of its own
content (:mod:`sharewise.plugin.records.chain`). The entries written before this revision are
chained here, in the order they were written; the append-only triggers are lifted for that
one update and put back.

Revision ID: 0006_audit_chain
Revises: 0005_schema_version
"""

from datetime import UTC

import sqlalchemy as sa
from alembic import op

from sharewise.plugin.records.chain import link

revision = "0006_audit_chain"
down_revision = "0005_schema_version"
branch_labels = None
depends_on = None

SQLITE_ACTIONS = ("UPDATE", "DELETE")


def _drop_triggers(dialect: str) -> None:
    if dialect == "postgresql":
        op.execute("DROP TRIGGER audit_entries_append_only ON audit_entries")
    else:
        for action in SQLITE_ACTIONS:
            op.execute(f"DROP TRIGGER audit_entries_no_{action.lower()}")


def _create_triggers(dialect: str) -> None:
    if dialect == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries "
            "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()"
        )
    else:
        for action in SQLITE_ACTIONS:
            op.execute(
                f"CREATE TRIGGER audit_entries_no_{action.lower()} BEFORE {action} "
                "ON audit_entries BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END"
            )


def _chain_existing(conn: sa.engine.Connection) -> None:
    entries = sa.table("audit_entries", sa.column("id"), sa.column("record_id"),
                       sa.column("at", sa.DateTime(timezone=True)), sa.column("actor"),
                       sa.column("event"), sa.column("from_status"), sa.column("to_status"),
                       sa.column("reason"), sa.column("chain"))
    rows = conn.execute(sa.select(entries).order_by(entries.c.record_id, entries.c.id))
    previous: tuple[int, str] | None = None
    updates = []
    for row in rows:
        at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)  # SQLite
        before = previous[1] if previous and previous[0] == row.record_id else None
        chain = link(before, row.record_id, at, row.actor, row.event, row.from_status,
                     row.to_status, row.reason)
        updates.append({"entry_id": row.id, "chain": chain})
        previous = (row.record_id, chain)
    if updates:
        conn.execute(entries.update().where(entries.c.id == sa.bindparam("entry_id"))
                     .values(chain=sa.bindparam("chain")), updates)


def upgrade() -> None:
    op.add_column("audit_entries", sa.Column("chain", sa.String(length=64), nullable=True))
    conn = op.get_bind()
    _drop_triggers(conn.dialect.name)
    _chain_existing(conn)
    _create_triggers(conn.dialect.name)


def downgrade() -> None:
    conn = op.get_bind()
    _drop_triggers(conn.dialect.name)
    with op.batch_alter_table("audit_entries") as batch:
        batch.drop_column("chain")
    _create_triggers(conn.dialect.name)
