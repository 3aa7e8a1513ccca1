"""Retention (issue 18): a finished record's PDFs and personal fields are deleted once the host
has had it for its tenant's retention_days; the audit skeleton stays; pending follow-up
reminders hold it back; ``sharewise purge --dry-run`` shows what would go; the beat task does
it through a real Celery worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text, update

from sharewise.plugin.cli import main
from sharewise.plugin.db import session_scope
from sharewise.plugin.outbox.models import DELIVERED, Delivery
from sharewise.plugin.records.chain import first_break
from sharewise.plugin.records.models import AuditEntry, Record
from sharewise.plugin.reminders.models import Reminder
from sharewise.plugin.retention import due_for_purge, purge
from sharewise.plugin.tenants import TenantsError, parse_tenants
from tests import polling
from tests.plugin.reminders.test_reminders_cli import env_of
from tests.plugin.uploads.journey import (
    complete_answers,
    create_record,
    filled_pdf,
    path_of,
    record_row,
)

NOW = datetime.now(UTC)


def _finish(app, client, signed_post, sample_event, acknowledged=NOW):
    """A completed record whose post-back the host acknowledged at ``acknowledged``, with no
    reminder still waiting."""
    made = create_record(signed_post, sample_event)
    client.get(path_of(made["form_pdf_url"]))  # stores the prefilled PDF
    pdf = filled_pdf(app, made["record_id"], complete_answers())
    done = client.post(path_of(made["upload_url"]), data=pdf,
                       headers={"Content-Type": "application/pdf", "Accept": "application/json"})
    assert done.get_json()["status"] == "complete"
    record = record_row(app, made["record_id"])
    with session_scope(app) as s:  # what the sender writes when the host answers 2xx
        s.execute(update(Delivery).where(Delivery.record_id == record.id)
                  .values(state=DELIVERED, delivered_at=acknowledged))
    return made, record


def _files(app):
    return sorted(p.name for p in Path(app.config["STORAGE_URL"]).rglob("*.pdf"))


def _no_pending_reminders(app, record):
    with session_scope(app) as s:
        s.execute(update(Reminder).where(Reminder.record_id == record.id,
                                         Reminder.state == "pending").values(state="sent"))


def test_a_finished_record_is_purged_after_its_retention_and_keeps_its_skeleton(
        app, client, signed_post, sample_event):
    made, record = _finish(app, client, signed_post, sample_event)
    _no_pending_reminders(app, record)
    assert len(_files(app)) == 3  # prefill, upload, final
    assert due_for_purge(app, now=NOW + timedelta(days=29)) == []
    [due] = due_for_purge(app, now=NOW + timedelta(days=30, minutes=1))
    assert due.public_id == made["record_id"]

    assert [d.public_id for d in purge(app, now=NOW + timedelta(days=31))] == [due.public_id]
    assert _files(app) == []
    after = record_row(app, made["record_id"])
    assert after.purged_at is not None and after.prefill == {} and after.subject_hash is None
    assert after.practitioner_email is None and after.final_pdf_key is None
    assert after.status == "complete" and after.final_sha256 and after.request_hash
    engine = app.extensions["sharewise.db"]["engine"]
    with engine.connect() as conn:
        assert conn.execute(text('SELECT count(*) FROM upload_versions WHERE "values" IS NOT '
                                 "NULL OR storage_key IS NOT NULL")).scalar() == 0
        assert conn.execute(text("SELECT sha256 FROM upload_versions")).scalar()  # kept
        assert conn.execute(text("SELECT count(*) FROM reminders WHERE address IS NOT NULL")
                            ).scalar() == 0
    with session_scope(app, readonly=True) as s:
        trail = list(s.scalars(select(AuditEntry).where(AuditEntry.record_id == after.id)
                               .order_by(AuditEntry.id)))
        assert trail[-1].event == "purged" and "31 day(s) after" in trail[-1].reason
        assert first_break(trail) is None
        delivery = s.scalar(select(Delivery).where(Delivery.record_id == after.id))
        assert delivery.payload == {}
    page = client.get(path_of(made["form_url"]))
    assert page.status_code == 410 and "content has been deleted" in page.get_data(True)
    assert client.get(path_of(made["form_pdf_url"])).status_code == 410
    status = client.get(path_of(made["status_url"])).get_json()
    assert status["status"] == "complete" and status["purged_at"]
    assert purge(app, now=NOW + timedelta(days=40)) == []  # once


def test_what_holds_a_record_back(app, client, signed_post, sample_event):
    made, record = _finish(app, client, signed_post, sample_event)
    with session_scope(app) as s:  # a review date still to come
        s.add(Reminder(record_id=record.id, step="review", recipient="practitioner",
                       kind="review", address="p@x.example", state="pending", attempts=0,
                       due_at=NOW + timedelta(days=60), created_at=NOW))
    assert due_for_purge(app, now=NOW + timedelta(days=45)) == []
    _no_pending_reminders(app, record)
    assert len(due_for_purge(app, now=NOW + timedelta(days=45))) == 1
    with session_scope(app) as s:  # the host never acknowledged it
        s.execute(update(Delivery).values(state="dead", delivered_at=None))
    assert due_for_purge(app, now=NOW + timedelta(days=400)) == []
    open_one = create_record(signed_post, sample_event)
    assert record_row(app, open_one["record_id"]).purged_at is None


def test_purge_dry_run_then_purge_from_the_command_line(app, app_config, client, signed_post,
                                                        sample_event):
    made, record = _finish(app, client, signed_post, sample_event,
                           acknowledged=NOW - timedelta(days=31))
    _no_pending_reminders(app, record)
    env = env_of(app_config)
    out = CliRunner().invoke(main, ["purge", "--dry-run"], env=env)
    assert out.exit_code == 0, out.output
    assert made["record_id"] in out.output and "1 record(s) would be purged" in out.output
    assert len(_files(app)) == 3
    out = CliRunner().invoke(main, ["purge"], env=env)
    assert "1 record(s) purged" in out.output and _files(app) == []


@pytest.mark.parametrize("bad", ["-1", "true", "\"30\"", "40000"])
def test_bad_retention_is_refused(bad):
    import tomllib

    from sharewise.plugin.signing import generate_secret

    doc = tomllib.loads(f'[tenants.t]\nwebhook_secret = "{generate_secret()}"\n'
                        f"retention_days = {bad}\n")
    with pytest.raises(TenantsError, match="retention_days"):
        parse_tenants(doc)


def test_the_beat_task_purges_through_a_real_worker(app, client, signed_post, sample_event,
                                                    celery_worker):
    from sharewise.plugin.celery import enqueue
    from sharewise.tasks.worker import install

    schedule = install(app).conf.beat_schedule
    assert schedule["retention-purge"]["task"] == "tasks.retention.purge"
    made, record = _finish(app, client, signed_post, sample_event,
                           acknowledged=NOW - timedelta(days=31))
    _no_pending_reminders(app, record)
    enqueue("tasks.retention.purge", app=app)
    polling.wait_until(lambda: record_row(app, made["record_id"]).purged_at is not None,
                       timeout=60)
    assert _files(app) == []
    with session_scope(app, readonly=True) as s:
        assert s.scalar(select(Record.purged_at).where(Record.id == record.id))


def test_nothing_comes_back_after_a_purge(app, client, signed_post, sample_event, tenant):
    """A key rotation leaves a purged record alone, and a host's late upload of its form is
    refused without keeping the file."""
    import base64

    from sharewise.plugin.rotation import rotate

    made, record = _finish(app, client, signed_post, sample_event)
    _no_pending_reminders(app, record)
    pdf = filled_pdf(app, made["record_id"], complete_answers())
    assert purge(app, now=NOW + timedelta(days=31))
    with app.app_context():
        rotate(app)
    assert _files(app) == [] and record_row(app, made["record_id"]).prefill == {}
    late = {"type": "share.form_submitted", "timestamp": datetime.now(UTC).isoformat(),
            "data": {"request_id": record_row(app, made["record_id"]).request_id,
                     "pdf_base64": base64.b64encode(pdf).decode()}}
    resp = signed_post(tenant, late)
    assert resp.status_code == 410 and resp.get_json()["type"].endswith("record-purged")
    assert _files(app) == []
