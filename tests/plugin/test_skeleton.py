"""Smoke tests of the spine: app, migrations, storage, links, signing, celery worker."""

from __future__ import annotations

import time
import uuid

import pytest

from sharewise.plugin.celery import enqueue
from sharewise.plugin.db import current_revision, engine_for
from sharewise.plugin.storage import storage


def test_migrated_to_head(app):
    assert current_revision(engine_for(app)) == "0012_online_typed"


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


@pytest.mark.services
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_real_worker_over_rabbitmq(app_config, request):
    """The scaled-out broker: amqp:// to RabbitMQ, with a queue of our own."""
    queue = f"sharewise-test-{uuid.uuid4().hex[:8]}"
    app_config["BROKER_URL"] = "amqp://guest:guest@127.0.0.1:5672//"
    app_config["CELERY"] = {"task_default_queue": queue}
    app = request.getfixturevalue("app")

    def delete_queue():
        with app.extensions["celery"].connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)

    request.addfinalizer(delete_queue)  # runs after the worker has stopped
    request.getfixturevalue("celery_worker")
    token = uuid.uuid4().hex
    with app.app_context():
        enqueue("sharewise.ping", token)
    store = storage(app)
    deadline = time.monotonic() + 15
    while not store.exists(f"health/{token}"):
        assert time.monotonic() < deadline, "the worker did not run the task"
        time.sleep(0.05)
