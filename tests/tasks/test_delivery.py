"""The delivery tasks under crashes: worker SIGKILL, broker message loss, database restart.

These run the worker as a real separate process (``sharewise worker``, exactly
what ``sharewise worker`` runs), configured through ``SHAREWISE_*`` variables like production.
The host simulator kills that process at the worst moment (after it stored the post, before the
worker could mark the delivery delivered). The schedule, lease and re-enqueue delay are shrunk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from sharewise.plugin.celery import enqueue
from sharewise.plugin.db import engine_for, session_scope, utcnow
from sharewise.plugin.outbox.models import DELIVERED, PENDING, SENDING
from sharewise.plugin.outbox.services import build_record_overdue, enqueue_event
from sharewise.plugin.records.models import Record
from tests import polling
from tests.plugin.outbox.conftest import (  # noqa: F401
    app_config,
    host,
    load_delivery,
    make_record,
    smtp,
)

REPO = Path(__file__).resolve().parents[2]


wait_until = partial(polling.wait_until, timeout=20.0, interval=0.05)


load = load_delivery


def overdue(app: Any, record: Record, step: str) -> str:
    with app.app_context(), session_scope(app) as s:
        r = s.get(Record, record.id)
        return enqueue_event(
            s, tenant=r.tenant, record=r, event_type="share.record_overdue",
            data=build_record_overdue(r, escalated_to="manager"), dedupe_key=step,
        ).public_id


class WorkerProcess:
    """``sharewise worker``'s Celery in its own process group, configured by environment."""

    def __init__(self, config: dict[str, Any], log_path: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
        for key, value in config.items():
            if key == "TESTING":
                continue
            text = json.dumps(value) if isinstance(value, dict | list | bool) else str(value)
            self.env[f"SHAREWISE_{key}"] = text
        self.env["SHAREWISE_MIGRATE_ON_START"] = "false"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "sharewise.tasks.worker", "worker",
             "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"delivery-test-{uuid.uuid4().hex[:6]}@%h"],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def workers(app_config: dict[str, Any], tmp_path: Path) -> Any:  # noqa: F811
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        w = WorkerProcess(app_config, tmp_path / f"worker-{len(started)}.log").start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()  # the test is over: no need for a warm shutdown


def drop_queued_messages(app: Any) -> int:
    """Make the broker lose every queued message (the embedded broker's rows, or the Redis list)."""
    url = app.config["BROKER_URL"]
    if url.startswith("sqla+sqlite:///"):
        import sqlite3

        with sqlite3.connect(url[len("sqla+sqlite:///"):], timeout=30) as db:
            return db.execute("DELETE FROM kombu_message WHERE visible = 1").rowcount
    import redis

    prefix = app.config["BROKER_TRANSPORT_OPTIONS"].get("global_keyprefix", "")
    client = redis.Redis.from_url(url)
    try:
        return int(client.delete(f"{prefix}celery"))
    finally:
        client.close()


def run_sweep(app: Any) -> None:
    """Hand the sweep task to the broker, as beat would."""
    with app.app_context():
        enqueue("tasks.delivery.sweep")


def test_delivery_sweep_is_in_the_beat_schedule(app):
    from sharewise.tasks.worker import install

    schedule = install(app).conf.beat_schedule
    assert schedule["delivery"]["task"] == "tasks.delivery.sweep"
    assert schedule["delivery"]["schedule"] == 30.0


def test_worker_killed_after_the_host_stored_the_post_resends_same_id(app, host, make_record,  # noqa: F811
                                                                     workers):
    record = make_record()
    worker = workers()
    killed: list[str] = []

    def kill_worker(received: Any, body: dict) -> None:
        if not killed:
            killed.append(received.webhook_id)
            worker.kill()

    host.on_receipt = kill_worker
    wid = overdue(app, record, "+1wd")
    assert host.wait_for_records(1, timeout=30), worker.log()
    assert killed == [wid]
    # the host has it, but the worker died before it could write that down
    d, attempts = load(app, wid)
    assert d.state == SENDING and d.attempts == 1
    assert [(a.number, a.verdict) for a in attempts] == [(1, None)]

    workers()  # a new worker; the broker's message died with the old one
    wait_until(lambda: load(app, wid)[0].lease_until <= utcnow(), timeout=10)
    run_sweep(app)
    wait_until(lambda: load(app, wid)[0].state == DELIVERED, timeout=30)
    d, attempts = load(app, wid)
    assert [(a.number, a.verdict) for a in attempts] == [(1, "interrupted"), (2, "success")]
    posts = host.requests_for(wid)
    assert len(posts) == 2 and not posts[0].duplicate and posts[1].duplicate
    assert list(host.records) == [wid]


def test_broker_loses_messages_and_worker_restarts_nothing_is_lost(app, host, make_record,  # noqa: F811
                                                                  workers):
    """The worker crashes; while it is down the broker loses one message and keeps another."""
    record = make_record()
    first = workers()
    warmup = overdue(app, record, "-2h")
    assert host.wait_for_records(1, timeout=30), first.log()
    wait_until(lambda: load(app, warmup)[0].state == DELIVERED)
    first.kill()  # the worker crashes (between tasks)
    lost = overdue(app, record, "due")
    assert drop_queued_messages(app) >= 1  # ... and the broker loses what was queued for it
    kept = overdue(app, record, "+1wd")
    workers()  # restarted: on the same broker (folder or Redis) and the same database
    # the message that survived in the broker is delivered by the new worker, no sweep needed
    assert host.wait_for_records(2, timeout=30)
    assert sorted(host.records) == sorted([warmup, kept])
    assert load(app, lost)[0].state == PENDING
    # the row of the lost one is the truth: the sweep finds it once its hand-over is stale
    wait_until(lambda: (utcnow() - load(app, lost)[0].enqueued_at).total_seconds() > 1.05)
    run_sweep(app)
    wait_until(lambda: load(app, lost)[0].state == DELIVERED, timeout=30)
    assert sorted(host.records) == sorted([warmup, lost, kept])
    assert len(host.requests) == 3


def test_database_connections_dropped_mid_flight(app, host, make_record, workers,  # noqa: F811
                                                backend):
    """PostgreSQL restarted under a worker that is waiting on the host: the row still ends right.

    (The shared server cannot be restarted by a test; terminating every connection to the test
    database is what a restart does to the clients.)
    """
    if backend != "postgres":
        pytest.skip("only a database server can restart under a running worker")
    record = make_record()
    workers()
    host.stall(1, seconds=0.8, status=500)  # answers within the 1 s client timeout
    wid = overdue(app, record, "due")
    assert host.wait_for(lambda h: h.arrivals >= 1, timeout=30)
    with engine_for(app).connect() as conn:
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert host.wait_for_requests(2, timeout=30)
    wait_until(lambda: load(app, wid)[0].state == DELIVERED, timeout=30)
    _, attempts = load(app, wid)
    assert [a.status_code for a in attempts] == [500, 200]
    assert list(host.records) == [wid]
