"""Intake through the writer process (plugin.records.intakewriter, started the way a web
process starts it): the same answers and rows as in-process intake, duplicates, a killed
writer, a writer lost after it committed, timeouts, and when no writer is used."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time

import pytest
from sqlalchemy import func, select

from sharewise.plugin.db import database_file, engine_for
from sharewise.plugin.demo import signed_request
from sharewise.plugin.groupcommit import GroupCommitter
from sharewise.plugin.records.models import AuditEntry, Record, WebhookEvent
from sharewise.plugin.records.services import (
    WIRE_VERSION,
    IntakeRows,
    intake_committer,
    use_writer_process,
    write_intakes,
)
from sharewise.plugin.reminders.models import Reminder
from sharewise.plugin.writerprocess import SUPPORTED, WriterClient, WriterServer, address_for
from tests.concurrent import post_all_at_once
from tests.polling import wait_until

pytestmark = pytest.mark.skipif(not SUPPORTED, reason="the writer process is Linux only")


@pytest.fixture
def backend() -> str:
    """The writer process serves a SQLite database file: these tests run on SQLite only
    (whether one is used on PostgreSQL: tests/plugin/records/test_records.py)."""
    return "sqlite"


def _counts(db_session):
    db_session.rollback()
    return tuple(db_session.scalar(select(func.count()).select_from(m))
                 for m in (Record, AuditEntry, Reminder, WebhookEvent))


def _address(app):
    return address_for(database_file(app.config["DATABASE_URL"]), WIRE_VERSION)


def _writer_ready(app):
    try:
        WriterClient(_address(app))._connect().close()
        return True
    except Exception:  # noqa: BLE001 - not yet
        return False


@pytest.fixture
def writer(app, backend):
    """The app's intakes go to a real writer process, run by a supervisor in this process."""
    supervisor = use_writer_process(app)
    assert supervisor is not None
    wait_until(lambda: _writer_ready(app), timeout=30)
    yield supervisor
    supervisor.stop()
    assert supervisor.process.poll() is not None  # stopped with its supervisor


@contextlib.contextmanager
def _serving(server):
    """``server`` (a WriterServer in this process) serving in a thread for the block."""
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping = True
        thread.join(10)
        server.close()


def test_intakes_are_committed_by_the_writer_process(app, writer, tenant, sample_event,
                                                     db_session):
    deliveries = [signed_request(tenant.webhook_secrets[0], sample_event(request_id=f"W-{i}"))
                  for i in range(8)]
    results = post_all_at_once(app, tenant, deliveries)
    assert [s for s, _ in results] == [201] * 8, results
    assert intake_committer(app).stats == [0, 0]  # nothing was written by this process
    assert _counts(db_session) == (8, 8, 32, 8)
    records = {r.public_id: r for r in db_session.scalars(select(Record))}
    for _, body in results:
        record = records[body["record_id"]]
        assert record.status == "awaiting_completion"
        assert record.prefill["subject_name"] == "Zoë Ångström-Nørgaard"
        assert len(record.prefill_hash) == 64
    # the answer of a repeat is rebuilt from the row the writer stored
    again = app.test_client().post(f"/webhooks/{tenant.slug}", data=deliveries[3][0],
                                   headers=deliveries[3][1])
    assert again.status_code == 200
    assert again.get_json() == results[3][1]


def test_concurrent_duplicates_through_the_writer(app, writer, tenant, sample_event,
                                                  db_session):
    delivery = signed_request(tenant.webhook_secrets[0], sample_event(), "msg_dup_w")
    results = post_all_at_once(app, tenant, [delivery] * 8)
    assert sorted(s for s, _ in results) == [200] * 7 + [201], results
    assert len({b["record_id"] for _, b in results}) == 1
    assert _counts(db_session) == (1, 1, 4, 1)
    assert intake_committer(app).stats == [0, 0]


def test_a_killed_writer_loses_nothing_and_is_started_again(app, writer, tenant, signed_post,
                                                            sample_event, db_session):
    assert signed_post(tenant, sample_event(request_id="K-1")).status_code == 201
    os.kill(writer.process.pid, signal.SIGKILL)
    # while it is down this process writes for itself
    resp = signed_post(tenant, sample_event(request_id="K-2"))
    assert resp.status_code == 201, resp.get_json()
    wait_until(lambda: writer.starts == 2 and _writer_ready(app), timeout=30)
    before = list(intake_committer(app).stats)
    time.sleep(1.1)  # the client tries a refused address again after a second
    assert signed_post(tenant, sample_event(request_id="K-3")).status_code == 201
    assert intake_committer(app).stats == before  # the new writer wrote K-3
    assert _counts(db_session) == (3, 3, 12, 3)


class _CommitsThenDies(WriterServer):
    """A writer that commits, then loses its connections before answering them."""

    def _reply(self, conn, message):
        if message[1] == "ok":
            self._close(conn)
        else:
            super()._reply(conn, message)


