"""Smoke tests of the spine: app, migrations, storage, links, signing, celery worker."""

from __future__ import annotations

import time
import uuid

from plugin.celery import enqueue
from plugin.db import current_revision, engine_for
from plugin.storage import storage


def test_migrated_to_head(app):
    assert current_revision(engine_for(app)) == "0004_reminders"


def test_real_worker_runs_task_in_app_context(app, celery_worker):
    token = uuid.uuid4().hex
    with app.app_context():
        enqueue("sharewise.ping", token)
    deadline = time.monotonic() + 15
    store = storage(app)
    while not store.exists(f"health/{token}"):
        assert time.monotonic() < deadline, "the worker did not run the task"
        time.sleep(0.05)
    assert store.get(f"health/{token}") == token.encode()
