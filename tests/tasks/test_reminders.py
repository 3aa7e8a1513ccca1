# ruff: noqa: F811  (fixtures imported from tests/plugin/reminders/conftest.py are parameters here)
"""Reminders through a REAL Celery worker and a REAL SMTP server: exactly once, under failures.

* two scans at once (two beat processes): each reminder arrives once;
* the SMTP server down, then back (during the retries, and after they ran out): once each;
* the worker SIGKILLed mid-send and restarted: once (see the test's comment for what "mid-send"
  means and where at-most-once ends and at-least-once begins).

SQLite + the embedded filesystem transport always; PostgreSQL + Redis with
``SHAREWISE_TEST_SERVICES=1`` (the ``backend`` parameter).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sharewise.plugin import settings
from sharewise.plugin.celery import enqueue
from sharewise.plugin.db import session_scope
from sharewise.plugin.reminders.models import Reminder
from sharewise.plugin.reminders.services import run_scan
from tests import polling
from tests.plugin.reminders.conftest import (  # noqa: F401
    app_config,
    digests_on,
    make_record,
    smtp,
)

REPO = Path(__file__).resolve().parents[2]


wait_until = partial(polling.wait_until, timeout=60.0, interval=0.05)


def rows(app: Any) -> list[Reminder]:
    with session_scope(app) as s:
        return list(s.scalars(select(Reminder).order_by(Reminder.id)))


def due_rows(app: Any) -> list[Reminder]:
    return [r for r in rows(app) if r.step == "0"]


def settle(smtp_sink: Any, expected: int, grace: float = 0.6) -> None:
    """Wait for ``expected`` messages, then make sure no extra one follows shortly after."""
    smtp_sink.wait_for(expected, timeout=60)
    time.sleep(grace)  # an absence cannot be awaited; a short grace catches a late duplicate
    assert len(smtp_sink.received) == expected


def test_beat_schedule_has_the_scan(app):
    from sharewise.tasks.worker import install

    schedule = install(app).conf.beat_schedule
    assert schedule["reminders-scan"]["task"] == "tasks.reminders.scan"
    assert schedule["reminders-scan"]["schedule"] == 60.0  # REMINDER_SCAN_INTERVAL


def test_two_scans_at_once_send_each_reminder_once(app, smtp, make_record, celery_worker):
    now = datetime.now(UTC)
    for i in range(6):
        make_record(due_at=now - timedelta(minutes=1 + i), practitioner=f"p{i}@team.example")
    # Two beat processes fire at the same moment, and an operator runs a scan by hand too.
    enqueue("tasks.reminders.scan", app=app)
    enqueue("tasks.reminders.scan", app=app)
    barrier = threading.Barrier(2)

    def by_hand():
        barrier.wait()
        run_scan(app)

    threads = [threading.Thread(target=by_hand) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    settle(smtp, 6)
    assert sorted(m.rcpt_tos[0] for m in smtp.received) == [f"p{i}@team.example" for i in range(6)]
    assert len({m.message_id for m in smtp.received}) == 6
    wait_until(lambda: all(r.state == "sent" for r in due_rows(app)))
    assert {r.state for r in rows(app) if r.step == "-2h"} == {"skipped"}


def test_smtp_down_then_back_delivers_each_once(app, smtp, make_record, celery_worker):
    now = datetime.now(UTC)
    for i in range(3):
        make_record(due_at=now - timedelta(minutes=1), practitioner=f"p{i}@team.example")
    smtp.stop()
    run_scan(app)
    # The worker retries with backoff (REMINDER_MAX_RETRIES=3), then gives the claims back.
    wait_until(lambda: all(r.attempts == 4 and r.claim is None for r in due_rows(app)))
    assert all(r.state == "pending" and "connect" in r.last_error for r in due_rows(app))
    # The next scan re-enqueues them; this time the server comes back while they are retrying.
    settings.update(app, reminder_max_retries=1000)
    assert len(run_scan(app).reminders) == 3
    wait_until(lambda: all(r.attempts >= 6 for r in due_rows(app)))
    assert len(smtp.received) == 0
    smtp.start()
    settle(smtp, 3)
    wait_until(lambda: all(r.state == "sent" for r in due_rows(app)))
    # Later scans find nothing more to do.
    assert run_scan(app).reminders == []
    settle(smtp, 3, grace=0.3)


def test_digests_through_the_worker_once_per_manager(digests_on, app, smtp, make_record,
                                                     celery_worker):
    from datetime import datetime as dt
    from zoneinfo import ZoneInfo

    from sharewise.plugin.reminders.models import Digest
    from sharewise.plugin.reminders.policy import shift_working_days

    london = ZoneInfo("Europe/London")
    real = datetime.now(UTC)
    # 09:00 on the next working day: a digest is due then, whatever day the suite runs.
    day = shift_working_days(real.astimezone(london).date(), 1)
    now = dt(day.year, day.month, day.day, 9, 0, tzinfo=london).astimezone(UTC)
    for i, manager in enumerate(["a@team.example", "a@team.example", "b@team.example"]):
        make_record(due_at=real - timedelta(hours=1 + i), manager=manager,
                    case_reference=f"C-{i}")
    with session_scope(app) as s:  # only the digests in this test
        s.query(Reminder).update({"state": "skipped"})
    first = run_scan(app, now=now)
    second = run_scan(app, now=now + timedelta(minutes=1))  # the next beat tick
    assert first.digests_created == 2 and len(first.digests) == 2
    assert second.digests_created == 0 and second.digests == []
    mails = {m.rcpt_tos[0]: m for m in smtp.wait_for(2, timeout=60)}
    settle(smtp, 2)
    assert "C-0" in mails["a@team.example"].part("plain")
    assert "C-1" in mails["a@team.example"].part("plain")
    assert "C-2" not in mails["a@team.example"].part("plain")
    assert "C-2" in mails["b@team.example"].part("plain")
    with session_scope(app) as s:
        assert sorted((d.address, d.state, d.records) for d in s.query(Digest)) == [
            ("a@team.example", "sent", 2), ("b@team.example", "sent", 1)]


# ---------------------------------------------------------------------------- SIGKILL


class WorkerProcess:
    """The Celery worker ``sharewise worker`` runs, in its own process group."""

    def __init__(self, config: dict[str, Any], log_path: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
        for key, value in config.items():
            if key != "TESTING":
                text = json.dumps(value) if isinstance(value, dict | list | bool) else str(value)
                self.env[f"SHAREWISE_{key}"] = text
        self.env["SHAREWISE_MIGRATE_ON_START"] = "false"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "sharewise.tasks.worker", "worker",
                 "--pool", "solo", "--loglevel", "INFO", "--without-gossip",
                 "--without-mingle", "--without-heartbeat",
                 "-n", f"reminders-test-{uuid.uuid4().hex[:6]}@%h"],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def short_leases(app_config):  # noqa: F811
    app_config.update(REMINDER_LEASE=2, REMINDER_SENDING_LEASE=2)
    return app_config


@pytest.fixture
def workers(short_leases, tmp_path):
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        w = WorkerProcess(short_leases, tmp_path / f"worker-{len(started)}.log").start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()


@pytest.mark.parametrize("stage,arrivals", [("before-acceptance", 1), ("after-acceptance", 2)])
def test_worker_killed_mid_send_then_restarted(stage, arrivals, workers, app, smtp,
                                               make_record):
    """SIGKILL the worker process while it is in the middle of an SMTP transaction.

    "Mid-send" means: the worker has claimed the reminder, marked it as being sent and opened an
    SMTP session with the server, and is waiting for the server's answer when it is killed.

    * ``before-acceptance``: killed while the server holds its reply to RCPT TO, i.e. before the
      message was transmitted. SMTP hands responsibility to the server only once it has the
      whole message, so nothing was delivered; after the restart and the next scan the
      reminder arrives exactly ONCE. This is the at-most-once side: every crash before the
      server's acceptance is retried and cannot produce a second copy.
    * ``after-acceptance``: killed after the server accepted (queued) the message but before
      the worker committed "sent". The database cannot know the message left, so the reminder
      is sent again: it arrives TWICE, with the SAME Message-ID (derived from the reminder's
      unique key), which makes the duplicate recognisable and lets mail systems drop it. That
      window (between the server's 250 and our commit) is the only at-least-once one; no design
      can close it without the mail server taking part in our transaction.
    """
    rid = make_record(due_at=datetime.now(UTC) - timedelta(minutes=1))
    if stage == "before-acceptance":
        smtp.hold_rcpt()
        reached = smtp.rcpt_reached
    else:
        smtp.hold_after_accept()
        reached = smtp.data_reached
    worker = workers()
    run_scan(app)
    assert reached.wait(60), worker.log()[-3000:]
    worker.kill()
    smtp.release()
    [row] = [r for r in rows(app) if r.record_id == rid and r.step == "0"]
    assert row.state == "pending" and row.attempts == 1 and row.sending_until is not None
    assert len(smtp.received) == arrivals - 1

    workers()  # restarted
    # The broker may have lost the message with the worker (the filesystem transport does); the
    # database has not: once the lease runs out, the scan enqueues the reminder again.
    wait_until(lambda: run_scan(app).reminders, timeout=30, interval=0.5)
    got = smtp.wait_for(arrivals, timeout=60)
    wait_until(lambda: [r for r in rows(app) if r.id == row.id][0].state == "sent")
    settle(smtp, arrivals)
    assert len({m.message_id for m in got}) == 1
    [done] = [r for r in rows(app) if r.id == row.id]
    assert done.attempts == 2 and done.message_id == got[0].message_id


def test_backoff_grows_is_capped_and_jittered():
    from sharewise.tasks.reminders import backoff

    for n in range(12):
        ceiling = min(60.0, 2.0 * 2 ** n)
        delays = {backoff(n, 2.0, 60.0) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jitter: not all the same