def test_a_writer_lost_after_its_commit_still_answers_201(app, backend, tenant, signed_post,
                                                          sample_event, db_session):
    committer = GroupCommitter(engine_for(app), write_intakes)
    with _serving(_CommitsThenDies(committer, _address(app), IntakeRows.from_wire)):
        assert use_writer_process(app, start=False) is None  # the client only
        resp = signed_post(tenant, sample_event(request_id="LOST-1"), webhook_id="msg_lost")
    assert committer.stats == [1, 1]  # the writer did commit it
    # its own record, found by this process on the unique constraint: the first answer
    assert resp.status_code == 201, resp.get_json()
    record = db_session.scalar(select(Record))
    assert resp.get_json()["record_id"] == record.public_id
    assert _counts(db_session) == (1, 1, 4, 1)


def test_not_taken_in_time_through_the_writer_is_503_and_nothing_stored(
        app, writer, tenant, signed_post, sample_event, db_session, monkeypatch):
    app.config["INTAKE_TIMEOUT"] = 0.5
    sent = threading.Event()
    real_submit = WriterClient.submit

    def submit(self, item, timeout):
        sent.set()
        return real_submit(self, item, timeout)

    monkeypatch.setattr(WriterClient, "submit", submit)
    outcome = {}

    def post():
        outcome["resp"] = signed_post(tenant, sample_event(request_id="SLOW-1"))

    with engine_for(app).begin():  # the write lock: the writer waits for it
        t = threading.Thread(target=post)
        t.start()
        assert sent.wait(30)
        time.sleep(1.0)  # past the intake's deadline, the lock still held
    t.join(30)
    resp = outcome["resp"]
    assert resp.status_code == 503, resp.get_json()
    assert resp.headers["Retry-After"] == "5"
    assert intake_committer(app).stats == [0, 0]
    assert _counts(db_session) == (0, 0, 0, 0)


def test_a_failed_writer_batch_is_written_by_the_web_process(app, tenant, signed_post,
                                                            sample_event, db_session):
    def broken(conn, items):
        raise OSError("disk trouble in the writer")

    committer = GroupCommitter(engine_for(app), broken)
    with _serving(WriterServer(committer, _address(app), IntakeRows.from_wire)):
        use_writer_process(app, start=False)
        resp = signed_post(tenant, sample_event(request_id="FAILED-1"))
    assert resp.status_code == 201, resp.get_json()
    assert intake_committer(app).stats == [1, 1]  # written here
    assert _counts(db_session) == (1, 1, 4, 1)


def _captured_rows(app, tenant, signed_post, sample_event, monkeypatch):
    from sharewise.plugin.records import services

    captured = []
    real = services._write_intake

    def capture(app_, rows, timeout):
        captured.append(rows)
        return real(app_, rows, timeout)

    monkeypatch.setattr(services, "_write_intake", capture)
    assert signed_post(tenant, sample_event()).status_code == 201
    return captured[0]


def test_rows_survive_the_trip_to_the_writer_unchanged(app, tenant, signed_post, sample_event,
                                                       monkeypatch):
    rows = _captured_rows(app, tenant, signed_post, sample_event, monkeypatch)
    assert IntakeRows.from_wire(json.loads(json.dumps(rows.to_wire()))) == rows


def test_rows_of_another_version_are_refused(app, tenant, signed_post, sample_event,
                                             monkeypatch):
    wire = json.loads(json.dumps(
        _captured_rows(app, tenant, signed_post, sample_event, monkeypatch).to_wire()))
    for broken in (wire[:6], {"rows": wire}, [wire[0], ["t"], *wire[2:]],
                   [*wire[:3], wire[3][:-1], *wire[4:]],  # a record column fewer
                   [*wire[:5], [[*wire[5][0], "extra"]], wire[6]],  # a reminder column more
                   [*wire[:5], "rows", wire[6]]):
        with pytest.raises(ValueError):
            IntakeRows.from_wire(broken)


class _HoldsTheLockThenCommits(WriterServer):
    """A writer that takes the item, stays in its transaction (holding the write lock) past
    the sender's patience, then commits and goes away without answering."""

    hold = 2.0

    def _write(self):
        taken = []

        def take():
            self._poll(0)
            taken.extend(self._pending)
            self._pending.clear()
            time.sleep(self.hold)  # stuck, with the write lock held
            return [entry.item for entry in taken]

        self.committer.run_batch(take)
        for entry in taken:
            self._close(entry.conn)
        self.stopping = True


def test_a_writer_stuck_past_the_timeout_that_commits_still_gives_201(
        app, backend, tenant, signed_post, sample_event, db_session, monkeypatch):
    """The sender gives up on the writer (deadline + grace), its own write times out behind
    the writer's lock, and the writer then commits: found under the intake's own id."""
    import sharewise.plugin.writerprocess as wp

    monkeypatch.setattr(wp, "GRACE", 0.2)
    app.config["INTAKE_TIMEOUT"] = 0.5
    committer = GroupCommitter(engine_for(app), write_intakes)
    with _serving(_HoldsTheLockThenCommits(committer, _address(app), IntakeRows.from_wire)):
        use_writer_process(app, start=False)
        resp = signed_post(tenant, sample_event(request_id="STUCK-1"))
    assert committer.stats == [1, 1]
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["record_id"] == db_session.scalar(select(Record.public_id))
    assert _counts(db_session) == (1, 1, 4, 1)
