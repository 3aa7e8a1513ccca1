"""A Celery worker whose main process used the database before forking its pool: the app is
built and migrated in the main process (``MIGRATE_ON_START``, as when the Celery worker is
started directly, e.g. ``celery -A sharewise.tasks.worker worker`` from a Procfile), then
Celery forks four pool children. Each pool child must start with connections of its own:
children that shared the parent's PostgreSQL connection failed their first tasks
(``InterfaceError``, "server closed the connection unexpectedly", ``StaleDataError``) and left
half-applied transactions behind (an attempt recorded as a 200 while the delivery stayed
undelivered)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from sharewise.plugin.outbox.models import DELIVERED
from tests.plugin.outbox.conftest import (  # noqa: F401
    app_config,
    host,
    load_delivery,
    make_record,
    smtp,
)
from tests.polling import wait_until
from tests.tasks.test_delivery import overdue

DELIVERIES = 8


def test_a_worker_with_four_pool_children_delivers_cleanly(
        app, app_config, host, make_record, tmp_path):  # noqa: F811
    record = make_record()
    with app.app_context():  # queued before the worker starts: its children race for them
        ids = [overdue(app, record, f"step-{i}") for i in range(DELIVERIES)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
    for key, value in app_config.items():
        if key != "TESTING":
            env[f"SHAREWISE_{key}"] = (json.dumps(value) if isinstance(value, dict | list | bool)
                                       else str(value))
    env["SHAREWISE_MIGRATE_ON_START"] = "true"  # the main process uses the database first
    env["SHAREWISE_LOG_LEVEL"] = "INFO"
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "sharewise.tasks.worker", "worker",
             "--pool", "prefork", "--concurrency", "4", "--loglevel", "INFO"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def delivered() -> bool:
            return all(load_delivery(app, i)[0].state == DELIVERED for i in ids)

        try:
            wait_until(delivered, timeout=60)
        except AssertionError:
            raise AssertionError(log_path.read_text(errors="replace")[-5000:]) from None
    finally:
        proc.send_signal(signal.SIGTERM)  # a warm shutdown of the main process
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log_path.read_text(errors="replace")
    assert sorted(host.records) == sorted(ids), text
    for public_id in ids:
        delivery, attempts = load_delivery(app, public_id)
        assert [(a.number, a.verdict) for a in attempts] == [(1, "success")], text
    for bad in ("Traceback", "ERROR", "CRITICAL", "InterfaceError", "StaleDataError",
                "closed the connection"):
        assert bad not in text, text
    assert "ready." in text  # the worker really started its pool (the log is its own)

