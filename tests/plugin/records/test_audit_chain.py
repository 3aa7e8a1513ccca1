"""The audit trail's hash chain (issue 18): every entry linked to the one before it, a trail
altered below the model layer found by ``sharewise audit verify``, appends from several
transactions at once still one chain, and the entries of older databases chained by the
migration."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import select

from sharewise.plugin.cli import main
from sharewise.plugin.db import make_engine, session_scope, upgrade
from sharewise.plugin.records import audit, services
from sharewise.plugin.records.chain import first_break, link, link_of
from sharewise.plugin.records.models import AuditEntry
from tests.plugin.reminders.test_reminders_cli import env_of


@pytest.fixture
def created(tenant, signed_post, sample_event):
    resp = signed_post(tenant, sample_event(request_id="REQ-CHAIN"))
    assert resp.status_code == 201
    return resp.get_json()["record_id"]


def _trail(app, public_id):
    with session_scope(app, readonly=True) as s:
        record = services.get_by_public_id(s, public_id)
        return list(s.scalars(select(AuditEntry).where(AuditEntry.record_id == record.id)
                              .order_by(AuditEntry.id)))


def _grow(app, public_id, n=3):
    with session_scope(app) as s:  # several entries in one flush, then one more later
        record = services.get_by_public_id(s, public_id)
        audit.transition(s, record, "incomplete", "practitioner", "upload 1")
        for i in range(n):
            audit.audit(s, record, "sharewise", "reminder_sent", f"reminder {i}")
    with session_scope(app) as s:
        audit.audit(s, services.get_by_public_id(s, public_id), "practitioner", "viewed")


def _tamper(app, sql):
    """Run ``sql`` with the append-only triggers lifted (what a person with database access
    could do): for this connection only on PostgreSQL, whose test database the other tests
    share (and reset before the connection goes back to the pool); SQLite's file is this
    test's own."""
    engine = app.extensions["sharewise.db"]["engine"]
    with engine.connect() as conn:
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            conn.exec_driver_sql("SET session_replication_role = replica")
        else:
            for action in ("update", "delete"):
                conn.exec_driver_sql(f"DROP TRIGGER audit_entries_no_{action}")
        conn.exec_driver_sql(sql)
        if postgres:
            conn.exec_driver_sql("RESET session_replication_role")
        conn.commit()


def test_each_entry_is_linked_to_the_one_before(app, app_config, created):
    _grow(app, created)
    trail = _trail(app, created)
    assert [e.event for e in trail] == ["created", "status_changed", "reminder_sent",
                                        "reminder_sent", "reminder_sent", "viewed"]
    previous = None
    for entry in trail:
        assert entry.chain == link_of(previous, entry) and len(entry.chain) == 64
        previous = entry.chain
    assert first_break(trail) is None
    out = CliRunner().invoke(main, ["audit", "verify", created], env=env_of(app_config))
    assert out.exit_code == 0, out.output
    assert "1 audit trail(s), 6 entries: every chain holds" in out.output


def test_the_link_covers_every_part_of_the_entry():
    at = datetime(2026, 5, 26, 9, 0, tzinfo=UTC)
    base = ("prev", 7, at, "host", "created", None, "awaiting_completion", None)
    seen = {link(*base)}
    for i, other in enumerate(["prev2", 8, at.replace(microsecond=1), "practitioner",
                               "cancelled", "incomplete", "complete", "why"]):
        changed = list(base)
        changed[i] = other
        seen.add(link(*changed))
    assert len(seen) == 9


@pytest.mark.parametrize("tamper,position", [
    ("UPDATE audit_entries SET reason = 'nothing to see' WHERE id = {third}", 3),
    ("UPDATE audit_entries SET at = '2020-01-01 00:00:00' WHERE id = {third}", 3),
    ("DELETE FROM audit_entries WHERE id = {third}", 3),  # the next one no longer follows
    ("UPDATE audit_entries SET chain = NULL WHERE id = {first}", 1),
])
def test_an_altered_trail_is_found_at_its_first_bad_entry(app, app_config, created, tamper,
                                                          position):
    _grow(app, created)
    trail = _trail(app, created)
    _tamper(app, tamper.format(first=trail[0].id, third=trail[2].id))
    out = CliRunner().invoke(main, ["audit", "verify"], env=env_of(app_config))
    assert out.exit_code == 1
    assert f"{created}: BROKEN at entry {position} of " in out.output
    assert "1 broken" in out.output


def test_verify_an_unknown_record(app, app_config):
    out = CliRunner().invoke(main, ["audit", "verify", "SR-AAAAAAAAAAAAAAAA"],
                             env=env_of(app_config))
    assert out.exit_code == 2 and "no record SR-AAAAAAAAAAAAAAAA" in out.output


def test_appends_from_several_transactions_at_once_stay_one_chain(app, created):
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def append(n: int) -> None:
        try:
            barrier.wait()
            for i in range(10):
                with session_scope(app) as s:
                    record = services.get_by_public_id(s, created)
                    audit.audit(s, record, "sharewise", "reminder_sent", f"{n}-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    trail = _trail(app, created)
    assert len(trail) == 41 and first_break(trail) is None


def test_the_migration_chains_older_entries(backend, tmp_path):
    if backend != "sqlite":
        pytest.skip("the migration's arithmetic is the same on both; SQLite is enough")
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0005_schema_version")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO records (id, public_id, tenant, request_id, status, urgency, "
            "case_reference, practitioner_ref, practitioner_email, manager_email, "
            "requested_at, due_at, created_at, updated_at, prefill, prefill_hash, "
            "prefill_version, prefill_pdf_key, missing) VALUES (1, 'SR-OLD', 't', 'R', "
            "'incomplete', 'routine', 'C', 'p', 'p@x', 'm@x', '2026-01-01', '2026-01-02', "
            "'2026-01-01', '2026-01-01', '{}', 'h', 1, 'k', '[]')")
        for i, (event, to) in enumerate([("created", "awaiting_completion"),
                                         ("status_changed", "incomplete"),
                                         ("upload_incomplete", "incomplete")]):
            conn.execute(sa.text(
                "INSERT INTO audit_entries (record_id, at, actor, event, to_status, reason) "
                "VALUES (1, :at, 'host', :event, :to, :why)"),
                {"at": f"2026-01-01 10:0{i}:00.12345{i}", "event": event, "to": to,
                 "why": "naïve café"})
    upgrade(engine)
    Session = sa.orm.sessionmaker(engine)
    with Session() as s:
        trail = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        assert len(trail) == 3 and all(e.chain for e in trail)
        assert first_break(trail) is None
    with pytest.raises(sa.exc.DatabaseError), engine.begin() as conn:  # still append-only
        conn.exec_driver_sql("UPDATE audit_entries SET reason = 'x'")
    engine.dispose()
