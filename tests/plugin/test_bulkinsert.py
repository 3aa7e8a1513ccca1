"""plugin.bulkinsert: values converted like the ORM's, many rows per statement, conflicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from sharewise.plugin.bulkinsert import BulkInsert
from sharewise.plugin.db import engine_for, session_scope
from sharewise.plugin.records.models import AuditEntry, Record, WebhookEvent

EVENT_COLUMNS = ("tenant", "webhook_id", "event_type", "record_id", "received_at",
                 "response_status", "response_body")


def _event(i: int, at: datetime) -> dict:
    return {"tenant": "t", "webhook_id": f"w{i}", "event_type": "share.requested",
            "record_id": None, "received_at": at, "response_status": 201,
            "response_body": {"n": i, "name": "Zoë Ελένη", "list": [1, None]}}


def test_rows_read_back_as_the_orm_writes_them(app):
    events = BulkInsert(WebhookEvent.__table__, EVENT_COLUMNS, returning=("id", "webhook_id"))
    engine = engine_for(app)
    at = datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=UTC)
    rows = [events.prepare(engine.dialect, _event(i, at + timedelta(hours=i))) for i in range(7)]
    with engine.begin() as conn:
        returned = events.execute(conn, rows)
    assert sorted(w for _, w in returned) == sorted(f"w{i}" for i in range(7))
    with session_scope(app) as session:
        got = {e.webhook_id: e for e in session.scalars(select(WebhookEvent))}
        for i in range(7):
            e = got[f"w{i}"]
            assert e.received_at == at + timedelta(hours=i)
            assert e.received_at.tzinfo is not None
            assert e.response_body == {"n": i, "name": "Zoë Ελένη", "list": [1, None]}
            assert e.record_id is None


def test_many_rows_are_split_into_statements_of_max_rows(app):
    events = BulkInsert(WebhookEvent.__table__, EVENT_COLUMNS, max_rows=3)
    engine = engine_for(app)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        events.execute(conn, [events.prepare(engine.dialect, _event(i, at)) for i in range(8)])
    with session_scope(app, readonly=True) as session:
        assert len(session.scalars(select(WebhookEvent.id)).all()) == 8
    assert events.sql(engine.dialect, 3).count("), (") == 2


def test_a_unique_conflict_raises_unless_ignored(app):
    engine = engine_for(app)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    plain = BulkInsert(WebhookEvent.__table__, EVENT_COLUMNS)
    ignoring = BulkInsert(WebhookEvent.__table__, EVENT_COLUMNS, ignore_conflicts=True)
    with engine.begin() as conn:
        plain.execute(conn, [plain.prepare(engine.dialect, _event(1, at))])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        plain.execute(conn, [plain.prepare(engine.dialect, _event(1, at)),
                             plain.prepare(engine.dialect, _event(2, at))])
    with engine.begin() as conn:  # the conflicting row is skipped, the other one kept
        ignoring.execute(conn, [ignoring.prepare(engine.dialect, _event(1, at)),
                                ignoring.prepare(engine.dialect, _event(2, at))])
    with session_scope(app, readonly=True) as session:
        assert sorted(session.scalars(select(WebhookEvent.webhook_id))) == ["w1", "w2"]


def test_columns_with_defaults_must_be_given():
    with pytest.raises(ValueError, match="received_at"):
        BulkInsert(WebhookEvent.__table__, ("tenant", "webhook_id", "event_type",
                                            "response_status", "response_body"))
    with pytest.raises(ValueError, match="at"):
        BulkInsert(AuditEntry.__table__, ("record_id", "actor", "event"))
    BulkInsert(Record.__table__, ("public_id", "tenant", "request_id", "status", "urgency",
                                  "case_reference", "created_at", "updated_at", "prefill",
                                  "prefill_hash", "prefill_version", "missing"))


def test_prepared_values_are_in_column_order_and_converted_where_the_type_says(app):
    """Only the columns with a bind processor are converted, each in its place; a table of
    one column gives a one-value row; a missing column is a ``KeyError``."""
    dialect = engine_for(app).dialect
    at = datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=UTC)
    reordered = ("response_body", "tenant", "received_at", "webhook_id", "event_type",
                 "record_id", "response_status")
    events = BulkInsert(WebhookEvent.__table__, reordered)
    got = events.prepare(dialect, _event(3, at))
    orm = {c.name: c.type.dialect_impl(dialect).bind_processor(dialect)
           for c in WebhookEvent.__table__.columns}
    expected = tuple(v if orm[c] is None else orm[c](v)
                     for c, v in ((c, _event(3, at)[c]) for c in reordered))

    def plain(row):  # psycopg wraps JSON values in objects that do not compare by value
        return tuple(getattr(v, "obj", v) for v in row)

    assert plain(got) == plain(expected)
    assert got[1] == "t" and got[3] == "w3"
    if dialect.name == "sqlite":  # JSON and dates as the text SQLite stores
        assert isinstance(got[0], str) and isinstance(got[2], str)
    import sqlalchemy as sa

    one = sa.Table("one", sa.MetaData(), sa.Column("x", sa.String), sa.Column("y", sa.JSON))
    assert BulkInsert(one, ("x",)).prepare(dialect, {"x": "w"}) == ("w",)
    assert plain(BulkInsert(one, ("y",)).prepare(dialect, {"y": [1]})) in (("[1]",), ([1],))
    with pytest.raises(KeyError):
        events.prepare(dialect, {"tenant": "t"})
