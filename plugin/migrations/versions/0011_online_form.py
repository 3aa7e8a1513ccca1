"""upload_versions: the online form's saves (source ``online``, outcome ``draft``) (issue 20)

A practitioner may complete the decision record in the browser instead of a PDF reader. Each
save is a numbered version like an upload: a draft (``outcome = 'draft'``: kept, checked, never
completing the record) or a submission (``accepted`` or ``incomplete``, as an upload).

Revision ID: 0011_online_form
Revises: 0010_retention
"""

from alembic import op

revision = "0011_online_form"
down_revision = "0010_retention"
branch_labels = None
depends_on = None

OUTCOMES = ("accepted", "incomplete", "rejected")
SOURCES = ("page", "api", "host")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _constraints(outcomes: tuple[str, ...], sources: tuple[str, ...]) -> None:
    # upload_versions is referenced by no other table: SQLite's copy-and-move is safe here
    with op.batch_alter_table("upload_versions") as batch:
        batch.drop_constraint("ck_upload_versions_outcome", type_="check")
        batch.drop_constraint("ck_upload_versions_source", type_="check")
        batch.create_check_constraint("ck_upload_versions_outcome", _in("outcome", outcomes))
        batch.create_check_constraint("ck_upload_versions_source", _in("source", sources))


def upgrade() -> None:
    _constraints((*OUTCOMES, "draft"), (*SOURCES, "online"))


def downgrade() -> None:
    # the online saves are practitioners' work (one may have completed its record): refuse
    # rather than delete them
    kept = op.get_bind().exec_driver_sql(
        "SELECT count(*) FROM upload_versions WHERE outcome = 'draft' OR source = 'online'"
    ).scalar()
    if kept:
        raise RuntimeError(f"{kept} version(s) saved through the online form: the release "
                           "before 0011 cannot hold them, so the database stays at 0011")
    _constraints(OUTCOMES, SOURCES)
