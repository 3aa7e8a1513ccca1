"""Alembic environment: target metadata is ``plugin.db.Base`` with every model (plugin.models).

Run through :func:`plugin.db.upgrade` (``sharewise db upgrade`` and every process start), which
passes an open connection in ``config.attributes["connection"]``. Without one (plain ``alembic``
use), the URL comes from ``SHAREWISE_DATABASE_URL``.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context
from sqlalchemy import create_engine

import sharewise.plugin.models  # noqa: F401  (registers every table on Base.metadata)
from sharewise.plugin.db import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def _render_item(type_, obj, autogen_context):
    """Render project column types as plain SQLAlchemy types (revisions stay self-contained)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, sa.JSON):
        return "JSON_TYPE"
    return False


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("SHAREWISE_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; use `sharewise db upgrade`")
run_migrations_online()
